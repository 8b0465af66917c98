// Plain-TypeScript matmul twins for every weight type (kernels/weights.ts), with ops.ts matmul's
// signature: out[outOff + i·outDim + o] = x_i · W_o for i < n.
import { bf16ToF32, f16Table } from '../../numeric/f16.js';
import { q8Levels, Q8_BYTES, QK, quantizeQ8Block, readF16 } from '../../numeric/ggml-blocks.js';
import {
  blockTerm,
  decodeActivationRow,
  QUANT_FORMATS,
  quantizeActivationRow,
  unpackBlock,
  unpackedBlock,
  type ActivationRow,
  type QuantWeightType,
  type UnpackedBlock,
} from '../../numeric/weight-quants.js';
import { checkWeights, type WeightMatrix } from '../weights.js';
import { dot, matmul } from './ops.js';

/** x·Wᵀ for a weight matrix of any type. */
export function matmulWeights(out: Float32Array, x: Float32Array, w: WeightMatrix, n: number, inDim: number, outDim: number, xOff = 0, outOff = 0): void {
  if (w.type === 'f32') {
    checkWeights(w, inDim, outDim);
    matmul(out, x, w.data as Float32Array, n, inDim, outDim, xOff, outOff);
  } else if (w.type === 'f16' || w.type === 'bf16') matmulHalf(out, x, w, n, inDim, outDim, xOff, outOff);
  else if (w.type === 'q8_0') matmulQ8_0(out, x, w, n, inDim, outDim, xOff, outOff);
  else matmulQuant(out, x, w, n, inDim, outDim, xOff, outOff);
}

let rowsF32 = new Float32Array(0);

/**
 * f16/bf16 weights: each tile of weight rows widened to f32 (exact) once, then ops.ts dot per
 * activation row (its four partial sums, in f64), rounded to f32 on store. Activations stay f32
 * (llama.cpp rounds them to the weight's half type first; this is the more exact product).
 */
export function matmulHalf(out: Float32Array, x: Float32Array, w: WeightMatrix, n: number, inDim: number, outDim: number, xOff = 0, outOff = 0): void {
  checkWeights(w, inDim, outDim);
  if (w.type !== 'f16' && w.type !== 'bf16') throw new TypeError(`matmul: expected f16 or bf16 weights, got ${w.type}`);
  const h = w.data as Uint16Array;
  const tile = Math.max(1, Math.floor(16384 / inDim));
  if (rowsF32.length < tile * inDim) rowsF32 = new Float32Array(tile * inDim);
  const rows = rowsF32;
  for (let o0 = 0; o0 < outDim; o0 += tile) {
    const o1 = Math.min(outDim, o0 + tile);
    if (w.type === 'f16') for (let k = 0, s = o0 * inDim; k < (o1 - o0) * inDim; k++, s++) rows[k] = f16Table[h[s]];
    else for (let k = 0, s = o0 * inDim; k < (o1 - o0) * inDim; k++, s++) rows[k] = bf16ToF32(h[s]);
    for (let i = 0; i < n; i++) {
      const xo = xOff + i * inDim;
      for (let o = o0; o < o1; o++) out[outOff + i * outDim + o] = dot(x, xo, rows, (o - o0) * inDim, inDim);
    }
  }
}

/** n activation rows of inDim as q8_0: the int8 levels and each block's fp16 scale (as f32). */
export interface Q8Activations {
  readonly levels: Int32Array;
  readonly scales: Float32Array;
}

/**
 * Quantizes x rows to q8_0 with llama.cpp's x86 from_float (numeric/ggml-blocks.ts, path 'x86'),
 * which its CPU matmul applies to every activation row. Throws when a block's scale is not a
 * finite fp16 (|x| ≥ 127·65520, inf or NaN).
 */
