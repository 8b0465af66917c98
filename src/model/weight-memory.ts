// Where model weights live: in the WASM heap when it has room, so the kernels read them in place;
// past wasm32's 4 GiB they stay in ordinary JS memory and run on the plain-TS kernels.
import { type GgmlType, ggmlTypeName, weightTypeName } from '../formats/ggml-types.js';
import { bf16ToF32, f16Table } from '../numeric/f16.js';
import { dequantizeRow, isQuantWeightType, quantRowBytes } from '../numeric/weight-quants.js';
import { wasmHeap } from '../kernels/wasm/runtime.js';
import { weightDataLength, weightMatrix, type WeightMatrix, type WeightType } from '../kernels/weights.js';

type Kind = 'f32' | 'u16' | 'u8';

function tryHeap(kind: Kind, n: number): Float32Array | Uint16Array | Uint8Array | undefined {
  try {
    const heap = wasmHeap();
    // The view itself owns its block: the weights keep it alive exactly as long as they are used.
    if (kind === 'f32') {
      const at = heap.alloc(n * 4);
      const v = new Float32Array(heap.buffer(), at, n);
      heap.adopt(at, v);
      return v;
    }
    const at = heap.alloc(kind === 'u16' ? n * 2 : n);
    const v = kind === 'u16' ? new Uint16Array(heap.buffer(), at, n) : new Uint8Array(heap.buffer(), at, n);
    heap.adopt(at, v);
    return v;
  } catch (e) {
    if (e instanceof RangeError) return undefined; // past 4 GiB
    throw e;
  }
}

/** A zeroed float array in the WASM heap when it fits (weights, activations), else in JS memory. */
export function heapFloat32(n: number): Float32Array {
  return (tryHeap('f32', n) as Float32Array | undefined) ?? new Float32Array(n);
}

/** An f32 weight matrix [rows][cols] holding a copy of `values` (heap when it fits). */
export function f32Matrix(rows: number, cols: number, values: Float32Array): WeightMatrix {
  const data = heapFloat32(rows * cols);
  data.set(values.subarray(0, rows * cols));
  return weightMatrix('f32', rows, cols, data);
}

function kindOf(type: WeightType): Kind {
  return type === 'f32' ? 'f32' : type === 'f16' || type === 'bf16' ? 'u16' : 'u8';
}

/**
 * A matrix of a GGUF tensor, kept in its stored type (every type the kernels run on: F32, F16,
 * BF16 and the ggml block types). `fill` writes the tensor's raw bytes into the matrix's storage
 * (the WASM heap when it fits), so the bytes go from the file straight to their final place;
 * a Uint8Array is copied instead.
 */
export function matrixFromTensor(type: GgmlType, rows: number, cols: number, fill: Uint8Array | ((dst: Uint8Array) => void)): WeightMatrix {
  const wt = weightTypeName(type);
  if (wt === undefined) throw new TypeError(`tensor type ${ggmlTypeName(type)} is not supported for weight matrices`);
  const n = weightDataLength(wt, rows, cols);
  const kind = kindOf(wt);
  const data = tryHeap(kind, n) ?? (kind === 'f32' ? new Float32Array(n) : kind === 'u16' ? new Uint16Array(n) : new Uint8Array(n));
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (typeof fill === 'function') fill(bytes);
  else bytes.set(fill.subarray(0, bytes.length));
  return weightMatrix(wt, rows, cols, data);
}

/** The matrix's values as f32 (its own data for f32 matrices). */
export function matrixValues(w: WeightMatrix): Float32Array {
  if (w.type === 'f32') return w.data as Float32Array;
  const out = new Float32Array(w.rows * w.cols);
  for (let r = 0; r < w.rows; r++) readRow(w, r, out, r * w.cols);
  return out;
}

/** Bytes the matrix holds. */
export function matrixBytes(w: WeightMatrix): number {
  return w.data.byteLength;
}

/** Writes row `r` of w as f32 into dst[dstOff …] (the embedding lookup), bit-exact with ggml's to_float. */
export function readRow(w: WeightMatrix, r: number, dst: Float32Array, dstOff: number): void {
  const cols = w.cols;
  if (!Number.isSafeInteger(r) || r < 0 || r >= w.rows) throw new RangeError(`readRow: row ${r} is outside [0, ${w.rows})`);
  if (w.type === 'f32') {
    dst.set((w.data as Float32Array).subarray(r * cols, (r + 1) * cols), dstOff);
    return;
  }
  if (w.type === 'f16' || w.type === 'bf16') {
    const h = (w.data as Uint16Array).subarray(r * cols, (r + 1) * cols);
    if (w.type === 'f16') for (let j = 0; j < cols; j++) dst[dstOff + j] = f16Table[h[j]];
    else for (let j = 0; j < cols; j++) dst[dstOff + j] = bf16ToF32(h[j]);
    return;
  }
  if (!isQuantWeightType(w.type)) throw new TypeError(`readRow: unknown weight type ${w.type}`);
  const q = w.data as Uint8Array;
  dequantizeRow(w.type, q, r * quantRowBytes(w.type, cols), cols, dst, dstOff);
}
