/**
 * KVQuant (methods.md §3): pre-RoPE per-channel keys, per-token values, a non-uniform ("nuq")
 * codebook per layer and tensor learned offline by k-means, per-vector dense-and-sparse outliers
 * and a full-precision attention sink.
 *
 * Spec: `kvquant[:B][,outliers=F][,sink=S][,qnorm=on|off],calib=FILE`; B ∈ {2, 3, 4} (default 3),
 * F ∈ [0, 1] (default 0.01, "-1%"), S ≥ 0 tokens (default 1), Q-Norm on by default at 2 bits
 * only (§3.1.6). FILE comes from `lowkv calibrate --method kvquant:B[,…]`.
 *
 * Encoding of one token row x (nKvHeads·head_dim = W values):
 *   keys   (preRope: the forward pass hands them over before RoPE; scores() rotates each
 *          dequantized key to its position, firstPosition + t, with the forward pass's own
 *          float32 cos/sin): x_n[j] = (x[j] − zp_j)/range_j with per-channel zp, range from
 *          calibration (§3.1.1: offline, since online per-channel rescaling would rewrite old
 *          keys): zp = (up + lo)/2, range = (up − lo)/2 over the 100·F/2 and 100·(1 − F/2)
 *          percentiles of the channel (§3.1.4).
 *   values per-token online: zp, range of the dense part of the row (§3.1.4), fp16.
 *   Each dense x_n is coded as its nearest codebook entry c (2^B of them, fp16); dequantized
 *   x̂ = c·range + zp (with Q-Norm, c·s + o replaces c: §3.1.6, both factors fp16).
 *
 * Outliers ("dense-and-sparse", §3.1.4): exactly m = round(F·W) values per token row are kept in
 * float32 with a 16-bit channel index, so bytes() depends on the token count only. Which ones:
 *   keys   the m largest |x_n| (the values furthest outside their channel's calibrated range).
 *   values the m values whose removal leaves the narrowest [min, max] (the sorted row's tails,
 *          split between both ends as best) — the per-token range the codebook is stretched to.
 * §3.1.4 thresholds keys per channel with calibrated percentiles, so the count varies per token;
 * a fixed per-token count is this engine's streaming form of the same idea (deviation). With
 * head_dim 8 and 4 KV heads (W = 32) the default 1% rounds to 0 outliers: round, not ceil, so the
 * stated fraction is never exceeded.
 *
 * Sink (§3.1.5): tokens at absolute position < S (firstPosition counted) are stored as float32
 * rows and left out of calibration.
 *
 * Calibration (calibrate()): plain k-means (k-means++ seeding from the calibration seed, ≤ 50 Lloyd steps) on the
 * normalized dense values — keys: values with |x_n| ≤ 1 as in the paper's code; values: the
 * dense part of each row after the runtime's outlier split. No Fisher weighting: the engine has
 * no gradients, so every activation weighs 1 (deviation from §3.1.3, which weights by squared
 * gradients). Sink rows (position < S within their calibration chunk) are left out, as the
 * runtime keeps them in full precision.
 *
 * Range: every stored quantity is fp16 in the paper (scales, codebook, outliers); inputs with
 * |x| > 65504 are refused with a RangeError rather than clipped to garbage.
 *
 * Bytes (T tokens, s = min(T, sink tokens of this store), q = T − s, L = 2^B):
 *   shared once (when T > 0): 2L codebook + 4 with Q-Norm + keys 4W (fp16 zp, range per channel)
 *   s·4W (float32 sink rows) + q·6m (outliers) + values q·4 (fp16 zp, range) + ceil(q·W·B/8) codes.
 * Bits/value on quantized tokens: B + 48·m/W (+ 32/W for values), the shared part amortised.
 *
 * Error bound (dense values): |x − x̂| ≤ range·g, g the largest distance from a point of [−1, 1]
 * to its nearest (decoding) codebook entry — data dependent through the calibrated codebook, so
 * the tests state measured bounds; outliers and sink tokens are exact.
 */
