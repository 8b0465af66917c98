// The WASM block-type and bf16 matmul kernels against their plain-TS twins on random data: the
// block types equal kernels/ref/weights.ts matmulQuant bit for bit (same integer products, same
// float order), for every n, any column range, and rows that do not fill the last group of four.
// One activation row decodes each block per row (assembly/quant.ts), more rows decode each block
// once into scratch (assembly/quant-tiles.ts): both must give the twin's bits, so a row's result
// does not depend on the batch it is in.
import { afterAll, describe, expect, it } from 'vitest';
import { matmulWeights as refMatmul } from '../src/kernels/ref/weights.js';
import { kernelPool } from '../src/kernels/wasm/pool.js';
import * as wasm from '../src/kernels/wasm/ops.js';
import { wasmHeap } from '../src/kernels/wasm/runtime.js';
import { wasmBackend } from '../src/model/backend.js';
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

  it.each(QUANT_WEIGHT_TYPES)('%s: n = 64 equals the twin, and every row equals itself computed alone (n = 1) and in a batch of 7', (type) => {
    // Past one 1024-value chunk of the batched kernel (the last one partial), past one 64-row
    // tile, and a last group of four with two rows.
    const cols = QUANT_FORMATS[type].blockSize === 256 ? 1280 : 1056;
    const rows = 70;
    const w = wasm.toHeap(randomBlocks(type, rows, cols, 11 + cols));
    const n = 64;
    const x = gauss(n * cols, 3, 0.5);
    x[5] = 30;
    x[40 * cols + 900] = -25;
    const want = new Float32Array(n * rows);
    refMatmul(want, x, w, n, cols, rows);
    expect(want.some((v) => v !== 0)).toBe(true);
    const all = new Float32Array(n * rows).fill(NaN);
    wasm.matmulWeights(all, x, w, n, cols, rows);
    expect(bits(all)).toEqual(bits(want));
    const seven = new Float32Array(7 * rows).fill(NaN);
    wasm.matmulWeights(seven, x, w, 7, cols, rows, 37 * cols);
    expect(bits(seven)).toEqual(bits(want.subarray(37 * rows, 44 * rows)));
    for (const i of [0, 40, 63]) {
      const one = new Float32Array(rows).fill(NaN);
      wasm.matmulWeights(one, x, w, 1, cols, rows, i * cols);
      expect(bits(one), `row ${i}`).toEqual(bits(want.subarray(i * rows, (i + 1) * rows)));
    }
  });

  describe('split over 2 threads, each with its own scratch', () => {
    afterAll(() => kernelPool(1));
    it.each(['q4_K', 'q5_0', 'iq4_xs', 'q8_0'] as const)('%s: the same bits as the twin', (type) => {
      const cols = 1024;
      const rows = 90;
      const n = 9; // n·cols·rows is large enough for the backend to use the threads
      const w = wasm.toHeap(randomBlocks(type, rows, cols, 5));
      const heap = wasmHeap();
      const x = heap.f32(n * cols);
      x.set(gauss(n * cols, 8, 0.5));
      const out = heap.f32(n * rows);
      const want = new Float32Array(n * rows);
      refMatmul(want, x, w, n, cols, rows);
      wasmBackend(2).matmul(out, x, w, n);
      expect(bits(out)).toEqual(bits(want));
      heap.release(x.byteOffset);
      heap.release(out.byteOffset);
    });
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
