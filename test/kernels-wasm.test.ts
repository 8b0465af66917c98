// Parity of the WASM SIMD kernels (kernels/wasm/ops.ts) with their plain-TS twins: bit-exact
// where both do the same operations in the same order (q8_0 matmul, RMSNorm, RoPE, x += y, f16
// conversion), otherwise within a bound derived from where the float roundings differ.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as ref from '../src/kernels/ref/ops.js';
import * as refW from '../src/kernels/ref/weights.js';
import * as wasm from '../src/kernels/wasm/ops.js';
import { opsKernels } from '../src/kernels/wasm/ops.js';
import { wasmHeap } from '../src/kernels/wasm/runtime.js';
import { encodeWeights, weightMatrix, type WeightMatrix, type WeightType } from '../src/kernels/weights.js';
import { f16Table } from '../src/numeric/f16.js';
import { q8Levels, QK, quantizeQ8Block, readF16 } from '../src/numeric/ggml-blocks.js';
import { dataPath, hasShared } from './helpers/shared-data.js';

/** float32 unit roundoff. */
const U = 2 ** -24;
/** The vector exp's stated bound (assembly/elementwise.ts). */
const EXP_REL = 1e-7;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** n normal values × scale (Box–Muller). */
function gauss(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return a;
}

type Where = 'js' | 'heap';
const WHERE: Where[] = ['js', 'heap'];

/** a copy of v, in ordinary JS memory or in the WASM heap. */
function put(v: Float32Array, where: Where): Float32Array {
  if (where === 'js') return Float32Array.from(v);
  const h = wasmHeap().f32(v.length, v);
  h.set(v);
  keep.push(v);
  return h;
}
// put() ties each heap block's life to the source array; keep those alive for the whole file.
const keep: object[] = [];

function putW(w: WeightMatrix, where: Where): WeightMatrix {
  return where === 'js' ? w : wasm.toHeap(w);
}

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(Float32Array.from(a).buffer);
}

/** Σ_j |x_ij·w_oj| for every output: what float summation errors scale with. */
function absDots(x: Float32Array, xOff: number, w: Float32Array, n: number, inDim: number, outDim: number): Float64Array {
  const s = new Float64Array(n * outDim);
  for (let i = 0; i < n; i++)
    for (let o = 0; o < outDim; o++) {
      let t = 0;
      for (let j = 0; j < inDim; j++) t += Math.abs(x[xOff + i * inDim + j] * w[o * inDim + j]);
      s[i * outDim + o] = t;
    }
  return s;
}

/**
 * Both results are float sums of the same exact products: the kernel sums in f32 lanes (at most
 * inDim/4 + 8 roundings along any path, each ≤ u times a partial sum ≤ Σ|x·w|), the twin in f64
 * rounded once to f32. So |kernel − twin| ≤ (inDim/4 + 8)·u·Σ|x·w| + u·|twin|.
 */
function expectMatmulClose(got: Float32Array, want: Float32Array, absDot: Float64Array, inDim: number, off: number): void {
  for (let k = 0; k < absDot.length; k++) {
    const g = got[off + k];
    const w = want[off + k];
    if (!Number.isFinite(w)) {
      expect(Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w)), `output ${k}: ${g} vs ${w}`).toBe(true);
      continue;
    }
    const tol = (inDim / 4 + 8) * U * absDot[k] + U * Math.abs(w);
    if (!(Math.abs(g - w) <= tol)) expect.fail(`output ${k}: ${g} vs twin ${w} (tolerance ${tol})`);
  }
}

function f32Values(w: WeightMatrix): Float32Array {
  if (w.type === 'f32') return w.data as Float32Array;
  if (w.type === 'f16') return Float32Array.from(w.data as Uint16Array, (h) => f16Table[h]);
  throw new Error('q8_0 has no plain values here');
}

const SHAPES: Array<[number, number]> = [
  [37, 29],
  [64, 50],
  [300, 130],
  [512, 67],
];