import { getCode, packedWords, setCode } from '../../numeric/bitpack.js';
import { f16Table, f32ToF16, roundF16 } from '../../numeric/f16.js';
import { kmeans1d, nearestSorted } from '../../numeric/kmeans.js';
import { calibrationFor } from '../calibration-file.js';
import { ropeTableFor } from '../rope-table.js';
import { RowDecodingCodec } from './row-codec.js';
import {
  assertFinite,
  CodecSpecError,
  type CalibrationSamples,
  type CodecContext,
  type CodecFactory,
  type KvCodec,
  type ParsedSpec,
} from '../codec.js';

const F16_MAX = 65504;

/** Refuses values no fp16 field of the method can hold; call before anything is stored. */
export function checkF16Range(method: string, src: Float32Array, n: number, ctx: CodecContext, firstToken: number): void {
  const width = ctx.nKvHeads * ctx.headDim;
  for (let i = 0; i < n; i++) {
    if (Math.abs(src[i]) > F16_MAX) {
      throw new RangeError(
        `value ${src[i]} in ${ctx.role} of layer ${ctx.layer} (token ${firstToken + Math.floor(i / width)}) exceeds the fp16 range (±${F16_MAX}) of ${method}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Spec and calibration artifact.

interface Options {
  readonly bits: number;
  readonly outliers: number;
  readonly sink: number;
  /** Explicit qnorm=on|off, or undefined for the default (on at 2 bits). */
  readonly qnorm: boolean | undefined;
}

const PARAMS = ['outliers', 'sink', 'qnorm', 'calib'];

function parseOptions(spec: ParsedSpec): Options {
  for (const key of spec.params.keys()) {
    if (!PARAMS.includes(key)) throw new CodecSpecError(`kvquant: unknown parameter "${key}" (valid: ${PARAMS.join(', ')})`);
  }
  const bits = spec.arg === undefined || spec.arg === '' ? 3 : Number(spec.arg);
  if (![2, 3, 4].includes(bits)) throw new CodecSpecError(`kvquant: bits must be 2, 3 or 4 (got "${spec.arg}")`);
  const o = spec.params.get('outliers');
  const outliers = o === undefined ? 0.01 : Number(o);
  if (o === '' || !(outliers >= 0 && outliers <= 1)) throw new CodecSpecError(`kvquant: outliers must be a fraction in [0, 1] (got "${o}")`);
  const s = spec.params.get('sink');
  const sink = s === undefined ? 1 : Number(s);
  if (s === '' || !Number.isInteger(sink) || sink < 0) throw new CodecSpecError(`kvquant: sink must be a non-negative integer number of tokens (got "${s}")`);
  const q = spec.params.get('qnorm');
  let qnorm: boolean | undefined;
  if (q !== undefined) {
    if (['on', 'true', '1'].includes(q)) qnorm = true;
    else if (['off', 'false', '0'].includes(q)) qnorm = false;
    else throw new CodecSpecError(`kvquant: qnorm must be on or off (got "${q}")`);
  }
  return { bits, outliers, sink, qnorm };
}

/** What calibrate() returns for one layer and role (plain JSON). */
interface Artifact {
  readonly bits: number;
  /** Calibration settings, for the record only: the runtime may use other outliers/sink values. */
  readonly outliers?: number;
  readonly sink?: number;
  /** 2^bits fp16 signposts, ascending, in the normalized domain (≈ [−1, 1]). */
  readonly codebook: number[];
  /** Q-Norm (scale, offset) applied to the codebook when decoding. */
  readonly qnorm?: [number, number];
  /** Keys: per-channel fp16 zero point and half-range. */
  readonly zeroPoint?: number[];
  readonly range?: number[];
}

function checkArtifact(a: unknown, o: Options, ctx: CodecContext, width: number): Artifact {
  const where = `kvquant calibration of layer ${ctx.layer} ${ctx.role === 'k' ? 'keys' : 'values'}`;
  const fail = (why: string): never => {
    throw new CodecSpecError(`${where}: ${why}; recalibrate with \`lowkv calibrate --method kvquant:${o.bits}\``);
  };
  if (typeof a !== 'object' || a === null) return fail('missing');
  const r = a as Record<string, unknown>;
  if (r.bits !== o.bits) fail(`made for ${String(r.bits)} bits, the spec asks for ${o.bits}`);
  const numbers = (name: string, n: number, ok: (v: number) => boolean, what: string): number[] => {
    const v = r[name];
    if (!Array.isArray(v) || v.length !== n) return fail(`${name} must be an array of ${n} numbers (got ${Array.isArray(v) ? `${v.length} entries` : typeof v})`);
    v.forEach((x, i) => {
      if (typeof x !== 'number' || !Number.isFinite(x) || Math.abs(x) > F16_MAX || !ok(x)) fail(`${name}[${i}] = ${String(x)} is not ${what}`);
    });
    return v as number[];
  };
  const codebook = numbers('codebook', 1 << o.bits, () => true, 'a finite fp16 number');
  for (let i = 1; i < codebook.length; i++) if (codebook[i] < codebook[i - 1]) fail('codebook is not ascending');
  let qnorm: [number, number] | undefined;
  if (r.qnorm !== undefined) qnorm = numbers('qnorm', 2, () => true, 'a finite fp16 number') as [number, number];
  if (o.qnorm !== undefined && o.qnorm !== (qnorm !== undefined)) fail(`calibrated with Q-Norm ${qnorm ? 'on' : 'off'}, the spec asks for qnorm=${o.qnorm ? 'on' : 'off'}`);
  const base = { bits: o.bits, codebook, qnorm };
  if (ctx.role === 'v') return base;
  const zeroPoint = numbers('zeroPoint', width, () => true, 'a finite fp16 number');
  const range = numbers('range', width, (x) => x >= 0, 'a non-negative fp16 number');
  return { ...base, zeroPoint, range };
}

// ---------------------------------------------------------------------------------------------
// Outlier selection (shared by calibration and the codec, so both see the same dense parts).

/**
 * Values: picks the m entries of row x[off … off+W) whose removal leaves the narrowest range,
 * writes their indices ascending to `picked` and returns the dense part's [min, max].
 */
function splitValueRow(x: ArrayLike<number>, off: number, W: number, m: number, order: Int32Array, picked: Int32Array): [number, number] {
  if (m >= W) {
    for (let j = 0; j < W; j++) picked[j] = j;
    return [0, 0];
  }
  if (m === 0) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let j = 0; j < W; j++) {
      lo = Math.min(lo, x[off + j]);
      hi = Math.max(hi, x[off + j]);
    }
    return [lo, hi];
  }
  for (let j = 0; j < W; j++) order[j] = j;
  order.sort((a, b) => x[off + a] - x[off + b] || a - b);
  let best = 0;
  let bestRange = Infinity;
  for (let a = 0; a <= m; a++) {
    const r = x[off + order[W - 1 - m + a]] - x[off + order[a]];
    if (r < bestRange) {
      bestRange = r;
      best = a;
    }
  }
  for (let i = 0; i < best; i++) picked[i] = order[i];
  for (let i = best; i < m; i++) picked[i] = order[W - m + i];
  picked.subarray(0, m).sort();
  return [x[off + order[best]], x[off + order[W - 1 - m + best]]];
}

