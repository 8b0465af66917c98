/**
 * Microscaling block formats (methods.md §7, the INT-vs-FP study): per token and KV head, blocks
 * of consecutive head dimensions share one scale, and each value is a small integer or float.
 *
 *   spec     element            block  block scale       2nd level            bits/value (d ≥ block)
 *   mxint8   INT8, ±127         32     E8M0 (2^e)        —                    8 + 8/32 = 8.25
 *   mxfp8    E4M3 (max 448)     32     E8M0              —                    8.25
 *   mxfp4    E2M1 (max 6)       32     E8M0              —                    4.25
 *   nvfp4    E2M1               16     E4M3 (unsigned)   fp32 per tensor      4 + 8/16 = 4.5 (+32/stored values)
 *   nvint4   INT4, ±7           16     E4M3              fp32 per tensor      4.5 (+ε)
 *
 * Options:
 *   hadamard    (flag, or hadamard=1 / hadamard=0) rotate each head by the normalised
 *               Walsh–Hadamard matrix H before quantizing; head_dim must be a power of two
 *               (others are refused: no Sylvester matrix exists for them). Keys are stored as H·k
 *               and scores() rotates the query once, (H·q)·(H·k) = q·k; values are stored as H·v,
 *               accumulate() sums in the rotated domain and rotates the sum back once
 *               (H = Hᵀ = H⁻¹). decode() returns un-rotated vectors. The study rotates by a random
 *               Hadamard of size 32; the deterministic whole-head H is symmetric, which the
 *               rotate-the-query-once scheme needs, and spreads an outlier channel over every
 *               block of the head.
 *   kernel=wasm|ts  where attention runs (default wasm; see "Kernels" below).
 *   scale=ceil|ocp  (MX only) the E8M0 rule. ceil (default; the study's code):
 *               2^⌈log2(amax/Qmax)⌉, never clips, but may leave up to half the element range
 *               unused. ocp (OCP MX v1.0, llama.cpp's mxfp4): 2^(⌊log2 amax⌋ − emax),
 *               emax = ⌊log2 Qmax⌋ (E2M1 2, E4M3 8, INT8 6), saturating the block maximum when
 *               amax/2^e > Qmax. On stories260K (PPL, f32 cache 8.275) ceil vs ocp: mxint8 8.400
 *               vs 8.394, mxfp8 9.565 vs 10.602 (E4M3 is scale-invariant, so clipping buys
 *               nothing), mxfp4 32.54 vs 25.92, mxfp4,hadamard 25.57 vs 27.75.
 *
 * Rules chosen where §7 is silent:
 * - Blocks run along head_dim within one head. When block does not divide head_dim the last
 *   block of each head is shorter (same scale semantics: amax over its members), so head_dim 8
 *   has one 8-value block per head: 8 + 8/8 = 9 bits (MX8), 4 + 8/8 = 5 bits (MXFP4, NV).
 *   In general bits/value = bits + 8·⌈d/block⌉/d (+ 32/stored values for NV).
 * - Element rounding is round-to-nearest-even with saturation (minifloat.ts); INT elements use
 *   symmetric clipping to ±Qmax, never −2^(b−1) (the study's code).
 * - E8M0 exponents below 2^−127 clamp to 2^−127 (such blocks round towards zero).
 * - NV per-tensor scale, one fp32 per store (layer, role): the study sets s_t = max(block s)/448
 *   over the tensor, which a growing cache cannot know. Here s_t = amax/(Qmax·448) of the first
 *   append that holds a non-zero value, and it stays fixed until truncate(0) (no re-encoding):
 *   later blocks whose scale exceeds 448·s_t saturate the E4M3 scale, i.e. clip at the first
 *   append's largest magnitude. Prefill appends a whole prompt, so s_t sees it. Consequently one
 *   token at a time is NOT bulk-equivalent for NV formats. Its 4 bytes count once anything is
 *   stored. An s_t below the smallest float32 subnormal is raised to 2^−149.
 * - Blocks whose scale or quantized values leave the E8M0 / float32 range are refused with a
 *   RangeError (checked in the stored, possibly rotated, domain: with hadamard, values within
 *   √head_dim of the float32 limit).
 *
 * Kernels (issue 5): codes and block scales live in the WASM heap (owned by the codec, so a
 * dropped cache frees them) and attention runs on the SIMD kernels of assembly/attn-mx.ts when
 * head_dim is a multiple of 8; otherwise, where the heap has no room (wasm32 stops at 4 GiB), or
 * with kernel=ts, they are ordinary arrays and attention takes the plain-TS paths here, the
 * kernels' twins: same formulas, same order, bit-identical (test/attention-wasm-dq-mx.test.ts).
 * - 4-bit formats score in the integer domain (design.md): the (rotated) query is quantized per
 *   block to i16, q̃ = round(q/sq), sq = max|q_b|/32767, each nibble maps to its element as a small
 *   integer (a table: i8x16.swizzle in WASM; E2M1 doubled to 0, ±1 … ±12), and a block adds
 *   Σ element·q̃ · (S·sq) in f64 (S the block scale; sq halved for E2M1). The query's rounding
 *   (≤ 2^−16 of the block's largest |q|) is ~2^12 below the elements' own (4-bit) error.
 *   `lowkv ppl` on lowkv-tiny-hd64 (WikiText-2, 3 chunks, same spec for K and V), before → with
 *   the i16 query: mxfp4 278.461 → 278.465, nvfp4 276.992 → 276.987, nvint4 278.203 → 278.202,
 *   mxfp4,hadamard 278.470 → 278.466.
 * - 8-bit formats score in f32 (element values are exact in f32; lane j of a block sums elements
 *   ≡ j mod 4, h = (l0 + l1) + (l2 + l3), then Σ h·S in f64): an i16 query would cost the 8-bit
 *   formats their precision (mxint8 is held to 1e−6 of decode-then-multiply, which 2^−16 misses),
 *   and E4M3's range (2^−9 … 448) does not fit integer products.
 * - accumulate sums f32(w·S)·element in f32 in token order for every format, then rotates back.
 *
 * Accuracy, relative Frobenius error ‖x̂ − x‖/‖x‖ (each block has ‖x_b‖ ≥ amax_b, so bounds on
 * errors relative to amax carry over; H is orthonormal, so they hold with hadamard too):
 * - INT8: |e| ≤ s/2 per element with s < 2·amax/127 (ceil): ≤ √n_b/127 (0.045 for blocks of
 *   32); ocp's saturated maximum errs by < s ≤ amax/64: ≤ √((n_b + 3)/4)/64.
 * - E4M3: normal elements err ≤ 2^−4 of themselves, subnormals ≤ 2^−10·s: ≤ 2^−4 + √n_b·2^−9/448
 *   (ceil); ocp's saturated elements (amax/s < 512) err ≤ 2^−3: ≤ 2^−3 + √n_b·2^−10/256.
 * - 4-bit formats: worst cases exceed 50 %; on gaussian rows with a 10× channel they measure
 *   0.13–0.18 (mxfp4), 0.07–0.09 (nvfp4), 0.10–0.13 (nvint4), and with hadamard 0.11, 0.10,
 *   0.05–0.08 (test/kv-mx.test.ts holds the per-format bounds).
 */
