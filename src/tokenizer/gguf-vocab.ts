/**
 * The vocabularies embedded in GGUF metadata (`tokenizer.ggml.*`), with llama.cpp's defaults for
 * the optional keys: SentencePiece (model "llama"), byte-level BPE ("gpt2") and WordPiece ("bert").
 */
import { ModelFormatError } from '../formats/errors.js';
import { KNOWN_PRE_TOKENIZERS, preTokenizerFor } from './pre-tokenizer.js';
import { TokenType } from './types.js';
import type { BpeVocab, SpecialIds, SpmVocab, WpmVocab } from './types.js';

const KEY = 'tokenizer.ggml.';
const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

type Meta = ReadonlyMap<string, unknown>;
type Fail = (key: string, problem: string) => never;

/** Reads `tokenizer.ggml.*` keys of one file, failing with ModelFormatError naming the key. */
class TokenizerKeys {
  readonly fail: Fail;

  constructor(
    private readonly meta: Meta,
    file: string,
  ) {
    this.fail = (key, problem) => {
      throw new ModelFormatError(file, KEY + key, problem);
    };
  }

  has(key: string): boolean {
    return this.meta.get(KEY + key) !== undefined;
  }

  model(expected: string, description: string): void {
    const model = this.meta.get(KEY + 'model');
    if (model === undefined) this.fail('model', 'missing: the file has no tokenizer');
    if (model !== expected) {
      const shown = typeof model === 'string' ? `"${model}"` : `a ${typeof model}`;
      this.fail('model', `unsupported tokenizer ${shown}; supported: ${expected} (${description})`);
    }
  }

  /** The token texts, empty ones renamed as llama.cpp does, repeats refused. */
  tokens(): string[] {
    const raw = this.meta.get(KEY + 'tokens');
    if (!Array.isArray(raw) || !raw.every((t) => typeof t === 'string')) {
      return this.fail('tokens', 'must be an array of strings');
    }
    if (raw.length === 0) this.fail('tokens', 'is empty');
    const seen = new Map<string, number>();
    return (raw as string[]).map((t, i) => {
      // llama.cpp's loader gives empty pieces this name so that they never match text.
      const text = t === '' ? `[EMPTY_${i}]` : t;
      const dup = seen.get(text);
      if (dup !== undefined) this.fail('tokens', `token ${i} "${text}" repeats token ${dup}`);
      seen.set(text, i);
      return text;
    });
  }

  /** Token types; without the key every token is normal (byteDefault: `<0xNN>` pieces are bytes). */
  types(tokens: readonly string[], byteDefault: boolean): Int32Array {
    const n = tokens.length;
    const types = new Int32Array(n);
    const raw = this.numericArray('token_type', n);
    for (let i = 0; i < n; i++) {
      if (raw) types[i] = Number(raw[i]);
      else types[i] = byteDefault && BYTE_PIECE.test(tokens[i]) ? TokenType.Byte : TokenType.Normal;
    }
    return types;
  }

  /** A numeric array of length n (typed array of any width, or plain numbers), or null when absent. */
  numericArray(key: string, n: number): ArrayLike<number | bigint> | null {
    const v = this.meta.get(KEY + key);
    if (v === undefined) return null;
    const numeric =
      (ArrayBuffer.isView(v) && !(v instanceof DataView)) ||
      (Array.isArray(v) && v.every((x) => typeof x === 'number' || typeof x === 'bigint'));
    if (!numeric) return this.fail(key, 'must be a numeric array');
    const arr = v as ArrayLike<number | bigint>;
    if (arr.length !== n) this.fail(key, `has ${arr.length} entries for ${n} tokens`);
    return arr;
  }

  tokenId(key: string, fallback: number, n: number): number {
    const id = this.optionalTokenId(key, n);
    if (id !== undefined) return id;
    if (fallback >= n) this.fail(key, `missing, and the default ${fallback} is out of range for ${n} tokens`);
    return fallback;
  }

  optionalTokenId(key: string, n: number): number | undefined {
    const v = this.meta.get(KEY + key);
    if (v === undefined) return undefined;
    const id = typeof v === 'bigint' ? Number(v) : v;
    if (typeof id !== 'number' || !Number.isInteger(id)) return this.fail(key, 'must be an integer token id');
    if (id < 0 || id >= n) this.fail(key, `${id} is out of range for ${n} tokens`);
    return id;
  }

