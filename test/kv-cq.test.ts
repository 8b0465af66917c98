import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rng } from '../src/engine/rng.js';
import { rope, ropeInvFreq } from '../src/kernels/ref/ops.js';
import { calibrate, collectSamples } from '../src/kv/calibration.js';
import { CodecSpecError, type CodecContext, type KvRole } from '../src/kv/codec.js';
import { createCodec } from '../src/kv/registry.js';
import { CAL_ROWS, calibrationDir, ctxFor, N_KV, randomModel, randomTokens, syntheticSamples as samples } from './helpers/calibrated.js';
import { decoded, kvRows, productGap, randn, relFrobenius } from './helpers/codec-conformance.js';
import { withPlainStorage } from '../src/kv/codecs/attn-wasm.js';

const { dir: DIR, calibFile } = calibrationDir('lowkv-cq-');

/** bytes() re-derived from cq.ts's layout comment. */
function cqBytes(T: number, ctx: CodecContext, c: number, b: number): number {
  if (T === 0) return 0;
  const groups = ctx.nKvHeads * Math.ceil(ctx.headDim / c);
  return 2 * ctx.nKvHeads * ctx.headDim * 2 ** b + Math.ceil((T * groups * b) / 8);
}

/** Relative reconstruction error on the calibration rows themselves: the k-means inertia. */
function trainingError(spec: string, role: KvRole, headDim: number): number {
  const codec = createCodec(spec, ctxFor(role, headDim, CAL_ROWS));
  const x = samples(role, headDim).rows;
  codec.append(x, CAL_ROWS);
  return relFrobenius(decoded(codec, N_KV * headDim), x);
}

/**
 * Error bound: fresh samples of the calibration distribution are coded about as well as the
 * calibration samples (the k-means training error), up to a generalization gap that grows as the
 * samples per centroid shrink: ≤ 7% measured with 2048/2^b ≥ 64 of them, ≤ 28% with 8 (b = 8).
 */
const VARIANTS = [
  { method: 'cq:4c4b', c: 4, b: 4, gap: 1.1, headDims: [8, 64, 128] },
  { method: 'cq:2c4b', c: 2, b: 4, gap: 1.1, headDims: [8, 64, 128] },
  // 3 does not divide 8, 64 or 128: each head ends with a narrower group.
  { method: 'cq:3c5b', c: 3, b: 5, gap: 1.1, headDims: [8, 64, 128] },
  { method: 'cq:4c8b', c: 4, b: 8, gap: 1.35, headDims: [8, 64, 128] },
  { method: 'cq:8c8b', c: 8, b: 8, gap: 1.35, headDims: [8] },
];
const files = new Map<string, string>();
for (const v of VARIANTS) for (const hd of v.headDims) files.set(`${v.method}/${hd}`, calibFile(v.method, hd));
const specOf = (method: string, hd: number): string => `${method},calib=${files.get(`${method}/${hd}`)}`;

/**
 * codecConformance's battery, less its zeros/constants exactness: a vector-quantized zero or
 * constant vector comes back as its nearest centroid, not exactly. Keys are stored before RoPE
 * (scores() rotates; the reference rotates decode()).
 */