import { packedWords, setCode } from '../../numeric/bitpack.js';
import { fwht, isPowerOfTwo } from '../../numeric/hadamard.js';
import {
  ceilLog2,
  E2M1_VALUES,
  e2m1Encode,
  E4M3_VALUES,
  e4m3Encode,
  E8M0_MAX_EXP,
  E8M0_MIN_EXP,
  floorLog2,
  roundHalfEven,
} from '../../numeric/minifloat.js';
import { assertFinite, CodecSpecError, type CodecContext, type CodecFactory, type KvCodec, type ParsedSpec } from '../codec.js';
import type { WasmHeap } from '../../kernels/wasm/runtime.js';
import { allocateStorage, scratchParts } from './attn-wasm.js';

const F32_MAX = 3.4028234663852886e38;
const F32_MIN_SUBNORMAL = 2 ** -149;
/** Largest E4M3 value: the NV block-scale range the tensor scale is fitted to. */
const E4M3_MAX = 448;

interface BlockFormat {
  readonly name: string;
  readonly summary: string;
  readonly bits: 4 | 8;
  readonly block: number;
  /** e8m0: MX power-of-two block scale. e4m3: NV block scale times an fp32 tensor scale. */
  readonly scale: 'e8m0' | 'e4m3';
  /** Largest element magnitude. */
  readonly qmax: number;
  /** Element code → value. */
  readonly values: Readonly<Float64Array>;
  /** Scaled value → element code (round-to-nearest-even, saturating). */
  readonly encode: (y: number) => number;
  /** 4-bit formats: element code → the element as an integer (÷ intScale gives its value). */
  readonly ints?: Readonly<Int8Array>;
  readonly intScale?: number;
}