describe.each(WHERE)('WASM matmul, inputs in %s memory', (where) => {
  for (const type of ['f32', 'f16'] as const) {
    it.each([1, 3, 4, 17])(`${type} weights, n = %i, within the summation-order bound of the twin`, (n) => {
      for (const [inDim, outDim] of SHAPES) {
        const w = encodeWeights(type, gauss(outDim * inDim, inDim + outDim, 0.05), outDim, inDim);
        const x = put(gauss(5 + n * inDim, n), where);
        const want = new Float32Array(3 + n * outDim);
        const got = put(new Float32Array(want.length), where);
        if (type === 'f32') ref.matmul(want, x, w.data as Float32Array, n, inDim, outDim, 5, 3);
        else refW.matmulWeights(want, x, w, n, inDim, outDim, 5, 3);
        wasm.matmulWeights(got, x, putW(w, where), n, inDim, outDim, 5, 3);
        expectMatmulClose(got, want, absDots(x, 5, f32Values(w), n, inDim, outDim), inDim, 3);
        if (type === 'f32') {
          const got2 = put(new Float32Array(want.length), where);
          wasm.matmul(got2, x, put(w.data as Float32Array, where), n, inDim, outDim, 5, 3);
          expect(bits(got2)).toEqual(bits(got));
        }
      }
    });
  }

  it.each([1, 2, 3, 17])('q8_0 weights, n = %i, bit-identical to the twin', (n) => {
    for (const [inDim, outDim] of [
      [32, 1],
      [96, 5],
      [512, 37],
      [256, 64],
    ]) {
      const w = encodeWeights('q8_0', gauss(outDim * inDim, inDim * outDim, 0.05), outDim, inDim);
      // One activation row gets an outlier channel, one a block of zeros, as real activations do.
      const xv = gauss(2 + n * inDim, 7 * n);
      xv[2 + 3] = 40;
      if (n > 1) xv.fill(0, 2 + inDim, 2 + inDim + 32);
      const x = put(xv, where);
      const want = new Float32Array(n * outDim + 1);
      const got = put(new Float32Array(want.length), where);
      refW.matmulQ8_0(want, x, w, n, inDim, outDim, 2, 1);
      wasm.matmulWeights(got, x, putW(w, where), n, inDim, outDim, 2, 1);
      expect(bits(got)).toEqual(bits(want));
    }
  });

  it.each(['f32', 'f16', 'q8_0'] as const)('%s column ranges write exactly their columns, as the full product', (type) => {
    const inDim = 64;
    const outDim = 45;
    const n = 5;
    const w = putW(encodeWeights(type, gauss(outDim * inDim, 11, 0.1), outDim, inDim), where);
    const x = put(gauss(n * inDim, 12), where);
    const full = new Float32Array(n * outDim);
    wasm.matmulWeights(full, x, w, n, inDim, outDim);
    for (const [j0, j1] of [
      [0, 1],
      [3, 22],
      [22, 45],
      [44, 45],
      [0, 45],
      [7, 7],
    ]) {
      const out = put(new Float32Array(n * outDim).fill(-7), where);
      wasm.matmulColumns(out, x, w, n, inDim, outDim, j0, j1);
      for (let i = 0; i < n; i++)
        for (let o = 0; o < outDim; o++) {
          const v = out[i * outDim + o];
          if (o >= j0 && o < j1) expect(Object.is(v, full[i * outDim + o]), `[${j0}, ${j1}) row ${i} col ${o}`).toBe(true);
          else expect(v).toBe(-7);
        }
    }
  });
});

describe('WASM matmul summation order', () => {
  it.each(['f32', 'f16', 'q8_0'] as const)('%s: a row of a batch equals that row multiplied alone', (type) => {
    for (const [inDim, outDim] of [
      [64, 45],
      [96, 70],
      [2080, 9],
    ]) {
      const n = 17;
      const w = wasm.toHeap(encodeWeights(type, gauss(outDim * inDim, 13, 0.1), outDim, inDim));
      const x = gauss(n * inDim, 14);
      // A large activation: f16's matrix-vector path then takes its exact fallback (|x| ≥ 2^16).
      if (type === 'f16') x[3 * inDim + 5] = 1e5;
      const batch = new Float32Array(n * outDim);
      wasm.matmulWeights(batch, x, w, n, inDim, outDim);
      const one = new Float32Array(outDim);
      for (let i = 0; i < n; i++) {
        wasm.matmulWeights(one, x, w, 1, inDim, outDim, i * inDim);
        expect(bits(one), `row ${i}`).toEqual(bits(batch.subarray(i * outDim, (i + 1) * outDim)));
      }
    }
  });
});