describe.each(VARIANTS)('conformance of $method (calibrated battery)', (v) => {
  const T = 300;
  const cases = v.headDims.flatMap((hd) => (['k', 'v'] as const).map((role) => ({ role, hd })));
  it.each(cases)('reconstructs within its bound, scores/accumulate = decode-then-multiply, exact bytes, streaming = bulk ($role, head_dim $hd)', ({ role, hd }) => {
    const spec = specOf(v.method, hd);
    const bound = v.gap * trainingError(spec, role, hd);
    const ctx = ctxFor(role, hd, T + 8);
    const bulk = createCodec(spec, ctx);
    expect(bulk.preRope).toBe(role === 'k');
    const x = kvRows(T, N_KV, hd, 17 + hd);
    bulk.append(x, T);
    const W = N_KV * hd;
    expect(relFrobenius(decoded(bulk, W), x)).toBeLessThanOrEqual(bound);
    expect(productGap(bulk, ctx, 5)).toBeLessThan(1e-4);
    expect(bulk.bytes()).toBe(cqBytes(T, ctx, v.c, v.b));
    const one = createCodec(spec, ctx);
    for (let t = 0; t < T; t++) one.append(x.subarray(t * W, (t + 1) * W), 1);
    expect(decoded(one, W)).toEqual(decoded(bulk, W));
    expect(one.bytes()).toBe(bulk.bytes());
  });

  it.each(['k', 'v'] as const)('adversarial input: zeros and constants stay finite, one token, 1e30 and NaN/Inf refused, truncate(0), capacity (%s)', (role) => {
    const hd = v.headDims.includes(64) ? 64 : v.headDims[0];
    const W = N_KV * hd;
    const spec = specOf(v.method, hd);
    for (const fill of [0, 0.37]) {
      const ctx = ctxFor(role, hd, 48);
      const c = createCodec(spec, ctx);
      c.append(new Float32Array(40 * W).fill(fill), 40);
      expect(decoded(c, W).every(Number.isFinite)).toBe(true);
      expect(productGap(c, ctx, 1)).toBeLessThan(1e-4);
    }
    const ctx = ctxFor(role, hd, 48, { firstPosition: 7 });
    const one = createCodec(spec, ctx);
    one.append(kvRows(1, N_KV, hd, 3), 1);
    expect(productGap(one, ctx, 2)).toBeLessThan(1e-4);

    const huge = createCodec(spec, ctxFor(role, hd, 8));
    expect(() => huge.append(kvRows(4, N_KV, hd, 4).map((x) => x * 1e30), 4)).toThrow(/exceeds the fp16 range/);
    expect(huge.length).toBe(0);
    for (const bad of [NaN, Infinity, -Infinity]) {
      const r = kvRows(2, N_KV, hd, 5);
      r[W + 7] = bad;
      expect(() => createCodec(spec, ctxFor(role, hd, 8)).append(r, 2)).toThrow(/non-finite/);
    }
    const c = createCodec(spec, ctxFor(role, hd, 60));
    c.append(kvRows(50, N_KV, hd, 8), 50);
    c.truncate(0);
    expect(c.bytes()).toBe(0);
    c.append(kvRows(10, N_KV, hd, 9), 10);
    expect(c.length).toBe(10);
    expect(() => c.append(kvRows(51, N_KV, hd, 9), 51)).toThrow(/KV cache full/);
  });
});

