// The WASM SIMD kernels (assembly/matmul.ts, f16.ts, q8.ts, elementwise.ts) behind the
// signatures of their plain-TS twins (kernels/ref/ops.ts, kernels/ref/weights.ts).
//
// Kernels address the shared WASM memory only. An argument already in it (heap.holds) is used in
// place through its byteOffset; any other array is copied into a staging block of the heap kept
// for reuse, and outputs are copied back. Model weights and activations meant for these kernels
// should live in the heap (toHeap, heap.f32): staging a weight matrix costs a full copy per call.
import { QUANT_FORMATS, type QuantWeightType } from '../../numeric/weight-quants.js';
import { checkWeights, weightDataLength, type WeightMatrix } from '../weights.js';
import { wasmHeap, type WasmHeap } from './runtime.js';

/** The kernel exports used here; every pointer is a byte offset into the heap's memory. */
export interface OpsKernels {
  /** out[r·outStride + j] = x_r·W_j, r < n, j ∈ [j0, j1), W f32 [out][inDim]. */
  matmulF32(out: number, outStride: number, x: number, w: number, n: number, inDim: number, j0: number, j1: number): void;
  /** The same for W f16, with f16ScratchBytes(inDim) bytes of scratch. */
  matmulF16(out: number, outStride: number, x: number, w: number, n: number, inDim: number, j0: number, j1: number, scratch: number): void;
  f16ScratchBytes(inDim: number): number;
  /** dst[i] = value of half src[i], exact. */
  f16ToF32(dst: number, src: number, n: number): void;
  /** x rows → q8_0 activations at dst (q8ActivationBytes); returns the number of unrepresentable blocks. */
  quantizeQ8Rows(dst: number, x: number, n: number, inDim: number): number;
  q8ActivationBytes(n: number, inDim: number): number;
  /** x rows → q8_K activations at dst (q8KActivationBytes); returns the number of blocks holding inf/NaN. */
  quantizeQ8KRows(dst: number, x: number, n: number, inDim: number): number;
  q8KActivationBytes(n: number, inDim: number): number;
  /**
   * The matmul for W of ggml block type id `kind`, activations as its vec_dot_type at xq (from
   * quantizeQ8Rows or quantizeQ8KRows), with quantScratchBytes(kind, inDim) bytes of scratch.
   */
  matmulQuant(out: number, outStride: number, xq: number, w: number, n: number, inDim: number, j0: number, j1: number, kind: number, scratch: number): void;
  quantScratchBytes(kind: number, inDim: number): number;
  /** The matmul for W bf16, with f16ScratchBytes(inDim) bytes of scratch. */
  matmulBF16(out: number, outStride: number, x: number, w: number, n: number, inDim: number, j0: number, j1: number, scratch: number): void;
  expF32(dst: number, src: number, n: number): void;
  rmsnorm(out: number, x: number, weight: number, n: number, dim: number, eps: number): void;
  ropeRow(x: number, nHeads: number, headDim: number, half: number, cos: number, sin: number): void;
  ropeRowNeox(x: number, nHeads: number, headDim: number, half: number, cos: number, sin: number): void;
  softmax(x: number, n: number, scale: number): void;
  swiglu(gate: number, up: number, n: number): void;
  geglu(gate: number, up: number, n: number): void;
  softcap(x: number, n: number, scale: number, cap: number): void;
  addInPlace(x: number, y: number, n: number): void;
}

/** The kernels of a heap (by default the process's). */
export function opsKernels(heap: WasmHeap = wasmHeap()): OpsKernels {
  return heap.kernels as unknown as OpsKernels;
}

type View = Float32Array | Uint16Array | Uint8Array;

// The heap's staging slots these wrappers use, one per role (the codecs use 0–2 and 16–20, the
// threaded matmul 8 and 9).
const SLOTS = { x: 24, y: 25, w: 26, out: 27, scratch: 28, q8: 29, cos: 30, sin: 31 } as const;
type Slot = keyof typeof SLOTS;

/** Byte offset of at least `bytes` bytes of staging for `slot`, contents unspecified. */
function block(c: Context, slot: Slot, bytes: number): number {
  return c.heap.staging(SLOTS[slot], Math.ceil(bytes / 4)).byteOffset;
}

interface Context {
  readonly heap: WasmHeap;
  readonly k: OpsKernels;
}

let context: Context | undefined;

