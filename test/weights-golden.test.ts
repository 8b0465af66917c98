// The ggml weight types against llama.cpp's own numbers (golden/ggml-weights, see its README):
// block decoding bit for bit, the activation quantizers byte for byte, and the dot products of
// the plain-TS reference (and so of the WASM kernels, which equal it bit for bit: weights-kernels)
// within a float-rounding bound.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dequantizeToF32, GgmlType } from '../src/formats/ggml-types.js';
import { weightMatrix, type WeightType } from '../src/kernels/weights.js';
import { matmulWeights } from '../src/kernels/ref/weights.js';
import * as wasm from '../src/kernels/wasm/ops.js';
import { bf16ToF32, f16Table, f32ToBf16, f32ToF16 } from '../src/numeric/f16.js';
import {
  ACTIVATION_FORMATS,
  decodeActivationRow,
  QUANT_FORMATS,
  QUANT_WEIGHT_TYPES,
  quantizeActivationRow,
  unpackBlock,
  unpackedBlock,
  vecDotRow,
  type QuantWeightType,
} from '../src/numeric/weight-quants.js';
import { matrixFromTensor, readRow } from '../src/model/weight-memory.js';
import { dataPath, hasShared } from './helpers/shared-data.js';

const ROWS = 16;
const COLS = 512;
const U = 2 ** -24; // float32 unit roundoff

const read = (f: string): Uint8Array => new Uint8Array(readFileSync(dataPath('golden/ggml-weights', f)));
const f32 = (f: string): Float32Array => {
  const b = read(f);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};
const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

const GGML_ID: Record<string, GgmlType> = { f16: GgmlType.F16, bf16: GgmlType.BF16 };
for (const t of QUANT_WEIGHT_TYPES) GGML_ID[t] = QUANT_FORMATS[t].ggmlId;
const ALL: WeightType[] = ['f16', 'bf16', ...QUANT_WEIGHT_TYPES];

