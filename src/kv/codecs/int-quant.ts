// Uniform integer group quantization (methods.md §0), shared by `rtn` and `kivi`.
//
// One store holds a quantized prefix of the cache plus an optional full-precision residual of
// the newest tokens:
//   axis 'token'   — scale/zero per (token, group of g channels); a token can be quantized alone,
//                    so the residual is a FIFO of the newest R tokens (KIVI values; R = 0 for
//                    plain per-token RTN).
//   axis 'channel' — scale/zero per (channel, group of g tokens); tokens must accumulate, so the
//                    residual fills to R tokens and is then quantized whole, R/g groups per
//                    channel (KIVI keys; R = g for per-channel RTN).
// The set of quantized tokens depends only on how many tokens have arrived, never on how the
// appends were batched, and where there is a residual every token is quantized from its fp16
// residual form (without one, straight from the f32 input), so one-token appends and one bulk
// append store identical bits.
//
// Number formats (KIVI's code, methods.md §2.2): B-bit codes packed LSB-first with
// numeric/bitpack; scales, zero points and the residual are fp16. Codes sit head by head, each
// head's in (token, channel) order on both axes (KIVI's code packs keys transposed, tokens along
// the word; the byte count is the same), so attention over one KV head reads one contiguous run;
// scales and zero points likewise (IntLayout in ref/int-products.ts).
// fp16 bounds the inputs to |x| ≤ 65504: larger values are refused (RangeError) before anything
// is stored, and within that bound no scale or zero point can overflow.
//
// Attention (design.md, "Kernels on CPU"), in the integer domain by default (dot=int; formulas in
// ref/int-products.ts): scores() quantizes the query to int16 levels per group and dots it with
// the codes in integer arithmetic, applying scale and zero point after each group's sum
// (per-channel keys fold their scales into the query first); the query's rounding moves a score
// by at most Σ_g d_g/2·Σ_c |s·level_c| (d_g = max|q_g|/32767; tested), near 1/65534 of the
// group's products; the zero term is taken over the same rounded query, so zero points (which can
// dwarf the keys) never amplify the rounding. dot=i8 quantizes the query to int8 instead
// (d_g = max|q_g|/127): on very sharp attention (stories260K, head_dim 8) that costs perplexity
// (rtn:4 +1.5%, rtn:2 +2.3% against dot=f32), so it is opt-in only.
// accumulate() on per-token groups quantizes the weights p·s of each tile of 16 tokens to int16
// (σ = max/32767) and sums weight × code in integers, within σ/2·Σ|level| per tile (tested).
// dot=f32 keeps float32 queries and weights: exact products.
// Residual tokens are fp16 and always take the float path. Storage sits in the WASM heap when it
// fits and the SIMD kernels of assembly/attn-int.ts then compute these products bit-identically to
// the plain-TS twins (float-query scores within float rounding); otherwise the twins run.

import type { WasmHeap } from '../../kernels/wasm/runtime.js';
import { getCode, packedWords, setCode } from '../../numeric/bitpack.js';
import { f16Table, f32ToF16 } from '../../numeric/f16.js';
import { assertFinite, CodecSpecError, type CodecContext, type KvCodec, type ParsedSpec } from '../codec.js';
import {
  accumulateOut,
  allocateStorage,
  attnKernels,
  attnTile,
  flushAccumulated,
  flushScores,
  queryIn,
  scoresOut,
  scratch,
  weightsIn,
} from './attn-wasm.js';
import { accumulateI16Ref, ACC_TILE, CHANNEL_QUERY_GROUP, queryMax, scoresIntRef, type IntLayout } from './ref/int-products.js';
import { RowDecodingCodec } from './row-codec.js';

/** Largest finite fp16. */
export const F16_MAX = 65504;

/** Round half to even, as torch.round in the reference code (and symmetric about zero). */
export function rint(x: number): number {
  let r = Math.round(x);
  if (r - x === 0.5 && r % 2 !== 0) r -= 1;
  return r;
}

