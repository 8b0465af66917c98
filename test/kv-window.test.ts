import { describe, expect, it } from 'vitest';
import { CodecSpecError, parseSpec, type CodecBuilder, type CodecContext, type KvCodec } from '../src/kv/codec.js';
import { windowCodecs } from '../src/kv/codecs/window.js';
import { createCodec } from '../src/kv/registry.js';
import { f16ToF32, f32ToF16 } from '../src/numeric/f16.js';
import { codecConformance, kvRows, productGap, randn } from './helpers/codec-conformance.js';

const f16Bytes = (T: number, c: CodecContext): number => T * c.nKvHeads * c.headDim * 2;
const mxint8Bytes = (T: number, c: CodecContext): number => T * c.nKvHeads * (c.headDim + Math.ceil(c.headDim / 32));

// Own tokens and an f16 inner round once to fp16 (≤ 2^−11 relative); a bf16 inner rounds the
// fp16 value again (≤ 2^−8); an mxint8 inner adds its own bound √min(32, d)/127 (kv-mx.test.ts).
codecConformance({ spec: 'window(sink=4,recent=16):f16', relError: 2 ** -11, bytes: f16Bytes });
codecConformance({ spec: 'window(sink=0,recent=16):f16', relError: 2 ** -11, bytes: f16Bytes });
codecConformance({ spec: 'window(sink=4,recent=0):f16', relError: 2 ** -11, bytes: f16Bytes });
codecConformance({ spec: 'window(sink=0,recent=0):bf16', relError: 2 ** -11 + 2 ** -8, bytes: f16Bytes });
codecConformance({ spec: 'window(sink=2,recent=8):window(sink=3,recent=5):f16', relError: 2 ** -11, bytes: f16Bytes });
codecConformance({
  spec: 'window(sink=4,recent=16):mxint8',
  relError: (c) => 2 ** -11 + Math.sqrt(Math.min(32, c.headDim)) / 127,
  bytes: (T, c) => f16Bytes(Math.min(T, 20), c) + mxint8Bytes(Math.max(T - 20, 0), c),
});

const ROW = 2 * 8;
const ctxOf = (capacity: number, extra: Partial<CodecContext> = {}): CodecContext => ({ role: 'k', layer: 0, nKvHeads: 2, headDim: 8, capacity, ...extra });

/** A builder that records every append the inner codec receives (token ids from the row values). */
function recording(): { build: CodecBuilder; received: number[]; innerCtx: CodecContext[] } {
  const received: number[] = [];
  const innerCtx: CodecContext[] = [];
  const build: CodecBuilder = (spec, ctx) => {
    innerCtx.push(ctx);
    const inner = createCodec(spec, ctx);
    const append = inner.append.bind(inner);
    inner.append = (src, count) => {
      append(src, count);
      for (let r = 0; r < count; r++) received.push(src[r * ROW]);
    };
    return inner;
  };
  return { build, received, innerCtx };
}

function makeWindow(text: string, ctx: CodecContext, build: CodecBuilder = createCodec): KvCodec {
  return windowCodecs[0].create(parseSpec(text), ctx, build);
}

/** Token t's row: every value t (exact in fp16), so decode shows which token sits where. */
function tokens(t0: number, n: number): Float32Array {
  const x = new Float32Array(n * ROW);
  for (let r = 0; r < n; r++) x.fill(t0 + r, r * ROW, (r + 1) * ROW);
  return x;
}

function decodeAll(codec: KvCodec, width: number): Float32Array {
  const out = new Float32Array(codec.length * width);
  codec.decode(0, codec.length, out);
  return out;
}