  flag(key: string, fallback: boolean): boolean {
    const v = this.meta.get(KEY + key) ?? fallback;
    if (typeof v !== 'boolean') return this.fail(key, 'must be a boolean');
    return v;
  }

  string(key: string): string | undefined {
    const v = this.meta.get(KEY + key);
    if (v !== undefined && typeof v !== 'string') this.fail(key, 'must be a string');
    return v as string | undefined;
  }
}

export function spmVocabFromGguf(meta: Meta, file: string): SpmVocab {
  const keys = new TokenizerKeys(meta, file);
  keys.model('llama', 'SentencePiece');
  const tokens = keys.tokens();
  const n = tokens.length;

  const scores = new Float32Array(n);
  const rawScores = keys.numericArray('scores', n);
  if (rawScores) {
    for (let i = 0; i < n; i++) {
      scores[i] = Number(rawScores[i]);
      if (Number.isNaN(scores[i])) keys.fail('scores', `score ${i} is NaN`);
    }
  }

  const types = keys.types(tokens, true);
  for (let i = 0; i < n; i++) {
    if (types[i] === TokenType.Byte && !BYTE_PIECE.test(tokens[i])) {
      keys.fail('token_type', `token ${i} "${tokens[i]}" is typed byte but is not named <0xNN>`);
    }
  }

  return {
    tokens,
    scores,
    types,
    bos: keys.tokenId('bos_token_id', 1, n),
    eos: keys.tokenId('eos_token_id', 2, n),
    unk: keys.tokenId('unknown_token_id', 0, n),
    addBos: keys.flag('add_bos_token', true),
    addEos: keys.flag('add_eos_token', false),
    addSpacePrefix: keys.flag('add_space_prefix', true),
  };
}

export function bpeVocabFromGguf(meta: Meta, file: string): BpeVocab {
  const keys = new TokenizerKeys(meta, file);
  keys.model('gpt2', 'byte-level BPE');
  const tokens = keys.tokens();
  const n = tokens.length;

  const merges = meta.get(KEY + 'merges');
  if (merges === undefined) keys.fail('merges', 'missing: a BPE vocabulary needs its merges');
  if (!Array.isArray(merges) || !merges.every((m) => typeof m === 'string')) {
    return keys.fail('merges', 'must be an array of strings');
  }

  const pre = keys.string('pre');
  const preTokenizer = preTokenizerFor(pre);
  if (!preTokenizer) {
    keys.fail('pre', `unknown pre-tokenizer "${pre}"; known: ${KNOWN_PRE_TOKENIZERS.join(', ')}`);
  }

  return {
    tokens,
    types: keys.types(tokens, false),
    merges: merges as string[],
    pre,
    // llama.cpp's BPE defaults (11 is Falcon's <|endoftext|>).
    bos: keys.tokenId('bos_token_id', 11, n),
    eos: keys.tokenId('eos_token_id', 11, n),
    addBos: keys.flag('add_bos_token', preTokenizer!.addBos),
    addEos: keys.flag('add_eos_token', false),
  };
}

export function wpmVocabFromGguf(meta: Meta, file: string): WpmVocab {
  const keys = new TokenizerKeys(meta, file);
  keys.model('bert', 'WordPiece');
  const tokens = keys.tokens();
  const n = tokens.length;
  return {
    tokens,
    types: keys.types(tokens, false),
    bos: keys.optionalTokenId('bos_token_id', n) ?? keys.tokenId('cls_token_id', 101, n),
    sep: keys.tokenId('seperator_token_id', 102, n),
    unk: keys.tokenId('unknown_token_id', 100, n),
    eos: keys.optionalTokenId('eos_token_id', n) ?? null,
    addBos: keys.flag('add_bos_token', true),
  };
}

/** The optional role ids; the deprecated prefix/suffix/middle keys win, as in llama.cpp. */
export function specialIdsFromGguf(meta: Meta, file: string, vocabSize: number): SpecialIds {
  const keys = new TokenizerKeys(meta, file);
  const id = (key: string) => keys.optionalTokenId(key, vocabSize);
  return dropUndefined({
    eot: id('eot_token_id'),
    eom: id('eom_token_id'),
    fimPre: id('prefix_token_id') ?? id('fim_pre_token_id'),
    fimSuf: id('suffix_token_id') ?? id('fim_suf_token_id'),
    fimMid: id('middle_token_id') ?? id('fim_mid_token_id'),
    fimPad: id('fim_pad_token_id'),
    fimRep: id('fim_rep_token_id'),
    fimSep: id('fim_sep_token_id'),
  });
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