export function quantizeActivationsQ8(x: Float32Array, xOff: number, n: number, inDim: number): Q8Activations {
  const nb = inDim / QK;
  const levels = new Int32Array(n * inDim);
  const scales = new Float32Array(n * nb);
  const block = new Uint8Array(Q8_BYTES.q8_0);
  for (let b = 0; b < n * nb; b++) {
    if (!quantizeQ8Block('q8_0', x, xOff + b * QK, block, 0, 'x86')) {
      throw new RangeError(`matmul q8_0: activation row ${Math.floor(b / nb)} block ${b % nb} is not representable (|x| too large, inf or NaN)`);
    }
    q8Levels('q8_0', block, 0, levels, b * QK);
    scales[b] = readF16(block, 0);
  }
  return { levels, scales };
}

/**
 * q8_0 weights as llama.cpp's CPU backend: activations quantized to q8_0 (quantizeActivationsQ8),
 * then for each block the integer Σ w_q·x_q, and sum += isum·(d_w·d_x) in float32, block by block
 * (ggml_vec_dot_q8_0_q8_0's generic order).
 */
export function matmulQ8_0(out: Float32Array, x: Float32Array, w: WeightMatrix, n: number, inDim: number, outDim: number, xOff = 0, outOff = 0): void {
  checkWeights(w, inDim, outDim, 'q8_0');
  const q = w.data as Uint8Array;
  const nb = inDim / QK;
  const { levels, scales } = quantizeActivationsQ8(x, xOff, n, inDim);
  const wl = new Int32Array(inDim);
  const wd = new Float32Array(nb);
  const fr = Math.fround;
  for (let o = 0; o < outDim; o++) {
    for (let b = 0; b < nb; b++) {
      const at = (o * nb + b) * Q8_BYTES.q8_0;
      q8Levels('q8_0', q, at, wl, b * QK);
      wd[b] = readF16(q, at);
    }
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let b = 0; b < nb; b++) {
        let isum = 0;
        for (let j = b * QK, k = i * inDim + j; j < (b + 1) * QK; j++, k++) isum += wl[j] * levels[k];
        sum = fr(sum + fr(isum * fr(wd[b] * scales[i * nb + b])));
      }
      out[outOff + i * outDim + o] = sum;
    }
  }
}

let unpacked: UnpackedBlock[] = [];

/**
 * Any ggml block type as llama.cpp's CPU backend computes it: each activation row converted to
 * the type's vec_dot_type (numeric/weight-quants.ts quantizeActivationRow), then per block the
 * exact integer products and the float term of blockTerm, summed block by block. The twin of
 * the WASM kernels in assembly/quant.ts, bit for bit.
 */
export function matmulQuant(out: Float32Array, x: Float32Array, w: WeightMatrix, n: number, inDim: number, outDim: number, xOff = 0, outOff = 0): void {
  checkWeights(w, inDim, outDim);
  const type = w.type as QuantWeightType;
  const f = QUANT_FORMATS[type];
  if (!f) throw new TypeError(`matmul: ${w.type} is not a block type`);
  const acts: ActivationRow[] = [];
  for (let i = 0; i < n; i++) {
    let bytes: Uint8Array;
    try {
      bytes = quantizeActivationRow(f.vecDotType, x, xOff + i * inDim, inDim);
    } catch (e) {
      throw new RangeError(`matmul ${type}: activation row ${i}: ${(e as Error).message}`);
    }
    acts.push(decodeActivationRow(f.vecDotType, bytes, 0, inDim));
  }
  const nb = inDim / f.blockSize;
  const nsub = f.blockSize / f.subBlock;
  while (unpacked.length < nb) unpacked.push(unpackedBlock());
  const q = w.data as Uint8Array;
  const fr = Math.fround;
  for (let o = 0; o < outDim; o++) {
    for (let b = 0; b < nb; b++) unpackBlock(type, q, (o * nb + b) * f.bytes, unpacked[b]);
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let b = 0; b < nb; b++) sum = fr(sum + blockTerm(f, unpacked[b], acts[i], b, nsub));
      out[outOff + i * outDim + o] = sum;
    }
  }
}