describe('window wrapper', () => {
  it('fills the sinks first, slides the recent window, and hands aged tokens to the inner codec in order', () => {
    const S = 3;
    const R = 4;
    const { build, received, innerCtx } = recording();
    const w = makeWindow(`window(sink=${S},recent=${R}):f16`, ctxOf(40, { firstPosition: 7 }), build);
    expect(innerCtx[0].capacity).toBe(40 - S - R);
    expect(innerCtx[0].firstPosition).toBe(7 + S);
    for (let n = 1; n <= 20; n++) {
      w.append(tokens(n - 1, 1), 1);
      const inInner = Math.max(0, n - S - R);
      expect(w.length).toBe(n);
      expect(received).toEqual(Array.from({ length: inInner }, (_, i) => S + i));
      const own = Math.min(n, S) + Math.min(R, Math.max(0, n - S));
      expect(w.bytes()).toBe(own * ROW * 2 + inInner * ROW * 2);
      const d = decodeAll(w, ROW);
      for (let t = 0; t < n; t++) expect(d[t * ROW + 5]).toBe(t);
    }
  });

  it('splits bulk appends the same way, whatever the chunk sizes', () => {
    for (const chunks of [[20], [1, 19], [2, 5, 13], [6, 1, 1, 12], [3, 4, 13]]) {
      const { build, received } = recording();
      const w = makeWindow('window(sink=3,recent=4):f16', ctxOf(40), build);
      let t = 0;
      for (const c of chunks) {
        w.append(tokens(t, c), c);
        t += c;
      }
      expect(received).toEqual(Array.from({ length: 13 }, (_, i) => 3 + i));
      expect(Array.from(decodeAll(w, ROW).filter((_, i) => i % ROW === 0))).toEqual(Array.from({ length: 20 }, (_, i) => i));
    }
  });

  it('scores and accumulates over any prefix of the three regions', () => {
    const w = makeWindow('window(sink=3,recent=5):mxfp4', ctxOf(40));
    const x = kvRows(17, 2, 8, 4);
    w.append(x, 17);
    const dec = decodeAll(w, ROW);
    const q = randn(2 * 8, 1);
    const p = randn(2 * 17, 2);
    for (const n of [0, 1, 3, 4, 9, 12, 13, 17]) {
      for (let h = 0; h < 2; h++) {
        const s = new Float32Array(2 * 20).fill(99);
        w.scores(h, q, 0, 2, n, s, 0, 20);
        const acc = new Float32Array(2 * 8);
        w.accumulate(h, p, 0, 17, 2, n, acc, 0);
        for (let i = 0; i < 2; i++) {
          for (let t = 0; t < 20; t++) {
            let ref = 0;
            for (let d = 0; d < 8; d++) ref += q[i * 8 + d] * dec[t * ROW + h * 8 + d];
            // mxfp4 scores its codes against a 16-bit integer query: |error| ≲ 2⁻¹⁵·Σ|q||k| per block.
            if (t < n) expect(Math.abs(s[i * 20 + t] - ref)).toBeLessThan(1e-4 * (1 + Math.abs(ref)));
            else expect(s[i * 20 + t]).toBe(99);
          }
          for (let d = 0; d < 8; d++) {
            let ref = 0;
            for (let t = 0; t < n; t++) ref += p[i * 17 + t] * dec[t * ROW + h * 8 + d];
            expect(acc[i * 8 + d]).toBeCloseTo(ref, 5);
          }
        }
      }
    }
  });

  it('stores fp16 and hands the inner codec the same fp16 value either way', () => {
    const x = Float32Array.from({ length: 12 * ROW }, (_, i) => 1 + i / 3000);
    const { build, received } = recording();
    const w = makeWindow('window(sink=1,recent=2):f32', ctxOf(20), build);
    w.append(x, 12);
    const d = decodeAll(w, ROW);
    for (let i = 0; i < d.length; i++) expect(d[i]).toBe(f16ToF32(f32ToF16(x[i])));
    expect(received.length).toBe(9);
    expect(() => w.append(new Float32Array(ROW).fill(70000), 1)).toThrow(/overflows the window's fp16/);
    expect(w.length).toBe(12);
  });

  it('is pre-RoPE when its inner codec is, rotating its own keys to their positions', () => {
    const rope = { theta: 10000, dim: 8 };
    for (const firstPosition of [0, 11]) {
      const ctx = ctxOf(40, { rope, firstPosition });
      const w = makeWindow('window(sink=2,recent=3):fake', ctx, (_spec, innerCtx) => new PreRopeF32(innerCtx));
      expect(w.preRope).toBe(true);
      w.append(kvRows(12, 2, 8, 6), 12);
      expect(productGap(w, ctx, 3)).toBeLessThan(1e-5);
      // The same keys rotated by position first, in a plain window, give the same scores.
      const rotated = kvRows(12, 2, 8, 6);
      for (let t = 0; t < 12; t++) ropeRow(rotated, t * ROW, firstPosition + t, rope.theta);
      const plain = makeWindow('window(sink=2,recent=3):f32', ctx);
      plain.append(rotated, 12);
      expect(plain.preRope).toBe(false);
      const q = randn(8, 9);
      const a = new Float32Array(12);
      const b = new Float32Array(12);
      w.scores(1, q, 0, 1, 12, a, 0, 12);
      plain.scores(1, q, 0, 1, 12, b, 0, 12);
      // Equal up to where each rounds to fp16 (before or after the rotation).
      const scale = Math.max(...b.map(Math.abs));
      for (let t = 0; t < 12; t++) expect(Math.abs(a[t] - b[t])).toBeLessThan(2 ** -9 * scale);
    }
    expect(() => makeWindow('window(sink=2,recent=3):fake', ctxOf(40), (_s, c) => new PreRopeF32(c))).toThrow(/no RoPE parameters/);
  });

  it('truncates into any region', () => {
    const all = tokens(0, 20);
    for (const n of [20, 18, 15, 12, 8, 7, 5, 2, 0]) {
      const w = makeWindow('window(sink=3,recent=5):f16', ctxOf(40));
      w.append(all, 20);
      w.truncate(n);
      expect(w.length).toBe(n);
      expect(Array.from(decodeAll(w, ROW).filter((_, i) => i % ROW === 0))).toEqual(Array.from({ length: n }, (_, i) => i));
      // Refill to 20: the same tokens, in order, all accounted for.
      w.append(all.subarray(n * ROW), 20 - n);
      expect(Array.from(decodeAll(w, ROW).filter((_, i) => i % ROW === 0))).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(w.bytes()).toBe(20 * ROW * 2);
    }
    const w = makeWindow('window(sink=3,recent=5):f16', ctxOf(40));
    expect(() => w.truncate(1)).toThrow(RangeError);
    w.append(all, 20);
    expect(() => w.append(tokens(20, 21), 21)).toThrow(/KV cache full/);
  });

  it('parses and validates its spec', () => {
    const p = parseSpec('window(sink=4,recent=64):kivi:2');
    expect(p).toMatchObject({ name: 'window', inner: 'kivi:2' });
    expect(p.params.get('sink')).toBe('4');
    expect(p.params.get('recent')).toBe('64');
    const ctx = ctxOf(100);
    expect(createCodec('window():f16', ctx).spec).toBe('window(sink=4,recent=64):f16');
    expect(createCodec('window(recent=0,sink=1):fp16', ctx).spec).toBe('window(sink=1,recent=0):f16');
    for (const bad of ['window(sink=-1):f16', 'window(sink=1.5):f16', 'window(recent=x):f16', 'window(recent):f16']) {
      expect(() => createCodec(bad, ctx)).toThrow(/must be an integer ≥ 0/);
    }
    expect(() => createCodec('window(size=3):f16', ctx)).toThrow(/unknown parameter "size".*valid: sink, recent/);
    expect(() => createCodec('window:f16', ctx)).toThrow(/expected window\(sink=S,recent=R\):INNER/);
    expect(() => createCodec('window(sink=1):nonsense', ctx)).toThrow(CodecSpecError);
  });
});

/** Rotates each head's interleaved pairs of row r by pos·θ^(−2i/8), as the model's RoPE does. */
function ropeRow(x: Float32Array, o: number, pos: number, theta: number): void {
  for (let h = 0; h < 2; h++) {
    for (let i = 0; i < 4; i++) {
      const a = pos * Math.pow(theta, (-2 * i) / 8);
      const j = o + h * 8 + 2 * i;
      const [x0, x1] = [x[j], x[j + 1]];
      x[j] = x0 * Math.cos(a) - x1 * Math.sin(a);
      x[j + 1] = x0 * Math.sin(a) + x1 * Math.cos(a);
    }
  }
}

/** A minimal pre-RoPE codec (float32, rotates in scores()) standing in for KVQuant-style inners. */
class PreRopeF32 implements KvCodec {
  readonly spec = 'fake';
  readonly preRope = true;
  length = 0;
  private readonly data: Float32Array;
  constructor(private readonly ctx: CodecContext) {
    this.data = new Float32Array(ctx.capacity * ROW);
  }
  append(src: Float32Array, count: number): void {
    this.data.set(src.subarray(0, count * ROW), this.length * ROW);
    this.length += count;
  }
  scores(head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number): void {
    const k = new Float32Array(ROW);
    for (let t = 0; t < nTokens; t++) {
      k.set(this.data.subarray(t * ROW, (t + 1) * ROW));
      ropeRow(k, 0, (this.ctx.firstPosition ?? 0) + t, this.ctx.rope!.theta);
      for (let i = 0; i < nq; i++) {
        let s = 0;
        for (let d = 0; d < 8; d++) s += q[qOffset + i * 8 + d] * k[head * 8 + d];
        out[outOffset + i * outStride + t] = s;
      }
    }
  }
  accumulate(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    for (let i = 0; i < nq; i++) for (let t = 0; t < nTokens; t++) for (let d = 0; d < 8; d++) out[outOffset + i * 8 + d] += w[wOffset + i * wStride + t] * this.data[t * ROW + head * 8 + d];
  }
  bytes(): number {
    return this.length * ROW * 4;
  }
  decode(t0: number, t1: number, out: Float32Array): void {
    out.set(this.data.subarray(t0 * ROW, t1 * ROW));
  }
  truncate(length: number): void {
    this.length = length;
  }
}
