// A weight matrix as the matmul kernels take it: row-major [rows = out][cols = in] in one of the
// GGUF storage types, kept in its stored form (f16 halves, ggml q8_0 blocks) rather than widened
// to f32.
import { f32ToF16 } from '../numeric/f16.js';
import { Q8_BYTES, QK, quantizeBlock } from '../numeric/ggml-blocks.js';

export type WeightType = 'f32' | 'f16' | 'q8_0';

export interface WeightMatrix {
  readonly type: WeightType;
  /** Output dimension. */
  readonly rows: number;
  /** Input dimension (a multiple of 32 for q8_0). */
  readonly cols: number;
  /**
   * f32: Float32Array of rows·cols; f16: Uint16Array of rows·cols IEEE halves; q8_0:
   * Uint8Array of rows·cols/32 ggml blocks (34 bytes: little-endian fp16 d, int8 qs[32]),
   * each row's blocks contiguous, no padding (the GGUF tensor layout).
   */
  readonly data: Float32Array | Uint16Array | Uint8Array;
}

const Q8_BLOCK = Q8_BYTES.q8_0;

/** Elements of `data` a matrix of this type and shape holds. */
export function weightDataLength(type: WeightType, rows: number, cols: number): number {
  return type === 'q8_0' ? rows * (cols / QK) * Q8_BLOCK : rows * cols;
}

const DATA_KIND = { f32: Float32Array, f16: Uint16Array, q8_0: Uint8Array } as const;

/** Checks type, shape and data against each other; returns the matrix. */
export function weightMatrix(type: WeightType, rows: number, cols: number, data: WeightMatrix['data']): WeightMatrix {
  if (!Number.isSafeInteger(rows) || rows <= 0 || !Number.isSafeInteger(cols) || cols <= 0) {
    throw new RangeError(`weight matrix: bad shape ${rows}×${cols}`);
  }
  if (type === 'q8_0' && cols % QK !== 0) {
    throw new RangeError(`weight matrix: q8_0 needs a multiple of ${QK} columns, got ${cols}`);
  }
  checkData(type, data);
  const len = weightDataLength(type, rows, cols);
  if (data.length !== len) throw new RangeError(`weight matrix: ${type} ${rows}×${cols} holds ${len} elements, data has ${data.length}`);
  return { type, rows, cols, data };
}

function checkData(type: WeightType, data: WeightMatrix['data']): void {
  const want = DATA_KIND[type];
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
  if (w.type === 'q8_0' && inDim % QK !== 0) throw new RangeError(`matmul: q8_0 needs a multiple of ${QK} columns, got ${inDim}`);
  const len = weightDataLength(w.type, outDim, inDim);
  if (w.data.length < len) throw new RangeError(`matmul: ${w.type} ${outDim}×${inDim} weights need ${len} elements, data has ${w.data.length}`);
}

/**
 * Stores f32 values [rows][cols] as `type`: f16 rounds to nearest even; q8_0 is
 * quantize_row_q8_0_ref, what llama-quantize writes (throws when a block's scale overflows fp16).
 */
export function encodeWeights(type: WeightType, values: Float32Array, rows: number, cols: number): WeightMatrix {
  if (values.length !== rows * cols) throw new RangeError(`encodeWeights: ${rows}×${cols} needs ${rows * cols} values, got ${values.length}`);
  if (type === 'f32') return weightMatrix(type, rows, cols, Float32Array.from(values));
  if (type === 'f16') return weightMatrix(type, rows, cols, Uint16Array.from(values, f32ToF16));
  if (cols % QK !== 0) throw new RangeError(`encodeWeights: q8_0 needs a multiple of ${QK} columns, got ${cols}`);
  const data = new Uint8Array(weightDataLength(type, rows, cols));
  for (let b = 0; b < data.length / Q8_BLOCK; b++) {
    if (!quantizeBlock('q8_0', values, b * QK, data, b * Q8_BLOCK)) {
      throw new RangeError(`encodeWeights: q8_0 block ${b} (row ${Math.floor((b * QK) / cols)}) exceeds the fp16 scale range`);
    }
  }
  return weightMatrix(type, rows, cols, data);
}
