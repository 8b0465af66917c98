// The quantized-weight golden models (golden/arch: llama2-q8_0 … llama2k-iq4_xs, written by
// llama-quantize) against llama.cpp's logits at every position, batched and one token at a time,
// on the WASM kernels and on their plain-TS twins, with an f32 KV cache as llama.cpp's run had.
import { describe, expect, it } from 'vitest';
import { readGguf } from '../src/formats/gguf.js';
import { refBackend, wasmBackend, type Backend } from '../src/model/backend.js';
import { llamaFromGguf } from '../src/model/from-gguf.js';
import { LlamaModel } from '../src/model/llama.js';
import { dataPath, hasShared, readF32, readJson } from './helpers/shared-data.js';

const MODELS = ['llama2-q8_0', 'llama2-q4_0', 'llama2k-q4_k_m', 'llama2k-q3_k_m', 'llama2k-q2_k', 'llama2k-iq4_xs'];
const POLICY = { k: 'f32', v: 'f32' } as const;

/**
 * Positions where a logit may differ by more than 1e-5: an activation there lands within one
 * float32 ulp of a rounding tie of its q8 quantizer, so the last bit of the float ops before it
 * (RMSNorm, residual sums, in whatever order each engine adds) decides its level, and the one
 * level moves the logits by up to ~2e-2.
 * - llama2k-q2_k position 1: the README's independent float64 reference flips there too (9.9e-3).
 * - llama2-q4_0 position 1: x·127/amax = 95.49999 (one ulp below 95.5) at value 54 of a
 *   128-wide activation row (q8_0); ours rounds to 95, llama.cpp's evidently to 96 (2.1e-2).
 * Every other position stays within 1e-5 (the largest seen is 1.2e-6).
 */
const FLIPS: Record<string, number[]> = { 'llama2k-q2_k': [1], 'llama2-q4_0': [1] };

function maxDiffs(a: Float32Array, b: Float32Array, vocab: number): number[] {
  const d: number[] = [];
  for (let p = 0; p < a.length / vocab; p++) {
    let m = 0;
    for (let i = p * vocab; i < (p + 1) * vocab; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
    d.push(m);
  }
  return d;
}

function check(name: string, diffs: number[]): void {
  diffs.forEach((d, p) => {
    const limit = FLIPS[name]?.includes(p) ? 5e-2 : 1e-5;
    expect(d, `${name} position ${p}`).toBeLessThan(limit);
  });
}

describe.skipIf(!hasShared)('quantized golden models match llama.cpp logits', () => {
  const manifest = hasShared ? readJson<{ models: Record<string, { token_ids: number[] }> }>('golden/arch/manifest.json').models : {};
  const backends: Array<[string, () => Backend]> = [
    ['wasm', () => wasmBackend(1)],
    ['ref', () => refBackend],
  ];
  for (const name of MODELS) {
    for (const [label, backend] of backends) {
      it(`${name} (${label}): batched and one token at a time, every position`, () => {
        const ids = manifest[name].token_ids;
        const { config, weights } = llamaFromGguf(readGguf(dataPath('golden/arch', name, `${name}.gguf`)));
        const m = new LlamaModel(config, weights, { backend: backend() });
        const V = config.vocabSize;
        const batched = Float32Array.from(m.forward(ids, m.newCache(ids.length, POLICY), 0));
        check(name, maxDiffs(batched, readF32('golden/arch', name, `${name}.logits.f32`), V));
        const cache = m.newCache(ids.length, POLICY);
        const incr = new Float32Array(ids.length * V);
        ids.forEach((t, i) => incr.set(m.forward([t], cache), i * V));
        check(name, maxDiffs(incr, readF32('golden/arch', name, `${name}.logits-incr.f32`), V));
      });
    }
  }

  it('two kernel threads give the same bits as one (activations quantized once, rows split)', () => {
    for (const name of ['llama2k-q4_k_m', 'llama2k-q2_k', 'llama2-q4_0']) {
      const ids = manifest[name].token_ids;
      const run = (threads: number): Float32Array => {
        const { config, weights } = llamaFromGguf(readGguf(dataPath('golden/arch', name, `${name}.gguf`)));
        const m = new LlamaModel(config, weights, { backend: wasmBackend(threads) });
        return Float32Array.from(m.forward(ids, m.newCache(ids.length, POLICY), 0));
      };
      const one = run(1);
      expect(Buffer.from(run(2).buffer).equals(Buffer.from(one.buffer)), name).toBe(true);
    }
  });
});