describe('f16 weights: conversion exactness', () => {
  it('f16ToF32 equals the f16 table on all 65536 halves (±0, subnormals, max, ±inf, NaN)', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    for (const where of WHERE) {
      let src: Uint16Array = all;
      if (where === 'heap') {
        src = wasmHeap().u16(65536, all);
        src.set(all);
      }
      // 65533 is not a multiple of 8: the scalar tail runs too.
      for (const n of [65536, 65533]) {
        const dst = new Float32Array(n);
        wasm.f16ToF32(dst, src, n);
        for (let h = 0; h < n; h++) {
          const want = f16Table[h];
          if (!(Object.is(dst[h], want) || (Number.isNaN(want) && Number.isNaN(dst[h])))) expect.fail(`half 0x${h.toString(16)}: ${dst[h]} vs ${want}`);
        }
      }
    }
  });

  it.each([8, 4])('the matrix-vector fast path converts every finite half exactly (rows of %i)', (width) => {
    // Rows of 8 halves run the 8-wide step, rows of 4 the 4-wide one, no scalar tail; x one-hot
    // picks one column, so the output is that weight times 1 plus zeros: its exact value (a −0
    // weight reads as +0).
    const finite: number[] = [];
    for (let h = 0; h < 65536; h++) if ((h & 0x7c00) !== 0x7c00) finite.push(h);
    const rows = finite.length / width;
    const w = weightMatrix('f16', rows, width, Uint16Array.from(finite));
    const out = new Float32Array(rows);
    for (let p = 0; p < width; p++) {
      const x = new Float32Array(width);
      x[p] = 1;
      wasm.matmulWeights(out, x, w, 1, width, rows);
      for (let r = 0; r < rows; r++) {
        const want = f16Table[finite[r * width + p]];
        if (out[r] !== want) expect.fail(`half 0x${finite[r * width + p].toString(16)}: ${out[r]} vs ${want}`);
      }
    }
  });

  it.each([1, 5])('rows with inf/NaN weights give the twin inf/NaN, other rows stay exact (n = %i)', (n) => {
    const inDim = 43; // 40 in vector steps, 3 in the scalar tail
    const outDim = 8;
    const data = encodeWeights('f16', gauss(outDim * inDim, 21, 0.05), outDim, inDim).data as Uint16Array;
    data[0 * inDim + 5] = 0x7c00; // +inf in a vector step
    data[1 * inDim + 41] = 0x7e01; // NaN in the tail
    data[2 * inDim + 17] = 0xfc00; // −inf
    // Row 4 (a group without specials, so the fast path): subnormals, ±0, the extremes.
    [0x0001, 0x03ff, 0x8001, 0x83ff, 0x0000, 0x8000, 0x7bff, 0xfbff, 0x0400, 0x8400].forEach((h, j) => (data[4 * inDim + 3 * j] = h));
    const w = weightMatrix('f16', outDim, inDim, data);
    const xv = gauss(n * inDim, 22);
    for (let i = 0; i < n; i++) {
      xv[i * inDim + 5] = 1.5;
      xv[i * inDim + 17] = -0.5;
    }
    const want = new Float32Array(n * outDim);
    const got = new Float32Array(n * outDim);
    refW.matmulHalf(want, xv, w, n, inDim, outDim);
    wasm.matmulWeights(got, xv, w, n, inDim, outDim);
    for (let i = 0; i < n; i++) {
      expect(got[i * outDim]).toBe(Infinity);
      expect(got[i * outDim + 1]).toBeNaN();
      expect(got[i * outDim + 2]).toBe(Infinity);
    }
    const finiteW = new Float32Array(outDim * inDim);
    for (let k = 0; k < finiteW.length; k++) finiteW[k] = Number.isFinite(f16Table[data[k]]) ? f16Table[data[k]] : 0;
    expectMatmulClose(got, want, absDots(xv, 0, finiteW, n, inDim, outDim), inDim, 0);
  });
});

