/**
 * What the fp, ggml and integer codecs share to run attention in WASM: their kernels' signatures
 * (assembly/attn-fp.ts, attn-ggml.ts, attn-int.ts), storage that lives in the WASM heap when it
 * can, and staging of query, weight and output arrays that do not.
 *
 * A codec's storage goes to the heap unless the heap cannot take it (wasm32 stops at 4 GiB); it
 * then stays in ordinary typed arrays and the codec runs its plain-TS twin. `withPlainStorage`
 * forces the second case, for parity tests and for timing the twins, and so does
 * LOWKV_KERNELS=ref (the forward pass's switch to the plain-TS kernels, model/backend.ts).
 */
import { wasmHeap, type WasmHeap } from '../../kernels/wasm/runtime.js';

/** Kernel exports, all pointers being byte offsets into the heap's memory. */
export interface AttnKernels {
  attnTile(): number;
  attnScoresFp(kind: number, k: number, kStride: number, nTokens: number, q: number, nq: number, headDim: number, out: number, outStride: number, scratch: number): void;
  attnAccumulateFp(kind: number, v: number, vStride: number, nTokens: number, w: number, wStride: number, nq: number, headDim: number, out: number, scratch: number): void;
  ggmlQuantizeQuery(kind: number, q: number, nq: number, headDim: number, nb: number, ql: number, qd: number, qs: number): number;
  ggmlScores(
    type: number,
    k: number,
    rowBytes: number,
    nTokens: number,
    nFull: number,
    tail: number,
    ql: number,
    qd: number,
    qs: number,
    nq: number,
    out: number,
    outStride: number,
    scratch: number,
  ): void;
  ggmlScoresF32(
    type: number,
    k: number,
    rowBytes: number,
    nTokens: number,
    nFull: number,
    tail: number,
    headDim: number,
    q: number,
    nq: number,
    out: number,
    outStride: number,
    scratch: number,
  ): void;
  ggmlAccumulate(
    type: number,
    v: number,
    rowBytes: number,
    nTokens: number,
    nFull: number,
    tail: number,
    headDim: number,
    w: number,
    wStride: number,
    nq: number,
    out: number,
    scratch: number,
  ): void;
  intScoresI16(desc: number, head: number, nTokens: number, q: number, nq: number, out: number, outStride: number, scratch: number): void;
  intScoresI8(desc: number, head: number, nTokens: number, q: number, nq: number, out: number, outStride: number, scratch: number): void;
  intScoresF32(desc: number, head: number, nTokens: number, q: number, nq: number, out: number, outStride: number, scratch: number): void;
  /** weightTile > 0: per-token codes take int16 weights quantized per tile of that many tokens. */
  intAccumulate(desc: number, head: number, nTokens: number, w: number, wStride: number, nq: number, out: number, scratch: number, weightTile: number): void;
  intScratchBytes(headDim: number, nq: number): number;
  /** Σ of n float32 (n a multiple of 16): a pure read stream, for bandwidth measurements. */
  streamSumF32(p: number, n: number): number;
}

export function attnKernels(heap: WasmHeap): AttnKernels {
  return heap.kernels as unknown as AttnKernels;
}

// Staging slots of WasmHeap used by one attention call (distinct from each other; calls never
// interleave, so sharing slot numbers with other kernels is harmless).
const SLOT_Q = 16;
const SLOT_OUT = 17;
const SLOT_W = 18;
const SLOT_SCRATCH = 19;
const SLOT_QUERY_CODES = 20;

export interface Allocator {
  u8(n: number): Uint8Array;
  u16(n: number): Uint16Array;
  u32(n: number): Uint32Array;
  i32(n: number): Int32Array;
  f32(n: number): Float32Array;
}

const plainAllocator: Allocator = {
  u8: (n) => new Uint8Array(n),
  u16: (n) => new Uint16Array(n),
  u32: (n) => new Uint32Array(n),
  i32: (n) => new Int32Array(n),
  f32: (n) => new Float32Array(n),
};

let plainDepth = 0;
const heapOwners = new WeakSet<object>();

/** True when `owner`'s storage was made in the WASM heap (its attention runs the SIMD kernels). */
export function storedInHeap(owner: object): boolean {
  return heapOwners.has(owner);
}

/** Runs fn with codec storage made in ordinary typed arrays: codecs created inside run plain TS. */
export function withPlainStorage<T>(fn: () => T): T {
  plainDepth++;
  try {
    return fn();
  } finally {
    plainDepth--;
  }
}

/** False inside withPlainStorage and under LOWKV_KERNELS=ref: codecs then keep plain arrays. */
export function heapStorageWanted(): boolean {
  return plainDepth === 0 && process.env.LOWKV_KERNELS !== 'ref';
}

