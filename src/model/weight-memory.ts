// Where model weights live: in the WASM heap when it has room, so the kernels read them in place;
// past wasm32's 4 GiB they stay in ordinary JS memory and run on the plain-TS kernels.
import { GgmlType, dequantizeToF32 } from '../formats/ggml-types.js';
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

const NATIVE: Partial<Record<GgmlType, WeightType>> = { [GgmlType.F32]: 'f32', [GgmlType.F16]: 'f16', [GgmlType.Q8_0]: 'q8_0' };

/**
 * A matrix from a GGUF tensor's raw bytes: F32, F16 and Q8_0 stay in their stored form (the
 * kernels run on them directly); other types are decoded to f32. `bytes` is copied.
 */
export function matrixFromTensor(type: GgmlType, rows: number, cols: number, bytes: Uint8Array): WeightMatrix {
  const native = NATIVE[type];
  if (native === undefined || (native === 'q8_0' && cols % 32 !== 0)) {
    return f32Matrix(rows, cols, dequantizeToF32(type, bytes, rows * cols));
  }
  const n = weightDataLength(native, rows, cols);
  const kind: Kind = native === 'f32' ? 'f32' : native === 'f16' ? 'u16' : 'u8';
  const data = tryHeap(kind, n) ?? (kind === 'f32' ? new Float32Array(n) : kind === 'u16' ? new Uint16Array(n) : new Uint8Array(n));
  new Uint8Array(data.buffer, data.byteOffset, data.byteLength).set(bytes.subarray(0, data.byteLength));
  return weightMatrix(native, rows, cols, data);
}

/** The matrix's values as f32 (its own data for f32 matrices). */
export function matrixValues(w: WeightMatrix): Float32Array {
  if (w.type === 'f32') return w.data as Float32Array;
  const bytes = new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength);
  return dequantizeToF32(w.type === 'f16' ? GgmlType.F16 : GgmlType.Q8_0, bytes, w.rows * w.cols);
}

/** Bytes the matrix holds. */
export function matrixBytes(w: WeightMatrix): number {
  return w.data.byteLength;
}

/** Writes row `r` of w as f32 into dst[dstOff …] (the embedding lookup). */
export function readRow(w: WeightMatrix, r: number, dst: Float32Array, dstOff: number): void {
  const cols = w.cols;
  if (w.type === 'f32') {
    dst.set((w.data as Float32Array).subarray(r * cols, (r + 1) * cols), dstOff);
    return;
  }
  const rowBytes = w.type === 'f16' ? cols * 2 : (cols / 32) * 34;
  const bytes = new Uint8Array(w.data.buffer, w.data.byteOffset + r * rowBytes, rowBytes);
  dequantizeToF32(w.type === 'f16' ? GgmlType.F16 : GgmlType.Q8_0, bytes, cols, dst.subarray(dstOff, dstOff + cols));
}