function intFormat(bits: 4 | 8): Pick<BlockFormat, 'bits' | 'qmax' | 'values' | 'encode' | 'ints' | 'intScale'> {
  const qmax = 2 ** (bits - 1) - 1;
  const mask = 2 ** bits - 1;
  const half = 2 ** (bits - 1);
  return {
    bits,
    qmax,
    // Two's complement codes; −2^(b−1) is never written (symmetric clipping).
    values: Float64Array.from({ length: 2 ** bits }, (_, c) => (c < half ? c : c - 2 ** bits)),
    ...(bits === 4 ? { ints: Int8Array.from({ length: 16 }, (_, c) => (c < half ? c : c - 16)), intScale: 1 } : {}),
    encode: (y) => {
      const q = Math.min(roundHalfEven(Math.abs(y)), qmax);
      return (y < 0 ? -q : q) & mask;
    },
  };
}

/** E2M1 elements are multiples of 0.5: doubled, they are the integers 0, ±1, ±2, ±3, ±4, ±6, ±8, ±12. */
const E2M1_INTS = { ints: Int8Array.from(E2M1_VALUES, (v) => 2 * v), intScale: 2 };

const FORMATS: readonly BlockFormat[] = [
  { name: 'mxint8', summary: 'MXINT8: INT8 ±127 per 32 values + E8M0 scale, 8.25 bits/value [,hadamard][,scale=ceil|ocp]', block: 32, scale: 'e8m0', ...intFormat(8) },
  {
    name: 'mxfp8',
    summary: 'MXFP8: FP8 E4M3 per 32 values + E8M0 scale, 8.25 bits/value [,hadamard][,scale=ceil|ocp]',
    block: 32,
    scale: 'e8m0',
    bits: 8,
    qmax: 448,
    values: E4M3_VALUES,
    encode: e4m3Encode,
  },
  {
    name: 'mxfp4',
    summary: 'MXFP4: FP4 E2M1 per 32 values + E8M0 scale, 4.25 bits/value [,hadamard][,scale=ceil|ocp]',
    block: 32,
    scale: 'e8m0',
    bits: 4,
    qmax: 6,
    values: E2M1_VALUES,
    encode: e2m1Encode,
    ...E2M1_INTS,
  },
  {
    name: 'nvfp4',
    summary: 'NVFP4: FP4 E2M1 per 16 values + E4M3 scale + fp32 tensor scale, 4.5 bits/value [,hadamard]',
    block: 16,
    scale: 'e4m3',
    bits: 4,
    qmax: 6,
    values: E2M1_VALUES,
    encode: e2m1Encode,
    ...E2M1_INTS,
  },
  { name: 'nvint4', summary: 'NVINT4: INT4 ±7 per 16 values + E4M3 scale + fp32 tensor scale, 4.5 bits/value [,hadamard]', block: 16, scale: 'e4m3', ...intFormat(4) },
];

const E8M0_VALUES: Readonly<Float64Array> = Float64Array.from({ length: 256 }, (_, c) => 2 ** (c - 127));

interface BlockOptions {
  readonly hadamard: boolean;
  readonly rule: 'ceil' | 'ocp';
  readonly kernel: 'wasm' | 'ts';
}

/** assembly/attn-mx.ts as the heap exports it: every pointer a byte offset in the heap. */
interface Kernels {
  mxScores4(
    codes: number, tokenBytes: number, scales: number, scaleStride: number, n: number, headDim: number, block: number, table: number, scaleTable: number, tensor: number,
    q: number, qBytes: number, qScale: number, nBlocks: number, nq: number, out: number, outStride: number,
  ): void;
  mxScores8(
    codes: number, tokenBytes: number, scales: number, scaleStride: number, n: number, headDim: number, block: number, e4m3: number,
    scaleTable: number, q: number, qStride: number, nq: number, out: number, outStride: number,
  ): void;
  mxAccumulate(
    codes: number, tokenBytes: number, scales: number, scaleStride: number, n: number, headDim: number, block: number, fmt: number, table: number, half: number,
    scaleTable: number, tensor: number, w: number, wStride: number, nq: number, acc: number, accStride: number, scratch: number,
  ): void;
}

