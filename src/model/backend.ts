// The kernels the forward pass runs on: the WASM SIMD kernels (threaded for the matmuls), or
// their plain-TS twins (LOWKV_KERNELS=ref, and whatever does not fit wasm32's 4 GiB).
import * as ref from '../kernels/ref/ops.js';
import { matmulWeights as refMatmulWeights } from '../kernels/ref/weights.js';
import { kernelPool, type KernelPool } from '../kernels/wasm/pool.js';
import * as wasm from '../kernels/wasm/ops.js';
import { wasmHeap } from '../kernels/wasm/runtime.js';
import type { WeightMatrix } from '../kernels/weights.js';
import { QUANT_FORMATS } from '../numeric/weight-quants.js';

export interface Backend {
  readonly name: string;
  /** out[outOff + i·rows + o] = x_i · W_o for i < n (inDim = W.cols, outDim = W.rows). */
  matmul(out: Float32Array, x: Float32Array, w: WeightMatrix, n: number, xOff?: number, outOff?: number): void;
  rmsnorm: typeof ref.rmsnorm;
  rope: typeof ref.rope;
  softmax: typeof ref.softmax;
  swiglu: typeof ref.swiglu;
  geglu: typeof ref.geglu;
  softcap: typeof ref.softcap;
  addInPlace: typeof ref.addInPlace;
  addRows: typeof ref.addRows;
}

// Heap staging slots: the quantized activations or the f16/bf16 per-thread scratch, and the
// block types' per-thread scratch (the codecs use 0–2 and 16–20).
const SLOT_MATMUL = 8;
const SLOT_QUANT_SCRATCH = 9;

export const refBackend: Backend = {
  name: 'ref',
  matmul: (out, x, w, n, xOff = 0, outOff = 0) => (w.type === 'f32' ? ref.matmul(out, x, w.data as Float32Array, n, w.cols, w.rows, xOff, outOff) : refMatmulWeights(out, x, w, n, w.cols, w.rows, xOff, outOff)),
  rmsnorm: ref.rmsnorm,
  rope: ref.rope,
  softmax: ref.softmax,
  swiglu: ref.swiglu,
  geglu: ref.geglu,
  softcap: ref.softcap,
  addInPlace: ref.addInPlace,
  addRows: ref.addRows,
};

/** The WASM kernels, matmuls split by output rows over `threads` threads. */
export function wasmBackend(threads = 1): Backend {
  const heap = wasmHeap();
  const k = wasm.opsKernels(heap);
  const pool: KernelPool | undefined = threads > 1 ? kernelPool(threads) : undefined;
  const scratchFor = (bytes: number, slot = SLOT_MATMUL): number => heap.staging(slot, Math.ceil(bytes / 4)).byteOffset;
  // Reused for every threaded call, so decode allocates nothing: kernel arguments (the column
  // range at 6 and 7 is filled per thread) and the split.
  const args: number[] = [];
  // a, b: the f16/bf16 scratch, or the block type id and its scratch.
  const fill = (out: number, outDim: number, x: number, w: number, n: number, inDim: number, a?: number, b?: number): number[] => {
    args.length = 0;
    args.push(out, outDim, x, w, n, inDim, 0, 0);
    if (a !== undefined) args.push(a);
    if (b !== undefined) args.push(b);
    return args;
  };
  const perPart = { arg: 8, stride: 0 };
  const quantPart = { arg: 9, stride: 0 };
  const split: { lo: number; hi: number; total: number; align: number; perPart?: typeof perPart } = { lo: 6, hi: 7, total: 0, align: 8 };
  const matmul = (out: Float32Array, x: Float32Array, w: WeightMatrix, n: number, xOff = 0, outOff = 0): void => {
    // Heap-resident arguments run in place, split across threads; anything else takes the
    // staging path of kernels/wasm/ops.ts (weights past 4 GiB: the plain-TS twin).
    if (!heap.holds(w.data)) return refBackend.matmul(out, x, w, n, xOff, outOff);
    // Below ~256k multiply-adds a job is done before another thread wakes up.
    const small = n * w.cols * w.rows < 1 << 18;
    if (!pool || small || !heap.holds(x) || !heap.holds(out)) return wasm.matmulWeights(out, x, w, n, w.cols, w.rows, xOff, outOff);
    const [inDim, outDim] = [w.cols, w.rows];
    const xp = x.byteOffset + xOff * 4;
    const op = out.byteOffset + outOff * 4;
    const wp = w.data.byteOffset;
    split.total = outDim;
    split.perPart = undefined;
    if (w.type === 'f32') pool.run('matmulF32', fill(op, outDim, xp, wp, n, inDim), split);
    else if (w.type === 'f16') {
      perPart.stride = k.f16ScratchBytes(inDim);
      split.perPart = perPart;
      pool.run('matmulF16', fill(op, outDim, xp, wp, n, inDim, scratchFor(perPart.stride * pool.threads)), split);
    } else if (w.type === 'bf16') {
      perPart.stride = k.f16ScratchBytes(inDim);
      split.perPart = perPart;
      pool.run('matmulBF16', fill(op, outDim, xp, wp, n, inDim, scratchFor(perPart.stride * pool.threads)), split);
    } else {
      // Activations are quantized once, then every thread reads them.
      const q = scratchFor(wasm.activationBytes(k, w.type, n, inDim));
      wasm.quantizeActivations(k, w.type, q, xp, n, inDim);
      const kind = QUANT_FORMATS[w.type].ggmlId;
      split.perPart = quantPart;
      quantPart.stride = k.quantScratchBytes(kind, inDim);
      pool.run('matmulQuant', fill(op, outDim, q, wp, n, inDim, kind, scratchFor(quantPart.stride * pool.threads, SLOT_QUANT_SCRATCH)), split);
    }
  };
  return {
    name: threads > 1 ? `wasm ×${threads}` : 'wasm',
    matmul,
    rmsnorm: wasm.rmsnorm,
    rope: wasm.rope,
    softmax: wasm.softmax,
    swiglu: wasm.swiglu,
    geglu: wasm.geglu,
    softcap: wasm.softcap,
    addInPlace: wasm.addInPlace,
    // Biases (Qwen2) touch a few rows per token: not worth a kernel.
    addRows: ref.addRows,
  };
}

/** LOWKV_KERNELS=ref selects the plain-TS kernels; LOWKV_THREADS sets the thread count. */
export function defaultBackend(threads?: number): Backend {
  if (process.env.LOWKV_KERNELS === 'ref') return refBackend;
  const t = threads ?? (process.env.LOWKV_THREADS ? Number(process.env.LOWKV_THREADS) : 1);
  return wasmBackend(t);
}
