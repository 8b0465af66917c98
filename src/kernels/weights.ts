// A weight matrix as the matmul kernels take it: row-major [rows = out][cols = in] in one of the
// GGUF storage types, kept in its stored form (f16/bf16 halves, ggml blocks) rather than widened
// to f32.
import { f32ToBf16, f32ToF16 } from '../numeric/f16.js';
import { Q8_BYTES, QK, quantizeBlock } from '../numeric/ggml-blocks.js';
import { isQuantWeightType, QUANT_FORMATS, quantRowBytes, type QuantWeightType } from '../numeric/weight-quants.js';

export type WeightType = 'f32' | 'f16' | 'bf16' | QuantWeightType;

export interface WeightMatrix {
  readonly type: WeightType;
  /** Output dimension. */
  readonly rows: number;
  /** Input dimension (a multiple of the block size for block types: 32, or 256 for K-quants and iq4_xs). */
  readonly cols: number;
  /**
   * f32: Float32Array of rows·cols; f16/bf16: Uint16Array of rows·cols halves; block types:
   * Uint8Array of ggml blocks (numeric/weight-quants.ts), each row's blocks contiguous, no
   * padding (the GGUF tensor layout).
   */
  readonly data: Float32Array | Uint16Array | Uint8Array;
}

/** Values per block of a type (1 for f32/f16/bf16). */
export function weightBlockSize(type: WeightType): number {
  return isQuantWeightType(type) ? QUANT_FORMATS[type].blockSize : 1;
}

/** Elements of `data` a matrix of this type and shape holds. */
export function weightDataLength(type: WeightType, rows: number, cols: number): number {
  return isQuantWeightType(type) ? rows * quantRowBytes(type, cols) : rows * cols;
}

function dataKind(type: WeightType): typeof Float32Array | typeof Uint16Array | typeof Uint8Array {
  return type === 'f32' ? Float32Array : type === 'f16' || type === 'bf16' ? Uint16Array : Uint8Array;
}

function checkColumns(what: string, type: WeightType, cols: number): void {
  const bs = weightBlockSize(type);
  if (cols % bs !== 0) throw new RangeError(`${what}: ${type} needs a multiple of ${bs} columns, got ${cols}`);
}

/** Checks type, shape and data against each other; returns the matrix. */
export function weightMatrix(type: WeightType, rows: number, cols: number, data: WeightMatrix['data']): WeightMatrix {
  if (!Number.isSafeInteger(rows) || rows <= 0 || !Number.isSafeInteger(cols) || cols <= 0) {
    throw new RangeError(`weight matrix: bad shape ${rows}×${cols}`);
  }
  checkColumns('weight matrix', type, cols);
  checkData(type, data);
  const len = weightDataLength(type, rows, cols);
  if (data.length !== len) throw new RangeError(`weight matrix: ${type} ${rows}×${cols} holds ${len} elements, data has ${data.length}`);
  return { type, rows, cols, data };
}

function checkData(type: WeightType, data: WeightMatrix['data']): void {
  const want = dataKind(type);
  if (!(data instanceof want)) throw new TypeError(`weight matrix: ${type} data must be a ${want.name}, got ${data.constructor.name}`);
}

/**
 * Throws unless w is an outDim × inDim (rows × cols) matrix, of `type` when given, whose data
 * has the right element type and at least the elements the shape needs.
 */
export function checkWeights(w: WeightMatrix, inDim: number, outDim: number, type?: WeightType): void {
  if (type && w.type !== type) throw new TypeError(`matmul: expected ${type} weights, got ${w.type}`);
  if (w.rows !== outDim || w.cols !== inDim) {
    throw new RangeError(`matmul: weight matrix is ${w.rows}×${w.cols} (out×in), the call needs ${outDim}×${inDim}`);
  }
  checkData(w.type, w.data);
  checkColumns('matmul', w.type, inDim);
  const len = weightDataLength(w.type, outDim, inDim);
  if (w.data.length < len) throw new RangeError(`matmul: ${w.type} ${outDim}×${inDim} weights need ${len} elements, data has ${w.data.length}`);
}

/**
 * Stores f32 values [rows][cols] as `type`: f16/bf16 round to nearest even; q8_0 is
 * quantize_row_q8_0_ref, what llama-quantize writes (throws when a block's scale overflows fp16).
 * The other block types are read from GGUF files only (no encoder here).
 */
export function encodeWeights(type: WeightType, values: Float32Array, rows: number, cols: number): WeightMatrix {
  if (type !== 'f32' && type !== 'f16' && type !== 'bf16' && type !== 'q8_0') throw new TypeError(`encodeWeights: no encoder for ${type} (supported: f32, f16, bf16, q8_0)`);
  if (values.length !== rows * cols) throw new RangeError(`encodeWeights: ${rows}×${cols} needs ${rows * cols} values, got ${values.length}`);
  if (type === 'f32') return weightMatrix(type, rows, cols, Float32Array.from(values));
  if (type === 'f16') return weightMatrix(type, rows, cols, Uint16Array.from(values, f32ToF16));
  if (type === 'bf16') return weightMatrix(type, rows, cols, Uint16Array.from(values, f32ToBf16));
  if (cols % QK !== 0) throw new RangeError(`encodeWeights: q8_0 needs a multiple of ${QK} columns, got ${cols}`);
  const data = new Uint8Array(weightDataLength(type, rows, cols));
  for (let b = 0; b < data.length / Q8_BYTES.q8_0; b++) {
    if (!quantizeBlock('q8_0', values, b * QK, data, b * Q8_BYTES.q8_0)) {
      throw new RangeError(`encodeWeights: q8_0 block ${b} (row ${Math.floor((b * QK) / cols)}) exceeds the fp16 scale range`);
    }
  }
  return weightMatrix(type, rows, cols, data);
}
