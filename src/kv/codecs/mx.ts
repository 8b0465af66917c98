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
}

function intFormat(bits: 4 | 8): Pick<BlockFormat, 'bits' | 'qmax' | 'values' | 'encode'> {
  const qmax = 2 ** (bits - 1) - 1;
  const mask = 2 ** bits - 1;
  const half = 2 ** (bits - 1);
  return {
    bits,
    qmax,
    // Two's complement codes; −2^(b−1) is never written (symmetric clipping).
    values: Float64Array.from({ length: 2 ** bits }, (_, c) => (c < half ? c : c - 2 ** bits)),
    encode: (y) => {
      const q = Math.min(roundHalfEven(Math.abs(y)), qmax);
      return (y < 0 ? -q : q) & mask;
    },
  };
}

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
  },
  { name: 'nvint4', summary: 'NVINT4: INT4 ±7 per 16 values + E4M3 scale + fp32 tensor scale, 4.5 bits/value [,hadamard]', block: 16, scale: 'e4m3', ...intFormat(4) },
];

const E8M0_VALUES: Readonly<Float64Array> = Float64Array.from({ length: 256 }, (_, c) => 2 ** (c - 127));

interface BlockOptions {
  readonly hadamard: boolean;
  readonly rule: 'ceil' | 'ocp';
}

class BlockCodec implements KvCodec {
  length = 0;
  private readonly rowWidth: number;
  private readonly headDim: number;
  private readonly nBlocks: number;
  private readonly codes: Uint32Array;
  private readonly scales: Uint8Array;
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
    this.codes = new Uint32Array(packedWords(ctx.capacity * this.rowWidth, f.bits));
    this.scales = new Uint8Array(ctx.capacity * ctx.nKvHeads * this.nBlocks);
    this.scaleValues = f.scale === 'e8m0' ? E8M0_VALUES : E4M3_VALUES;
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
    const heads = count * ctx.nKvHeads;
    const firstHead = this.length * ctx.nKvHeads;
    for (let r = 0; r < heads; r++) {
      for (let b = 0; b < this.nBlocks; b++) {
        const d0 = b * this.f.block;
        const len = Math.min(this.f.block, headDim - d0);
        this.encodeBlock(x, r * headDim + d0, len, (firstHead + r) * headDim + d0, (firstHead + r) * this.nBlocks + b, tensorScale);
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
    const r = t * this.ctx.nKvHeads + head;
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

  scores(head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number): void {
    this.checkRange(nTokens);
    const D = this.headDim;
    const qr = Float64Array.from(q.subarray(qOffset, qOffset + nq * D));
    if (this.o.hadamard) for (let i = 0; i < nq; i++) fwht(qr, i * D, D);
    for (let t = 0; t < nTokens; t++) {
      const k = this.dequantize(t, head);
      for (let i = 0; i < nq; i++) {
        let s = 0;
        for (let d = 0, qo = i * D; d < D; d++) s += qr[qo + d] * k[d];
        out[outOffset + i * outStride + t] = s;
      }
    }
  }

  accumulate(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    this.checkRange(nTokens);
    const D = this.headDim;
    const acc = new Float64Array(nq * D);
    for (let t = 0; t < nTokens; t++) {
      const v = this.dequantize(t, head);
      for (let i = 0; i < nq; i++) {
        const p = w[wOffset + i * wStride + t];
        for (let d = 0, ao = i * D; d < D; d++) acc[ao + d] += p * v[d];
      }
    }
    if (this.o.hadamard) for (let i = 0; i < nq; i++) fwht(acc, i * D, D);
    for (let i = 0; i < nq * D; i++) out[outOffset + i] += acc[i];
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
  const valid = f.scale === 'e8m0' ? 'hadamard, scale=ceil|ocp' : 'hadamard';
  if (spec.arg !== undefined) throw new CodecSpecError(`${f.name}: takes no ":" argument (got "${spec.text}"); parameters: ${valid}`);
  let hadamard = false;
  let rule: 'ceil' | 'ocp' = 'ceil';
  for (const [key, value] of spec.params) {
    if (key === 'hadamard') {
      // parseSpec reads a bare `,hadamard` flag as "true".
      if (value === 'true' || value === '1') hadamard = true;
      else if (value !== 'false' && value !== '0') throw new CodecSpecError(`${f.name}: hadamard is a flag: hadamard, hadamard=1 or hadamard=0 (got "${value}")`);
    } else if (key === 'scale' && f.scale === 'e8m0') {
      if (value !== 'ceil' && value !== 'ocp') throw new CodecSpecError(`${f.name}: scale must be ceil or ocp (got "${value}")`);
      rule = value;
    } else {
      throw new CodecSpecError(`${f.name}: unknown parameter "${key}" in "${spec.text}"; valid: ${valid}`);
    }
  }
  if (hadamard && !isPowerOfTwo(ctx.headDim)) {
    throw new CodecSpecError(`${f.name}: hadamard needs a power-of-two head_dim (got ${ctx.headDim})`);
  }
  return { hadamard, rule };
}

export const mxCodecs: CodecFactory[] = FORMATS.map((f) => ({
  name: f.name,
  summary: f.summary,
  create(spec: ParsedSpec, ctx: CodecContext): KvCodec {
    const o = parseOptions(f, spec, ctx);
    const canonical = f.name + (o.hadamard ? ',hadamard' : '') + (o.rule === 'ocp' ? ',scale=ocp' : '');
    return new BlockCodec(canonical, ctx, f, o);
  },
}));