/** fp16 bits of the largest fp16 ≤ x (|x| ≤ 65504). */
export function f16Down(x: number): number {
  const h = f32ToF16(x);
  if (f16Table[h] <= x) return h;
  if (h === 0) return 0x8001;
  return h & 0x8000 ? h + 1 : h - 1;
}

/** fp16 bits of the smallest fp16 ≥ x (|x| ≤ 65504). */
export function f16Up(x: number): number {
  const h = f32ToF16(x);
  if (f16Table[h] >= x) return h;
  if (h === 0x8000) return 0x0001;
  return h & 0x8000 ? h - 1 : h + 1;
}

/**
 * The B-bit quantizer of one group (methods.md §0), with fp16 scale and zero point.
 *
 * Asymmetric: z = min, s = (max − z)/(2^B − 1), q = clamp(rint((x − z)/s), 0, 2^B − 1),
 * x̂ = q·s + z. Symmetric: s = max|x|/(2^(B−1) − 1), q = clamp(rint(x/s), ±(2^(B−1) − 1)),
 * stored as the unsigned code q + 2^(B−1) − 1, x̂ = q·s.
 *
 * fp16 rounding: z is rounded down and s up (s computed from the rounded z), so every value of
 * the group stays on the grid's span and |x − x̂| ≤ s/2 holds for all of them. Where min and s
 * are fp16 numbers already this is exactly the formula above.
 */
export class IntQuantizer {
  /** Largest unsigned code. */
  readonly maxCode: number;
  /** Symmetric: |q| limit, 2^(B−1) − 1 (the code of x̂ = 0); asymmetric: 0. */
  readonly offset: number;
  /** fp16 bits of the last fit()'s scale and (asymmetric) zero point. */
  scaleBits = 0;
  zeroBits = 0;
  private s = 0;
  private z = 0;

  constructor(
    readonly bits: number,
    readonly sym: boolean,
  ) {
    this.offset = sym ? 2 ** (bits - 1) - 1 : 0;
    this.maxCode = sym ? 2 * this.offset : 2 ** bits - 1;
  }

  /** Chooses scale and zero point for a group with these extremes. */
  fit(min: number, max: number): void {
    if (this.sym) {
      this.scaleBits = f16Up(Math.max(-min, max) / this.offset);
      this.s = f16Table[this.scaleBits];
      this.z = 0;
    } else {
      this.zeroBits = f16Down(min);
      this.z = f16Table[this.zeroBits];
      this.scaleBits = f16Up((max - this.z) / this.maxCode);
      this.s = f16Table[this.scaleBits];
    }
  }

  /** Code of x under the last fit(). */
  encode(x: number): number {
    const { s } = this;
    if (s === 0) return this.offset;
    const q = this.offset + rint((x - this.z) / s);
    return q < 0 ? 0 : q > this.maxCode ? this.maxCode : q;
  }

  /** x̂ of a code under stored fp16 scale/zero bits (zeroBits ignored when symmetric). */
  decode(code: number, scaleBits: number, zeroBits: number): number {
    const s = f16Table[scaleBits];
    return this.sym ? (code - this.offset) * s : code * s + f16Table[zeroBits];
  }
}

export interface GroupQuantOptions {
  readonly bits: number;
  readonly sym: boolean;
  readonly axis: 'token' | 'channel';
  /** Channels per group ('row': the whole row, all heads) for axis token; tokens for axis channel. */
  readonly group: number | 'row';
  /** fp16 residual: FIFO length (axis token) or block length, a multiple of group (axis channel). */
  readonly residual: number;
  /** How attention multiplies: in integers (int16 query, int16 weights; default), with an int8 query, or float32 (exact). */
  readonly dot?: IntDotMode;
}

export type IntDotMode = 'int' | 'i8' | 'f32';

/** The spec's dot=int|i8|f32 parameter (int when absent). */
export function parseIntDot(spec: ParsedSpec): IntDotMode {
  const dot = spec.params.get('dot') ?? 'int';
  if (dot !== 'int' && dot !== 'i8' && dot !== 'f32') {
    throw new CodecSpecError(`${spec.name}: dot must be int (integer products: int16 query, int16 weights), i8 (int8 query, int16 weights) or f32 (float query and weights) (got "${dot}")`);
  }
  return dot;
}

