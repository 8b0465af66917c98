/**
 * The SentencePiece vocabulary embedded in GGUF metadata (`tokenizer.ggml.*`, model "llama"),
 * with llama.cpp's defaults for the optional keys.
 */
import { ModelFormatError } from '../formats/errors.js';
import { TokenType } from './types.js';
import type { SpmVocab } from './types.js';

const KEY = 'tokenizer.ggml.';
const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

export function spmVocabFromGguf(meta: ReadonlyMap<string, unknown>, file: string): SpmVocab {
  const fail = (key: string, problem: string): never => {
    throw new ModelFormatError(file, KEY + key, problem);
  };

  const model = meta.get(KEY + 'model');
  if (model === undefined) fail('model', 'missing: the file has no tokenizer');
  if (model !== 'llama') {
    const shown = typeof model === 'string' ? `"${model}"` : `a ${typeof model}`;
    fail('model', `unsupported tokenizer ${shown}; supported: llama (SentencePiece)`);
  }

  const rawTokens = meta.get(KEY + 'tokens');
  if (!Array.isArray(rawTokens) || !rawTokens.every((t) => typeof t === 'string')) {
    return fail('tokens', 'must be an array of strings');
  }
  const n = rawTokens.length;
  if (n === 0) fail('tokens', 'is empty');
  const seen = new Map<string, number>();
  const tokens = (rawTokens as string[]).map((t, i) => {
    // llama.cpp's loader gives empty pieces this name so that they never match text.
    const text = t === '' ? `[EMPTY_${i}]` : t;
    const dup = seen.get(text);
    if (dup !== undefined) fail('tokens', `token ${i} "${text}" repeats token ${dup}`);
    seen.set(text, i);
    return text;
  });

  const scores = new Float32Array(n);
  const rawScores = numericArray(meta.get(KEY + 'scores'), 'scores', n, fail);
  if (rawScores) {
    for (let i = 0; i < n; i++) {
      scores[i] = Number(rawScores[i]);
      if (Number.isNaN(scores[i])) fail('scores', `score ${i} is NaN`);
    }
  }

  const types = new Int32Array(n);
  const rawTypes = numericArray(meta.get(KEY + 'token_type'), 'token_type', n, fail);
  for (let i = 0; i < n; i++) {
    if (rawTypes) {
      types[i] = Number(rawTypes[i]);
      if (types[i] === TokenType.Byte && !BYTE_PIECE.test(tokens[i])) {
        fail('token_type', `token ${i} "${tokens[i]}" is typed byte but is not named <0xNN>`);
      }
    } else {
      types[i] = BYTE_PIECE.test(tokens[i]) ? TokenType.Byte : TokenType.Normal;
    }
  }

  const tokenId = (key: string, fallback: number): number => {
    const v = meta.get(KEY + key) ?? fallback;
    const id = typeof v === 'bigint' ? Number(v) : v;
    if (typeof id !== 'number' || !Number.isInteger(id)) return fail(key, 'must be an integer token id');
    if (id < 0 || id >= n) fail(key, `${id} is out of range for ${n} tokens`);
    return id;
  };
  const flag = (key: string, fallback: boolean): boolean => {
    const v = meta.get(KEY + key) ?? fallback;
    if (typeof v !== 'boolean') return fail(key, 'must be a boolean');
    return v;
  };

  return {
    tokens,
    scores,
    types,
    bos: tokenId('bos_token_id', 1),
    eos: tokenId('eos_token_id', 2),
    unk: tokenId('unknown_token_id', 0),
    addBos: flag('add_bos_token', true),
    addEos: flag('add_eos_token', false),
    addSpacePrefix: flag('add_space_prefix', true),
  };
}

/** A numeric array of length n (typed array of any width, or plain numbers), or null when absent. */
function numericArray(
  v: unknown,
  key: string,
  n: number,
  fail: (key: string, problem: string) => never,
): ArrayLike<number | bigint> | null {
  if (v === undefined) return null;
  const numeric =
    (ArrayBuffer.isView(v) && !(v instanceof DataView)) ||
    (Array.isArray(v) && v.every((x) => typeof x === 'number' || typeof x === 'bigint'));
  if (!numeric) return fail(key, 'must be a numeric array');
  const arr = v as ArrayLike<number | bigint>;
  if (arr.length !== n) fail(key, `has ${arr.length} entries for ${n} tokens`);
  return arr;
}
