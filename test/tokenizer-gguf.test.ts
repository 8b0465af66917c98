import { describe, expect, it } from 'vitest';
import { BpeTokenizer } from '../src/tokenizer/bpe.js';
import { tokenizerFromGguf } from '../src/tokenizer/from-gguf.js';
import { bpeVocabFromGguf, specialIdsFromGguf, wpmVocabFromGguf } from '../src/tokenizer/gguf-vocab.js';
import { SpmTokenizer } from '../src/tokenizer/spm.js';
import { WpmTokenizer } from '../src/tokenizer/wpm.js';
import { hasShared, readJson } from './helpers/shared-data.js';
import { ggufMetadata, ggufTokenizer, readVocabTests, streamed, vocabPath } from './helpers/tokenizer-vectors.js';

function expectFormatError(fn: () => unknown, field: string, problem: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(e).toMatchObject({ name: 'ModelFormatError', file: 'm.gguf', field });
    expect((e as Error).message).toMatch(problem);
    return;
  }
  throw new Error('expected a ModelFormatError');
}

const bpeMeta = (): Map<string, unknown> =>
  new Map<string, unknown>([
    ['tokenizer.ggml.model', 'gpt2'],
    ['tokenizer.ggml.tokens', ['a', 'b', 'ab', '<|endoftext|>', '<|eot_id|>']],
    ['tokenizer.ggml.token_type', new Int32Array([1, 1, 1, 3, 3])],
    ['tokenizer.ggml.merges', ['a b']],
    ['tokenizer.ggml.bos_token_id', 3],
    ['tokenizer.ggml.eos_token_id', 3],
  ]);

describe('tokenizerFromGguf', () => {
  it('picks the tokenizer by tokenizer.ggml.model', () => {
    expect(tokenizerFromGguf(bpeMeta(), 'm.gguf')).toBeInstanceOf(BpeTokenizer);
    const spm = new Map<string, unknown>([
      ['tokenizer.ggml.model', 'llama'],
      ['tokenizer.ggml.tokens', ['<unk>', '<s>', '</s>', '▁a']],
    ]);
    expect(tokenizerFromGguf(spm, 'm.gguf')).toBeInstanceOf(SpmTokenizer);
    const bert = new Map<string, unknown>([
      ['tokenizer.ggml.model', 'bert'],
      ['tokenizer.ggml.tokens', ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '▁a']],
      ['tokenizer.ggml.bos_token_id', 2],
      ['tokenizer.ggml.seperator_token_id', 3],
      ['tokenizer.ggml.unknown_token_id', 1],
    ]);
    expect(tokenizerFromGguf(bert, 'm.gguf')).toBeInstanceOf(WpmTokenizer);
  });

  it('refuses other tokenizer models by name, listing the supported ones', () => {
    for (const model of ['t5', 'rwkv', 'no_vocab']) {
      const m = bpeMeta();
      m.set('tokenizer.ggml.model', model);
      expectFormatError(
        () => tokenizerFromGguf(m, 'm.gguf'),
        'tokenizer.ggml.model',
        new RegExp(`unsupported tokenizer "${model}"; supported: llama \\(SentencePiece\\), gpt2 \\(byte-level BPE\\), bert \\(WordPiece\\)`),
      );
    }
    const m = bpeMeta();
    m.delete('tokenizer.ggml.model');
    expectFormatError(() => tokenizerFromGguf(m, 'm.gguf'), 'tokenizer.ggml.model', /missing/);
  });

  it('refuses an unknown pre-tokenizer, listing the known ones', () => {
    const m = bpeMeta();
    m.set('tokenizer.ggml.pre', 'gpt-5');
    expectFormatError(() => bpeVocabFromGguf(m, 'm.gguf'), 'tokenizer.ggml.pre', /unknown pre-tokenizer "gpt-5"; known: default, llama3, .*qwen2/);
  });

  it("applies llama.cpp's BPE defaults and the pre-tokenizer's add_bos", () => {
    const m = bpeMeta();
    m.delete('tokenizer.ggml.bos_token_id');
    m.delete('tokenizer.ggml.eos_token_id');
    // llama.cpp's BPE default ids are 11; this 5-token vocabulary has no such token.
    expectFormatError(() => bpeVocabFromGguf(m, 'm.gguf'), 'tokenizer.ggml.bos_token_id', /default 11 is out of range/);
    expect(bpeVocabFromGguf(bpeMeta(), 'm.gguf')).toMatchObject({ pre: undefined, addBos: false, addEos: false });
    const llama3 = bpeMeta();
    llama3.set('tokenizer.ggml.pre', 'llama-bpe');
    expect(bpeVocabFromGguf(llama3, 'm.gguf').addBos).toBe(true);
    llama3.set('tokenizer.ggml.add_bos_token', false);
    expect(bpeVocabFromGguf(llama3, 'm.gguf').addBos).toBe(false);
  });

  it('rejects malformed BPE and WordPiece metadata', () => {
    const bad: Array<[string, unknown, RegExp]> = [
      ['tokenizer.ggml.merges', undefined, /missing/],
      ['tokenizer.ggml.merges', [1, 2], /array of strings/],
      ['tokenizer.ggml.pre', 7, /must be a string/],
      ['tokenizer.ggml.token_type', new Int32Array(4), /4 entries for 5 tokens/],
      ['tokenizer.ggml.eos_token_id', 5, /out of range/],
    ];
    for (const [key, value, problem] of bad) {
      const m = bpeMeta();
      if (value === undefined) m.delete(key);
      else m.set(key, value);
      expectFormatError(() => bpeVocabFromGguf(m, 'm.gguf'), key, problem);
    }
    const bert = new Map<string, unknown>([
      ['tokenizer.ggml.model', 'bert'],
      ['tokenizer.ggml.tokens', ['[PAD]', '▁a']],
    ]);
    expectFormatError(() => wpmVocabFromGguf(bert, 'm.gguf'), 'tokenizer.ggml.cls_token_id', /default 101 is out of range/);
  });

  it('reads the optional role ids, the deprecated FIM keys winning as in llama.cpp', () => {
    const m = bpeMeta();
    expect(specialIdsFromGguf(m, 'm.gguf', 5)).toEqual({});
    m.set('tokenizer.ggml.eot_token_id', 2);
    m.set('tokenizer.ggml.fim_pre_token_id', 0);
    m.set('tokenizer.ggml.prefix_token_id', 1n);
    expect(specialIdsFromGguf(m, 'm.gguf', 5)).toEqual({ eot: 2, fimPre: 1 });
    m.set('tokenizer.ggml.eom_token_id', 9);
    expectFormatError(() => specialIdsFromGguf(m, 'm.gguf', 5), 'tokenizer.ggml.eom_token_id', /out of range/);

    const m2 = bpeMeta();
    m2.set('tokenizer.ggml.eot_token_id', 2);
    const tok = tokenizerFromGguf(m2, 'm.gguf');
    expect(tok.isEog(2)).toBe(true);
    // With an explicit EOT, <|eot_id|> still ends generation: llama.cpp's name list is unconditional.
    expect(tok.isEog(4)).toBe(true);
    expect(tok.isEog(0)).toBe(false);
  });
});

