import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { SpmTokenizer } from '../src/tokenizer/spm.js';
import { TokenType } from '../src/tokenizer/types.js';
import type { SpmVocab } from '../src/tokenizer/types.js';
import { readLlama2cTokenizer } from '../src/tokenizer/llama2c-vocab.js';
import { spmVocabFromGguf } from '../src/tokenizer/gguf-vocab.js';
import { readGguf } from '../src/formats/gguf.js';
import { dataPath, hasShared, readJson } from './helpers/shared-data.js';

/** A vocabulary with llama's layout: <unk>, <s>, </s>, 256 byte pieces, then `pieces`. */
function toyVocab(
  pieces: ReadonlyArray<readonly [text: string, score: number, type?: TokenType]>,
  opts: Partial<Omit<SpmVocab, 'tokens' | 'scores' | 'types'>> & { bytes?: boolean } = {},
): SpmVocab {
  const all: [string, number, TokenType][] = [
    ['<unk>', 0, TokenType.Unknown],
    ['<s>', 0, TokenType.Control],
    ['</s>', 0, TokenType.Control],
  ];
  if (opts.bytes !== false) {
    for (let b = 0; b < 256; b++) {
      all.push([`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 0, TokenType.Byte]);
    }
  }
  for (const [text, score, type] of pieces) all.push([text, score, type ?? TokenType.Normal]);
  return {
    tokens: all.map((p) => p[0]),
    scores: Float32Array.from(all, (p) => p[1]),
    types: Int32Array.from(all, (p) => p[2]),
    bos: 1,
    eos: 2,
    unk: 0,
    addBos: opts.addBos ?? true,
    addEos: opts.addEos ?? false,
    addSpacePrefix: opts.addSpacePrefix ?? true,
  };
}

/** Ids of the given pieces in a vocabulary. */
function idsOf(vocab: SpmVocab, ...texts: string[]): number[] {
  return texts.map((t) => {
    const id = vocab.tokens.indexOf(t);
    expect(id, `token ${t}`).toBeGreaterThanOrEqual(0);
    return id;
  });
}

function byteIds(vocab: SpmVocab, text: string): number[] {
  return [...Buffer.from(text, 'utf8')].map((b) =>
    vocab.tokens.indexOf(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`),
  );
}

function streamed(tok: SpmTokenizer, ids: ArrayLike<number>): string {
  const d = tok.decoder();
  let s = '';
  for (let i = 0; i < ids.length; i++) s += d.push(ids[i]);
  return s + d.flush();
}

/** Deterministic PRNG (mulberry32) for the property tests. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('SpmTokenizer: merging', () => {
  it('merges the highest-scoring pair first', () => {
    const v = toyVocab([['a', -1], ['b', -1], ['c', -1], ['ab', -3], ['bc', -2]], { addSpacePrefix: false });
    const tok = new SpmTokenizer(v);
    expect(tok.encode('abc', { addBos: false })).toEqual(idsOf(v, 'a', 'bc'));
  });

  it('breaks score ties by the leftmost pair', () => {
    const v = toyVocab([['a', -1], ['aa', -2]], { addSpacePrefix: false });
    const tok = new SpmTokenizer(v);
    expect(tok.encode('aaa', { addBos: false })).toEqual(idsOf(v, 'aa', 'a'));
    expect(tok.encode('aaaaa', { addBos: false })).toEqual(idsOf(v, 'aa', 'aa', 'a'));
  });

  it('merges through intermediate pieces up to long tokens', () => {
    const v = toyVocab([
      ...(['▁', 'h', 'e', 'l', 'o'] as const).map((c) => [c, -1] as const),
      ['▁h', -5],
      ['el', -4],
      ['ell', -6],
      ['▁hell', -7],
      ['▁hello', -8],
    ]);
    const tok = new SpmTokenizer(v);
    expect(tok.encode('hello', { addBos: false })).toEqual(idsOf(v, '▁hello'));
    expect(tok.encode('hello hell', { addBos: false })).toEqual(idsOf(v, '▁hello', '▁hell'));
  });

  it('looks merged texts up among all tokens, control ones included (as llama.cpp does)', () => {
    const v = toyVocab([['<', -1], ['s', -1], ['>', -1], ['<s', -2]], { addSpacePrefix: false });
    const tok = new SpmTokenizer(v);
    // "<s" + ">" is the text of the control token <s>, so the pair merges into it.
    expect(tok.encode('<s>', { addBos: false })).toEqual([1]);
  });

  it('falls back to UTF-8 byte tokens for unknown characters (CJK, emoji)', () => {
    const v = toyVocab([['▁', -1], ['a', -1]]);
    const tok = new SpmTokenizer(v);
    const [space, a] = idsOf(v, '▁', 'a');
    const expected = [space, a, ...byteIds(v, '中'), ...byteIds(v, '😀'), a];
    expect(tok.encode('a中😀a', { addBos: false })).toEqual(expected);
    expect(byteIds(v, '😀')).toHaveLength(4);
    expect(tok.decode(tok.encode('a中😀a'))).toBe('a中😀a');
  });

  it('uses a character token over byte fallback when the vocabulary has it', () => {
    const v = toyVocab([['▁', -1], ['中', -1], ['😀', -1]]);
    const tok = new SpmTokenizer(v);
    expect(tok.encode('中😀', { addBos: false })).toEqual(idsOf(v, '▁', '中', '😀'));
  });

  it('emits unk for a byte whose <0xNN> token is missing', () => {
    const v = toyVocab([['▁', -1], ['a', -1]], { bytes: false });
    const tok = new SpmTokenizer(v);
    expect(tok.encode('aé', { addBos: false })).toEqual([...idsOf(v, '▁', 'a'), 0, 0]);
  });

  it('reads a lone surrogate as U+FFFD, as its UTF-8 encoding would', () => {
    const v = toyVocab([['▁', -1]]);
    const tok = new SpmTokenizer(v);
    expect(tok.encode('\ud800', { addBos: false })).toEqual(tok.encode('\ufffd', { addBos: false }));
  });
});

describe('SpmTokenizer: BOS, EOS, spaces, special tokens', () => {
  const v = toyVocab([['▁', -1], ['a', -1], ['b', -1], ['▁a', -2], ['▁▁', -3]]);
  const tok = new SpmTokenizer(v);
  const [sp, a, b, spA, spSp] = idsOf(v, '▁', 'a', 'b', '▁a', '▁▁');

  it('gives nothing but BOS for empty text', () => {
    expect(tok.encode('')).toEqual([1]);
    expect(tok.encode('', { addBos: false })).toEqual([]);
    expect(tok.decode([])).toBe('');
    expect(tok.decode([1])).toBe('');
  });

  it('prepends BOS by default and one dummy-prefix space', () => {
    expect(tok.encode('a')).toEqual([1, spA]);
    expect(tok.encode(' a', { addBos: false })).toEqual([sp, spA]);
    expect(tok.encode('  a', { addBos: false })).toEqual([spSp, spA]);
    expect(tok.encode('ab b', { addBos: false })).toEqual([spA, b, sp, b]);
  });

  it('adds no space prefix when the vocabulary says so', () => {
    const t2 = new SpmTokenizer({ ...v, addSpacePrefix: false });
    expect(t2.encode('a', { addBos: false })).toEqual([a]);
    expect(t2.decode([sp, a])).toBe(' a');
  });

  it('appends EOS when the vocabulary asks for it, unless special tokens are off', () => {
    const t2 = new SpmTokenizer({ ...v, addEos: true });
    expect(t2.encode('a')).toEqual([1, spA, 2]);
    expect(t2.encode('a', { addBos: false })).toEqual([spA]);
    expect(t2.encode('')).toEqual([1, 2]);
  });

  it('matches control tokens in the text only with parseSpecial, and re-adds the space prefix after them', () => {
    expect(tok.encode('a<s>a', { addBos: false })).not.toContain(1);
    expect(tok.encode('a<s>a', { addBos: false, parseSpecial: true })).toEqual([spA, 1, spA]);
    expect(tok.encode('<s>a', { parseSpecial: true })).toEqual([1, 1, spA]);
    expect(tok.encode('a</s>', { addBos: false, parseSpecial: true })).toEqual([spA, 2]);
    expect(tok.encode('<unk>', { addBos: false, parseSpecial: true })).toEqual([0]);
  });

  it('always matches user-defined tokens, each token in turn from the longest', () => {
    const user = TokenType.UserDefined;
    const pieces = [['▁', -1], ['a', -1], ['c', -1], ['d', -1], ['ab', 0, user], ['bcd', 0, user]] as const;
    const u = toyVocab(pieces, { addSpacePrefix: false });
    const t2 = new SpmTokenizer(u);
    const [ta, tab, tbcd, tc, td] = idsOf(u, 'a', 'ab', 'bcd', 'c', 'd');
    // llama.cpp cuts out "bcd" everywhere before it looks for "ab": no leftmost-first scan.
    expect(t2.encode('abcd', { addBos: false })).toEqual([ta, tbcd]);
    expect(t2.encode('abab', { addBos: false })).toEqual([tab, tab]);
    expect(t2.encode('abcdab', { addBos: false })).toEqual([ta, tbcd, tab]);
    expect(t2.encode('cab', { addBos: false })).toEqual([tc, tab]);
    expect(t2.encode('d', { addBos: false })).toEqual([td]);
    // User-defined tokens decode as their raw text.
    expect(t2.decode(t2.encode('abcdab'))).toBe('abcdab');
  });

  it('does not let overlapping occurrences of one special token both match', () => {
    const u = toyVocab([['a', -1], ['aa', 0, TokenType.UserDefined]], { addSpacePrefix: false });
    const t2 = new SpmTokenizer(u);
    const [ta, taa] = idsOf(u, 'a', 'aa');
    expect(t2.encode('aaa', { addBos: false })).toEqual([taa, ta]);
  });
});

describe('SpmTokenizer: decoding', () => {
  const v = toyVocab([['▁', -1], ['a', -1], ['▁a', -2], ['<|im_end|>', 0], ['x▁y', -3]]);
  const tok = new SpmTokenizer(v);
  const [sp, a, spA, imEnd, xy] = idsOf(v, '▁', 'a', '▁a', '<|im_end|>', 'x▁y');
  const bytes = (s: string) => byteIds(v, s);

  it('renders control and unknown tokens as empty text and ▁ as space', () => {
    expect(tok.decode([1, spA, 2, a, 0, sp, xy])).toBe('aa x y');
  });

  it('drops the dummy-prefix space of the first text token, after BOS and control tokens', () => {
    expect(tok.decode([spA, spA])).toBe('a a');
    expect(tok.decode([1, 2, spA])).toBe('a');
    expect(tok.decode([a, spA])).toBe('a a');
    expect(new SpmTokenizer({ ...v, addSpacePrefix: false }).decode([1, spA])).toBe(' a');
  });

  it('joins byte tokens before UTF-8 decoding', () => {
    expect(tok.decode([a, ...bytes('é中😀'), a])).toBe('aé中😀a');
    expect(tok.decode(bytes('😀').slice(0, 3))).toBe('\ufffd');
  });

  it('streams the same text as decode, holding back split UTF-8 sequences', () => {
    const d = tok.decoder();
    const [e0, e1, e2, e3] = bytes('😀');
    expect(d.push(1)).toBe('');
    expect(d.push(spA)).toBe('a');
    expect(d.push(e0)).toBe('');
    expect(d.push(e1)).toBe('');
    expect(d.push(e2)).toBe('');
    expect(d.push(e3)).toBe('😀');
    expect(d.push(e0)).toBe('');
    expect(d.flush()).toBe('\ufffd');
  });

  it('keeps a leading byte-order mark', () => {
    expect(tok.decode(tok.encode('\ufeffa'))).toBe('\ufeffa');
    expect(streamed(tok, tok.encode('\ufeffa'))).toBe('\ufeffa');
  });

  it('streamed output equals decode on random id sequences, invalid UTF-8 included', () => {
    const next = rng(1234);
    const pool = [0, 1, 2, sp, a, spA, xy, ...bytes('é中😀'), ...bytes('\x7f'), 3 + 0x80, 3 + 0xff, 3 + 0xc3];
    for (let trial = 0; trial < 500; trial++) {
      const ids = Array.from({ length: Math.floor(next() * 12) }, () => pool[Math.floor(next() * pool.length)]);
      expect(streamed(tok, ids), JSON.stringify(ids)).toBe(tok.decode(ids));
    }
  });

  it('prints pieces with spaces, byte tokens and control tokens by name', () => {
    expect(tok.piece(spA)).toBe(' a');
    expect(tok.piece(xy)).toBe('x y');
    expect(tok.piece(1)).toBe('<s>');
    expect(tok.piece(0)).toBe('<unk>');
    expect(tok.piece(bytes('\n')[0])).toBe('<0x0A>');
  });

  it('treats EOS and llama.cpp end-of-turn names as end of generation', () => {
    expect(tok.isEog(2)).toBe(true);
    expect(tok.isEog(imEnd)).toBe(true);
    expect(tok.isEog(1)).toBe(false);
    expect(tok.isEog(spA)).toBe(false);
    // llama.cpp forces such tokens to the control type: they render as nothing.
    expect(tok.decode([spA, imEnd])).toBe('a');
    expect(tok.encode('<|im_end|>', { addBos: false, parseSpecial: true })).toEqual([imEnd]);
  });

  it('rejects out-of-range ids with the id and the vocabulary size', () => {
    const n = v.tokens.length;
    expect(() => tok.decode([a, n])).toThrow(RangeError);
    expect(() => tok.decode([n])).toThrow(new RegExp(`token id ${n} .*${n} tokens`));
    expect(() => tok.decode([-1])).toThrow(RangeError);
    expect(() => tok.decode([1.5])).toThrow(RangeError);
    expect(() => tok.decoder().push(n + 7)).toThrow(RangeError);
    expect(() => tok.piece(n)).toThrow(RangeError);
  });
});

describe('SpmTokenizer: vocabulary checks', () => {
  const v = toyVocab([['a', -1]]);

  it('rejects inconsistent vocabularies', () => {
    expect(() => new SpmTokenizer({ ...v, scores: new Float32Array(3) })).toThrow(/scores/);
    expect(() => new SpmTokenizer({ ...v, types: new Int32Array(3) })).toThrow(/types/);
    expect(() => new SpmTokenizer({ ...v, bos: v.tokens.length })).toThrow(/bos id/);
    expect(() => new SpmTokenizer({ ...v, tokens: [], scores: new Float32Array(0), types: new Int32Array(0) })).toThrow(
      /empty/,
    );
    const types = Int32Array.from(v.types);
    types[v.tokens.indexOf('a')] = TokenType.Byte;
    expect(() => new SpmTokenizer({ ...v, types })).toThrow(/byte token/);
  });
});

describe('spmVocabFromGguf', () => {
  const base = (): Map<string, unknown> =>
    new Map<string, unknown>([
      ['tokenizer.ggml.model', 'llama'],
      ['tokenizer.ggml.tokens', ['<unk>', '<s>', '</s>', '<0x0A>', '▁a']],
      ['tokenizer.ggml.scores', new Float32Array([0, 0, 0, 0, -1])],
      ['tokenizer.ggml.token_type', new Int32Array([2, 3, 3, 6, 1])],
    ]);
  const fails = (meta: Map<string, unknown>, field: string, problem: RegExp) => {
    try {
      spmVocabFromGguf(meta, 'm.gguf');
    } catch (e) {
      expect(e).toMatchObject({ name: 'ModelFormatError', file: 'm.gguf', field });
      expect((e as Error).message).toMatch(problem);
      return;
    }
    throw new Error('expected a ModelFormatError');
  };

  it("applies llama.cpp's defaults", () => {
    const v = spmVocabFromGguf(base(), 'm.gguf');
    expect(v).toMatchObject({ bos: 1, eos: 2, unk: 0, addBos: true, addEos: false, addSpacePrefix: true });
    expect(v.tokens).toEqual(['<unk>', '<s>', '</s>', '<0x0A>', '▁a']);
    expect([...v.scores]).toEqual([0, 0, 0, 0, -1]);
    expect([...v.types]).toEqual([2, 3, 3, 6, 1]);
  });

  it('reads ids given as bigint and flags', () => {
    const m = base();
    m.set('tokenizer.ggml.bos_token_id', 2n);
    m.set('tokenizer.ggml.eos_token_id', 1);
    m.set('tokenizer.ggml.add_bos_token', false);
    m.set('tokenizer.ggml.add_eos_token', true);
    m.set('tokenizer.ggml.add_space_prefix', false);
    expect(spmVocabFromGguf(m, 'm.gguf')).toMatchObject({
      bos: 2,
      eos: 1,
      addBos: false,
      addEos: true,
      addSpacePrefix: false,
    });
  });

  it('accepts any numeric array and defaults missing scores and types', () => {
    const m = base();
    m.set('tokenizer.ggml.scores', [0, 0, 0, 0, -2]);
    m.set('tokenizer.ggml.token_type', new Uint32Array([2, 3, 3, 6, 1]));
    expect([...spmVocabFromGguf(m, 'm.gguf').scores]).toEqual([0, 0, 0, 0, -2]);
    m.delete('tokenizer.ggml.scores');
    m.delete('tokenizer.ggml.token_type');
    const v = spmVocabFromGguf(m, 'm.gguf');
    expect([...v.scores]).toEqual([0, 0, 0, 0, 0]);
    expect([...v.types]).toEqual([1, 1, 1, 6, 1]);
  });

  it('renames empty tokens as llama.cpp does', () => {
    const m = base();
    m.set('tokenizer.ggml.tokens', ['<unk>', '<s>', '</s>', '<0x0A>', '']);
    expect(spmVocabFromGguf(m, 'm.gguf').tokens[4]).toBe('[EMPTY_4]');
  });

  it('rejects other tokenizers and malformed metadata', () => {
    const m = base();
    m.set('tokenizer.ggml.model', 'gpt2');
    fails(m, 'tokenizer.ggml.model', /unsupported tokenizer "gpt2"; supported: llama \(SentencePiece\)/);
    m.delete('tokenizer.ggml.model');
    fails(m, 'tokenizer.ggml.model', /missing/);

    const bad: Array<[string, unknown, RegExp]> = [
      ['tokenizer.ggml.tokens', [1, 2, 3, 4, 5], /array of strings/],
      ['tokenizer.ggml.tokens', new Int32Array(5), /array of strings/],
      ['tokenizer.ggml.tokens', [], /empty/],
      ['tokenizer.ggml.tokens', ['<unk>', '<s>', '</s>', '<0x0A>', '<s>'], /repeats token 1/],
      ['tokenizer.ggml.scores', new Float32Array(4), /4 entries for 5 tokens/],
      ['tokenizer.ggml.scores', ['x', 'y', 'z', 'w', 'v'], /numeric array/],
      ['tokenizer.ggml.scores', new Float32Array([0, 0, 0, 0, NaN]), /NaN/],
      ['tokenizer.ggml.token_type', new Int32Array(6), /6 entries for 5 tokens/],
      ['tokenizer.ggml.token_type', new Int32Array([2, 3, 3, 6, 6]), /typed byte/],
      ['tokenizer.ggml.bos_token_id', 5, /out of range/],
      ['tokenizer.ggml.eos_token_id', -1, /out of range/],
      ['tokenizer.ggml.unknown_token_id', 'x', /integer/],
      ['tokenizer.ggml.add_bos_token', 1, /boolean/],
    ];
    for (const [key, value, problem] of bad) {
      const m2 = base();
      m2.set(key, value);
      fails(m2, key, problem);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Against the reference files in ../shared/data.


const LLAMA_SPM = 'models/ggml-vocab-llama-spm/ggml-vocab-llama-spm.gguf';

/** llama.cpp's tests/test-tokenizer-0.cpp reader for the .inp/.out pair. */
function readVocabTests(): { text: string; ids: number[] }[] {
  const raw = readFileSync(dataPath(LLAMA_SPM + '.inp'), 'utf8');
  const sep = '\n__ggml_vocab_test__\n';
  const inputs: string[] = [];
  for (let pos = 0; pos < raw.length; ) {
    const next = raw.indexOf(sep, pos);
    if (next < 0) {
      inputs.push(raw.slice(pos));
      break;
    }
    inputs.push(raw.slice(pos, next));
    pos = next + sep.length;
  }
  const lines = readFileSync(dataPath(LLAMA_SPM + '.out'), 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  expect(lines.length).toBe(inputs.length);
  return inputs.map((text, i) => ({
    text,
    ids: lines[i].trim() === '' ? [] : lines[i].trim().split(' ').map(Number),
  }));
}

function ggufVocab(rel: string): SpmVocab {
  return spmVocabFromGguf(readGguf(dataPath(rel)).metadata, dataPath(rel));
}

describe.skipIf(!hasShared)('llama.cpp tokenizer test vectors (ggml-vocab-llama-spm)', () => {
  const tests = hasShared ? readVocabTests() : [];
  const tokenizers = hasShared
    ? {
        gguf: new SpmTokenizer(ggufVocab(LLAMA_SPM)),
        'tokenizer.bin': new SpmTokenizer(
          readLlama2cTokenizer(dataPath('models/llama2-tokenizer/tokenizer.bin'), 32000),
        ),
      }
    : {};

  it('reads all 46 vectors', () => {
    // The .inp file holds 46 tests; its trailing separator ends the last one.
    expect(tests).toHaveLength(46);
  });

  for (const [name, tok] of Object.entries(tokenizers)) {
    it(`encodes every vector like llama.cpp (add_special=false, parse_special=false) with ${name}`, () => {
      for (const t of tests) expect(tok.encode(t.text, { addBos: false }), JSON.stringify(t.text)).toEqual(t.ids);
    });

    it(`decodes every vector back to its text with ${name}`, () => {
      for (const t of tests) {
        expect(tok.decode(t.ids), JSON.stringify(t.text)).toBe(t.text);
        expect(tok.decode([tok.bos, ...t.ids])).toBe(t.text);
        expect(streamed(tok, t.ids)).toBe(t.text);
      }
    });
  }

  it('parses <s> in text only with parseSpecial', () => {
    const tok = tokenizers.gguf!;
    const hello = tok.encode('Hello', { addBos: false });
    expect(tok.encode('<s>Hello', { parseSpecial: true })).toEqual([1, 1, ...hello]);
    const plain = tok.encode('<s>Hello');
    expect(plain.slice(1)).not.toContain(1);
    expect(tok.decode(plain)).toBe('<s>Hello');
  });
});

describe.skipIf(!hasShared)('GGUF and llama2.c vocabularies agree', () => {
  const pairs: Array<[string, string, number]> = [
    [LLAMA_SPM, 'models/llama2-tokenizer/tokenizer.bin', 32000],
    ['models/stories260K-gguf-v1/tinyllamas-stories-260k-f32.gguf', 'models/stories260K/tok512.bin', 512],
    ['models/lowkv-tiny-hd64/lowkv-tiny-hd64-f32.gguf', 'models/lowkv-tiny-hd64/tok4096.bin', 4096],
  ];
  for (const [gguf, bin, n] of pairs) {
    it(`${gguf.split('/').at(-1)} = ${bin.split('/').at(-1)}`, () => {
      const a = ggufVocab(gguf);
      const b = readLlama2cTokenizer(dataPath(bin), n);
      expect(a.tokens).toEqual(b.tokens);
      expect(a.scores).toEqual(b.scores);
      expect(a.types).toEqual(b.types);
      expect({ ...a, tokens: 0, scores: 0, types: 0 }).toEqual({ ...b, tokens: 0, scores: 0, types: 0 });
    });
  }
});

describe.skipIf(!hasShared)('golden prompts of the test models', () => {
  interface Greedy {
    prompt: string;
    prompt_ids: number[];
    gen_ids: number[];
    text: string;
  }
  interface HdGolden {
    greedy: Greedy[];
    reference_text: string;
    reference_ids: number[];
  }
  interface StoriesGolden {
    from_bos: { token_ids: number[]; text: string };
    prompt_once_upon_a_time: { prompt: string; prompt_ids: number[]; token_ids: number[]; text: string };
  }

  it('lowkv-tiny-hd64 (tok4096, .bin and GGUF)', () => {
    const g = readJson<HdGolden>('models/lowkv-tiny-hd64/golden_greedy.json');
    for (const vocab of [
      readLlama2cTokenizer(dataPath('models/lowkv-tiny-hd64/tok4096.bin'), 4096),
      ggufVocab('models/lowkv-tiny-hd64/lowkv-tiny-hd64-f32.gguf'),
    ]) {
      const tok = new SpmTokenizer(vocab);
      for (const s of g.greedy) {
        expect(tok.encode(s.prompt)).toEqual(s.prompt_ids);
        expect(tok.decode(s.gen_ids)).toBe(s.text);
        expect(streamed(tok, s.gen_ids)).toBe(s.text);
      }
      expect(tok.encode(g.reference_text)).toEqual(g.reference_ids);
      expect(tok.decode(g.reference_ids)).toBe(g.reference_text);
    }
  });

  it('stories260K (tok512 .bin and GGUF v1)', () => {
    const g = readJson<StoriesGolden>('models/stories260K/golden_greedy.json');
    for (const vocab of [
      readLlama2cTokenizer(dataPath('models/stories260K/tok512.bin'), 512),
      ggufVocab('models/stories260K-gguf-v1/tinyllamas-stories-260k-f32.gguf'),
    ]) {
      const tok = new SpmTokenizer(vocab);
      const p = g.prompt_once_upon_a_time;
      expect(tok.encode(p.prompt)).toEqual(p.prompt_ids);
      expect(tok.decode(p.token_ids)).toBe(p.text);
      expect(tok.decode(g.from_bos.token_ids)).toBe(g.from_bos.text);
      expect(streamed(tok, g.from_bos.token_ids)).toBe(g.from_bos.text);
    }
  });
});