describe('cq specifics', () => {
  const hd = 64;
  const W = N_KV * hd;
  const path = files.get(`cq:3c5b/${hd}`)!;
  const books = (JSON.parse(readFileSync(path, 'utf8')) as { layers: Array<{ k: { centroids: number[][] } }> }).layers[0].k.centroids;

  it('stores one 2^b-entry codebook per channel group, the last group of a head narrower when c does not divide head_dim', () => {
    const widths = [...Array(21).fill(3), 1];
    expect(books).toHaveLength(N_KV * widths.length);
    books.forEach((book, g) => expect(book).toHaveLength(32 * widths[g % widths.length]));
  });

  it.each([0, 37])('pre-RoPE keys: rows made of centroids come back exact, and scores equal f32 scores of the RoPE-rotated rows bit for bit (firstPosition %i)', (firstPosition) => {
    const T = 50;
    const rng = new Rng(3);
    const widths = [...Array(21).fill(3), 1];
    const x = new Float32Array(T * W);
    for (let t = 0; t < T; t++) {
      for (let h = 0, g = 0; h < N_KV; h++) {
        for (let gi = 0, ch = h * hd; gi < widths.length; ch += widths[gi], gi++, g++) {
          const code = rng.nextU32() % 32;
          for (let e = 0; e < widths[gi]; e++) x[t * W + ch + e] = books[g][code * widths[gi] + e];
        }
      }
    }
    const ctx = ctxFor('k', hd, T, { firstPosition });
    const cq = createCodec(`cq:3c5b,calib=${path}`, ctx);
    cq.append(x, T);
    expect(decoded(cq, W)).toEqual(x);
    // The plain-TS f32 codec: the pre-RoPE codecs score in its order (the WASM one sums in lanes).
    const f32 = withPlainStorage(() => createCodec('f32', ctx));
    const rotated = Float32Array.from(x);
    rope(rotated, T, N_KV, hd, firstPosition, ropeInvFreq(10000, hd), new Float32Array(hd / 2), new Float32Array(hd / 2));
    f32.append(rotated, T);
    const q = randn(3 * hd, 2);
    for (let h = 0; h < N_KV; h++) {
      const a = new Float32Array(3 * T);
      const b = new Float32Array(3 * T);
      cq.scores(h, q, 0, 3, T, a, 0, T);
      f32.scores(h, q, 0, 3, T, b, 0, T);
      expect(a).toEqual(b);
    }
  });

  it('codes each group as its nearest centroid', () => {
    const x = kvRows(20, N_KV, hd, 61);
    const c = createCodec(`cq:3c5b,calib=${path}`, ctxFor('k', hd, 20));
    c.append(x, 20);
    const d = decoded(c, W);
    for (let t = 0; t < 20; t++) {
      // Group 0 of head 0: channels 0–2.
      const dist = (code: number): number => [0, 1, 2].reduce((s, e) => s + (x[t * W + e] - Math.fround(books[0][code * 3 + e])) ** 2, 0);
      const best = Math.min(...Array.from({ length: 32 }, (_, code) => dist(code)));
      expect([0, 1, 2].reduce((s, e) => s + (x[t * W + e] - d[t * W + e]) ** 2, 0)).toBeCloseTo(best, 10);
    }
  });

  it('refuses missing, mismatched and damaged calibration by name', () => {
    const ctx = ctxFor('v', hd, 4);
    expect(() => createCodec('cq:3c5b', ctx)).toThrow(/cq needs calibration data: run `lowkv calibrate/);
    expect(() => createCodec(`cq:3c4b,calib=${path}`, ctx)).toThrow(/made for cq:3c5b, the spec asks for cq:3c4b/);
    expect(() => createCodec(`cq:3c5b,calib=${files.get('cq:3c5b/8')}`, ctx)).toThrow(/does not match this model/);
    const kvq = calibrate('kvquant:3', [samples('k', hd, 64), samples('v', hd, 64)], { name: 's', nLayers: 1, nKvHeads: N_KV, headDim: hd }, { file: 'x', tokens: 64 });
    const kvqPath = join(DIR, 'kvquant-for-cq.json');
    writeFileSync(kvqPath, JSON.stringify(kvq));
    expect(() => createCodec(`cq:3c5b,calib=${kvqPath}`, ctx)).toThrow(/calibrated for kvquant:3, not cq/);

    const good = JSON.parse(readFileSync(path, 'utf8')) as { layers: Array<{ v: { centroids: unknown[][] } }> };
    const damaged = (name: string, change: (a: { centroids: unknown[][] }) => void): string => {
      const f = structuredClone(good);
      change(f.layers[0].v);
      const p = join(DIR, `damaged-${name}.json`);
      writeFileSync(p, JSON.stringify(f));
      return `cq:3c5b,calib=${p}`;
    };
    expect(() => createCodec(damaged('groups', (a) => a.centroids.pop()), ctx)).toThrow(/layer 0 values: centroids must hold 44 codebooks \(got 43\)/);
    expect(() => createCodec(damaged('short', (a) => a.centroids[21].pop()), ctx)).toThrow(/codebook 21 must hold 32 numbers \(got 31\)/);
    expect(() => createCodec(damaged('nan', (a) => (a.centroids[2][5] = null)), ctx)).toThrow(/codebook 2 entry 5 = null is not a finite fp16 number/);
    expect(() => createCodec(damaged('huge', (a) => (a.centroids[0][0] = 7e4)), ctx)).toThrow(/codebook 0 entry 0 = 70000 is not a finite fp16 number/);
  });

  it.each([
    ['cq', /expected cq:<c>c<b>b/],
    ['cq:4c', /expected cq:<c>c<b>b/],
    ['cq:0c8b', /channels per group must be 1 to 64/],
    ['cq:65c8b', /channels per group must be 1 to 64/],
    ['cq:4c0b', /bits per code must be 1 to 12/],
    ['cq:4c13b', /bits per code must be 1 to 12/],
    ['cq:4c8b,window=128', /unknown parameter "window" \(valid: calib\)/],
  ])('refuses %s', (spec, message) => {
    expect(() => createCodec(spec, ctxFor('v', hd, 4))).toThrow(CodecSpecError);
    expect(() => createCodec(spec, ctxFor('v', hd, 4))).toThrow(message);
  });
});

describe('cq through the real pipeline', () => {
  it('collectSamples → calibrate → file → cache: pre-RoPE keys, logits close to f32, exact bits/value', async () => {
    const model = randomModel();
    const s = await collectSamples(model, randomTokens(1024, 1));
    const file = calibrate('cq:2c6b', s, { name: 'random', nLayers: 2, nKvHeads: 2, headDim: 8 }, { file: 'random tokens', tokens: s[0].nRows });
    const path = join(DIR, 'pipeline-cq2c6b.json');
    writeFileSync(path, JSON.stringify(file));

    const tokens = randomTokens(300, 2);
    const ref = Float32Array.from(model.forward(tokens, model.newCache(tokens.length), 0));
    const spec = `cq:2c6b,calib=${path}`;
    const cache = model.newCache(tokens.length, { k: spec, v: spec });
    const q = Float32Array.from(model.forward(tokens, cache, 0));
    expect(cache.layers[0].k.preRope).toBe(true);
    // q4_0 for both K and V gives 0.06 on this model.
    expect(relFrobenius(q, ref)).toBeLessThan(0.15);
    // 3 bits/value of codes plus the codebooks: 16 values × 64 centroids × 16 bits per layer and role.
    const bits = cache.bitsPerValue();
    expect(bits.k).toBeCloseTo(3 + (16 * 64 * 16) / (300 * 16), 10);
    expect(bits.v).toBe(bits.k);
  });
});