/** Keys: the m entries with the largest |x_n| (ties to the lower channel), ascending in `picked`. */
function pickKeyOutliers(xn: Float64Array, W: number, m: number, order: Int32Array, picked: Int32Array): void {
  if (m === 0) return;
  for (let j = 0; j < W; j++) order[j] = j;
  // |x_n| may be ∞ on both sides (zero-range channels): compare, never subtract.
  if (m < W) order.sort((a, b) => (Math.abs(xn[a]) > Math.abs(xn[b]) ? -1 : Math.abs(xn[a]) < Math.abs(xn[b]) ? 1 : a - b));
  picked.set(order.subarray(0, m));
  picked.subarray(0, m).sort();
}

/** (x − zp)/range; a zero range maps its zero point to 0 and anything else to ±∞ (an outlier). */
function normalize(x: number, zp: number, range: number): number {
  const d = x - zp;
  if (range > 0) return d / range;
  return d === 0 ? 0 : d > 0 ? Infinity : -Infinity;
}

// ---------------------------------------------------------------------------------------------
// Calibration.

function percentile(sorted: Float64Array, p: number): number {
  // numpy's default (linear interpolation between closest ranks), as the paper's code uses.
  const pos = p * (sorted.length - 1);
  const i = Math.floor(pos);
  const frac = pos - i;
  return i + 1 < sorted.length ? sorted[i] + frac * (sorted[i + 1] - sorted[i]) : sorted[i];
}

