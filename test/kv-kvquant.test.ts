import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rope, ropeInvFreq } from '../src/kernels/ref/ops.js';
import { calibrate, collectSamples, type CalibrationFile } from '../src/kv/calibration.js';
import { CodecSpecError, type CodecContext, type KvRole } from '../src/kv/codec.js';
import { createCodec } from '../src/kv/registry.js';
import { CAL_ROWS, calibrationDir, ctxFor, N_KV, randomModel, randomTokens, syntheticSamples as samples } from './helpers/calibrated.js';
import { codecConformance, decoded, kvRows, productGap, randn, relFrobenius } from './helpers/codec-conformance.js';
import { withPlainStorage } from '../src/kv/codecs/attn-wasm.js';

const { dir: DIR, calibFile } = calibrationDir('lowkv-kvquant-');

/** bytes() re-derived from kvquant.ts's layout comment. */
function kvquantBytes(T: number, ctx: CodecContext, bits: number, outliers: number, sink: number, qnorm: boolean): number {
  if (T === 0) return 0;
  const W = ctx.nKvHeads * ctx.headDim;
  const m = Math.round(outliers * W);
  const s = Math.min(T, Math.max(0, sink - (ctx.firstPosition ?? 0)));
  const q = T - s;
  const shared = 2 * 2 ** bits + (qnorm ? 4 : 0) + (ctx.role === 'k' ? 4 * W : 0);
  return shared + s * 4 * W + q * 6 * m + (ctx.role === 'v' ? 4 * q : 0) + Math.ceil((q * W * bits) / 8);
}

/**
 * Error bound: a k-means codebook codes fresh samples of its calibration distribution about as
 * well as the calibration samples themselves (its inertia). The bound is that training error
 * plus 10% (measured: within 2%) — the training error measured by coding the calibration rows.
 */
function trainingError(spec: string, role: KvRole, headDim: number): number {
  const codec = createCodec(spec, ctxFor(role, headDim, CAL_ROWS));
  const x = samples(role, headDim).rows;
  codec.append(x, CAL_ROWS);
  return relFrobenius(decoded(codec, N_KV * headDim), x);
}

const HEAD_DIMS = [8, 64, 128] as const;
const VARIANTS = [
  { method: 'kvquant:2', bits: 2, outliers: 0.01, sink: 1, qnorm: true },
  { method: 'kvquant:3', bits: 3, outliers: 0.01, sink: 1, qnorm: false },
  { method: 'kvquant:4', bits: 4, outliers: 0.01, sink: 1, qnorm: false },
  { method: 'kvquant:3,outliers=0.05,sink=2', bits: 3, outliers: 0.05, sink: 2, qnorm: false },
  { method: 'kvquant:2,qnorm=off', bits: 2, outliers: 0.01, sink: 1, qnorm: false },
];
const files = new Map<string, string>();
for (const v of VARIANTS) for (const hd of HEAD_DIMS) files.set(`${v.method}/${hd}`, calibFile(v.method, hd));
const specOf = (method: string, hd: number): string => `${method},calib=${files.get(`${method}/${hd}`)}`;

// Values are normalized per token online, so the standard battery applies as it is. It checks
// its adversarial cases at head_dim 64 only, and a calibration file fits one head_dim: the other
// head dims go through the battery below.
for (const v of VARIANTS) {
  codecConformance({
    spec: specOf(v.method, 64),
    roles: ['v'],
    headDims: [64],
    relError: 1.1 * trainingError(specOf(v.method, 64), 'v', 64),
    bytes: (T, ctx) => kvquantBytes(T, ctx, v.bits, v.outliers, v.sink, v.qnorm),
  });
}

/**
 * Keys carry calibrated per-channel zero points and ranges, so an all-zero or constant key is
 * coded by the nearest codebook point like any other and cannot come back exact: the standard
 * battery's zeros/constants checks do not apply. Everything else is checked as codecConformance
 * does, for keys stored before RoPE (scores() rotates; the reference rotates decode()).
 */