/** The canonical spec's suffix for a dot mode (none for the default). */
export function dotSuffix(dot: IntDotMode): string {
  return dot === 'int' ? '' : `,dot=${dot}`;
}

/**
 * A layer's K or V as integer codes in groups plus an fp16 residual (see the file comment).
 *
 * Per-token groups never cross heads: a head is split into ceil(headDim/g) groups of g channels,
 * the last one shorter when g does not divide headDim (so g ≥ headDim means one group per head),
 * except for group 'row', one group over all heads.
 *
 * truncate(n): tokens still in the residual drop freely. Quantized tokens cannot return to fp16:
 * truncating into the quantized prefix keeps tokens < n quantized with an empty residual, and on
 * axis channel n must then be a multiple of g (a group is quantized as a whole). The residual
 * then refills before the next token is quantized. n = 0, and on axis channel any
 * n ≥ quantizedLength, leave exactly the state a fresh stream of n tokens would have.
 */
export class GroupQuantCodec extends RowDecodingCodec implements KvCodec {
  length = 0;
  /** Tokens [0, qLen) are codes; [qLen, length) are in the fp16 residual. */
  private qLen = 0;
  private readonly q: IntQuantizer;
  private readonly width: number;
  private readonly headDim: number;
  /** Channels (axis token, per head) or tokens (axis channel) per group. */
  private readonly g: number;
  private readonly groupsPerRow: number;
  /** Per-token groups covering one head (1 for 'row'); 0 on axis channel. */
  private readonly perHead: number;
  private readonly codes: Uint32Array;
  private readonly scales: Uint16Array;
  private readonly zeros: Uint16Array;
  /** fp16 bits; token t sits in slot t mod R. */
  private readonly res: Uint16Array;
  private readonly row: Float32Array;
  private readonly layout: IntLayout;
  /** Set when storage is in the WASM heap: the heap and the byte offset of the layout as
   * assembly/attn-int.ts reads it (int32 fields). */
  private readonly wasm?: { readonly heap: WasmHeap; readonly desc: number };

  constructor(
    readonly spec: string,
    ctx: CodecContext,
    private readonly o: GroupQuantOptions,
  ) {
    super(ctx);
    const { nKvHeads, headDim, capacity } = ctx;
    this.width = nKvHeads * headDim;
    this.headDim = headDim;
    this.q = new IntQuantizer(o.bits, o.sym);
    let nGroups: number;
    if (o.axis === 'token') {
      this.g = o.group === 'row' ? this.width : Math.min(o.group, headDim);
      this.groupsPerRow = o.group === 'row' ? 1 : nKvHeads * Math.ceil(headDim / this.g);
      nGroups = capacity * this.groupsPerRow;
    } else {
      if (o.group === 'row' || o.residual === 0 || o.residual % o.group !== 0) {
        throw new CodecSpecError(`${spec}: per-channel groups need a token count g dividing the residual length (got g=${o.group}, residual ${o.residual})`);
      }
      this.g = o.group;
      this.groupsPerRow = 0;
      nGroups = Math.ceil(capacity / o.group) * this.width;
    }
    const { arrays, heap } = allocateStorage(this, (a) => ({
      codes: a.u32(packedWords(capacity * this.width, o.bits)),
      scales: a.u16(nGroups),
      zeros: a.u16(o.sym ? 0 : nGroups),
      res: a.u16(Math.min(o.residual, capacity) * this.width),
      desc: a.i32(12),
    }));
    this.codes = arrays.codes;
    this.scales = arrays.scales;
    this.zeros = arrays.zeros;
    this.res = arrays.res;
    this.row = new Float32Array(this.width);
    const whole = o.axis === 'token' && o.group === 'row';
    this.perHead = o.axis === 'channel' ? 0 : whole ? 1 : this.groupsPerRow / nKvHeads;
    // Head-major: head h's codes (and its groups' scales) for all tokens form one run.
    let headScales: number;
    let tokenScales: number;
    if (o.axis === 'channel') {
      tokenScales = headDim;
      headScales = Math.ceil(capacity / this.g) * headDim;
    } else {
      tokenScales = this.perHead;
      headScales = whole ? 0 : capacity * this.perHead;
    }
    this.layout = {
      codes: this.codes,
      scales: this.scales,
      zeros: o.sym ? undefined : this.zeros,
      bits: o.bits,
      offset: this.q.offset,
      headDim,
      axis: o.axis,
      headCodes: capacity * headDim,
      headScales,
      tokenScales,
      span: o.axis === 'channel' ? Math.min(CHANNEL_QUERY_GROUP, headDim) : whole ? headDim : this.g,
      tokensPerGroup: o.axis === 'channel' ? this.g : 0,
    };
    if (heap) {
      const L = this.layout;
      // Field order: assembly/attn-int.ts D_*.
      arrays.desc.set([
        L.codes.byteOffset,
        L.scales.byteOffset,
        L.zeros ? L.zeros.byteOffset : 0,
        L.bits,
        L.headDim,
        L.offset,
        L.axis === 'token' ? 0 : 1,
        L.headCodes,
        L.headScales,
        L.tokenScales,
        L.span,
        L.tokensPerGroup,
      ]);
      this.wasm = { heap, desc: arrays.desc.byteOffset };
    }
  }