/**
 * Makes a codec's arrays in the WASM heap, freed when `owner` is collected; when the heap cannot
 * hold them all (RangeError past 4 GiB), releases what it took and makes ordinary arrays instead.
 * `heap` is set when the arrays are in the heap.
 */
export function allocateStorage<T>(owner: object, make: (a: Allocator) => T): { arrays: T; heap?: WasmHeap } {
  if (heapStorageWanted()) {
    const heap = wasmHeap();
    const taken: number[] = [];
    const bytes = (n: number): Uint8Array => {
      const v = heap.u8(n, owner);
      taken.push(v.byteOffset);
      return v;
    };
    const view = <V>(n: number, size: number, C: new (b: ArrayBufferLike, o: number, n: number) => V): V => {
      const b = bytes(n * size);
      return new C(b.buffer, b.byteOffset, n);
    };
    try {
      const arrays = make({
        u8: bytes,
        u16: (n) => view(n, 2, Uint16Array),
        u32: (n) => view(n, 4, Uint32Array),
        i32: (n) => view(n, 4, Int32Array),
        f32: (n) => view(n, 4, Float32Array),
      });
      heapOwners.add(owner);
      return { arrays, heap };
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      // The first release also unregisters every block this owner registered.
      taken.forEach((offset, i) => heap.release(offset, i === 0 ? owner : undefined));
    }
  }
  return { arrays: make(plainAllocator) };
}

/** Byte offset of the query vectors q[qOffset … + n) for a kernel. */
export function queryIn(heap: WasmHeap, q: Float32Array, qOffset: number, n: number): number {
  return heap.input(q, qOffset, n, SLOT_Q);
}

/** Where a kernel writes scores meant for out[outOffset + i·outStride + t], i < nq, t < nTokens. */
export function scoresOut(heap: WasmHeap, out: Float32Array, outOffset: number, outStride: number, nq: number, nTokens: number): { ptr: number; stride: number } {
  if (heap.holds(out)) return { ptr: out.byteOffset + outOffset * 4, stride: outStride };
  return { ptr: heap.staging(SLOT_OUT, nq * nTokens).byteOffset, stride: nTokens };
}

/** Copies staged scores back to out (no-op when the kernel wrote out directly). */
export function flushScores(heap: WasmHeap, out: Float32Array, outOffset: number, outStride: number, nq: number, nTokens: number): void {
  if (heap.holds(out)) return;
  const s = heap.staging(SLOT_OUT, nq * nTokens);
  for (let i = 0; i < nq; i++) out.set(s.subarray(i * nTokens, (i + 1) * nTokens), outOffset + i * outStride);
}

/** Byte offset and row stride (floats) of the weight rows w[wOffset + i·wStride + t] for a kernel. */
export function weightsIn(heap: WasmHeap, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number): { ptr: number; stride: number } {
  if (heap.holds(w)) return { ptr: w.byteOffset + wOffset * 4, stride: wStride };
  const s = heap.staging(SLOT_W, nq * nTokens);
  for (let i = 0; i < nq; i++) s.set(w.subarray(wOffset + i * wStride, wOffset + i * wStride + nTokens), i * nTokens);
  return { ptr: s.byteOffset, stride: nTokens };
}

/** Where a kernel adds into out[outOffset … + n); call flushAccumulated afterwards. */
export function accumulateOut(heap: WasmHeap, out: Float32Array, outOffset: number, n: number): number {
  return heap.output(out, outOffset, n, SLOT_OUT, true);
}

export function flushAccumulated(heap: WasmHeap, out: Float32Array, outOffset: number, n: number): void {
  heap.flush(out, outOffset, n, SLOT_OUT);
}

/** A kernel scratch area of at least `bytes`. */
export function scratch(heap: WasmHeap, bytes: number): number {
  return heap.staging(SLOT_SCRATCH, Math.ceil(bytes / 4)).byteOffset;
}

/** A second scratch area (converted queries), distinct from scratch(). */
export function queryScratch(heap: WasmHeap, bytes: number): number {
  return heap.staging(SLOT_QUERY_CODES, Math.ceil(bytes / 4)).byteOffset;
}

/** Byte offsets of 16-byte-aligned parts of staging slot `slot`, one per size in bytes. */
export function scratchParts(heap: WasmHeap, slot: number, bytes: readonly number[]): number[] {
  const offsets: number[] = [];
  let total = 0;
  for (const b of bytes) {
    offsets.push(total);
    total += Math.ceil(b / 16) * 16;
  }
  const base = heap.staging(slot, Math.max(1, total / 4)).byteOffset;
  return offsets.map((o) => base + o);
}

let tile = 0;

/** Tokens the kernels decode per tile (assembly/attn-fp.ts TILE), for scratch sizes. */
export function attnTile(heap: WasmHeap): number {
  tile ||= attnKernels(heap).attnTile();
  return tile;
}