describe('q8_0 weights', () => {
  it('the WASM activation quantizer writes the levels and fp16 scales of ggml x86 from_float', () => {
    const inDim = 128;
    const n = 3;
    const x = gauss(n * inDim, 31, 3);
    x.fill(0, 32, 64); // an all-zero block: scale 0, levels 0
    x.fill(1e-38, 64, 96); // 127/amax overflows: ggml's levels are 0
    for (let j = 96; j < 128; j++) x[j] = j - 112 + 0.5; // amax 127 below makes x·id = x: ties at every level
    x[127] = 127;
    const heap = wasmHeap();
    const k = opsKernels(heap);
    const hx = heap.f32(x.length, x);
    hx.set(x);
    const q = heap.u8(k.q8ActivationBytes(n, inDim), x);
    expect(k.quantizeQ8Rows(q.byteOffset, hx.byteOffset, n, inDim)).toBe(0);
    const nb = (n * inDim) / QK;
    const levels = new Int16Array(q.buffer, q.byteOffset, nb * QK);
    const scales = new Float32Array(q.buffer, q.byteOffset + nb * 64, nb);
    const block = new Uint8Array(34);
    const want = new Int32Array(QK);
    for (let b = 0; b < nb; b++) {
      expect(quantizeQ8Block('q8_0', x, b * QK, block, 0, 'x86')).toBe(true);
      q8Levels('q8_0', block, 0, want, 0);
      expect(Array.from(levels.subarray(b * QK, (b + 1) * QK)), `block ${b}`).toEqual(Array.from(want));
      expect(scales[b]).toBe(readF16(block, 0));
    }
  });

  it('refuses activations a q8_0 scale cannot hold, in both twins', () => {
    const w = encodeWeights('q8_0', gauss(64 * 4, 41), 4, 64);
    for (const bad of [Infinity, NaN, 1e10]) {
      const x = gauss(64, 42);
      x[40] = bad;
      const out = new Float32Array(4);
      expect(() => refW.matmulQ8_0(out, x, w, 1, 64, 4)).toThrow(/activation row 0 block 1 is not representable/);
      expect(() => wasm.matmulWeights(out, x, w, 1, 64, 4)).toThrow(/not representable in q8_0/);
    }
  });

  const golden = hasShared && existsSync(dataPath('golden/ggml-weights/q8_0.bin'));
  it.skipIf(!golden)("matches llama.cpp's q8_0 vec_dot and mul_mat (golden/ggml-weights) within the float-order bound", () => {
    const read = (f: string): Buffer => readFileSync(dataPath('golden/ggml-weights', f));
    const f32 = (f: string): Float32Array => {
      const b = read(f);
      return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    };
    const rows = 16;
    const cols = 512;
    const nb = cols / QK;
    const w = weightMatrix('q8_0', rows, cols, new Uint8Array(read('q8_0.bin')));
    const act = f32('act.f32');
    // Our activation quantizer reproduces llama.cpp's converted activations byte for byte.
    const actQ8 = read('act.q8_0.bin');
    const block = new Uint8Array(34);
    for (let b = 0; b < 2 * nb; b++) {
      quantizeQ8Block('q8_0', act, b * QK, block, 0, 'x86');
      expect(Buffer.from(block).equals(actQ8.subarray(b * 34, (b + 1) * 34)), `activation block ${b}`).toBe(true);
    }
    const got = new Float32Array(2 * rows);
    const twin = new Float32Array(2 * rows);
    wasm.matmulWeights(got, act, w, 2, cols, rows);
    refW.matmulQ8_0(twin, act, w, 2, cols, rows);
    expect(bits(got)).toEqual(bits(twin));
    // llama.cpp (x86 AVX2) adds the same per-block terms t_b = isum_b·(d_w·d_x) in another order
    // (8 fma lanes, then a horizontal sum): each result is within (nb + 3)·u·Σ|t_b| of the exact
    // sum, so the two differ by at most twice that.
    const { levels, scales } = refW.quantizeActivationsQ8(act, 0, 2, cols);
    const wl = new Int32Array(cols);
    for (const file of ['q8_0.vecdot.f32', 'q8_0.mulmat.f32']) {
      const want = f32(file);
      for (let r = 0; r < rows; r++) {
        for (let b = 0; b < nb; b++) q8Levels('q8_0', w.data as Uint8Array, (r * nb + b) * 34, wl, b * QK);
        for (let a = 0; a < 2; a++) {
          let absT = 0;
          for (let b = 0; b < nb; b++) {
            let isum = 0;
            for (let j = b * QK; j < (b + 1) * QK; j++) isum += wl[j] * levels[a * cols + j];
            absT += Math.abs(isum * readF16(w.data as Uint8Array, (r * nb + b) * 34) * scales[a * nb + b]);
          }
          const tol = 2 * (nb + 3) * U * absT;
          expect(Math.abs(got[a * rows + r] - want[a * rows + r]), `${file} [${a}][${r}]`).toBeLessThanOrEqual(tol);
        }
      }
    }
  });
});