  /** How attention multiplies (the spec's dot parameter). */
  get dot(): IntDotMode {
    return this.o.dot ?? 'int';
  }

  override scores(head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number): void {
    this.checkRange(nTokens);
    const nCodes = Math.min(nTokens, this.qLen);
    if (this.wasm) return this.scoresWasm(this.wasm.heap, this.wasm.desc, head, q, qOffset, nq, nTokens, nCodes, out, outOffset, outStride);
    if (this.dot === 'f32') return this.scoresRange(head, q, qOffset, nq, 0, nTokens, out, outOffset, outStride);
    scoresIntRef(this.layout, queryMax(this.layout, this.dot === 'int'), head, q, qOffset, nq, nCodes, out, outOffset, outStride);
    this.scoresRange(head, q, qOffset, nq, nCodes, nTokens, out, outOffset, outStride);
  }

  override accumulate(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    this.checkRange(nTokens);
    if (this.wasm) return this.accumulateWasm(this.wasm.heap, this.wasm.desc, head, w, wOffset, wStride, nq, nTokens, out, outOffset);
    this.accumulateRange(head, w, wOffset, wStride, nq, 0, nTokens, out, outOffset);
  }

  private scoresWasm(heap: WasmHeap, desc: number, head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, nCodes: number, out: Float32Array, outOffset: number, outStride: number): void {
    const { headDim } = this;
    const kernels = attnKernels(heap);
    const qp = queryIn(heap, q, qOffset, nq * headDim);
    const o = scoresOut(heap, out, outOffset, outStride, nq, nTokens);
    const s = scratch(heap, Math.max(kernels.intScratchBytes(headDim, nq), attnTile(heap) * headDim * 4));
    if (nCodes > 0) {
      const run = this.dot === 'int' ? kernels.intScoresI16 : this.dot === 'i8' ? kernels.intScoresI8 : kernels.intScoresF32;
      run(desc, head, nCodes, qp, nq, o.ptr, o.stride, s);
    }
    this.forResidual(head, nCodes, nTokens, (at, t, n) => kernels.attnScoresFp(1, at, this.width * 2, n, qp, nq, headDim, o.ptr + t * 4, o.stride, s));
    flushScores(heap, out, outOffset, outStride, nq, nTokens);
  }

  private accumulateWasm(heap: WasmHeap, desc: number, head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    const { headDim } = this;
    const kernels = attnKernels(heap);
    const wp = weightsIn(heap, w, wOffset, wStride, nq, nTokens);
    const op = accumulateOut(heap, out, outOffset, nq * headDim);
    const s = scratch(heap, Math.max(kernels.intScratchBytes(headDim, nq), attnTile(heap) * headDim * 4));
    const nCodes = Math.min(nTokens, this.qLen);
    if (nCodes > 0) kernels.intAccumulate(desc, head, nCodes, wp.ptr, wp.stride, nq, op, s, this.dot === 'f32' ? 0 : ACC_TILE);
    this.forResidual(head, nCodes, nTokens, (at, t, n) => kernels.attnAccumulateFp(1, at, this.width * 2, n, wp.ptr + t * 4, wp.stride, nq, headDim, op, s));
    flushAccumulated(heap, out, outOffset, nq * headDim);
  }