describe.each(VARIANTS)('conformance of $method (calibrated battery)', (v) => {
  const T = 300;
  const cases = [
    ...HEAD_DIMS.map((hd) => ({ role: 'k' as const, hd })),
    { role: 'v' as const, hd: 8 },
    { role: 'v' as const, hd: 128 },
  ];
  it.each(cases)('reconstructs within its bound, scores = rotate(decode)·q, exact bytes, streaming = bulk ($role, head_dim $hd)', ({ role, hd }) => {
    const spec = specOf(v.method, hd);
    const bound = 1.1 * trainingError(spec, role, hd);
    const ctx = ctxFor(role, hd, T + 8);
    const bulk = createCodec(spec, ctx);
    expect(bulk.preRope).toBe(role === 'k');
    const x = kvRows(T, N_KV, hd, 17 + hd);
    bulk.append(x, T);
    expect(relFrobenius(decoded(bulk, N_KV * hd), x)).toBeLessThanOrEqual(bound);
    expect(productGap(bulk, ctx, 5)).toBeLessThan(1e-4);
    expect(bulk.bytes()).toBe(kvquantBytes(T, ctx, v.bits, v.outliers, v.sink, v.qnorm));
    const one = createCodec(spec, ctx);
    const W = N_KV * hd;
    for (let t = 0; t < T; t++) one.append(x.subarray(t * W, (t + 1) * W), 1);
    expect(decoded(one, W)).toEqual(decoded(bulk, W));
    expect(one.bytes()).toBe(bulk.bytes());
  });

  it('keys, adversarial input: zeros and constants stay finite, one token, 1e30 and NaN/Inf refused, truncate(0), capacity', () => {
    const hd = 64;
    const W = N_KV * hd;
    const spec = specOf(v.method, hd);
    for (const fill of [0, 0.37]) {
      const ctx = ctxFor('k', hd, 48);
      const c = createCodec(spec, ctx);
      c.append(new Float32Array(40 * W).fill(fill), 40);
      expect(decoded(c, W).every(Number.isFinite)).toBe(true);
      expect(productGap(c, ctx, 1)).toBeLessThan(1e-4);
    }
    const ctx = ctxFor('k', hd, 48, { firstPosition: 7 });
    const one = createCodec(spec, ctx);
    one.append(kvRows(1, N_KV, hd, 3), 1);
    expect(productGap(one, ctx, 2)).toBeLessThan(1e-4);

    const huge = createCodec(spec, ctxFor('k', hd, 8));
    expect(() => huge.append(kvRows(4, N_KV, hd, 4).map((x) => x * 1e30), 4)).toThrow(/exceeds the fp16 range/);
    expect(huge.length).toBe(0);
    for (const bad of [NaN, Infinity, -Infinity]) {
      const r = kvRows(2, N_KV, hd, 5);
      r[W + 7] = bad;
      expect(() => createCodec(spec, ctxFor('k', hd, 8)).append(r, 2)).toThrow(/non-finite/);
    }
    const c = createCodec(spec, ctxFor('k', hd, 60));
    c.append(kvRows(50, N_KV, hd, 8), 50);
    c.truncate(0);
    expect(c.bytes()).toBe(0);
    c.append(kvRows(10, N_KV, hd, 9), 10);
    expect(c.length).toBe(10);
    expect(() => c.append(kvRows(51, N_KV, hd, 9), 51)).toThrow(/KV cache full/);
  });
});

