// The battery every KV codec must pass (issue 3): reconstruction within the method's documented
// bound, scores/accumulate equal to decode-then-multiply, streaming = bulk where defined, exact
// byte accounting, adversarial inputs, and NaN/Inf rejection.
import { describe, expect, it } from 'vitest';
import type { CodecContext, KvCodec, KvRole } from '../../src/kv/codec.js';
import { createCodec } from '../../src/kv/registry.js';

export interface ConformanceOptions {
  readonly spec: string;
  readonly roles?: readonly KvRole[];
  readonly headDims?: readonly number[];
  readonly nKvHeads?: number;
  /** Tokens appended in the main tests (enough to fill groups and leave a residual). */
  readonly tokens?: number;
  /** Bound on ‖x̂ − x‖_F / ‖x‖_F for gaussian rows with a 10× outlier channel per head. */
  readonly relError: number | ((ctx: CodecContext) => number);
  /** Exact bytes() after T tokens; omit only for methods whose size depends on the data. */
  readonly bytes?: (T: number, ctx: CodecContext) => number;
  /** One-token-at-a-time appends decode identically to one bulk append (default true). */
  readonly streamingEqualsBulk?: boolean;
  /**
   * Bound on the relative error of a block of equal values (default 0.01). Power-of-two-scaled
   * minifloats cannot do better than their mantissa's half step: 2^-4 for E4M3, 0.2 for E2M1.
   */
  readonly constantRelError?: number;
  /** Extra context fields (rope for pre-RoPE codecs). */
  readonly ctx?: Partial<CodecContext>;
}

export function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const u = (): number => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

/** Gaussian rows with one outlier channel per head (10×), as real keys have. */
export function kvRows(T: number, nKvHeads: number, headDim: number, seed: number): Float32Array {
  const x = randn(T * nKvHeads * headDim, seed);
  for (let t = 0; t < T; t++) for (let h = 0; h < nKvHeads; h++) x[(t * nKvHeads + h) * headDim + (3 % headDim)] *= 10;
  return x;
}