  /**
   * Plain-TS twin of the accumulate kernels, every product and sum rounded to float32 in the
   * kernels' order (tokens from t0 = 0). Codes in per-token groups: with dot=int|i8 int16 weights per
   * tile (ref/int-products.ts); with dot=f32 out += (p·s)·(code − off) token by token, then
   * Σ_t p·z per group once (the scale factored out, as in scores()). Codes in per-channel groups
   * and residual tokens: out += p·v̂ (v̂ exact: code·s + z is exact in double, rounded once).
   */
  protected override accumulateRange(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, t0: number, t1: number, out: Float32Array, outOffset: number): void {
    const fr = Math.fround;
    const hd = this.headDim;
    const L = this.layout;
    const row = this.row;
    let t = t0;
    if (L.axis === 'token' && this.dot !== 'f32') {
      t = Math.min(t1, this.qLen);
      accumulateI16Ref(L, head, w, wOffset, wStride, nq, t, out, outOffset);
    } else if (L.axis === 'token') {
      const tq = Math.min(t1, this.qLen);
      const nG = Math.ceil(hd / L.span);
      const zAcc = new Float32Array(nq * nG);
      for (; t < tq; t++) {
        for (let c = 0; c < hd; c++) row[c] = getCode(L.codes, head * L.headCodes + t * hd + c, L.bits) - L.offset;
        const sk = head * L.headScales + t * L.tokenScales;
        for (let i = 0; i < nq; i++) {
          const p = w[wOffset + i * wStride + t];
          const oo = outOffset + i * hd;
          for (let g = 0; g < nG; g++) {
            const a = fr(p * f16Table[L.scales[sk + g]]);
            if (L.zeros) zAcc[i * nG + g] = fr(zAcc[i * nG + g] + fr(p * f16Table[L.zeros[sk + g]]));
            for (let c = g * L.span; c < Math.min((g + 1) * L.span, hd); c++) out[oo + c] = fr(out[oo + c] + fr(a * row[c]));
          }
        }
      }
      if (L.zeros && tq > t0) {
        for (let i = 0; i < nq; i++) for (let c = 0; c < hd; c++) out[outOffset + i * hd + c] = fr(out[outOffset + i * hd + c] + zAcc[i * nG + Math.floor(c / L.span)]);
      }
    }
    for (; t < t1; t++) {
      this.decodeHeadRow(t, head, row, 0);
      for (let i = 0; i < nq; i++) {
        const p = w[wOffset + i * wStride + t];
        const oo = outOffset + i * hd;
        for (let d = 0; d < hd; d++) out[oo + d] = fr(out[oo + d] + fr(p * row[d]));
      }
    }
  }

  /** Calls run(byte offset of head `head` of token t in the residual ring, t, n) per contiguous run of [t0, t1). */
  private forResidual(head: number, t0: number, t1: number, run: (at: number, t: number, n: number) => void): void {
    const R = this.o.residual;
    for (let t = t0; t < t1; ) {
      const slot = t % R;
      const n = Math.min(t1 - t, R - slot);
      run(this.res.byteOffset + (slot * this.width + head * this.headDim) * 2, t, n);
      t += n;
    }
  }

  /** Tokens held as codes (the oldest ones). */
  get quantizedLength(): number {
    return this.qLen;
  }

  /** Tokens held in the fp16 residual (the newest ones). */
  get residualLength(): number {
    return this.length - this.qLen;
  }