interface Wasm {
  readonly heap: WasmHeap;
  readonly k: Kernels;
  /** The block-scale code → value table (E8M0 or E4M3), f64, at this byte offset of the heap. */
  readonly scaleTable: number;
}

// Staging slots of the heap used within one call: the caller's w, its out, and scratch.
const SLOT_IN = 0;
const SLOT_OUT = 1;
const SLOT_SCRATCH = 2;

/**
 * Code words and scale bytes in the WASM heap, owned by the codec (a dropped cache frees them),
 * with the kernels and a copy of the scale table; or in ordinary memory for the TS paths (heap
 * full, kernel=ts, or LOWKV_KERNELS=ref).
 */
function allocate(owner: object, kernels: boolean, words: number, bytes: number, scaleValues: Readonly<Float64Array>): { codes: Uint32Array; scales: Uint8Array; wasm: Wasm | undefined } {
  if (!kernels) return { codes: new Uint32Array(words), scales: new Uint8Array(bytes), wasm: undefined };
  const { arrays, heap } = allocateStorage(owner, (a) => ({ codes: a.u32(words), scales: a.u8(bytes), table: a.u8(scaleValues.length * 8) }));
  if (!heap) return { codes: arrays.codes, scales: arrays.scales, wasm: undefined };
  new Float64Array(arrays.table.buffer, arrays.table.byteOffset, scaleValues.length).set(scaleValues);
  return { codes: arrays.codes, scales: arrays.scales, wasm: { heap, k: heap.kernels as unknown as Kernels, scaleTable: arrays.table.byteOffset } };
}

/** Tokens per tile of mxAccumulate (assembly/attn-mx.ts TILE): sizes its scratch. */
const ACC_TILE = 64;

/** Largest magnitude of the i16 query of the 4-bit formats. */
const Q_MAX = 32767;

/**
 * Where mxScores4 keeps query element d: per block, units of 16 codes (its even codes, then its
 * odd ones), and a last unit of 8 (codes 0, 2, 4, 6, 1, 3, 5, 7) when 8 remain.
 */
function unitLayout(headDim: number, block: number): Int32Array {
  const at = new Int32Array(headDim);
  for (let d0 = 0; d0 < headDim; d0 += block) {
    const len = Math.min(block, headDim - d0);
    for (let u = 0; u < len; ) {
      const size = len - u >= 16 ? 16 : 8;
      for (let e = 0; e < size; e++) at[d0 + u + e] = d0 + u + (e % 2) * (size / 2) + Math.floor(e / 2);
      u += size;
    }
  }
  return at;
}

const lanes = new Float32Array(4);

class BlockCodec implements KvCodec {
  length = 0;
  private readonly rowWidth: number;
  private readonly headDim: number;
  private readonly nBlocks: number;
  private readonly codes: Uint32Array;
  private readonly scales: Uint8Array;
  /** Set when codes and scales live in the WASM heap: attention runs on its kernels. */
  private readonly wasm: Wasm | undefined;
  /** mxScores4's query layout (4-bit formats). */
  private readonly layout: Int32Array;
  private readonly scaleValues: Readonly<Float64Array>;
  /** NV formats: the fp32 per-tensor scale, 0 until an append holds a non-zero value. */
  private tensorScale = 0;
  /** One head's dequantized vector (scratch). */
  private readonly row: Float64Array;

  constructor(
    readonly spec: string,
    private readonly ctx: CodecContext,
    private readonly f: BlockFormat,
    private readonly o: BlockOptions,
  ) {
    this.headDim = ctx.headDim;
    this.rowWidth = ctx.nKvHeads * ctx.headDim;
    this.nBlocks = Math.ceil(ctx.headDim / f.block);
    // The kernels take whole units of 8 codes: other head sizes stay on the TS paths.
    const kernels = o.kernel === 'wasm' && ctx.headDim % 8 === 0;
    this.scaleValues = f.scale === 'e8m0' ? E8M0_VALUES : E4M3_VALUES;
    const a = allocate(this, kernels, packedWords(ctx.capacity * this.rowWidth, f.bits), ctx.capacity * ctx.nKvHeads * this.nBlocks, this.scaleValues);
    this.codes = a.codes;
    this.scales = a.scales;
    this.wasm = a.wasm;
    this.layout = unitLayout(ctx.headDim, f.block);
    this.row = new Float64Array(ctx.headDim);
  }

