import { describe, expect, it } from 'vitest';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { BpeTokenizer } from '../src/tokenizer/bpe.js';
import { BYTE_TO_CHAR, toByteAlphabet } from '../src/tokenizer/byte-unicode.js';
import { tokenizerFromGguf } from '../src/tokenizer/from-gguf.js';
import { TokenType } from '../src/tokenizer/types.js';
import type { BpeVocab } from '../src/tokenizer/types.js';
import { dataPath, hasShared, readJson } from './helpers/shared-data.js';
import {
  ggufMetadata,
  ggufTokenizer,
  randomTexts,
  readVocabTests,
  rng,
  streamed,
  vocabPath,
} from './helpers/tokenizer-vectors.js';

/** The 256 byte tokens, then tokens for the merges' results, then extra tokens. */
function toyVocab(
  merges: string[],
  opts: { extra?: [string, TokenType][]; pre?: string; skip?: string[]; addBos?: boolean; addEos?: boolean } = {},
): BpeVocab {
  const tokens = [...BYTE_TO_CHAR];
  const types: number[] = tokens.map(() => TokenType.Normal);
  for (const m of merges) {
    const t = m.replace(' ', '');
    if (!tokens.includes(t) && !opts.skip?.includes(t)) {
      tokens.push(t);
      types.push(TokenType.Normal);
    }
  }
  for (const [t, type] of opts.extra ?? []) {
    tokens.push(t);
    types.push(type);
  }
  return {
    tokens,
    types: Int32Array.from(types),
    merges,
    pre: opts.pre ?? 'gpt-2',
    bos: tokens.length - 1,
    eos: tokens.length - 1,
    addBos: opts.addBos ?? false,
    addEos: opts.addEos ?? false,
  };
}

const texts = (tok: BpeTokenizer, ids: number[]) => ids.map((id) => tok.vocab.tokens[id]);

describe('GPT-2 byte alphabet', () => {
  it('spells every byte as one distinct code point, printable Latin-1 as itself', () => {
    expect(new Set(BYTE_TO_CHAR).size).toBe(256);
    expect(BYTE_TO_CHAR[0x41]).toBe('A');
    expect(BYTE_TO_CHAR[0xe9]).toBe('é');
    // The values GPT-2's vocabulary uses: "Ġ" for space, "Ċ" for newline.
    expect(BYTE_TO_CHAR[0x20]).toBe('Ġ');
    expect(BYTE_TO_CHAR[0x0a]).toBe('Ċ');
    expect(BYTE_TO_CHAR[0x00]).toBe('\u0100');
    expect(BYTE_TO_CHAR[0xad]).toBe('\u0143');
    expect(toByteAlphabet(' é')).toBe('ĠÃ©');
  });
});

describe('BpeTokenizer: merging', () => {
  it('applies the lowest-ranked rule first', () => {
    const a = new BpeTokenizer(toyVocab(['b c', 'a b']));
    expect(texts(a, a.encode('abc'))).toEqual(['a', 'bc']);
    const b = new BpeTokenizer(toyVocab(['a b', 'b c']));
    expect(texts(b, b.encode('abc'))).toEqual(['ab', 'c']);
  });

  it('merges the leftmost pair on equal ranks and keeps merging results', () => {
    const t = new BpeTokenizer(toyVocab(['a a', 'aa aa']));
    expect(texts(t, t.encode('aaaaa'))).toEqual(['aaaa', 'a']);
    expect(texts(t, t.encode('aaa'))).toEqual(['aa', 'a']);
  });

  it('writes words in the byte alphabet and merges within words only', () => {
    const t = new BpeTokenizer(toyVocab(['Ġ t', 'Ġt h', 'Ġth e', 'Ã ©']));
    expect(texts(t, t.encode('the the é'))).toEqual(['t', 'h', 'e', 'Ġthe', 'Ġ', 'Ã©']);
  });

  it("emits a non-token merge result as its one-byte tokens, dropping other bytes (llama.cpp's fallback)", () => {
    const t = new BpeTokenizer(toyVocab(['a b', 'Ã ©'], { skip: ['ab', 'Ã©'] }));
    expect(texts(t, t.encode('ab'))).toEqual(['a', 'b']);
    expect(t.encode('é')).toEqual([]);
  });

  it('takes a whole word that is a token without merging when the pre-tokenizer says so (Llama 3)', () => {
    const extra: [string, TokenType][] = [['abc', TokenType.Normal]];
    const llama3 = new BpeTokenizer(toyVocab(['a b'], { extra, pre: 'llama-bpe' }));
    expect(texts(llama3, llama3.encode('abc'))).toEqual(['abc']);
    const gpt2 = new BpeTokenizer(toyVocab(['a b'], { extra, pre: 'gpt-2' }));
    expect(texts(gpt2, gpt2.encode('abc'))).toEqual(['ab', 'c']);
  });
});