  append(src: Float32Array, count: number): void {
    const { ctx, width } = this;
    if (this.length + count > ctx.capacity) {
      throw new RangeError(`KV cache full: layer ${ctx.layer} ${ctx.role} holds ${this.length} of ${ctx.capacity} tokens, cannot append ${count}`);
    }
    const n = count * width;
    assertFinite(src, n, ctx, this.length);
    for (let i = 0; i < n; i++) {
      if (Math.abs(src[i]) > F16_MAX) {
        throw new RangeError(`value ${src[i]} in ${ctx.role} of layer ${ctx.layer} exceeds the fp16 range (±${F16_MAX}) of ${this.spec}'s scales and residual`);
      }
    }
    const R = this.o.residual;
    for (let r = 0; r < count; r++) {
      const t = this.length;
      if (R === 0) {
        this.row.set(src.subarray(r * width, (r + 1) * width));
        this.quantizeToken(t);
        this.qLen = t + 1;
      } else {
        if (this.o.axis === 'token' && t - this.qLen === R) {
          this.loadResidual(this.qLen);
          this.quantizeToken(this.qLen++);
        }
        const dst = (t % R) * width;
        for (let c = 0; c < width; c++) this.res[dst + c] = f32ToF16(src[r * width + c]);
      }
      this.length = t + 1;
      if (this.o.axis === 'channel' && this.length - this.qLen === R) {
        for (let t0 = this.qLen; t0 < this.length; t0 += this.g) this.quantizeTokenGroup(t0);
        this.qLen = this.length;
      }
    }
  }

  private loadResidual(t: number): void {
    const { width, res, row } = this;
    const base = (t % this.o.residual) * width;
    for (let c = 0; c < width; c++) row[c] = f16Table[res[base + c]];
  }

  /** Quantizes this.row as token t, group by group. */
  private quantizeToken(t: number): void {
    const { q, row, codes } = this;
    const bits = this.o.bits;
    for (let k = 0; k < this.groupsPerRow; k++) {
      const [a, b] = this.groupSpan(k);
      let mn = Infinity;
      let mx = -Infinity;
      for (let c = a; c < b; c++) {
        if (row[c] < mn) mn = row[c];
        if (row[c] > mx) mx = row[c];
      }
      q.fit(mn, mx);
      const si = this.tokenScaleAt(t, k);
      this.scales[si] = q.scaleBits;
      if (!q.sym) this.zeros[si] = q.zeroBits;
      for (let c = a; c < b; c++) setCode(codes, this.codeAt(t, c), bits, q.encode(row[c]));
    }
  }

  /** Channels [a, b) of per-token group k. */
  private groupSpan(k: number): [number, number] {
    if (this.o.group === 'row') return [0, this.width];
    const perHead = this.groupsPerRow / this.ctx.nKvHeads;
    const head = Math.floor(k / perHead);
    const a = head * this.headDim + (k % perHead) * this.g;
    return [a, Math.min(a + this.g, (head + 1) * this.headDim)];
  }

  /** Quantizes residual tokens [t0, t0 + g), one group per channel. */
  private quantizeTokenGroup(t0: number): void {
    const { q, res, codes, width, g } = this;
    const R = this.o.residual;
    const bits = this.o.bits;
    const j = t0 / g;
    for (let c = 0; c < width; c++) {
      let mn = Infinity;
      let mx = -Infinity;
      for (let t = t0; t < t0 + g; t++) {
        const x = f16Table[res[(t % R) * width + c]];
        if (x < mn) mn = x;
        if (x > mx) mx = x;
      }
      q.fit(mn, mx);
      const h = Math.floor(c / this.headDim);
      const si = h * this.layout.headScales + j * this.layout.tokenScales + (c - h * this.headDim);
      this.scales[si] = q.scaleBits;
      if (!q.sym) this.zeros[si] = q.zeroBits;
      for (let t = t0; t < t0 + g; t++) setCode(codes, this.codeAt(t, c), bits, q.encode(f16Table[res[(t % R) * width + c]]));
    }
  }

  /** Code index of token t, channel c of the row (head-major layout). */
  private codeAt(t: number, c: number): number {
    const h = Math.floor(c / this.headDim);
    return h * this.layout.headCodes + t * this.headDim + (c - h * this.headDim);
  }

