// The forward pass on the WASM kernels (1 and 2 threads) against the plain-TS twins, on a random
// model with f32, f16 and q8_0 weights: same logits up to float summation order.
import { afterAll, describe, expect, it } from 'vitest';
import { presetConfig, randomWeights } from '../src/bench/random-model.js';
import { kernelPool } from '../src/kernels/wasm/pool.js';
import { toHeap } from '../src/kernels/wasm/ops.js';
import { wasmHeap } from '../src/kernels/wasm/runtime.js';
import { encodeWeights, type WeightMatrix, type WeightType } from '../src/kernels/weights.js';
import { refBackend, wasmBackend, type Backend } from '../src/model/backend.js';
import { LlamaModel } from '../src/model/llama.js';
import type { LlamaWeights } from '../src/model/types.js';
import { matrixValues } from '../src/model/weight-memory.js';

const c = presetConfig('tiny');

function withType(w: LlamaWeights, type: WeightType, heap: boolean): LlamaWeights {
  const m = (x: WeightMatrix): WeightMatrix => {
    const e = encodeWeights(type, matrixValues(x), x.rows, x.cols);
    return heap ? toHeap(e) : e;
  };
  const emb = m(w.tokenEmbedding);
  return {
    tokenEmbedding: emb,
    layers: w.layers.map((l) => ({ ...l, wq: m(l.wq), wk: m(l.wk), wv: m(l.wv), wo: m(l.wo), wGate: m(l.wGate), wDown: m(l.wDown), wUp: m(l.wUp) })),
    outputNorm: w.outputNorm,
    output: emb,
  };
}

function worstRelDiff(got: Float32Array, want: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (1 + Math.abs(want[i])));
  return worst;
}

function logits(weights: LlamaWeights, backend: Backend, tokens: number[]): Float32Array {
  const model = new LlamaModel(c, weights, { backend, maxBatch: 16 });
  const cache = model.newCache(tokens.length, { k: 'f32', v: 'f32' });
  // A prompt batch (two micro-batches) then single steps: both paths of the kernels.
  const out = new Float32Array(tokens.length * c.vocabSize);
  out.set(model.forward(tokens.slice(0, 20), cache, 0));
  for (let i = 20; i < tokens.length; i++) out.set(model.forward([tokens[i]], cache), i * c.vocabSize);
  return out;
}

describe('WASM backend vs plain-TS kernels, whole forward pass', () => {
  afterAll(() => kernelPool(1));
  const base = randomWeights(c, 7);
  const tokens = Array.from({ length: 28 }, (_, i) => (i * 37 + 3) % c.vocabSize);

  for (const type of ['f32', 'f16', 'q8_0'] as const) {
    it(`${type} weights: 1 and 2 threads match the twins`, () => {
      const want = logits(withType(base, type, false), refBackend, tokens);
      const heapWeights = withType(base, type, true);
      expect(wasmHeap().holds(heapWeights.layers[0].wq.data)).toBe(true);
      for (const backend of [wasmBackend(1), wasmBackend(2)]) {
        const worst = worstRelDiff(logits(heapWeights, backend, tokens), want);
        // q8_0 re-quantizes activations, so a rounding-boundary flip in one block moves a logit by
        // about one quantization step of that block; f32/f16 differ by summation order only.
        expect(worst, backend.name).toBeLessThan(type === 'q8_0' ? 2e-3 : 2e-5);
        expect(Number.isFinite(worst)).toBe(true);
      }
    });
  }

  it('weights outside the heap run on the twins (the >4 GiB fallback)', () => {
    const plain = withType(base, 'f16', false);
    expect(wasmHeap().holds(plain.layers[0].wq.data)).toBe(false);
    // The matmuls run on the twins; the row kernels (exp in softmax/SiLU) still differ by ≤ 1 ulp.
    expect(worstRelDiff(logits(plain, wasmBackend(1), tokens), logits(plain, refBackend, tokens))).toBeLessThan(2e-5);
  });
});
