import { loadModel, type Model } from '../../src/engine/model.js';
import type { CacheOptions } from '../../src/engine/model.js';
import { dataPath } from './shared-data.js';

export const STORIES_BIN = dataPath('models/stories260K/stories260K.bin');
export const STORIES_GGUF = dataPath('models/stories260K-gguf-v1/tinyllamas-stories-260k-f32.gguf');
export const HD64_BIN = dataPath('models/lowkv-tiny-hd64/lowkv-tiny-hd64.bin');
export const HD64_GGUF = dataPath('models/lowkv-tiny-hd64/lowkv-tiny-hd64-f32.gguf');
export const TINYSTORIES = dataPath('text/tinystories/tinystories_v2_valid_first100.txt');
export const WIKITEXT2 = dataPath('text/wikitext2/wikitext2_test_hfjoin.txt');

const cache = new Map<string, Promise<Model>>();

/** Models are loaded once per test file. */
export function model(path: string): Promise<Model> {
  let m = cache.get(path);
  if (!m) cache.set(path, (m = loadModel(path)));
  return m;
}

/** Greedy continuation through the public generate() path; returns the generated ids. */
export async function greedy(m: Model, prompt: string, maxTokens: number, opts: CacheOptions = {}): Promise<{ ids: number[]; text: string }> {
  const ids: number[] = [];
  const it = m.generate(prompt, { ...opts, maxTokens, temperature: 0 });
  let r = await it.next();
  while (!r.done) {
    if (r.value.token >= 0) ids.push(r.value.token);
    r = await it.next();
  }
  return { ids, text: r.value.text };
}

/** Logits at every position of `tokens`, processed as one batch. */
export function allLogits(m: Model, tokens: number[], policy = { k: 'f32', v: 'f32' }): Float32Array {
  const cache = m.llama.newCache(tokens.length, policy);
  return Float32Array.from(m.llama.forward(tokens, cache, 0));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}