describe.skipIf(!hasShared)('SentencePiece vocabularies through tokenizerFromGguf', () => {
  for (const name of ['phi-3', 'llama-spm']) {
    it(`ggml-vocab-${name}: encodes all 46 like llama.cpp and decodes them back`, () => {
      const tok = ggufTokenizer(vocabPath(name));
      expect(tok).toBeInstanceOf(SpmTokenizer);
      const tests = readVocabTests(vocabPath(name));
      expect(tests).toHaveLength(46);
      for (const t of tests) {
        expect(tok.encode(t.text, { addBos: false }), JSON.stringify(t.text)).toEqual(t.ids);
        expect(tok.decode(t.ids)).toBe(t.text);
        expect(streamed(tok, t.ids)).toBe(t.text);
      }
    });
  }

  it('phi-3: its turn markers are control tokens and <|end|> ends generation', () => {
    const tok = ggufTokenizer(vocabPath('phi-3'));
    const end = tok.specialTokenId('<|end|>')!;
    const user = tok.specialTokenId('<|user|>')!;
    expect(tok.isEog(end)).toBe(true);
    expect(tok.isEog(tok.eos)).toBe(true);
    expect(tok.isEog(user)).toBe(false);
    expect(tok.encode('<|user|>\nHi<|end|>', { parseSpecial: true }).filter((id) => id === user || id === end)).toEqual([user, end]);
  });

  it('ggml-vocab-baichuan (no test vectors) loads and round-trips', () => {
    const tok = ggufTokenizer(vocabPath('baichuan'));
    expect(tok).toBeInstanceOf(SpmTokenizer);
    expect(tok.vocabSize).toBe(64000);
    for (const { text } of readVocabTests(vocabPath('phi-3'))) {
      expect(tok.decode(tok.encode(text)), JSON.stringify(text)).toBe(text);
    }
  });

  it('golden arch spm512: llama2-f32.gguf tokenizes its prompt to the stored ids', () => {
    const g = readJson<Record<string, { text: string; ids: number[] }>>('golden/arch/tokens.json').spm512;
    const tok = ggufTokenizer('golden/arch/llama2-f32/llama2-f32.gguf');
    expect(tok.encode(g.text).slice(0, 32)).toEqual(g.ids);
  });

  it('keeps metadata errors tied to the file', () => {
    const m = ggufMetadata(vocabPath('phi-3'));
    m.set('tokenizer.ggml.eot_token_id', 1e6);
    expect(() => tokenizerFromGguf(m, 'phi3.gguf')).toThrow(/phi3\.gguf: tokenizer\.ggml\.eot_token_id: 1000000 is out of range for 32064 tokens/);
  });
});