describe.skipIf(!hasShared)('ggml weight types against llama.cpp (golden/ggml-weights)', () => {
  it.each(ALL)('%s: dequantization is bit-exact on every row (dequantizeToF32 and readRow)', (t) => {
    const bytes = read(`${t}.bin`);
    const want = f32(`${t}.deq.f32`);
    expect(bits(dequantizeToF32(GGML_ID[t], bytes, ROWS * COLS))).toEqual(bits(want));
    const m = matrixFromTensor(GGML_ID[t], ROWS, COLS, bytes);
    expect(m.type).toBe(t);
    expect(m.data.byteLength).toBe(bytes.length); // kept as stored, no f32 copy
    const row = new Float32Array(COLS);
    for (let r = 0; r < ROWS; r++) {
      readRow(m, r, row, 0);
      expect(bits(row), `row ${r}`).toEqual(bits(want.subarray(r * COLS, (r + 1) * COLS)));
    }
  });

  it('iq4_nl from the reference quantizer (zeroed all-zero blocks) decodes bit-exactly too', () => {
    expect(bits(dequantizeToF32(GgmlType.IQ4_NL, read('iq4_nl.ref.bin'), ROWS * COLS))).toEqual(bits(f32('iq4_nl.ref.deq.f32')));
  });

  it.each(['q8_0', 'q8_1', 'q8_K'] as const)('activations quantized to %s are byte-identical to llama.cpp', (type) => {
    const act = f32('act.f32');
    const want = read(`act.${type}.bin`);
    const mine = new Uint8Array(want.length);
    for (let a = 0; a < 2; a++) quantizeActivationRow(type, act, a * COLS, COLS, mine, (a * want.length) / 2);
    expect(Buffer.from(mine).equals(Buffer.from(want))).toBe(true);
  });

  it('activations converted to f16 and bf16 are byte-identical to llama.cpp', () => {
    const act = f32('act.f32');
    expect(Buffer.from(Uint16Array.from(act, f32ToF16).buffer).equals(Buffer.from(read('act.f16.bin')))).toBe(true);
    expect(Buffer.from(Uint16Array.from(act, f32ToBf16).buffer).equals(Buffer.from(read('act.bf16.bin')))).toBe(true);
  });

  // llama.cpp's kernels (x86 AVX2, 8 lanes of partial sums, fma) and ours (one float term per
  // block, see numeric/weight-quants.ts vecDotRow) add the same exact integer products, scaled,
  // in different groupings. Each way of summing m float32 terms, each from ≤ 3 rounded
  // operations, is within (m + 3)·u·Σ|term| of the exact sum, for any grouping whose terms are
  // finer than the block; so the two differ by at most 2(m + 3)·u·A, with A the sum of the
  // absolute values of the finest terms, |d_w·d_a·s·L·q| over values and |dmin_w·d_a·m·bsum|
  // (|min_w·s_a|) over sub-blocks, and m the number of those terms.
  it.each(QUANT_WEIGHT_TYPES)('%s: the vec_dot reference matches vecdot.f32 and mulmat.f32 within the float-order bound', (t) => {
    const f = QUANT_FORMATS[t];
    const w = read(`${t}.bin`);
    const actBytes = read(`act.${f.vecDotType}.bin`);
    const rowBytes = (COLS / f.blockSize) * f.bytes;
    const aBytes = (COLS / ACTIVATION_FORMATS[f.vecDotType].blockSize) * ACTIVATION_FORMATS[f.vecDotType].bytes;
    const u = unpackedBlock();
    let worst = 0;
    for (const file of [`${t}.vecdot.f32`, `${t}.mulmat.f32`]) {
      const want = f32(file);
      for (let a = 0; a < 2; a++) {
        const act = decodeActivationRow(f.vecDotType, actBytes, a * aBytes, COLS);
        for (let r = 0; r < ROWS; r++) {
          const ours = vecDotRow(t, w, r * rowBytes, COLS, act);
          const A = absTerms(t, w, r * rowBytes, act, u);
          const terms = COLS + 16 * (COLS / f.blockSize);
          const bound = 2 * (terms + 3) * U * A.sum;
          expect(Math.abs(ours - want[a * ROWS + r]), `${file} act ${a} row ${r}`).toBeLessThanOrEqual(bound);
          if (A.sum > 0) worst = Math.max(worst, Math.abs(ours - want[a * ROWS + r]) / A.sum);
          // And the reference is the exact sum up to its own rounding.
          expect(Math.abs(ours - A.exact)).toBeLessThanOrEqual((terms + 3) * U * A.sum);
        }
      }
    }
    expect(worst).toBeLessThan(1e-5);
  });

  it.each(['f16', 'bf16'] as const)('%s: Σ w·a over llama.cpp-converted activations matches vecdot.f32 and mulmat.f32', (t) => {
    const h = new Uint16Array(read(`${t}.bin`).buffer.slice(0));
    const a16 = new Uint16Array(read(`act.${t}.bin`).buffer.slice(0));
    const widen = t === 'f16' ? (x: number): number => f16Table[x] : bf16ToF32;
    for (const file of [`${t}.vecdot.f32`, `${t}.mulmat.f32`]) {
      const want = f32(file);
      for (let a = 0; a < 2; a++) {
        for (let r = 0; r < ROWS; r++) {
          let exact = 0;
          let abs = 0;
          for (let j = 0; j < COLS; j++) {
            const p = widen(h[r * COLS + j]) * widen(a16[a * COLS + j]);
            exact += p;
            abs += Math.abs(p);
          }
          expect(Math.abs(exact - want[a * ROWS + r]), `${file} ${a} ${r}`).toBeLessThanOrEqual((COLS + 3) * U * abs);
        }
      }
    }
  });

  it.each(QUANT_WEIGHT_TYPES)('%s: the matmul reference and the WASM kernel equal the vec_dot reference bit for bit', (t) => {
    const act = f32('act.f32');
    const m = weightMatrix(t, ROWS, COLS, read(`${t}.bin`));
    const ref = new Float32Array(2 * ROWS);
    const kern = new Float32Array(2 * ROWS);
    matmulWeights(ref, act, m, 2, COLS, ROWS);
    wasm.matmulWeights(kern, act, m, 2, COLS, ROWS);
    expect(bits(kern)).toEqual(bits(ref));
    const f = QUANT_FORMATS[t];
    const want = new Float32Array(2 * ROWS);
    for (let a = 0; a < 2; a++) {
      const q = decodeActivationRow(f.vecDotType, quantizeActivationRow(f.vecDotType, act, a * COLS, COLS), 0, COLS);
      for (let r = 0; r < ROWS; r++) want[a * ROWS + r] = vecDotRow(t, m.data as Uint8Array, r * (m.data.length / ROWS), COLS, q);
    }
    expect(bits(ref)).toEqual(bits(want));
  });

  it.each(['f16', 'bf16'] as const)('%s: the f32-activation matmul (ref and WASM) is within the activation rounding of mulmat.f32', (t) => {
    const act = f32('act.f32');
    const m = weightMatrix(t, ROWS, COLS, new Uint16Array(read(`${t}.bin`).buffer.slice(0)));
    const want = f32(`${t}.mulmat.f32`);
    const deq = f32(`${t}.deq.f32`);
    // llama.cpp rounds each activation to the weight's type first (relative 2^-11 for f16, 2^-8
    // for bf16); lowkv keeps them f32.
    const rel = t === 'f16' ? 2 ** -11 : 2 ** -8;
    for (const run of [matmulWeights, wasm.matmulWeights]) {
      const out = new Float32Array(2 * ROWS);
      run(out, act, m, 2, COLS, ROWS);
      for (let a = 0; a < 2; a++) {
        for (let r = 0; r < ROWS; r++) {
          let abs = 0;
          for (let j = 0; j < COLS; j++) abs += Math.abs(deq[r * COLS + j] * act[a * COLS + j]);
          expect(Math.abs(out[a * ROWS + r] - want[a * ROWS + r])).toBeLessThanOrEqual((rel + 2 * (COLS + 3) * U) * abs);
        }
      }
    }
  });
});

/** Σ of the absolute finest terms of one row's dot (see the bound above), and the exact (f64) dot. */
function absTerms(t: QuantWeightType, w: Uint8Array, off: number, act: ReturnType<typeof decodeActivationRow>, u: ReturnType<typeof unpackedBlock>): { sum: number; exact: number } {
  const f = QUANT_FORMATS[t];
  let sum = 0;
  let exact = 0;
  for (let b = 0; b < COLS / f.blockSize; b++) {
    unpackBlock(t, w, off + b * f.bytes, u);
    const da = act.d[b];
    for (let k = 0; k < f.blockSize / f.subBlock; k++) {
      for (let j = k * f.subBlock; j < (k + 1) * f.subBlock; j++) {
        const v = u.d * da * u.scales[k] * u.levels[j] * act.levels[b * f.blockSize + j];
        sum += Math.abs(v);
        exact += v;
      }
      if (f.dminOffset >= 0) {
        const bs = act.extra as Int32Array;
        let s = 0;
        for (let i = 0; i < f.subBlock / 16; i++) s += bs[b * 16 + (k * f.subBlock) / 16 + i];
        const v = u.dmin * da * u.mins[k] * s;
        sum += Math.abs(v);
        exact -= v;
      }
    }
    if (f.minOffset >= 0) {
      const v = u.dmin * (act.extra as Float32Array)[b];
      sum += Math.abs(v);
      exact += v;
    }
  }
  return { sum, exact };
}