describe('BpeTokenizer: special tokens', () => {
  const v = toyVocab(['a b'], {
    extra: [
      ['<|u|>', TokenType.UserDefined],
      ['<|im_start|>', TokenType.Control],
      ['<|im_end|>', TokenType.Normal],
      ['<|endoftext|>', TokenType.Control],
    ],
    addBos: true,
  });
  const tok = new BpeTokenizer(v);
  const id = (t: string) => v.tokens.indexOf(t);

  it('always cuts out user-defined tokens, control tokens only with parseSpecial', () => {
    expect(tok.encode('ab<|u|>ab', { addBos: false })).toEqual([id('ab'), id('<|u|>'), id('ab')]);
    const plain = tok.encode('<|im_start|>ab', { addBos: false });
    expect(plain).not.toContain(id('<|im_start|>'));
    expect(tok.decode(plain)).toBe('<|im_start|>ab');
    expect(tok.encode('<|im_start|>ab', { addBos: false, parseSpecial: true })).toEqual([id('<|im_start|>'), id('ab')]);
  });

  it('adds BOS and EOS as the vocabulary asks; addBos false adds neither', () => {
    expect(tok.encode('ab')).toEqual([tok.bos, id('ab')]);
    const both = new BpeTokenizer({ ...v, addEos: true });
    expect(both.encode('ab')).toEqual([v.bos, id('ab'), v.eos]);
    expect(both.encode('ab', { addBos: false })).toEqual([id('ab')]);
  });

  it("treats EOS and llama.cpp's end-of-turn names as end of generation, forced to control", () => {
    expect(tok.isEog(id('<|im_end|>'))).toBe(true);
    expect(tok.isEog(id('<|endoftext|>'))).toBe(true);
    expect(tok.isEog(id('<|im_start|>'))).toBe(false);
    expect(tok.isEog(id('ab'))).toBe(false);
    // <|im_end|> is typed normal in the vocabulary; llama.cpp makes it control: parsed only as special, rendered as nothing.
    expect(tok.decode([id('ab'), id('<|im_end|>')])).toBe('ab');
    expect(tok.specialTokenId('<|im_end|>')).toBe(id('<|im_end|>'));
    expect(tok.specialTokenId('<|im_start|>')).toBe(id('<|im_start|>'));
    expect(tok.specialTokenId('ab')).toBeUndefined();
    const eot = new BpeTokenizer(v, { eot: id('ab') });
    expect(eot.isEog(id('ab'))).toBe(true);
  });

  it('renders user-defined tokens as written and control tokens as nothing', () => {
    expect(tok.decode([id('<|u|>'), id('<|im_start|>'), id('a')])).toBe('<|u|>a');
    expect(tok.piece(id('<|im_start|>'))).toBe('<|im_start|>');
    expect(tok.piece(BYTE_TO_CHAR.indexOf('Ġ'))).toBe(' ');
  });

  it('streams the same text as decode, holding back split UTF-8 sequences', () => {
    const next = rng(99);
    const pool = [...tok.encode('aé中😀b'), id('<|u|>'), id('<|im_start|>'), 0xc3 - 0x21, 0x80];
    for (let trial = 0; trial < 300; trial++) {
      const ids = Array.from({ length: Math.floor(next() * 10) }, () => pool[Math.floor(next() * pool.length)]);
      expect(streamed(tok, ids), JSON.stringify(ids)).toBe(tok.decode(ids));
    }
    expect(tok.decode(tok.encode('aé中😀b', { addBos: false }))).toBe('aé中😀b');
  });

  it('rejects bad vocabularies and ids', () => {
    expect(() => new BpeTokenizer({ ...v, pre: 'nope' })).toThrow(/unknown pre-tokenizer "nope"/);
    expect(() => new BpeTokenizer({ ...v, bos: v.tokens.length })).toThrow(/bos id/);
    expect(() => tok.decode([v.tokens.length])).toThrow(RangeError);
    expect(() => tok.piece(-1)).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------
// Against the reference files in ../shared/data.

const WITH_VECTORS = ['gpt-2', 'falcon', 'deepseek-llm', 'deepseek-coder', 'mpt', 'refact', 'starcoder'];

describe.skipIf(!hasShared)('llama.cpp tokenizer test vectors (byte-level BPE)', () => {
  for (const name of WITH_VECTORS) {
    it(`ggml-vocab-${name}: encodes all 46 like llama.cpp and decodes them back`, () => {
      const tok = ggufTokenizer(vocabPath(name));
      expect(tok).toBeInstanceOf(BpeTokenizer);
      const tests = readVocabTests(vocabPath(name));
      expect(tests).toHaveLength(46);
      for (const t of tests) {
        expect(tok.encode(t.text, { addBos: false }), JSON.stringify(t.text)).toEqual(t.ids);
        expect(tok.decode(t.ids)).toBe(t.text);
        expect(streamed(tok, t.ids)).toBe(t.text);
      }
    });
  }

  it('ggml-vocab-gpt-neox (no tokenizer.ggml.pre: the default pre-tokenizer) loads and round-trips', () => {
    const tok = ggufTokenizer(vocabPath('gpt-neox')) as BpeTokenizer;
    expect(tok.preTokenizer.type).toBe('default');
    const samples = readVocabTests(vocabPath('mpt')).map((t) => t.text);
    for (const text of [...samples, ...randomTexts(5, 200, PIECES)]) {
      const ids = tok.encode(text, { addBos: false });
      expect(tok.decode(ids), JSON.stringify(text)).toBe(text);
    }
  });
});

/** Pieces on which JS's \s and llama.cpp's whitespace table agree (see tokenizer-pre.test.ts). */
const PIECES = [
  'a', 'Z', 'é', 'ß', 'Ж', '中', '😀', '0', '7', '²', '½', ' ', '  ', '\n', '\r', '\t', '\u00a0', '\u3000',
  "'", "'s", "'T", "'re", "'LL", '.', ',', '!', '$', '+', '`', '-', '_', '(', '\u0301', '\u200d', 'ँ',
  'the', ' the', ' 123', '\n\n', ' \n', '\t\n',
];

const LLAMA3_REGEX = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2_REGEX = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const byteLevel = (useRegex: boolean) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
const splitThenBytes = (regex: string) => ({
  type: 'Sequence',
  pretokenizers: [{ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false }, byteLevel(false)],
});

/**
 * Pre-tokenizers with no vocabulary of their own here, checked against Hugging Face's tokenizer
 * (tokenizers.js) given the upstream tokenizer.json pre_tokenizer of each, over GPT-2's
 * vocabulary and merges. (SmolLM's Digits step is not compared: tokenizers.js splits only ASCII
 * digits where HF's Rust code splits every \p{N}; starcoder's vectors cover that pattern list.)
 */
const HF_PRE_TOKENIZERS: Record<string, { pre: object; ignoreMerges: boolean }> = {
  'llama-bpe': { pre: splitThenBytes(LLAMA3_REGEX), ignoreMerges: true },
  qwen2: { pre: splitThenBytes(QWEN2_REGEX), ignoreMerges: false },
  'gpt-2': { pre: byteLevel(true), ignoreMerges: false },
  olmo: { pre: byteLevel(true), ignoreMerges: false },
};

describe.skipIf(!hasShared)('pre-tokenizers against Hugging Face tokenizers.js (GPT-2 vocabulary)', () => {
  const meta = hasShared ? ggufMetadata(vocabPath('gpt-2')) : new Map<string, unknown>();
  const samples = hasShared ? readVocabTests(vocabPath('gpt-2')).map((t) => t.text) : [];

  for (const [pre, cfg] of Object.entries(HF_PRE_TOKENIZERS)) {
    it(`${pre}: same ids as tokenizers.js on the 46 test strings and 500 random ones`, () => {
      const tokens = meta.get('tokenizer.ggml.tokens') as string[];
      const hf = new HfTokenizer(
        {
          version: '1.0',
          added_tokens: [],
          normalizer: null,
          pre_tokenizer: cfg.pre,
          post_processor: null,
          decoder: { type: 'ByteLevel' },
          model: {
            type: 'BPE',
            vocab: Object.fromEntries(tokens.map((t, i) => [t, i])),
            merges: [...(meta.get('tokenizer.ggml.merges') as string[])],
            ignore_merges: cfg.ignoreMerges,
            byte_fallback: false,
            dropout: null,
            unk_token: null,
            continuing_subword_prefix: null,
            end_of_word_suffix: null,
            fuse_unk: false,
          },
        },
        {},
      );
      const m = new Map(meta);
      m.set('tokenizer.ggml.pre', pre);
      const tok = tokenizerFromGguf(m, 'gpt-2-as-' + pre);
      for (const text of [...samples, ...randomTexts(21, 500, PIECES)]) {
        const ids = tok.encode(text, { addBos: false });
        expect(ids, JSON.stringify(text)).toEqual(hf.encode(text, { add_special_tokens: false }).ids);
        expect(tok.decode(ids)).toBe(text);
      }
    });
  }
});

describe.skipIf(!hasShared)('golden arch models: token ids from their own GGUF vocabulary', () => {
  const golden = hasShared ? readJson<Record<string, { text: string; ids: number[] }>>('golden/arch/tokens.json') : {};
  const arch = (m: string) => `golden/arch/${m}/${m}.gguf`;

  it('llama3 (llama-bpe over a 1024-token GPT-2 vocabulary): BOS, then the text', () => {
    const tok = ggufTokenizer(arch('llama3-f32'));
    const g = golden.llama3;
    expect(tok.encode(g.text).slice(0, 32)).toEqual(g.ids);
    expect(tok.decode(tok.encode(g.text))).toBe(g.text);
  });

  it('qwen2 (qwen2 pre-tokenizer, add_bos_token false): the text alone', () => {
    const tok = ggufTokenizer(arch('qwen2-f32'));
    const g = golden.qwen2;
    expect(tok.encode(g.text).slice(0, 32)).toEqual(g.ids);
    expect(tok.decode(tok.encode(g.text))).toBe(g.text);
  });

  it('knows their end-of-generation and turn tokens', () => {
    const llama3 = ggufTokenizer(arch('llama3-f32'));
    expect(llama3.specialTokenId('<|begin_of_text|>')).toBe(llama3.bos);
    expect(llama3.isEog(llama3.eos)).toBe(true);
    expect(llama3.isEog(llama3.specialTokenId('<|eot_id|>')!)).toBe(true);
    expect(llama3.isEog(llama3.bos)).toBe(false);

    const qwen2 = ggufTokenizer(arch('qwen2-f32'));
    const imStart = qwen2.specialTokenId('<|im_start|>')!;
    const imEnd = qwen2.specialTokenId('<|im_end|>')!;
    expect(qwen2.isEog(imEnd)).toBe(true);
    expect(qwen2.isEog(imStart)).toBe(false);
    const turn = qwen2.encode('<|im_start|>user\nhi<|im_end|>', { parseSpecial: true });
    expect(turn[0]).toBe(imStart);
    expect(turn.at(-1)).toBe(imEnd);
    expect(qwen2.decode(turn)).toBe('user\nhi');
  });

  it('the file names the GGUF it came from in errors', () => {
    const m = ggufMetadata(arch('qwen2-f32'));
    m.set('tokenizer.ggml.pre', 'qwen9');
    expect(() => tokenizerFromGguf(m, dataPath(arch('qwen2-f32')))).toThrow(/qwen2-f32\.gguf: tokenizer\.ggml\.pre: unknown pre-tokenizer "qwen9"; known: .*llama-bpe/);
  });
});