  append(src: Float32Array, count: number): void {
    const { ctx, rowWidth, headDim } = this;
    if (this.length + count > ctx.capacity) {
      throw new RangeError(`KV cache full: layer ${ctx.layer} ${ctx.role} holds ${this.length} of ${ctx.capacity} tokens, cannot append ${count}`);
    }
    const n = count * rowWidth;
    assertFinite(src, n, ctx, this.length);
    const x = Float64Array.from(src.subarray(0, n));
    if (this.o.hadamard) for (let off = 0; off < n; off += headDim) fwht(x, off, headDim);

    let tensorScale = this.tensorScale;
    if (this.f.scale === 'e4m3' && tensorScale === 0) {
      let amax = 0;
      for (let i = 0; i < n; i++) amax = Math.max(amax, Math.abs(x[i]));
      if (amax > 0) tensorScale = Math.max(Math.fround(amax / (this.f.qmax * E4M3_MAX)), F32_MIN_SUBNORMAL);
    }
    for (let t = 0; t < count; t++) {
      for (let h = 0; h < ctx.nKvHeads; h++) {
        const r = this.rowOf(this.length + t, h);
        for (let b = 0; b < this.nBlocks; b++) {
          const d0 = b * this.f.block;
          const len = Math.min(this.f.block, headDim - d0);
          this.encodeBlock(x, (t * ctx.nKvHeads + h) * headDim + d0, len, r * headDim + d0, r * this.nBlocks + b, tensorScale);
        }
      }
    }
    // Committed only now: a refused append leaves the store (and its tensor scale) as it was.
    this.tensorScale = tensorScale;
    this.length += count;
  }

  private encodeBlock(x: Float64Array, off: number, len: number, codeIndex: number, scaleIndex: number, tensorScale: number): void {
    const { f, codes } = this;
    let amax = 0;
    for (let i = 0; i < len; i++) amax = Math.max(amax, Math.abs(x[off + i]));
    let scaleCode = 0;
    let s = 0;
    if (amax > 0) {
      if (f.scale === 'e4m3') {
        scaleCode = e4m3Encode(amax / f.qmax / tensorScale);
        s = E4M3_VALUES[scaleCode] * tensorScale;
      } else {
        const e = this.o.rule === 'ceil' ? ceilLog2(amax / f.qmax) : floorLog2(amax) - floorLog2(f.qmax);
        if (e > E8M0_MAX_EXP) throw this.rangeError(amax, `exceeds the E8M0 scale range (2^${E8M0_MAX_EXP})`);
        scaleCode = Math.max(e, E8M0_MIN_EXP) + 127;
        s = E8M0_VALUES[scaleCode];
      }
    }
    this.scales[scaleIndex] = scaleCode;
    let top = 0;
    for (let i = 0; i < len; i++) {
      const c = s === 0 ? 0 : f.encode(x[off + i] / s);
      setCode(codes, codeIndex + i, f.bits, c);
      top = Math.max(top, Math.abs(f.values[c]));
    }
    if (top * s > F32_MAX) throw this.rangeError(amax, 'exceeds the float32 range once quantized');
  }

  private rangeError(amax: number, what: string): RangeError {
    return new RangeError(`block maximum ${amax} in ${this.ctx.role} of layer ${this.ctx.layer} ${what} (${this.spec})`);
  }

  /** Writes head `head` of token t, as stored (rotated when hadamard), into this.row. */
  private dequantize(t: number, head: number): Float64Array {
    const { f, row, codes, headDim, nBlocks } = this;
    const bits = f.bits;
    const shift = bits === 4 ? 3 : 2;
    const perWordMask = (1 << shift) - 1;
    const codeMask = (1 << bits) - 1;
    const r = this.rowOf(t, head);
    const tensor = f.scale === 'e4m3' ? this.tensorScale : 1;
    for (let b = 0; b < nBlocks; b++) {
      const s = this.scaleValues[this.scales[r * nBlocks + b]] * tensor;
      const d1 = Math.min((b + 1) * f.block, headDim);
      // Inline getCode: 4- and 8-bit codes never straddle a 32-bit word.
      for (let d = b * f.block, i = r * headDim + d; d < d1; d++, i++) {
        row[d] = f.values[(codes[i >>> shift] >>> ((i & perWordMask) * bits)) & codeMask] * s;
      }
    }
    return row;
  }