function f16Field(x: number, what: string, s: CalibrationSamples): number {
  const r = roundF16(x);
  if (!Number.isFinite(r)) throw new RangeError(`kvquant calibration of layer ${s.layer} ${s.role}: ${what} ${x} exceeds the fp16 range`);
  return r;
}

function calibrateKvquant(spec: ParsedSpec, s: CalibrationSamples, seed: number): Artifact {
  const o = parseOptions(spec);
  const W = s.nKvHeads * s.headDim;
  const keptRows: number[] = [];
  for (let r = 0; r < s.nRows; r++) if (r % s.chunkLength >= o.sink) keptRows.push(r);
  if (keptRows.length === 0) throw new RangeError(`kvquant calibration of layer ${s.layer} ${s.role}: no rows left after excluding the ${o.sink} sink token(s) of each chunk`);
  const n = keptRows.length;
  const dense = new Float64Array(n * W);
  let nDense = 0;
  let zeroPoint: number[] | undefined;
  let range: number[] | undefined;

  if (s.role === 'k') {
    zeroPoint = new Array<number>(W);
    range = new Array<number>(W);
    const col = new Float64Array(n);
    for (let j = 0; j < W; j++) {
      keptRows.forEach((r, i) => (col[i] = s.rows[r * W + j]));
      col.sort();
      const lo = percentile(col, o.outliers / 2);
      const hi = percentile(col, 1 - o.outliers / 2);
      zeroPoint[j] = f16Field((hi + lo) / 2, 'zero point', s);
      range[j] = f16Field((hi - lo) / 2, 'range', s);
    }
    // As the paper's code: values outside [−1, 1] after normalization are outliers, not clustered.
    for (const r of keptRows) {
      for (let j = 0; j < W; j++) {
        const xn = normalize(s.rows[r * W + j], zeroPoint[j], range[j]);
        if (Math.abs(xn) <= 1) dense[nDense++] = xn;
      }
    }
  } else {
    const m = Math.round(o.outliers * W);
    const order = new Int32Array(W);
    const picked = new Int32Array(W);
    const isOutlier = new Uint8Array(W);
    for (const r of keptRows) {
      const [lo, hi] = splitValueRow(s.rows, r * W, W, m, order, picked);
      const zp = f16Field((hi + lo) / 2, 'zero point', s);
      const rg = f16Field((hi - lo) / 2, 'range', s);
      if (rg === 0) continue; // a constant row says nothing about the distribution's shape
      isOutlier.fill(0);
      for (let i = 0; i < m; i++) isOutlier[picked[i]] = 1;
      for (let j = 0; j < W; j++) if (!isOutlier[j]) dense[nDense++] = (s.rows[r * W + j] - zp) / rg;
    }
  }
  if (nDense === 0) throw new RangeError(`kvquant calibration of layer ${s.layer} ${s.role}: the samples have no spread to learn a codebook from`);
  const values = dense.subarray(0, nDense);
  const codebook = Array.from(kmeans1d(values, { k: 1 << o.bits, seed, maxIter: 50 }).centroids, roundF16);
  codebook.sort((a, b) => a - b);
  const qnorm = (o.qnorm ?? o.bits === 2) ? qNorm(values, codebook) : undefined;
  return { bits: o.bits, outliers: o.outliers, sink: o.sink, codebook, ...(qnorm && { qnorm }), ...(zeroPoint && { zeroPoint, range }) };
}

/** Q-Norm (§3.1.6): the affine map of the centroids that restores the data's mean and std. */
function qNorm(values: Float64Array, codebook: number[]): [number, number] {
  let m1 = 0;
  let m2 = 0;
  for (const v of values) {
    m1 += v;
    m2 += codebook[nearestSorted(codebook, v)];
  }
  m1 /= values.length;
  m2 /= values.length;
  let v1 = 0;
  let v2 = 0;
  for (const v of values) {
    v1 += (v - m1) ** 2;
    v2 += (codebook[nearestSorted(codebook, v)] - m2) ** 2;
  }
  const scale = v2 > 0 ? Math.sqrt(v1 / v2) : 1;
  return [roundF16(scale), roundF16(m1 - m2 * scale)];
}

// ---------------------------------------------------------------------------------------------
// The codec.

