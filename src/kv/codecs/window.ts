/**
 * `window(sink=S,recent=R):INNER` — full-precision attention sinks and recent tokens around any
 * codec (StreamingLLM's sinks, KIVI/HF QuantizedCache's residual window, applied generically).
 *
 * Token order is three regions: the first S tokens (sinks), then whatever INNER holds, then the
 * R most recent tokens. Tokens fill the sinks first; after that they enter the recent window, and
 * when it is full its oldest token is appended to INNER (in order), so INNER holds tokens
 * S … length−R−1 and is created with firstPosition = firstPosition + S (pre-RoPE inner codecs
 * know their positions) and capacity − S − R tokens. Defaults: sink=4, recent=64.
 *
 * The window's own tokens are IEEE fp16 (the model precision "full precision" means in KV papers;
 * 16 bits/value, counted in bytes()). Every token passes through that fp16 store, so INNER always
 * receives the fp16-rounded value, whether the token aged out of the recent window or went to
 * INNER directly in a large append: one-token appends equal bulk appends exactly. Values beyond
 * fp16's range (±65504) are refused with a RangeError.
 *
 * If INNER is pre-RoPE (stores keys unrotated), so is the window: its own keys are stored
 * unrotated too and scores() rotates each to its absolute position with ctx.rope.
 *
 * bytes() = (sink tokens + recent tokens) · nKvHeads · headDim · 2 + INNER.bytes().
 * Accuracy: the window adds no error beyond fp16 rounding (≤ 2^−11 relative) for its own tokens;
 * INNER's bound applies to the rest.
 *
 * truncate(n): to n ≥ S + INNER.length drops recent tokens; to n < S empties INNER (truncate(0)
 * is always supported); in between it truncates INNER to n − S, which INNER may refuse, and leaves
 * the recent window empty (it refills before INNER grows again).
 */
import { ropeInvFreq } from '../../kernels/ref/ops.js';
import { f16Table, f32ToF16 } from '../../numeric/f16.js';
import { assertFinite, CodecSpecError, type CodecBuilder, type CodecContext, type CodecFactory, type KvCodec, type ParsedSpec } from '../codec.js';

const F16_MAX = 65504;

class WindowCodec implements KvCodec {
  readonly spec: string;
  readonly preRope: boolean;
  private readonly inner: KvCodec;
  private readonly rowWidth: number;
  private readonly headDim: number;
  /** fp16 rows of the sink tokens, in order. */
  private readonly sink: Uint16Array;
  private sinkLen = 0;
  /** fp16 rows of the recent tokens: a ring of R slots, oldest at slot recentStart. */
  private readonly recent: Uint16Array;
  private recentStart = 0;
  private recentLen = 0;
  /** Absolute position of token 0. */
  private readonly basePos: number;
  /** RoPE frequencies θ^(−2i/dim)/f_i when pre-RoPE, else empty. */
  private readonly invFreq: Float64Array;
  /** Pairs (x[i], x[i + dim/2]) rather than (x[2i], x[2i+1]). */
  private readonly neox: boolean;
  /** One head's key or value (scratch). */
  private readonly row: Float64Array;

  constructor(
    private readonly ctx: CodecContext,
    private readonly S: number,
    private readonly R: number,
    innerSpec: string,
    build: CodecBuilder,
  ) {
    this.rowWidth = ctx.nKvHeads * ctx.headDim;
    this.headDim = ctx.headDim;
    this.basePos = ctx.firstPosition ?? 0;
    this.inner = build(innerSpec, { ...ctx, capacity: Math.max(0, ctx.capacity - S - R), firstPosition: this.basePos + S });
    this.spec = `window(sink=${S},recent=${R}):${this.inner.spec}`;
    this.preRope = this.inner.preRope === true;
    const rope = ctx.rope;
    if (this.preRope && !rope) throw new CodecSpecError(`${this.spec}: the inner codec stores keys before RoPE, but no RoPE parameters were given`);
    this.invFreq = this.preRope && rope ? ropeInvFreq(rope.theta, rope.dim, rope.freqFactors) : new Float64Array(0);
    this.neox = rope?.pairing === 'neox';
    this.sink = new Uint16Array(Math.min(S, ctx.capacity) * this.rowWidth);
    this.recent = new Uint16Array(Math.min(R, ctx.capacity) * this.rowWidth);
    this.row = new Float64Array(ctx.headDim);
  }

