// The WASM block-type and bf16 matmul kernels against their plain-TS twins on random data: the
// block types equal kernels/ref/weights.ts matmulQuant bit for bit (same integer products, same
// float order), for every n, any column range, and rows that do not fill the last group of four.
import { describe, expect, it } from 'vitest';
import { matmulWeights as refMatmul } from '../src/kernels/ref/weights.js';
import * as wasm from '../src/kernels/wasm/ops.js';
import { encodeWeights, weightMatrix, type WeightMatrix } from '../src/kernels/weights.js';
import { bf16ToF32, f32ToF16 } from '../src/numeric/f16.js';
import { QUANT_FORMATS, QUANT_WEIGHT_TYPES, type QuantWeightType } from '../src/numeric/weight-quants.js';
import { Rng } from '../src/engine/rng.js';

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** Random blocks: random bytes (every bit pattern is a valid block) with finite fp16 d/dmin/min. */
function randomBlocks(type: QuantWeightType, rows: number, cols: number, seed: number): WeightMatrix {
  const f = QUANT_FORMATS[type];
  const rng = new Rng(seed);
  const nBlocks = (rows * cols) / f.blockSize;
  const data = new Uint8Array(nBlocks * f.bytes);
  for (let i = 0; i < data.length; i++) data[i] = rng.next() * 256;
  const half = (at: number, scale: number): void => {
    const h = f32ToF16((rng.next() * 2 - 1) * scale);
    data[at] = h & 0xff;
    data[at + 1] = h >> 8;
  };
  for (let b = 0; b < nBlocks; b++) {
    const o = b * f.bytes;
    half(o + f.dOffset, 0.01);
    if (f.dminOffset >= 0) half(o + f.dminOffset, 0.01);
    if (f.minOffset >= 0) half(o + f.minOffset, 0.1);
  }
  return weightMatrix(type, rows, cols, data);
}

function gauss(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = scale * Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
  return x;
}

describe('block-type matmul kernels: WASM = plain-TS twin, bit for bit', () => {
  it.each(QUANT_WEIGHT_TYPES)('%s, random blocks, n = 1, 2, 5; 13 rows (a partial group of four)', (type) => {
    const cols = QUANT_FORMATS[type].blockSize === 256 ? 512 : 96;
    const rows = 13;
    const w = randomBlocks(type, rows, cols, 7 + cols);
    for (const n of [1, 2, 5]) {
      const x = gauss(n * cols, n * 31 + cols);
      x[3] = 40; // an outlier sets its block's scale
      const want = new Float32Array(n * rows);
      const got = new Float32Array(n * rows).fill(NaN);
      refMatmul(want, x, w, n, cols, rows);
      wasm.matmulWeights(got, x, w, n, cols, rows);
      expect(bits(got), `n = ${n}`).toEqual(bits(want));
      expect(want.some((v) => v !== 0)).toBe(true);
    }
  });

  it.each(['q4_K', 'q6_K', 'q4_0', 'q5_1'] as const)('%s: heap-resident weights, column ranges and a batch row alone give the same bits', (type) => {
    const cols = QUANT_FORMATS[type].blockSize === 256 ? 768 : 160;
    const rows = 37;
    const w = wasm.toHeap(randomBlocks(type, rows, cols, 99));
    const n = 3;
    const x = gauss(n * cols, 5, 0.3);
    const full = new Float32Array(n * rows);
    wasm.matmulWeights(full, x, w, n, cols, rows);
    const parts = new Float32Array(n * rows);
    for (const [a, b] of [[0, 5], [5, 6], [6, 30], [30, 37]]) wasm.matmulColumns(parts, x, w, n, cols, rows, a, b);
    expect(bits(parts)).toEqual(bits(full));
    const alone = new Float32Array(rows);
    wasm.matmulWeights(alone, x, w, 1, cols, rows, 2 * cols);
    expect(bits(alone)).toEqual(bits(full.subarray(2 * rows)));
  });

  it.each(['q4_K', 'q4_0'] as const)('%s: refuses activations with inf or NaN, in both twins', (type) => {
    const cols = QUANT_FORMATS[type].blockSize === 256 ? 256 : 32;
    const w = randomBlocks(type, 4, cols, 3);
    for (const bad of [Infinity, NaN]) {
      const x = gauss(cols, 2);
      x[7] = bad;
      const out = new Float32Array(4);
      expect(() => refMatmul(out, x, w, 1, cols, 4)).toThrow(/not representable/);
      expect(() => wasm.matmulWeights(out, x, w, 1, cols, 4)).toThrow(/not representable/);
    }
  });
});

describe('bf16 matmul kernel', () => {
  it.each([1, 2, 4, 9])('n = %i: equals the f32 kernel on the widened weights, bit for bit', (n) => {
    const [rows, cols] = [21, 70];
    const w = encodeWeights('bf16', gauss(rows * cols, 17, 0.05), rows, cols);
    const wide = weightMatrix('f32', rows, cols, Float32Array.from(w.data as Uint16Array, bf16ToF32));
    const x = gauss(n * cols, n);
    const got = new Float32Array(n * rows);
    const want = new Float32Array(n * rows);
    wasm.matmulWeights(got, x, w, n, cols, rows);
    wasm.matmulWeights(want, x, wide, n, cols, rows);
    expect(bits(got)).toEqual(bits(want));
    // The plain-TS twin sums in another order (f64 partial sums): float rounding apart.
    const twin = new Float32Array(n * rows);
    refMatmul(twin, x, w, n, cols, rows);
    for (let i = 0; i < twin.length; i++) expect(Math.abs(twin[i] - got[i])).toBeLessThan(1e-5);
  });
});