describe('kvquant specifics', () => {
  const hd = 64;
  const W = N_KV * hd;
  const path3 = files.get(`kvquant:3/${hd}`)!;

  it.each([0, 37])('pre-RoPE keys: with every value an outlier, scores equal f32 scores of RoPE-rotated keys bit for bit (firstPosition %i)', (firstPosition) => {
    const T = 60;
    const x = kvRows(T, N_KV, hd, 31);
    const ctx = ctxFor('k', hd, T, { firstPosition });
    const kq = createCodec(`kvquant:3,outliers=1,calib=${path3}`, ctx);
    // The plain-TS f32 codec: the pre-RoPE codecs score in its order (the WASM one sums in lanes).
    const f32 = withPlainStorage(() => createCodec('f32', ctx));
    kq.append(x, T);
    const rotated = Float32Array.from(x);
    rope(rotated, T, N_KV, hd, firstPosition, ropeInvFreq(10000, hd), new Float32Array(hd / 2), new Float32Array(hd / 2));
    f32.append(rotated, T);
    expect(decoded(kq, W)).toEqual(x);
    const q = randn(3 * hd, 2);
    for (let h = 0; h < N_KV; h++) {
      const a = new Float32Array(3 * T);
      const b = new Float32Array(3 * T);
      kq.scores(h, q, 0, 3, T, a, 0, T);
      f32.scores(h, q, 0, 3, T, b, 0, T);
      expect(a).toEqual(b);
    }
  });

  it.each(['k', 'v'] as const)('keeps exactly round(F·W) outliers per token, exact, chosen as §3 describes (%s)', (role) => {
    const T = 40;
    const x = kvRows(T, N_KV, hd, 41);
    const c = createCodec(`kvquant:3,outliers=0.05,sink=0,calib=${path3}`, ctxFor(role, hd, T));
    c.append(x, T);
    const d = decoded(c, W);
    const m = Math.round(0.05 * W);
    const art = (JSON.parse(readFileSync(path3, 'utf8')) as CalibrationFile).layers[0].k as { zeroPoint: number[]; range: number[] };
    for (let t = 0; t < T; t++) {
      const exact: number[] = [];
      const rest: number[] = [];
      for (let j = 0; j < W; j++) (d[t * W + j] === x[t * W + j] ? exact : rest).push(j);
      expect(exact.length).toBe(m);
      if (role === 'k') {
        // The largest |x − zp|/range of the token.
        const score = (j: number): number => Math.abs((x[t * W + j] - art.zeroPoint[j]) / art.range[j]);
        expect(Math.min(...exact.map(score))).toBeGreaterThanOrEqual(Math.max(...rest.map(score)));
      } else {
        // Tails of the row: each outlier lies outside the dense part's [min, max].
        const dense = rest.map((j) => x[t * W + j]);
        const lo = Math.min(...dense);
        const hi = Math.max(...dense);
        for (const j of exact) expect(x[t * W + j] < lo || x[t * W + j] > hi).toBe(true);
      }
    }
  });

  it.each([
    [1, 0, [0]],
    [3, 0, [0, 1, 2]],
    [3, 2, [0]],
    [0, 0, []],
    [1, 5, []],
  ])('keeps tokens at positions < sink=%i exact (firstPosition %i)', (sink, firstPosition, exactTokens) => {
    const T = 6;
    const x = kvRows(T, N_KV, hd, 51);
    for (const role of ['k', 'v'] as const) {
      const ctx = ctxFor(role, hd, T, { firstPosition });
      const c = createCodec(`kvquant:2,sink=${sink},outliers=0,calib=${files.get(`kvquant:2/${hd}`)}`, ctx);
      c.append(x, T);
      const d = decoded(c, W);
      const exact = [...Array(T).keys()].filter((t) => d.subarray(t * W, (t + 1) * W).every((v, j) => v === x[t * W + j]));
      expect(exact).toEqual(exactTokens);
      expect(c.bytes()).toBe(kvquantBytes(T, ctx, 2, 0, sink, true));
    }
  });

  it('a channel constant in calibration (zero range) decodes to its value, and any other value there is an outlier first', () => {
    const k = samples('k', hd);
    for (let r = 0; r < CAL_ROWS; r++) k.rows[r * W + 5] = 0.25;
    const file = calibrate('kvquant:3', [k, samples('v', hd)], { name: 'dead channel', nLayers: 1, nKvHeads: N_KV, headDim: hd }, { file: 'x', tokens: CAL_ROWS });
    const p = join(DIR, 'dead-channel.json');
    writeFileSync(p, JSON.stringify(file));
    expect((file.layers[0].k as { range: number[] }).range[5]).toBe(0);
    const x = kvRows(4, N_KV, hd, 71);
    x[W + 5] = 0.25;
    x[2 * W + 5] = 3;
    x[3 * W + 5] = -3;
    const c = createCodec(`kvquant:3,outliers=0.01,sink=0,calib=${p}`, ctxFor('k', hd, 4));
    c.append(x, 4);
    const d = decoded(c, W);
    expect([d[W + 5], d[2 * W + 5], d[3 * W + 5]]).toEqual([0.25, 3, -3]);
    expect(d.every(Number.isFinite)).toBe(true);
  });

  it('refuses missing, mismatched and damaged calibration by name', () => {
    const ctx = ctxFor('k', hd, 4);
    expect(() => createCodec('kvquant:3', ctx)).toThrow(/kvquant needs calibration data: run `lowkv calibrate/);
    expect(() => createCodec(`kvquant:3,calib=${join(DIR, 'none.json')}`, ctx)).toThrow(/cannot read calibration file/);
    expect(() => createCodec(`kvquant:2,calib=${path3}`, ctx)).toThrow(/made for 3 bits, the spec asks for 2/);
    expect(() => createCodec(`kvquant:3,calib=${files.get('kvquant:3/8')}`, ctx)).toThrow(/does not match this model/);
    expect(() => createCodec(`kvquant:3,qnorm=on,calib=${path3}`, ctx)).toThrow(/Q-Norm off, the spec asks for qnorm=on/);
    const cq = calibrate('cq:4c2b', [samples('k', hd, 64), samples('v', hd, 64)], { name: 's', nLayers: 1, nKvHeads: N_KV, headDim: hd }, { file: 'x', tokens: 64 });
    const cqPath = join(DIR, 'cq-for-kvquant.json');
    writeFileSync(cqPath, JSON.stringify(cq));
    expect(() => createCodec(`kvquant:3,calib=${cqPath}`, ctx)).toThrow(/calibrated for cq:4c2b, not kvquant/);

    const good = JSON.parse(readFileSync(path3, 'utf8')) as { layers: Array<{ k: Record<string, unknown>; v: Record<string, unknown> }> };
    const damaged = (name: string, role: 'k' | 'v', change: (a: Record<string, unknown>) => void): string => {
      const f = structuredClone(good);
      change(f.layers[0][role]);
      const p = join(DIR, `damaged-${name}.json`);
      writeFileSync(p, JSON.stringify(f));
      return `kvquant:3,calib=${p}`;
    };
    const vctx = ctxFor('v', hd, 4);
    expect(() => createCodec(damaged('short', 'v', (a) => (a.codebook = (a.codebook as number[]).slice(1))), vctx)).toThrow(/layer 0 values: codebook must be an array of 8 numbers \(got 7 entries\)/);
    expect(() => createCodec(damaged('nan', 'v', (a) => ((a.codebook as unknown[])[2] = null)), vctx)).toThrow(/codebook\[2\] = null is not a finite fp16 number/);
    expect(() => createCodec(damaged('order', 'v', (a) => (a.codebook as number[]).reverse()), vctx)).toThrow(/codebook is not ascending/);
    expect(() => createCodec(damaged('range', 'k', (a) => ((a.range as number[])[5] = -1)), ctx)).toThrow(/range\[5\] = -1 is not a non-negative fp16 number/);
    expect(() => createCodec(damaged('zp', 'k', (a) => delete a.zeroPoint), ctx)).toThrow(/zeroPoint must be an array of 128 numbers/);
    expect(() => createCodec(damaged('huge', 'k', (a) => ((a.zeroPoint as number[])[0] = 1e6)), ctx)).toThrow(/zeroPoint\[0\] = 1000000 is not a finite fp16 number/);
  });

  it.each([
    ['kvquant:5', /bits must be 2, 3 or 4/],
    ['kvquant:3,outliers=2', /outliers must be a fraction in \[0, 1\]/],
    ['kvquant:3,sink=-1', /sink must be a non-negative integer/],
    ['kvquant:3,sink=1.5', /sink must be a non-negative integer/],
    ['kvquant:3,qnorm=maybe', /qnorm must be on or off/],
    ['kvquant:3,g=32', /unknown parameter "g" \(valid: outliers, sink, qnorm, calib\)/],
  ])('refuses %s', (spec, message) => {
    expect(() => createCodec(spec, ctxFor('k', hd, 4))).toThrow(CodecSpecError);
    expect(() => createCodec(spec, ctxFor('k', hd, 4))).toThrow(message);
  });

  it('needs the model RoPE for keys, not for values', () => {
    const noRope: CodecContext = { role: 'k', layer: 0, nKvHeads: N_KV, headDim: hd, capacity: 4 };
    expect(() => createCodec(`kvquant:3,calib=${path3}`, noRope)).toThrow(/stores keys before RoPE and needs the model's RoPE parameters/);
    expect(createCodec(`kvquant:3,calib=${path3}`, { ...noRope, role: 'v' }).preRope).toBe(false);
  });
});

describe('kvquant through the real pipeline', () => {
  it('collectSamples → calibrate → file → cache: exact with every value kept, close when quantized', async () => {
    const model = randomModel();
    const s = await collectSamples(model, randomTokens(1024, 1));
    const file = calibrate('kvquant:4', s, { name: 'random', nLayers: 2, nKvHeads: 2, headDim: 8 }, { file: 'random tokens', tokens: s[0].nRows });
    expect(file.layers).toHaveLength(2);
    const path = join(DIR, 'pipeline-kvquant4.json');
    writeFileSync(path, JSON.stringify(file));

    const tokens = randomTokens(300, 2);
    const logits = (k: string, v: string): Float32Array => Float32Array.from(model.forward(tokens, model.newCache(tokens.length, { k, v }), 0));
    const ref = logits('f32', 'f32');
    const exact = `kvquant:4,outliers=1,calib=${path}`;
    // Every value kept in fp32: the same numbers as the f32 cache up to float summation order
    // (the f32 codec sums in SIMD lanes without fused multiply-add, kvquant's path in sequence).
    expect(relFrobenius(logits(exact, exact), ref)).toBeLessThan(1e-6);

    const spec = `kvquant:4,calib=${path}`;
    const cache = model.newCache(tokens.length, { k: spec, v: spec });
    const q = Float32Array.from(model.forward(tokens, cache, 0));
    expect(cache.layers[0].k.preRope).toBe(true);
    // q4_0 for both K and V gives 0.06 on this model.
    expect(relFrobenius(q, ref)).toBeLessThan(0.1);
    const bits = cache.bitsPerValue();
    // W = 16: no outliers (round(0.16) = 0); 4 bits + codebook/sink share, plus 32/16 for V scales.
    expect(bits.k).toBeCloseTo(4 + (8 * (32 + 64) + 32 * 16 - 4 * 16) / (300 * 16), 10);
    expect(bits.v).toBeCloseTo(4 + (8 * 32 + 32 * 16 - 4 * 16 + 32 * 299) / (300 * 16), 10);
  });
});