  get length(): number {
    return this.sinkLen + this.inner.length + this.recentLen;
  }

  append(src: Float32Array, count: number): void {
    const { ctx, rowWidth, S, R } = this;
    const start = this.length;
    if (start + count > ctx.capacity) {
      throw new RangeError(`KV cache full: layer ${ctx.layer} ${ctx.role} holds ${start} of ${ctx.capacity} tokens, cannot append ${count}`);
    }
    const n = count * rowWidth;
    assertFinite(src, n, ctx, start);
    for (let i = 0; i < n; i++) {
      if (Math.abs(src[i]) > F16_MAX && !Number.isFinite(f16Table[f32ToF16(src[i])])) {
        throw new RangeError(`value ${src[i]} in ${ctx.role} of layer ${ctx.layer} overflows the window's fp16 (largest finite ${F16_MAX})`);
      }
    }

    const toSink = Math.min(count, S - this.sinkLen);
    const rest = count - toSink;
    // The oldest tokens beyond R leave for INNER: first from the window, then from the new rows.
    const aged = Math.max(0, this.recentLen + rest - R);
    const agedOld = Math.min(aged, this.recentLen);
    const agedNew = aged - agedOld;
    if (aged > 0) {
      const buf = new Float32Array(aged * rowWidth);
      for (let j = 0; j < agedOld; j++) {
        const o = this.slot(j) * rowWidth;
        for (let i = 0; i < rowWidth; i++) buf[j * rowWidth + i] = f16Table[this.recent[o + i]];
      }
      const from = toSink * rowWidth;
      for (let i = 0; i < agedNew * rowWidth; i++) buf[agedOld * rowWidth + i] = f16Table[f32ToF16(src[from + i])];
      // INNER may refuse (range); nothing of this append is committed before it accepts.
      this.inner.append(buf, aged);
    }

    for (let i = 0; i < toSink * rowWidth; i++) this.sink[this.sinkLen * rowWidth + i] = f32ToF16(src[i]);
    this.sinkLen += toSink;
    if (agedOld > 0) {
      this.recentStart = (this.recentStart + agedOld) % R;
      this.recentLen -= agedOld;
    }
    for (let r = toSink + agedNew; r < count; r++) {
      const o = this.slot(this.recentLen) * rowWidth;
      for (let i = 0; i < rowWidth; i++) this.recent[o + i] = f32ToF16(src[r * rowWidth + i]);
      this.recentLen++;
    }
  }

  /** Ring slot of the j-th oldest recent token. */
  private slot(j: number): number {
    return (this.recentStart + j) % this.R;
  }

  /** Index of the first recent token in token order. */
  private get recentFirst(): number {
    return this.sinkLen + this.inner.length;
  }

  private checkRange(nTokens: number): void {
    if (nTokens > this.length) throw new RangeError(`asked for ${nTokens} tokens, ${this.length} stored`);
  }

  /**
   * Token t's head `head` from one of the fp16 stores (row offset o of `data`) into this.row,
   * rotated to its position when pre-RoPE (pair i turns by pos·invFreq[i]).
   */
  private ownRow(data: Uint16Array, o: number, t: number, rotate: boolean): Float64Array {
    const { row, headDim } = this;
    for (let d = 0; d < headDim; d++) row[d] = f16Table[data[o + d]];
    if (rotate) {
      const pos = this.basePos + t;
      const half = this.invFreq.length;
      for (let i = 0; i < half; i++) {
        const a = pos * this.invFreq[i];
        const c = Math.cos(a);
        const s = Math.sin(a);
        const p = this.neox ? i : 2 * i;
        const q = this.neox ? i + half : p + 1;
        const x0 = row[p];
        const x1 = row[q];
        row[p] = x0 * c - x1 * s;
        row[q] = x0 * s + x1 * c;
      }
    }
    return row;
  }

  /** Calls fn(token, data, rowOffset) for the window's own tokens below nTokens. */
  private forOwn(head: number, nTokens: number, fn: (t: number, data: Uint16Array, o: number) => void): void {
    const { rowWidth, headDim } = this;
    const nSink = Math.min(nTokens, this.sinkLen);
    for (let t = 0; t < nSink; t++) fn(t, this.sink, t * rowWidth + head * headDim);
    const first = this.recentFirst;
    const nRecent = Math.min(Math.max(nTokens - first, 0), this.recentLen);
    for (let j = 0; j < nRecent; j++) fn(first + j, this.recent, this.slot(j) * rowWidth + head * headDim);
  }