describe('weight matrices', () => {
  it('reject shapes and data that do not fit', () => {
    expect(() => encodeWeights('q8_0', new Float32Array(40), 1, 40)).toThrow(/multiple of 32 columns, got 40/);
    expect(() => weightMatrix('q8_0', 2, 48, new Uint8Array(0))).toThrow(/multiple of 32 columns, got 48/);
    expect(() => weightMatrix('q8_0', 2, 64, new Uint8Array(100))).toThrow(/holds 136 elements, data has 100/);
    expect(() => weightMatrix('f16', 2, 3, new Float32Array(6))).toThrow(/must be a Uint16Array/);
    const w = encodeWeights('f32', new Float32Array(6), 2, 3);
    const out = new Float32Array(4);
    expect(() => wasm.matmulWeights(out, new Float32Array(6), w, 2, 2, 3)).toThrow(/weight matrix is 2×3 \(out×in\), the call needs 3×2/);
    expect(() => wasm.matmulWeights(out, new Float32Array(5), w, 2, 3, 2)).toThrow(/matmul x: needs elements \[0, 6\), has 5/);
    expect(() => wasm.matmulColumns(out, new Float32Array(6), w, 2, 3, 2, 1, 3)).toThrow(/column range \[1, 3\) is not inside \[0, 2\)/);
    expect(() => refW.matmulQ8_0(out, new Float32Array(6), w, 2, 3, 2)).toThrow(/expected q8_0 weights, got f32/);
    const short: WeightMatrix = { type: 'f16', rows: 2, cols: 3, data: new Uint16Array(5) };
    expect(() => wasm.matmulWeights(out, new Float32Array(6), short, 2, 3, 2)).toThrow(/f16 2×3 weights need 6 elements, data has 5/);
  });
});

describe.each(WHERE)('WASM row kernels, inputs in %s memory', (where) => {
  it('rmsnorm is bit-identical to the twin', () => {
    for (const [n, dim] of [
      [1, 1],
      [3, 7],
      [2, 64],
      [17, 300],
    ]) {
      const x = put(gauss(4 + n * dim, dim, 2), where);
      const weight = put(gauss(dim, dim + 1), where);
      const want = new Float32Array(n * dim);
      const got = put(new Float32Array(n * dim), where);
      ref.rmsnorm(want, x, weight, n, dim, 1e-5, 4);
      wasm.rmsnorm(got, x, weight, n, dim, 1e-5, 4);
      expect(bits(got)).toEqual(bits(want));
    }
  });

  it('rope is bit-identical to the twin (full and partial rotary dims)', () => {
    for (const [n, nHeads, headDim, ropeDim, pos0] of [
      [1, 4, 8, 8, 0],
      [3, 2, 64, 64, 1000],
      [17, 3, 64, 32, 5],
      [2, 1, 6, 6, 123456],
    ]) {
      const inv = ref.ropeInvFreq(10000, ropeDim);
      const xv = gauss(n * nHeads * headDim, headDim + n);
      const want = Float32Array.from(xv);
      const got = put(xv, where);
      ref.rope(want, n, nHeads, headDim, pos0, inv, new Float32Array(ropeDim / 2), new Float32Array(ropeDim / 2));
      wasm.rope(got, n, nHeads, headDim, pos0, inv, put(new Float32Array(ropeDim / 2), where), put(new Float32Array(ropeDim / 2), where));
      expect(bits(got)).toEqual(bits(want));
    }
  });

  it('softmax is within the exp and f32-rounding bound of the twin', () => {
    for (const [n, scale] of [
      [1, 0.125],
      [3, 1],
      [5, 1 / Math.sqrt(80)],
      [17, 0.125],
      [100, 1],
      [4099, 1 / Math.sqrt(80)],
    ]) {
      const v = gauss(n + 2, n, 6);
      if (n > 3) v[2 + 3] = -Infinity; // a masked position
      const want = Float32Array.from(v);
      const got = put(v, where);
      ref.softmax(want, 2, n, scale);
      wasm.softmax(got, 2, n, scale);
      // Exponent arguments: the twin subtracts the max in f64, the kernel in f32 (error ≤ u·|v − max|);
      // each exp within EXP_REL; Σe in 16 f32 lanes (≤ (n/16 + 4)·u relative, all terms positive);
      // then 1/Σ and the product, each rounded in both.
      let m = -Infinity;
      for (let t = 0; t < n; t++) m = Math.max(m, Math.fround(v[2 + t] * scale));
      let spread = 0;
      const arg = (t: number): number => Math.abs(Math.fround(v[2 + t] * scale) - m);
      for (let t = 0; t < n; t++) if (Number.isFinite(arg(t))) spread = Math.max(spread, arg(t));
      for (let t = 0; t < n; t++) {
        const w = want[2 + t];
        const tol = w * (2 * EXP_REL + U * (Number.isFinite(arg(t)) ? arg(t) : 0) + U * spread + (n / 16 + 8) * U) + 1e-37;
        if (!(Math.abs(got[2 + t] - w) <= tol)) expect.fail(`n ${n} value ${t}: ${got[2 + t]} vs twin ${w} (tolerance ${tol})`);
      }
      expect(got[0]).toBe(v[0]);
      expect(got[1]).toBe(v[1]);
    }
  });

  it('swiglu is within the exp bound of the twin', () => {
    for (const n of [1, 3, 17, 1000]) {
      const g = gauss(n, n, 8);
      if (n >= 17) g.set([0, -0, 100, -100, 88.8, -88.8, 1e-30, -87.1], 5);
      const up = put(gauss(n, n + 1), where);
      const want = Float32Array.from(g);
      const got = put(g, where);
      ref.swiglu(want, up, n);
      wasm.swiglu(got, up, n);
      // e^−g within EXP_REL makes 1 + e^−g within EXP_REL + u; then ÷ and × round in f32 (the twin
      // rounds once): ≤ (EXP_REL + 4u) relative. Below −87 the kernel's exp is 0 or +inf: the
      // true |g·up/(1 + e^−g)| < 100·e^−87·|up| < 1e-35 there.
      for (let i = 0; i < n; i++) {
        const tol = Math.abs(want[i]) * (EXP_REL + 4 * U) + 1e-35;
        if (!(Math.abs(got[i] - want[i]) <= tol)) expect.fail(`value ${i} (gate ${g[i]}): ${got[i]} vs twin ${want[i]}`);
      }
    }
  });

  it('addInPlace is bit-identical to the twin', () => {
    for (const n of [1, 3, 4, 17, 1001]) {
      const x = gauss(n, n);
      const y = put(gauss(n, n + 1, 1e-3), where);
      const want = Float32Array.from(x);
      const got = put(x, where);
      ref.addInPlace(want, y, n);
      wasm.addInPlace(got, y, n);
      expect(bits(got)).toEqual(bits(want));
    }
  });
});