function ctx(): Context {
  if (!context) {
    const heap = wasmHeap();
    context = { heap, k: opsKernels(heap) };
  }
  return context;
}

function sameKind(a: View, buffer: ArrayBufferLike, offset: number, len: number): View {
  if (a instanceof Float32Array) return new Float32Array(buffer, offset, len);
  if (a instanceof Uint16Array) return new Uint16Array(buffer, offset, len);
  return new Uint8Array(buffer, offset, len);
}

/** Byte offset of a[off … off+len) for the kernels: in place, or a staged copy (copyIn: with a's values). */
function place(c: Context, slot: Slot, a: View, off: number, len: number, copyIn = true): number {
  if (c.heap.holds(a)) return a.byteOffset + off * a.BYTES_PER_ELEMENT;
  const at = block(c, slot, len * a.BYTES_PER_ELEMENT);
  if (copyIn) sameKind(a, c.heap.buffer(), at, len).set(a.subarray(off, off + len));
  return at;
}

/** Copies a staged result at `at` back into a[off … off+len) (nothing to do for heap arrays). */
function copyBack(c: Context, a: Float32Array, off: number, len: number, at: number): void {
  if (!c.heap.holds(a)) a.set(new Float32Array(c.heap.buffer(), at, len), off);
}

function checkCount(what: string, v: number, min = 0): void {
  if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${what} must be an integer ≥ ${min}, got ${v}`);
}

/** Throws unless a[off … off+len) exists: kernels have no bounds checks and would overwrite the heap. */
function checkSpan(what: string, a: ArrayLike<number>, off: number, len: number): void {
  checkCount(`${what} offset`, off);
  if (off + len > a.length) throw new RangeError(`${what}: needs elements [${off}, ${off + len}), has ${a.length}`);
}

/** out[outOff + i·outDim + o] = x_i·W_o for W f32 [outDim][inDim] (twin of ref/ops.ts matmul). */
export function matmul(out: Float32Array, x: Float32Array, w: Float32Array, n: number, inDim: number, outDim: number, xOff = 0, outOff = 0): void {
  checkCount('matmul inDim', inDim, 1);
  checkCount('matmul outDim', outDim, 1);
  const m: WeightMatrix = { type: 'f32', rows: outDim, cols: inDim, data: w };
  matmulColumns(out, x, m, n, inDim, outDim, 0, outDim, xOff, outOff);
}

/**
 * x·Wᵀ for a weight matrix of any type (twin of ref/weights.ts matmulWeights). Each output is
 * summed in one fixed order, so a row's result does not depend on n (prefill and decode agree).
 */
export function matmulWeights(out: Float32Array, x: Float32Array, w: WeightMatrix, n: number, inDim: number, outDim: number, xOff = 0, outOff = 0): void {
  matmulColumns(out, x, w, n, inDim, outDim, 0, outDim, xOff, outOff);
}

/**
 * matmulWeights restricted to output columns [j0, j1): out[outOff + i·outDim + o] for
 * j0 ≤ o < j1 only, the rest of out untouched. Any split of [0, outDim) into ranges gives the
 * same bits as one call. For block types each call quantizes x again; threads sharing one x can
 * run quantizeActivations once and opsKernels().matmulQuant per range instead.
 */
export function matmulColumns(
  out: Float32Array,
  x: Float32Array,
  w: WeightMatrix,
  n: number,
  inDim: number,
  outDim: number,
  j0: number,
  j1: number,
  xOff = 0,
  outOff = 0,
): void {
  checkWeights(w, inDim, outDim);
  checkCount('matmul n', n);
  if (!Number.isSafeInteger(j0) || !Number.isSafeInteger(j1) || j0 < 0 || j1 > outDim || j0 > j1) {
    throw new RangeError(`matmul: column range [${j0}, ${j1}) is not inside [0, ${outDim})`);
  }
  checkSpan('matmul x', x, xOff, n * inDim);
  checkSpan('matmul out', out, outOff, n * outDim);
  if (n === 0 || j0 === j1) return;
  const c = ctx();
  const k = c.k;
  const xp = place(c, 'x', x, xOff, n * inDim);
  const wp = place(c, 'w', w.data, 0, weightDataLength(w.type, outDim, inDim));
  const op = place(c, 'out', out, outOff, n * outDim, false);
  if (w.type === 'f32') k.matmulF32(op, outDim, xp, wp, n, inDim, j0, j1);
  else if (w.type === 'f16') k.matmulF16(op, outDim, xp, wp, n, inDim, j0, j1, block(c, 'scratch', k.f16ScratchBytes(inDim)));
  else if (w.type === 'bf16') k.matmulBF16(op, outDim, xp, wp, n, inDim, j0, j1, block(c, 'scratch', k.f16ScratchBytes(inDim)));
  else {
    const q = block(c, 'q8', activationBytes(k, w.type, n, inDim));
    quantizeActivations(k, w.type, q, xp, n, inDim);
    const kind = QUANT_FORMATS[w.type].ggmlId;
    k.matmulQuant(op, outDim, q, wp, n, inDim, j0, j1, kind, block(c, 'scratch', k.quantScratchBytes(kind, inDim)));
  }
  if (!c.heap.holds(out)) {
    const staged = new Float32Array(c.heap.buffer(), op, n * outDim);
    for (let i = 0; i < n; i++) out.set(staged.subarray(i * outDim + j0, i * outDim + j1), outOff + i * outDim + j0);
  }
}

/** Bytes the kernels' activations for weight type `type` take (its vec_dot_type, n rows of inDim). */
export function activationBytes(k: OpsKernels, type: QuantWeightType, n: number, inDim: number): number {
  return QUANT_FORMATS[type].vecDotType === 'q8_K' ? k.q8KActivationBytes(n, inDim) : k.q8ActivationBytes(n, inDim);
}

/**
 * Quantizes n activation rows at heap offset x to `type`'s vec_dot_type at dst, as llama.cpp's
 * CPU matmul does before the integer products; throws when a block is not representable.
 */
export function quantizeActivations(k: OpsKernels, type: QuantWeightType, dst: number, x: number, n: number, inDim: number): void {
  const act = QUANT_FORMATS[type].vecDotType;
  const bad = act === 'q8_K' ? k.quantizeQ8KRows(dst, x, n, inDim) : k.quantizeQ8Rows(dst, x, n, inDim);
  if (bad) throw new RangeError(`matmul ${type}: ${bad} activation block(s) not representable in ${act} (|x| too large, inf or NaN)`);
}

/**
 * A copy of w whose data lives in the WASM heap, so the kernels read it in place. The block is
 * freed when the returned matrix is garbage-collected: keep the matrix, not just its data.
 */
export function toHeap(w: WeightMatrix): WeightMatrix {
  checkWeights(w, w.cols, w.rows);
  const { heap } = ctx();
  const len = weightDataLength(w.type, w.rows, w.cols);
  const m: { -readonly [K in keyof WeightMatrix]: WeightMatrix[K] } = { type: w.type, rows: w.rows, cols: w.cols, data: w.data };
  const at = heap.alloc(len * w.data.BYTES_PER_ELEMENT, m);
  m.data = sameKind(w.data, heap.buffer(), at, len);
  m.data.set(w.data.subarray(0, len));
  return m;
}

/** dst[i] = the float32 value of the IEEE half src[i], i < n (exact, as numeric/f16.ts). */
export function f16ToF32(dst: Float32Array, src: Uint16Array, n: number): void {
  checkSpan('f16ToF32 src', src, 0, n);
  checkSpan('f16ToF32 dst', dst, 0, n);
  const c = ctx();
  const sp = place(c, 'x', src, 0, n);
  const dp = place(c, 'out', dst, 0, n, false);
  c.k.f16ToF32(dp, sp, n);
  copyBack(c, dst, 0, n, dp);
}

/** dst[i] = e^src[i] for i < n, the kernels' vector exp (relative error < 1e-7 on [−87, 88.72]). */
export function expF32(dst: Float32Array, src: Float32Array, n: number): void {
  checkSpan('expF32 src', src, 0, n);
  checkSpan('expF32 dst', dst, 0, n);
  const c = ctx();
  const sp = place(c, 'x', src, 0, n);
  const dp = place(c, 'out', dst, 0, n, false);
  c.k.expF32(dp, sp, n);
  copyBack(c, dst, 0, n, dp);
}

/** RMSNorm of n rows (twin of ref/ops.ts rmsnorm, bit-identical). */
export function rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, n: number, dim: number, eps: number, xOff = 0): void {
  checkCount('rmsnorm dim', dim, 1);
  checkSpan('rmsnorm x', x, xOff, n * dim);
  checkSpan('rmsnorm out', out, 0, n * dim);
  checkSpan('rmsnorm weight', weight, 0, dim);
  const c = ctx();
  const xp = place(c, 'x', x, xOff, n * dim);
  const wp = place(c, 'y', weight, 0, dim);
  const op = place(c, 'out', out, 0, n * dim, false);
  c.k.rmsnorm(op, xp, wp, n, dim, eps);
  copyBack(c, out, 0, n * dim, op);
}

/**
 * RoPE (twin of ref/ops.ts rope, bit-identical, either pairing): cos/sin are computed per row into
 * the given scratch, as there, then the kernel rotates every head of the row.
 */
export function rope(
  x: Float32Array,
  n: number,
  nHeads: number,
  headDim: number,
  pos0: number,
  invFreq: Float64Array,
  cos: Float32Array,
  sin: Float32Array,
  neox = false,
): void {
  const half = invFreq.length;
  if (2 * half > headDim) throw new RangeError(`rope: ${half} frequencies rotate ${2 * half} dims, more than headDim ${headDim}`);
  checkSpan('rope x', x, 0, n * nHeads * headDim);
  checkSpan('rope cos', cos, 0, half);
  checkSpan('rope sin', sin, 0, half);
  const width = nHeads * headDim;
  const c = ctx();
  const xp = place(c, 'x', x, 0, n * width);
  const kernel = neox ? c.k.ropeRowNeox : c.k.ropeRow;
  for (let r = 0; r < n; r++) {
    const pos = pos0 + r;
    for (let i = 0; i < half; i++) {
      const a = pos * invFreq[i];
      cos[i] = Math.cos(a);
      sin[i] = Math.sin(a);
    }
    kernel(xp + r * width * 4, nHeads, headDim, half, place(c, 'cos', cos, 0, half), place(c, 'sin', sin, 0, half));
  }
  copyBack(c, x, 0, n * width, xp);
}

/**
 * In-place scaled softmax of x[off … off+n) (twin of ref/ops.ts softmax). Within relative
 * 1e-7 (exp) + the f32 rounding of v − max and of a 16-lane f32 sum: see the tolerance
 * in test/kernels-wasm.test.ts.
 */
export function softmax(x: Float32Array, off: number, n: number, scale: number): void {
  checkSpan('softmax x', x, off, n);
  const c = ctx();
  const xp = place(c, 'x', x, off, n);
  c.k.softmax(xp, n, scale);
  copyBack(c, x, off, n, xp);
}

/** gate = SiLU(gate)·up over n values (twin of ref/ops.ts swiglu, to the exp's accuracy). */
export function swiglu(gate: Float32Array, up: Float32Array, n: number): void {
  checkSpan('swiglu gate', gate, 0, n);
  checkSpan('swiglu up', up, 0, n);
  const c = ctx();
  const gp = place(c, 'x', gate, 0, n);
  c.k.swiglu(gp, place(c, 'y', up, 0, n), n);
  copyBack(c, gate, 0, n, gp);
}

/** gate = gelu_tanh(gate)·up over n values (twin of ref/ops.ts geglu, to the exp's accuracy). */
export function geglu(gate: Float32Array, up: Float32Array, n: number): void {
  checkSpan('geglu gate', gate, 0, n);
  checkSpan('geglu up', up, 0, n);
  const c = ctx();
  const gp = place(c, 'x', gate, 0, n);
  c.k.geglu(gp, place(c, 'y', up, 0, n), n);
  copyBack(c, gate, 0, n, gp);
}

/** x[off … off+n) = cap·tanh(x·scale) (twin of ref/ops.ts softcap; f32 scale, tanh within ~2 ulp). */
export function softcap(x: Float32Array, off: number, n: number, scale: number, cap: number): void {
  checkSpan('softcap x', x, off, n);
  const c = ctx();
  const xp = place(c, 'x', x, off, n);
  c.k.softcap(xp, n, scale, cap);
  copyBack(c, x, off, n, xp);
}

/** x += y over n values (twin of ref/ops.ts addInPlace, bit-identical). */
export function addInPlace(x: Float32Array, y: Float32Array, n: number): void {
  checkSpan('addInPlace x', x, 0, n);
  checkSpan('addInPlace y', y, 0, n);
  const c = ctx();
  const xp = place(c, 'x', x, 0, n);
  c.k.addInPlace(xp, place(c, 'y', y, 0, n), n);
  copyBack(c, x, 0, n, xp);
}