  /** INNER's tokens below nTokens (window token order). */
  private innerCount(nTokens: number): number {
    return Math.min(Math.max(nTokens - this.S, 0), this.inner.length);
  }

  scores(head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number): void {
    this.checkRange(nTokens);
    const D = this.headDim;
    this.forOwn(head, nTokens, (t, data, o) => {
      const k = this.ownRow(data, o, t, this.preRope);
      for (let i = 0; i < nq; i++) {
        let s = 0;
        for (let d = 0, qo = qOffset + i * D; d < D; d++) s += q[qo + d] * k[d];
        out[outOffset + i * outStride + t] = s;
      }
    });
    const nInner = this.innerCount(nTokens);
    if (nInner > 0) this.inner.scores(head, q, qOffset, nq, nInner, out, outOffset + this.S, outStride);
  }

  accumulate(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    this.checkRange(nTokens);
    const D = this.headDim;
    const acc = new Float64Array(nq * D);
    this.forOwn(head, nTokens, (t, data, o) => {
      const v = this.ownRow(data, o, t, false);
      for (let i = 0; i < nq; i++) {
        const p = w[wOffset + i * wStride + t];
        for (let d = 0, ao = i * D; d < D; d++) acc[ao + d] += p * v[d];
      }
    });
    for (let i = 0; i < nq * D; i++) out[outOffset + i] += acc[i];
    const nInner = this.innerCount(nTokens);
    if (nInner > 0) this.inner.accumulate(head, w, wOffset + this.S, wStride, nq, nInner, out, outOffset);
  }

  bytes(): number {
    return (this.sinkLen + this.recentLen) * this.rowWidth * 2 + this.inner.bytes();
  }

  decode(t0: number, t1: number, out: Float32Array): void {
    this.checkRange(t1);
    const { rowWidth, S } = this;
    const i0 = Math.max(t0, S);
    const i1 = Math.min(t1, S + this.inner.length);
    if (i1 > i0) this.inner.decode(i0 - S, i1 - S, out.subarray((i0 - t0) * rowWidth, (i1 - t0) * rowWidth));
    const first = this.recentFirst;
    const copy = (t: number, src: Uint16Array, o: number): void => {
      for (let i = 0; i < rowWidth; i++) out[(t - t0) * rowWidth + i] = f16Table[src[o + i]];
    };
    for (let t = t0; t < Math.min(t1, this.sinkLen); t++) copy(t, this.sink, t * rowWidth);
    for (let t = Math.max(t0, first); t < t1; t++) copy(t, this.recent, this.slot(t - first) * rowWidth);
  }

  truncate(length: number): void {
    if (!Number.isInteger(length) || length < 0 || length > this.length) throw new RangeError(`cannot truncate ${this.length} tokens to ${length}`);
    const first = this.recentFirst;
    if (length >= first) {
      this.recentLen = length - first;
      return;
    }
    // INNER first: if it refuses, nothing has changed.
    this.inner.truncate(Math.max(length - this.S, 0));
    this.sinkLen = Math.min(length, this.S);
    this.recentStart = 0;
    this.recentLen = 0;
  }
}

function count(spec: ParsedSpec, key: string, fallback: number): number {
  const text = spec.params.get(key);
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(v)) throw new CodecSpecError(`window: ${key} must be an integer ≥ 0 (got "${text}")`);
  return v;
}

export const windowCodecs: CodecFactory[] = [
  {
    name: 'window',
    summary: 'window(sink=4,recent=64):INNER — first S and last R tokens in fp16, the rest in INNER',
    create(spec: ParsedSpec, ctx: CodecContext, build: CodecBuilder): KvCodec {
      if (spec.inner === undefined) {
        throw new CodecSpecError(`window: expected window(sink=S,recent=R):INNER, e.g. window(sink=4,recent=64):kivi:2 (got "${spec.text}")`);
      }
      for (const key of spec.params.keys()) {
        if (key !== 'sink' && key !== 'recent') throw new CodecSpecError(`window: unknown parameter "${key}" in "${spec.text}"; valid: sink, recent`);
      }
      return new WindowCodec(ctx, count(spec, 'sink', 4), count(spec, 'recent', 64), spec.inner, build);
    },
  },
];