  private checkRange(nTokens: number): void {
    if (nTokens > this.length) throw new RangeError(`asked for ${nTokens} tokens, ${this.length} stored`);
  }

  /** Element code i of the packed codes (4- and 8-bit codes never straddle a word). */
  private code(i: number): number {
    const bits = this.f.bits;
    const shift = bits === 4 ? 3 : 2;
    return (this.codes[i >>> shift] >>> ((i & ((1 << shift) - 1)) * bits)) & ((1 << bits) - 1);
  }

  /**
   * Storage row of token t, KV head h: head-major (all of a head's tokens in a row, capacity
   * preallocated), so a scores/accumulate call streams one contiguous range instead of reading
   * one head row in every nKvHeads (measured 3–4× faster at 32k tokens on these machines).
   */
  private rowOf(t: number, head: number): number {
    return head * this.ctx.capacity + t;
  }

  /** The factor on every block scale: NV's fp32 tensor scale, 1 for MX. */
  private tensorScaleOf(): number {
    return this.f.scale === 'e4m3' ? this.tensorScale : 1;
  }

  /** Block scale S of storage row r, block b, as f64 (the kernels' scaleTable[code] × tensor). */
  private blockScale(r: number, b: number): number {
    return this.scaleValues[this.scales[r * this.nBlocks + b]] * this.tensorScaleOf();
  }

  /** Kernel arguments locating head h: codes, bytes per token, scales, scale bytes per token. */
  private headArgs(head: number): [number, number, number, number] {
    const { headDim, f, nBlocks } = this;
    const r = this.rowOf(0, head);
    return [this.codes.byteOffset + (r * headDim * f.bits) / 8, (headDim * f.bits) / 8, this.scales.byteOffset + r * nBlocks, nBlocks];
  }

  scores(head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number): void {
    this.checkRange(nTokens);
    if (nq === 0 || nTokens === 0) return;
    const D = this.headDim;
    const qr = Float64Array.from(q.subarray(qOffset, qOffset + nq * D));
    if (this.o.hadamard) for (let i = 0; i < nq; i++) fwht(qr, i * D, D);
    const wasm = this.wasm;
    const span = (nq - 1) * outStride + nTokens;
    const o = wasm?.heap.output(out, outOffset, span, SLOT_OUT, nq > 1 && outStride > nTokens);
    if (this.f.ints) this.scoresInt(head, qr, nq, nTokens, out, outOffset, outStride, o);
    else this.scoresFloat(head, Float32Array.from(qr), nq, nTokens, out, outOffset, outStride, o);
    wasm?.heap.flush(out, outOffset, span, SLOT_OUT);
  }

  /** 4-bit formats: the integer-domain scores (see "Kernels" above); into the heap at o when set. */
  private scoresInt(head: number, qr: Float64Array, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number, o: number | undefined): void {
    const { headDim: D, nBlocks, f } = this;
    const ints = f.ints as Int8Array;
    const qi = new Int16Array(nq * D);
    const qs = new Float64Array(nq * nBlocks);
    for (let i = 0; i < nq; i++) {
      for (let b = 0; b < nBlocks; b++) {
        const d0 = i * D + b * f.block;
        const d1 = i * D + Math.min(D, (b + 1) * f.block);
        let amax = 0;
        for (let d = d0; d < d1; d++) amax = Math.max(amax, Math.abs(qr[d]));
        const sq = amax / Q_MAX;
        for (let d = d0; d < d1; d++) qi[d] = sq === 0 ? 0 : Math.max(-Q_MAX, Math.min(Q_MAX, Math.round(qr[d] / sq)));
        qs[i * nBlocks + b] = sq / (f.intScale as number);
      }
    }
    if (this.wasm && o !== undefined) {
      const { heap, k, scaleTable } = this.wasm;
      const [pTable, pQ, pScale] = scratchParts(heap, SLOT_SCRATCH, [16, nq * D * 2, nq * nBlocks * 8]);
      const buf = heap.buffer();
      new Int8Array(buf, pTable, 16).set(ints);
      const q16 = new Int16Array(buf, pQ, nq * D);
      for (let i = 0; i < nq; i++) for (let d = 0; d < D; d++) q16[i * D + this.layout[d]] = qi[i * D + d];
      new Float64Array(buf, pScale, nq * nBlocks).set(qs);
      k.mxScores4(...this.headArgs(head), nTokens, D, f.block, pTable, scaleTable, this.tensorScaleOf(), pQ, D * 2, pScale, nBlocks, nq, o, outStride);
      return;
    }
    for (let t = 0; t < nTokens; t++) {
      const r = this.rowOf(t, head);
      for (let i = 0; i < nq; i++) {
        let total = 0;
        for (let b = 0; b < nBlocks; b++) {
          const d1 = Math.min(D, (b + 1) * f.block);
          let isum = 0;
          for (let d = b * f.block; d < d1; d++) isum += ints[this.code(r * D + d)] * qi[i * D + d];
          total += isum * (this.blockScale(r, b) * qs[i * nBlocks + b]);
        }
        out[outOffset + i * outStride + t] = total;
      }
    }
  }