  /** Scale index of token t's per-token group k of the row (k = head·perHead + j; 0 for 'row'). */
  private tokenScaleAt(t: number, k: number): number {
    if (this.layout.headScales === 0) return t * this.layout.tokenScales + k;
    const h = Math.floor(k / this.perHead);
    return h * this.layout.headScales + t * this.layout.tokenScales + (k - h * this.perHead);
  }

  /** Writes token t's head h (its stored, dequantized form) to out[offset …]. */
  protected decodeHeadRow(t: number, h: number, out: Float32Array, offset: number): void {
    const { width, headDim, codes, scales, zeros, q, layout: L } = this;
    const bits = this.o.bits;
    if (t >= this.qLen) {
      const base = (t % this.o.residual) * width + h * headDim;
      for (let d = 0; d < headDim; d++) out[offset + d] = f16Table[this.res[base + d]];
      return;
    }
    const code0 = h * L.headCodes + t * headDim;
    if (this.o.axis === 'channel') {
      const s0 = h * L.headScales + Math.floor(t / this.g) * L.tokenScales;
      for (let d = 0; d < headDim; d++) out[offset + d] = q.decode(getCode(codes, code0 + d, bits), scales[s0 + d], q.sym ? 0 : zeros[s0 + d]);
      return;
    }
    // The per-token groups covering head h: one slice of the row group, or perHead groups of span.
    const s0 = h * L.headScales + t * L.tokenScales;
    for (let j = 0; j < this.perHead; j++) {
      const scale = scales[s0 + j];
      const zero = q.sym ? 0 : zeros[s0 + j];
      for (let d = j * L.span; d < Math.min((j + 1) * L.span, headDim); d++) out[offset + d] = q.decode(getCode(codes, code0 + d, bits), scale, zero);
    }
  }

  bytes(): number {
    const { width, qLen: nq } = this;
    const groups = this.o.axis === 'token' ? nq * this.groupsPerRow : (nq / this.g) * width;
    const codeBytes = Math.ceil((nq * width * this.o.bits) / 8);
    return codeBytes + groups * (this.o.sym ? 2 : 4) + this.residualLength * width * 2;
  }

  decode(t0: number, t1: number, out: Float32Array): void {
    this.checkRange(t1);
    const { width, headDim } = this;
    for (let t = t0; t < t1; t++) {
      for (let h = 0; h < this.ctx.nKvHeads; h++) this.decodeHeadRow(t, h, out, (t - t0) * width + h * headDim);
    }
  }

  truncate(length: number): void {
    if (!Number.isInteger(length) || length < 0 || length > this.length) throw new RangeError(`cannot truncate ${this.length} tokens to ${length}`);
    if (length < this.qLen) {
      if (this.o.axis === 'channel' && length % this.g !== 0) {
        throw new RangeError(
          `${this.spec}: cannot truncate to ${length} tokens: tokens below ${this.qLen} are quantized in per-channel groups of ${this.g}, so the length must be a multiple of ${this.g} or at least ${this.qLen}`,
        );
      }
      this.qLen = length;
    }
    this.length = length;
  }
}

/** Rejects parameters a method does not know, naming the ones it does. */
export function checkParamNames(spec: ParsedSpec, valid: readonly string[]): void {
  for (const key of spec.params.keys()) {
    if (!valid.includes(key)) throw new CodecSpecError(`${spec.name}: unknown parameter "${key}" in "${spec.text}" (valid: ${valid.join(', ')})`);
  }
}

/** A positive integer parameter, or undefined when absent. */
export function positiveInt(spec: ParsedSpec, key: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(value)) throw new CodecSpecError(`${spec.name}: ${key} must be a positive integer (got "${value}")`);
  return Number(value);
}

/** The bit width from the spec's ":B" argument. */
export function bitsArg(spec: ParsedSpec, allowed: readonly number[], fallback: number): number {
  if (spec.arg === undefined) return fallback;
  const bits = Number(spec.arg);
  if (!/^[0-9]+$/.test(spec.arg) || !allowed.includes(bits)) {
    throw new CodecSpecError(`${spec.name}: bits must be ${allowed.slice(0, -1).join(', ')} or ${allowed[allowed.length - 1]} (got "${spec.arg}")`);
  }
  return bits;
}