class KvQuantCodec extends RowDecodingCodec implements KvCodec {
  length = 0;
  readonly preRope: boolean;
  private readonly W: number;
  private readonly hd: number;
  private readonly bits: number;
  private readonly levels: number;
  /** Outliers per token row. */
  private readonly m: number;
  /** Tokens of this store kept whole as the attention sink. */
  private readonly nSink: number;
  private readonly enc: Float64Array;
  private readonly dec: Float64Array;
  private readonly zeroPoint: Float64Array;
  private readonly range: Float64Array;
  /** Keys: dequantized value of code c in channel j at j·levels + c (the codebook, scaled). */
  private readonly keyLut: Float32Array;
  private readonly codes: Uint32Array;
  private readonly outVal: Float32Array;
  private readonly outIdx: Uint16Array;
  /** Values: fp16 zero point and range per token. */
  private readonly tokenScale: Uint16Array;
  private readonly sinkRows: Float32Array;
  private readonly sharedBytes: number;
  private readonly xn: Float64Array;
  private readonly order: Int32Array;
  private readonly picked: Int32Array;

  constructor(
    readonly spec: string,
    ctx: CodecContext,
    o: Options,
    a: Artifact,
  ) {
    const isKey = ctx.role === 'k';
    super(ctx, isKey ? ropeTableFor('kvquant', ctx) : undefined);
    this.preRope = isKey;
    this.W = ctx.nKvHeads * ctx.headDim;
    this.hd = ctx.headDim;
    this.bits = o.bits;
    this.levels = 1 << o.bits;
    this.m = Math.round(o.outliers * this.W);
    this.nSink = Math.max(0, Math.min(o.sink - (ctx.firstPosition ?? 0), ctx.capacity));
    this.enc = Float64Array.from(a.codebook, roundF16);
    const [scale, offset] = a.qnorm ? a.qnorm.map(roundF16) : [1, 0];
    this.dec = this.enc.map((c) => c * scale + offset);
    this.zeroPoint = Float64Array.from(a.zeroPoint ?? [], roundF16);
    this.range = Float64Array.from(a.range ?? [], roundF16);
    this.keyLut = new Float32Array(isKey ? this.W * this.levels : 0);
    for (let j = 0; isKey && j < this.W; j++) {
      for (let c = 0; c < this.levels; c++) this.keyLut[j * this.levels + c] = this.dec[c] * this.range[j] + this.zeroPoint[j];
    }
    const quantized = ctx.capacity - this.nSink;
    this.codes = new Uint32Array(packedWords(quantized * this.W, this.bits));
    this.outVal = new Float32Array(ctx.capacity * this.m);
    this.outIdx = new Uint16Array(ctx.capacity * this.m);
    this.tokenScale = new Uint16Array(isKey ? 0 : 2 * ctx.capacity);
    this.sinkRows = new Float32Array(this.nSink * this.W);
    this.sharedBytes = 2 * this.levels + (a.qnorm ? 4 : 0) + (isKey ? 4 * this.W : 0);
    this.xn = new Float64Array(this.W);
    this.order = new Int32Array(this.W);
    this.picked = new Int32Array(this.W);
  }

  append(src: Float32Array, count: number): void {
    const { ctx, W } = this;
    if (this.length + count > ctx.capacity) {
      throw new RangeError(`KV cache full: layer ${ctx.layer} ${ctx.role} holds ${this.length} of ${ctx.capacity} tokens, cannot append ${count}`);
    }
    assertFinite(src, count * W, ctx, this.length);
    checkF16Range('kvquant', src, count * W, ctx, this.length);
    for (let r = 0; r < count; r++) this.encodeRow(src, r * W, this.length + r);
    this.length += count;
  }

  private encodeRow(src: Float32Array, off: number, t: number): void {
    const { W, m, xn, picked, enc, bits } = this;
    if (t < this.nSink) {
      this.sinkRows.set(src.subarray(off, off + W), t * W);
      return;
    }
    if (this.ctx.role === 'k') {
      for (let j = 0; j < W; j++) xn[j] = normalize(src[off + j], this.zeroPoint[j], this.range[j]);
      pickKeyOutliers(xn, W, m, this.order, picked);
    } else {
      const [lo, hi] = splitValueRow(src, off, W, m, this.order, picked);
      const zpBits = f32ToF16((hi + lo) / 2);
      const rangeBits = f32ToF16((hi - lo) / 2);
      this.tokenScale[2 * t] = zpBits;
      this.tokenScale[2 * t + 1] = rangeBits;
      const zp = f16Table[zpBits];
      const range = f16Table[rangeBits];
      // A zero range decodes every dense value to zp whatever its code: code 0 then.
      for (let j = 0; j < W; j++) xn[j] = range > 0 ? (src[off + j] - zp) / range : enc[0];
    }
    const base = (t - this.nSink) * W;
    for (let j = 0; j < W; j++) setCode(this.codes, base + j, bits, nearestSorted(enc, xn[j]));
    for (let i = 0; i < m; i++) {
      this.outIdx[t * m + i] = picked[i];
      this.outVal[t * m + i] = src[off + picked[i]];
    }
  }

