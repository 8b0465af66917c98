import { describe, expect, it } from 'vitest';
import { KNOWN_PRE_TOKENIZERS, preTokenizerFor, WordSplitter } from '../src/tokenizer/pre-tokenizer.js';
import { randomTexts } from './helpers/tokenizer-vectors.js';

/**
 * Pieces whose whitespace JS's \s and llama.cpp's White_Space table agree on (they differ on
 * U+0085, U+180E and U+FEFF), so a plain `u` RegExp is an independent reference.
 */
const PIECES = [
  'a', 'Z', 'é', 'ß', 'Ж', '中', '😀', '0', '7', '²', '½', ' ', '  ', '\n', '\r', '\t', '\u00a0', '\u3000',
  "'", "'s", "'T", "'re", "'LL", "'d", '.', ',', '!', '$', '+', '`', '-', '_', '(', '\u0301', '\u200d',
  'the', ' the', ' 123', '\n\n', ' \n', '\t\n', '3333',
];

/** All matches of a global regex plus the text between them, as llama.cpp keeps both. */
function regexSplit(re: RegExp, text: string): string[] {
  const out: string[] = [];
  let done = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > done) out.push(text.slice(done, m.index));
    out.push(m[0]);
    done = m.index + m[0].length;
  }
  if (done < text.length) out.push(text.slice(done));
  return out;
}

function splitter(pre: string): WordSplitter {
  return new WordSplitter(preTokenizerFor(pre)!.patterns);
}

describe('preTokenizerFor', () => {
  it("maps tokenizer.ggml.pre names to llama.cpp's types", () => {
    const typeOf = (name: string) => preTokenizerFor(name)?.type;
    expect(typeOf('gpt-2')).toBe('gpt2');
    expect(typeOf('phi-2')).toBe('gpt2');
    expect(typeOf('llama-bpe')).toBe('llama3');
    expect(typeOf('llama3')).toBe('llama3');
    expect(typeOf('qwen2')).toBe('qwen2');
    expect(typeOf('megrez')).toBe('qwen2');
    expect(typeOf('deepseek-v3')).toBe('deepseek3-llm');
    expect(typeOf('smaug-bpe')).toBe('smaug');
    for (const name of ['deepseek-llm', 'deepseek-coder', 'falcon', 'mpt', 'starcoder', 'refact', 'olmo', 'smollm']) {
      expect(typeOf(name)).toBe(name);
    }
    // A missing key is llama.cpp's fallback; an unknown name is refused.
    expect(typeOf(undefined as unknown as string)).toBe('default');
    expect(preTokenizerFor('no-such-pre')).toBeNull();
    expect(KNOWN_PRE_TOKENIZERS).toContain('llama-bpe');
    expect(KNOWN_PRE_TOKENIZERS).not.toContain('llama3-bpe');
  });

  it('sets the flags llama.cpp ties to the type', () => {
    expect(preTokenizerFor('llama-bpe')).toMatchObject({ ignoreMerges: true, addBos: true });
    expect(preTokenizerFor('tekken')).toMatchObject({ ignoreMerges: true, addBos: true });
    expect(preTokenizerFor('chameleon')).toMatchObject({ ignoreMerges: false, addBos: true });
    expect(preTokenizerFor('qwen2')).toMatchObject({ ignoreMerges: false, addBos: false });
    expect(preTokenizerFor('gpt-2')).toMatchObject({ ignoreMerges: false, addBos: false });
  });

  it('shares pattern lists between aliases, as llama.cpp does', () => {
    expect(preTokenizerFor('olmo')!.patterns).toEqual(preTokenizerFor('gpt-2')!.patterns);
    expect(preTokenizerFor('smollm')!.patterns).toEqual(preTokenizerFor('starcoder')!.patterns);
    expect(preTokenizerFor('dbrx')!.patterns).toEqual(preTokenizerFor('llama-bpe')!.patterns);
  });
});

describe('WordSplitter', () => {
  it('compiles every known pre-tokenizer and never drops or reorders text', () => {
    const texts = randomTexts(7, 200, PIECES);
    for (const name of KNOWN_PRE_TOKENIZERS) {
      const s = splitter(name);
      for (const t of texts) {
        const words = s.split(t);
        expect(words.join(''), `${name} ${JSON.stringify(t)}`).toBe(t);
        expect(words.every((w) => w.length > 0)).toBe(true);
      }
    }
  });

  it("GPT-2's hand-written splitter cuts like its regex", () => {
    const re = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
    const s = splitter('gpt-2');
    for (const t of randomTexts(11, 2000, PIECES)) expect(s.split(t), JSON.stringify(t)).toEqual(regexSplit(re, t));
  });

  it("Llama 3's hand-written splitter cuts like its regex", () => {
    const re =
      /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;
    const s = splitter('llama-bpe');
    for (const t of randomTexts(12, 2000, PIECES)) expect(s.split(t), JSON.stringify(t)).toEqual(regexSplit(re, t));
  });

  it("Qwen2's pattern, run on category stand-ins, cuts like the Unicode regex", () => {
    const re =
      /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;
    const s = splitter('qwen2');
    for (const t of randomTexts(13, 2000, PIECES)) expect(s.split(t), JSON.stringify(t)).toEqual(regexSplit(re, t));
  });

  it('applies the patterns of a list in turn, each within the pieces of the previous', () => {
    // deepseek-coder: newlines, letter runs, punctuation runs, CJK, then single digits.
    expect(splitter('deepseek-coder').split('ab 12,\n中文x')).toEqual(['ab', ' ', '1', '2', ',', '\n', '中文', 'x']);
    // starcoder: every digit alone, then GPT-2's pattern on what is left.
    expect(splitter('starcoder').split("it's 123 apples")).toEqual(['it', "'s", ' ', '1', '2', '3', ' apples']);
    // falcon: punctuation runs first, then GPT-2's pattern, then digit triples within its pieces.
    expect(splitter('falcon').split('a, 12345!')).toEqual(['a', ',', ' ', '123', '45', '!']);
  });

  it('reads \\s as ASCII whitespace in patterns without categories (std::wregex)', () => {
    // deepseek-llm's "\s+$": U+FEFF is no whitespace to llama.cpp, though JS's \s includes it.
    expect(splitter('deepseek-llm').split('a\ufeff ')).toEqual(['a', '\ufeff', ' ']);
    expect(splitter('deepseek-llm').split('a \u3000')).toEqual(['a', ' \u3000']);
  });
});
