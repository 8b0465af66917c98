import { readFileSync } from 'node:fs';
import { readGguf } from '../../src/formats/gguf.js';
import { tokenizerFromGguf } from '../../src/tokenizer/from-gguf.js';
import type { Tokenizer } from '../../src/tokenizer/types.js';
import { dataPath } from './shared-data.js';

/** The vocab-only GGUF of llama.cpp's models/ggml-vocab-<name>.gguf, under ../shared/data/models. */
export function vocabPath(name: string): string {
  return `models/ggml-vocab-${name}/ggml-vocab-${name}.gguf`;
}

export function ggufTokenizer(rel: string): Tokenizer {
  return tokenizerFromGguf(readGguf(dataPath(rel)).metadata, dataPath(rel));
}

export function ggufMetadata(rel: string): Map<string, unknown> {
  return new Map(readGguf(dataPath(rel)).metadata);
}

/**
 * llama.cpp's tests/test-tokenizer-0 reader for a `.gguf.inp` / `.gguf.out` pair: inputs end with
 * the separator, each output line is " id id …".
 */
export function readVocabTests(rel: string): { text: string; ids: number[] }[] {
  const raw = readFileSync(dataPath(rel + '.inp'), 'utf8');
  const inputs = raw.split('\n__ggml_vocab_test__\n');
  if (inputs.pop() !== '') throw new Error(`${rel}.inp does not end with the separator`);
  const lines = readFileSync(dataPath(rel + '.out'), 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines.length !== inputs.length) throw new Error(`${rel}: ${inputs.length} inputs but ${lines.length} outputs`);
  return inputs.map((text, i) => ({
    text,
    ids: lines[i].trim() === '' ? [] : lines[i].trim().split(' ').map(Number),
  }));
}

/** Concatenated output of a streaming decoder. */
export function streamed(tok: Tokenizer, ids: ArrayLike<number>): string {
  const d = tok.decoder();
  let s = '';
  for (let i = 0; i < ids.length; i++) s += d.push(ids[i]);
  return s + d.flush();
}

/** Deterministic PRNG (mulberry32) for the property tests. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random strings glued from pieces chosen to hit pre-tokenizer edge cases. */
export function randomTexts(seed: number, count: number, pieces: readonly string[]): string[] {
  const next = rng(seed);
  return Array.from({ length: count }, () => {
    let s = '';
    const n = 1 + Math.floor(next() * 12);
    for (let k = 0; k < n; k++) s += pieces[Math.floor(next() * pieces.length)];
    return s;
  });
}