  /** 8-bit formats: f32 block dots in mxScores8's lane order, Σ h·S in f64; into the heap at o when set. */
  private scoresFloat(head: number, qf: Float32Array, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number, o: number | undefined): void {
    const { headDim: D, nBlocks, f } = this;
    if (this.wasm && o !== undefined) {
      const { heap, k, scaleTable } = this.wasm;
      const [pQ] = scratchParts(heap, SLOT_SCRATCH, [nq * D * 4]);
      new Float32Array(heap.buffer(), pQ, nq * D).set(qf);
      k.mxScores8(...this.headArgs(head), nTokens, D, f.block, f.values === E4M3_VALUES ? 1 : 0, scaleTable, pQ, D, nq, o, outStride);
      return;
    }
    for (let t = 0; t < nTokens; t++) {
      const r = this.rowOf(t, head);
      for (let i = 0; i < nq; i++) {
        let total = 0;
        for (let b = 0; b < nBlocks; b++) {
          const d0 = b * f.block;
          const d1 = Math.min(D, d0 + f.block);
          // Lane j takes elements d0 + 4k + j in k order (Float32Array stores round each sum).
          lanes.fill(0);
          for (let d = d0; d < d1; d++) lanes[(d - d0) & 3] += Math.fround(qf[i * D + d] * f.values[this.code(r * D + d)]);
          total += Math.fround(Math.fround(lanes[0] + lanes[1]) + Math.fround(lanes[2] + lanes[3])) * this.blockScale(r, b);
        }
        out[outOffset + i * outStride + t] = total;
      }
    }
  }

  accumulate(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    this.checkRange(nTokens);
    if (nq === 0 || nTokens === 0) return;
    const { headDim: D, nBlocks, f } = this;
    let acc: Float32Array;
    if (this.wasm) {
      const { heap, k, scaleTable } = this.wasm;
      const wp = heap.input(w, wOffset, (nq - 1) * wStride + nTokens, SLOT_IN);
      const [pTable, pAcc, pScratch] = scratchParts(heap, SLOT_SCRATCH, [16, nq * D * 4, ACC_TILE * nBlocks * 4]);
      if (f.ints) new Int8Array(heap.buffer(), pTable, 16).set(f.ints);
      acc = new Float32Array(heap.buffer(), pAcc, nq * D).fill(0);
      const fmt = f.ints ? 2 : f.values === E4M3_VALUES ? 1 : 0;
      k.mxAccumulate(...this.headArgs(head), nTokens, D, f.block, fmt, pTable, 1 / (f.intScale ?? 1), scaleTable, this.tensorScaleOf(), wp, wStride, nq, pAcc, D, pScratch);
    } else {
      acc = new Float32Array(nq * D);
      for (let t = 0; t < nTokens; t++) {
        const r = this.rowOf(t, head);
        for (let b = 0; b < nBlocks; b++) {
          const S = this.blockScale(r, b);
          const d1 = Math.min(D, (b + 1) * f.block);
          for (let i = 0; i < nq; i++) {
            const ps = Math.fround(w[wOffset + i * wStride + t] * S);
            if (f.ints) {
              // The kernel's form: the table's integers times f32(ps / intScale), the same product.
              const psh = Math.fround(ps / (f.intScale as number));
              for (let d = b * f.block; d < d1; d++) acc[i * D + d] += Math.fround(psh * f.ints[this.code(r * D + d)]);
            } else {
              for (let d = b * f.block; d < d1; d++) acc[i * D + d] += Math.fround(ps * f.values[this.code(r * D + d)]);
            }
          }
        }
      }
    }
    for (let i = 0; i < nq; i++) {
      // Back from the rotated domain once per query (H = H⁻¹), in f64 as decode() does.
      const v = Float64Array.from(acc.subarray(i * D, (i + 1) * D));
      if (this.o.hadamard) fwht(v, 0, D);
      for (let d = 0; d < D; d++) out[outOffset + i * D + d] += v[d];
    }
  }