describe('vector exp', () => {
  it('has relative error below 1e-7 on [−87, 88.72], 0 below, +inf above, NaN for NaN', () => {
    const n = 1 << 20;
    const r = rng(5);
    const src = new Float32Array(n);
    for (let i = 0; i < n; i++) src[i] = -87 + (88.72 + 87) * r();
    src.set([-87, 0, -0, 1, 88.72, 1e-30, -1e-30], 0);
    const dst = new Float32Array(n);
    wasm.expF32(dst, src, n - 1); // an odd count: the scalar tail too
    let worst = 0;
    for (let i = 0; i < n - 1; i++) worst = Math.max(worst, Math.abs(dst[i] - Math.exp(src[i])) / Math.exp(src[i]));
    expect(worst).toBeLessThan(EXP_REL);
    const special = Float32Array.of(-Infinity, -87.5, -1000, 88.73, 1000, Infinity, NaN);
    const out = new Float32Array(special.length);
    wasm.expF32(out, special, special.length);
    expect(Array.from(out)).toEqual([0, 0, 0, Infinity, Infinity, Infinity, NaN]);
  });
});

// Every weight type through the dispatcher, against the dispatching twin.
describe('matmulWeights dispatch', () => {
  it.each(['f32', 'f16', 'q8_0'] as WeightType[])('%s agrees with ref/weights.ts matmulWeights', (type) => {
    const w = encodeWeights(type, gauss(64 * 96, 3, 0.02), 64, 96);
    const x = gauss(96 * 2, 4);
    const want = new Float32Array(128);
    const got = new Float32Array(128);
    refW.matmulWeights(want, x, w, 2, 96, 64);
    wasm.matmulWeights(got, x, w, 2, 96, 64);
    if (type === 'q8_0') expect(bits(got)).toEqual(bits(want));
    else expectMatmulClose(got, want, absDots(x, 0, f32Values(w), 2, 96, 64), 96, 0);
  });
});