export function relFrobenius(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

function fill(codec: KvCodec, x: Float32Array, T: number, width: number, oneByOne: boolean): void {
  if (!oneByOne) return codec.append(x.subarray(0, T * width), T);
  for (let t = 0; t < T; t++) codec.append(x.subarray(t * width, (t + 1) * width), 1);
}

export function decoded(codec: KvCodec, width: number): Float32Array {
  const out = new Float32Array(codec.length * width);
  codec.decode(0, codec.length, out);
  return out;
}

/** max |a − b| / max |b|: the "relative" of issue 3's 1e-4 product check. */
function relMax(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return m === 0 ? d : d / m;
}

/** Products through the codec vs the same products over decode(); returns the worst relative gap. */
export function productGap(codec: KvCodec, ctx: CodecContext, seed: number): number {
  const { headDim, nKvHeads } = ctx;
  const width = nKvHeads * headDim;
  const T = codec.length;
  const dec = decoded(codec, width);
  const nq = 2;
  const q = randn(nq * headDim, seed);
  const w = randn(nq * T, seed + 1);
  let worst = 0;
  for (let h = 0; h < nKvHeads; h++) {
    const stride = T + 3;
    const s = new Float32Array(nq * stride);
    codec.scores(h, q, 0, nq, T, s, 0, stride);
    const acc = new Float32Array(nq * headDim);
    codec.accumulate(h, w, 0, T, nq, T, acc, 0);
    const refS = new Float32Array(nq * stride);
    const refA = new Float32Array(nq * headDim);
    for (let i = 0; i < nq; i++)
      for (let t = 0; t < T; t++) {
        let sum = 0;
        for (let d = 0; d < headDim; d++) {
          const v = dec[t * width + h * headDim + d];
          sum += q[i * headDim + d] * rotated(ctx, codec, t, d, v, dec, h);
          refA[i * headDim + d] += w[i * T + t] * v;
        }
        refS[i * stride + t] = sum;
      }
    worst = Math.max(worst, relMax(s, refS), relMax(acc, refA));
  }
  return worst;
}

// decode() returns what the codec stored; for pre-RoPE keys that is the unrotated key, which
// scores() rotates to its position first. The reference does the same rotation.
function rotated(ctx: CodecContext, codec: KvCodec, t: number, d: number, v: number, dec: Float32Array, h: number): number {
  if (!codec.preRope || !ctx.rope || d >= ctx.rope.dim) return v;
  const i = d >> 1;
  const pos = (ctx.firstPosition ?? 0) + t;
  const a = pos * Math.pow(ctx.rope.theta, (-2 * i) / ctx.rope.dim);
  const base = t * ctx.nKvHeads * ctx.headDim + h * ctx.headDim + 2 * i;
  const x0 = dec[base];
  const x1 = dec[base + 1];
  return d % 2 === 0 ? x0 * Math.cos(a) - x1 * Math.sin(a) : x0 * Math.sin(a) + x1 * Math.cos(a);
}

/** Registers the standard conformance tests for one spec. */
export function codecConformance(o: ConformanceOptions): void {
  const roles = o.roles ?? ['k', 'v'];
  const headDims = o.headDims ?? [8, 64, 128];
  const nKvHeads = o.nKvHeads ?? 2;
  const T = o.tokens ?? 300;
  const cases = roles.flatMap((role) => headDims.map((headDim) => ({ role, headDim })));
  const mk = (role: KvRole, headDim: number, capacity = T + 8): { codec: KvCodec; ctx: CodecContext } => {
    const ctx: CodecContext = { role, layer: 0, nKvHeads, headDim, capacity, rope: { theta: 10000, dim: headDim }, ...o.ctx };
    return { codec: createCodec(o.spec, ctx), ctx };
  };

  describe(`conformance of "${o.spec}"`, () => {
    it.each(cases)('reconstructs within its bound and scores/accumulates as decode-then-multiply ($role, head_dim $headDim)', ({ role, headDim }) => {
      const { codec, ctx } = mk(role, headDim);
      const width = nKvHeads * headDim;
      const x = kvRows(T, nKvHeads, headDim, 17 + headDim);
      fill(codec, x, T, width, false);
      expect(codec.length).toBe(T);
      const bound = typeof o.relError === 'function' ? o.relError(ctx) : o.relError;
      expect(relFrobenius(decoded(codec, width), x)).toBeLessThanOrEqual(bound);
      expect(productGap(codec, ctx, 5)).toBeLessThan(1e-4);
      if (o.bytes) expect(codec.bytes()).toBe(o.bytes(T, ctx));
    });

    it.each(cases)('one token at a time equals one bulk append ($role, head_dim $headDim)', ({ role, headDim }) => {
      if (o.streamingEqualsBulk === false) return;
      const width = nKvHeads * headDim;
      const x = kvRows(T, nKvHeads, headDim, 99);
      const a = mk(role, headDim).codec;
      const b = mk(role, headDim).codec;
      fill(a, x, T, width, false);
      fill(b, x, T, width, true);
      expect(decoded(b, width)).toEqual(decoded(a, width));
      expect(b.bytes()).toBe(a.bytes());
    });

    it.each(roles)('adversarial input: zeros, constants, one token, 1e30, NaN/Inf (%s)', (role) => {
      const headDim = 64;
      const width = nKvHeads * headDim;
      const zeros = mk(role, headDim);
      zeros.codec.append(new Float32Array(40 * width), 40);
      expect(decoded(zeros.codec, width).every((v) => v === 0)).toBe(true);
      expect(productGap(zeros.codec, zeros.ctx, 1)).toBe(0);

      const constant = mk(role, headDim);
      constant.codec.append(new Float32Array(40 * width).fill(0.37), 40);
      expect(relFrobenius(decoded(constant.codec, width), new Float32Array(40 * width).fill(0.37))).toBeLessThan(o.constantRelError ?? 0.01);

      const one = mk(role, headDim);
      const row = kvRows(1, nKvHeads, headDim, 3);
      one.codec.append(row, 1);
      expect(one.codec.length).toBe(1);
      expect(productGap(one.codec, one.ctx, 2)).toBeLessThan(1e-4);

      // Values beyond a format's range must be refused by name, never stored as garbage.
      const huge = mk(role, headDim);
      const big = kvRows(4, nKvHeads, headDim, 4).map((v) => v * 1e30);
      let refused = false;
      try {
        huge.codec.append(big, 4);
      } catch (e) {
        refused = true;
        expect((e as Error).message).toMatch(/range|overflow|exceeds|too large/i);
      }
      if (!refused) {
        const d = decoded(huge.codec, width);
        expect(d.every(Number.isFinite)).toBe(true);
        expect(relFrobenius(d, big)).toBeLessThanOrEqual(Math.max(0.5, typeof o.relError === 'number' ? o.relError : 0.5));
      }

      for (const bad of [NaN, Infinity, -Infinity]) {
        const c = mk(role, headDim).codec;
        const r = kvRows(2, nKvHeads, headDim, 5);
        r[width + 7] = bad;
        expect(() => c.append(r, 2)).toThrow(/non-finite/);
      }
    });

    it('truncate(0) empties it for reuse, and bytes() drop to zero', () => {
      const { codec } = mk(roles[0], 64);
      const width = nKvHeads * 64;
      const x = kvRows(50, nKvHeads, 64, 8);
      codec.append(x.subarray(0, 50 * width), 50);
      codec.truncate(0);
      expect(codec.length).toBe(0);
      expect(codec.bytes()).toBe(0);
      codec.append(x.subarray(0, 10 * width), 10);
      expect(codec.length).toBe(10);
    });
  });
}