  /** Stored (pre-RoPE for keys) values of token t, head h, into dst[dOff …]. */
  protected decodeHeadRow(t: number, h: number, dst: Float32Array, dOff: number): void {
    const { hd, W, m } = this;
    const h0 = h * hd;
    if (t < this.nSink) {
      for (let d = 0; d < hd; d++) dst[dOff + d] = this.sinkRows[t * W + h0 + d];
      return;
    }
    const base = (t - this.nSink) * W + h0;
    const { codes, bits, levels } = this;
    if (this.ctx.role === 'k') {
      const lut = this.keyLut;
      for (let d = 0; d < hd; d++) dst[dOff + d] = lut[(h0 + d) * levels + getCode(codes, base + d, bits)];
    } else {
      const zp = f16Table[this.tokenScale[2 * t]];
      const range = f16Table[this.tokenScale[2 * t + 1]];
      const dec = this.dec;
      for (let d = 0; d < hd; d++) dst[dOff + d] = dec[getCode(codes, base + d, bits)] * range + zp;
    }
    for (let i = t * m; i < (t + 1) * m; i++) {
      const j = this.outIdx[i] - h0;
      if (j >= 0 && j < hd) dst[dOff + j] = this.outVal[i];
    }
  }

  bytes(): number {
    const T = this.length;
    if (T === 0) return 0;
    const s = Math.min(T, this.nSink);
    const q = T - s;
    return this.sharedBytes + s * 4 * this.W + q * (6 * this.m + (this.ctx.role === 'v' ? 4 : 0)) + Math.ceil((q * this.W * this.bits) / 8);
  }

  decode(t0: number, t1: number, out: Float32Array): void {
    this.checkRange(t1);
    const { W, hd } = this;
    for (let t = t0; t < t1; t++) for (let h = 0; h < this.ctx.nKvHeads; h++) this.decodeHeadRow(t, h, out, (t - t0) * W + h * hd);
  }

  truncate(length: number): void {
    if (length < 0 || length > this.length) throw new RangeError(`cannot truncate ${this.length} tokens to ${length}`);
    this.length = length;
  }
}

function canonical(o: Options, spec: ParsedSpec, qnorm: boolean): string {
  const calib = spec.params.get('calib');
  return `kvquant:${o.bits},outliers=${o.outliers},sink=${o.sink}${qnorm !== (o.bits === 2) ? `,qnorm=${qnorm ? 'on' : 'off'}` : ''}${calib ? `,calib=${calib}` : ''}`;
}

function createKvquant(spec: ParsedSpec, ctx: CodecContext): KvCodec {
  const o = parseOptions(spec);
  const W = ctx.nKvHeads * ctx.headDim;
  if (W > 65536) throw new CodecSpecError(`kvquant: rows of ${W} values do not fit its 16-bit outlier indices`);
  if (ctx.role === 'k') ropeTableFor('kvquant', ctx);
  const a = checkArtifact(calibrationFor(spec, ctx), o, ctx, W);
  return new KvQuantCodec(canonical(o, spec, a.qnorm !== undefined), ctx, o, a);
}

export const kvquantCodecs: CodecFactory[] = [
  {
    name: 'kvquant',
    summary: 'KVQuant: pre-RoPE per-channel keys, per-token values, calibrated nuq codebook, 1% fp32 outliers, fp32 sink; kvquant:B[,outliers=F][,sink=S],calib=FILE (B = 2/3/4, default 3)',
    create: createKvquant,
    calibrate: (spec: ParsedSpec, samples: CalibrationSamples, { seed }: { readonly seed: number }): unknown => calibrateKvquant(spec, samples, seed),
  },
];
