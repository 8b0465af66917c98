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
// numeric/bitpack; scales, zero points and the residual are fp16. Codes sit in row-major
// (token, channel) order on both axes, where KIVI's code packs keys transposed (tokens along the
// word); the byte count is the same and one layout serves both axes.
// fp16 bounds the inputs to |x| ≤ 65504: larger values are refused (RangeError) before anything
// is stored, and within that bound no scale or zero point can overflow.

import { getCode, packedWords, setCode } from '../../numeric/bitpack.js';
import { f16Table, f32ToF16 } from '../../numeric/f16.js';
import { assertFinite, CodecSpecError, type CodecContext, type KvCodec, type ParsedSpec } from '../codec.js';
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
  private readonly codes: Uint32Array;
  private readonly scales: Uint16Array;
  private readonly zeros: Uint16Array;
  /** fp16 bits; token t sits in slot t mod R. */
  private readonly res: Uint16Array;
  private readonly row: Float32Array;

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
    this.codes = new Uint32Array(packedWords(capacity * this.width, o.bits));
    this.scales = new Uint16Array(nGroups);
    this.zeros = new Uint16Array(o.sym ? 0 : nGroups);
    this.res = new Uint16Array(Math.min(o.residual, capacity) * this.width);
    this.row = new Float32Array(this.width);
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
    const { q, row, codes, width } = this;
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
      this.scales[t * this.groupsPerRow + k] = q.scaleBits;
      if (!q.sym) this.zeros[t * this.groupsPerRow + k] = q.zeroBits;
      for (let c = a; c < b; c++) setCode(codes, t * width + c, bits, q.encode(row[c]));
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
      this.scales[j * width + c] = q.scaleBits;
      if (!q.sym) this.zeros[j * width + c] = q.zeroBits;
      for (let t = t0; t < t0 + g; t++) setCode(codes, t * width + c, bits, q.encode(f16Table[res[(t % R) * width + c]]));
    }
  }

  /** Writes token t's head h (its stored, dequantized form) to out[offset …]. */
  protected decodeHeadRow(t: number, h: number, out: Float32Array, offset: number): void {
    const { width, headDim, codes, scales, zeros, q } = this;
    const bits = this.o.bits;
    const c0 = h * headDim;
    if (t >= this.qLen) {
      const base = (t % this.o.residual) * width + c0;
      for (let d = 0; d < headDim; d++) out[offset + d] = f16Table[this.res[base + d]];
      return;
    }
    const rowCode = t * width;
    if (this.o.axis === 'channel') {
      const sBase = (t / this.g | 0) * width;
      for (let c = c0; c < c0 + headDim; c++) {
        out[offset + c - c0] = q.decode(getCode(codes, rowCode + c, bits), scales[sBase + c], q.sym ? 0 : zeros[sBase + c]);
      }
      return;
    }
    // The per-token groups covering head h: one slice of the row group, or perHead groups of g.
    const gpr = this.groupsPerRow;
    const whole = this.o.group === 'row';
    const perHead = whole ? 1 : gpr / this.ctx.nKvHeads;
    const span = whole ? headDim : this.g;
    for (let k = 0; k < perHead; k++) {
      const si = t * gpr + (whole ? 0 : h * perHead + k);
      const scale = scales[si];
      const zero = q.sym ? 0 : zeros[si];
      const a = c0 + k * span;
      const b = Math.min(a + span, c0 + headDim);
      for (let c = a; c < b; c++) out[offset + c - c0] = q.decode(getCode(codes, rowCode + c, bits), scale, zero);
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