  bytes(): number {
    const T = this.length;
    const perTensor = this.f.scale === 'e4m3' && T > 0 ? 4 : 0;
    return (T * this.rowWidth * this.f.bits) / 8 + T * this.ctx.nKvHeads * this.nBlocks + perTensor;
  }

  decode(t0: number, t1: number, out: Float32Array): void {
    this.checkRange(t1);
    const { headDim, rowWidth } = this;
    for (let t = t0; t < t1; t++) {
      for (let h = 0; h < this.ctx.nKvHeads; h++) {
        const v = this.dequantize(t, h);
        if (this.o.hadamard) fwht(v, 0, headDim);
        const o = (t - t0) * rowWidth + h * headDim;
        for (let d = 0; d < headDim; d++) out[o + d] = v[d];
      }
    }
  }

  truncate(length: number): void {
    if (!Number.isInteger(length) || length < 0 || length > this.length) throw new RangeError(`cannot truncate ${this.length} tokens to ${length}`);
    this.length = length;
    if (length === 0) this.tensorScale = 0;
  }
}

function parseOptions(f: BlockFormat, spec: ParsedSpec, ctx: CodecContext): BlockOptions {
  const valid = f.scale === 'e8m0' ? 'hadamard, scale=ceil|ocp, kernel=wasm|ts' : 'hadamard, kernel=wasm|ts';
  if (spec.arg !== undefined) throw new CodecSpecError(`${f.name}: takes no ":" argument (got "${spec.text}"); parameters: ${valid}`);
  let hadamard = false;
  let rule: 'ceil' | 'ocp' = 'ceil';
  let kernel: 'wasm' | 'ts' = 'wasm';
  for (const [key, value] of spec.params) {
    if (key === 'hadamard') {
      // parseSpec reads a bare `,hadamard` flag as "true".
      if (value === 'true' || value === '1') hadamard = true;
      else if (value !== 'false' && value !== '0') throw new CodecSpecError(`${f.name}: hadamard is a flag: hadamard, hadamard=1 or hadamard=0 (got "${value}")`);
    } else if (key === 'scale' && f.scale === 'e8m0') {
      if (value !== 'ceil' && value !== 'ocp') throw new CodecSpecError(`${f.name}: scale must be ceil or ocp (got "${value}")`);
      rule = value;
    } else if (key === 'kernel') {
      if (value !== 'wasm' && value !== 'ts') throw new CodecSpecError(`${f.name}: kernel must be wasm or ts (got "${value}")`);
      kernel = value;
    } else {
      throw new CodecSpecError(`${f.name}: unknown parameter "${key}" in "${spec.text}"; valid: ${valid}`);
    }
  }
  if (hadamard && !isPowerOfTwo(ctx.headDim)) {
    throw new CodecSpecError(`${f.name}: hadamard needs a power-of-two head_dim (got ${ctx.headDim})`);
  }
  return { hadamard, rule, kernel };
}

export const mxCodecs: CodecFactory[] = FORMATS.map((f) => ({
  name: f.name,
  summary: f.summary,
  create(spec: ParsedSpec, ctx: CodecContext): KvCodec {
    const o = parseOptions(f, spec, ctx);
    const canonical = f.name + (o.hadamard ? ',hadamard' : '') + (o.rule === 'ocp' ? ',scale=ocp' : '') + (o.kernel === 'ts' ? ',kernel=ts' : '');
    return new BlockCodec(canonical, ctx, f, o);
  },
}));
