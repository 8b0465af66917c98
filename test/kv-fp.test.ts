import { describe, expect, it } from 'vitest';
import { KvCache } from '../src/kv/cache.js';
import { CodecSpecError, parseSpec } from '../src/kv/codec.js';
import { createCodec } from '../src/kv/registry.js';
import { f16ToF32, f32ToF16 } from '../src/numeric/f16.js';

function randn(n: number, seed: number): Float32Array {
  // Deterministic Box–Muller over a small LCG: tests must be reproducible.
  let s = seed >>> 0;
  const u = (): number => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

const shapes = [
  { nKvHeads: 4, headDim: 8 },
  { nKvHeads: 2, headDim: 64 },
  { nKvHeads: 1, headDim: 128 },
];

describe.each(['f32', 'f16', 'bf16'])('%s codec', (spec) => {
  it.each(shapes)('scores/accumulate equal decode-then-multiply (%o)', ({ nKvHeads, headDim }) => {
    const T = 37;
    const width = nKvHeads * headDim;
    const src = randn(T * width, 7);
    // Outlier channel, as real keys have.
    for (let t = 0; t < T; t++) src[t * width + 3] *= 20;
    const codec = createCodec(spec, { role: 'k', layer: 0, nKvHeads, headDim, capacity: 64 });
    codec.append(src.subarray(0, 5 * width), 5);
    codec.append(src.subarray(5 * width), T - 5);
    expect(codec.length).toBe(T);
    const dec = new Float32Array(T * width);
    codec.decode(0, T, dec);

    const nq = 3;
    const q = randn(nq * headDim, 11);
    const w = randn(nq * T, 13);
    for (let h = 0; h < nKvHeads; h++) {
      const s = new Float32Array(nq * 40);
      codec.scores(h, q, 0, nq, T, s, 0, 40);
      const acc = new Float32Array(nq * headDim);
      codec.accumulate(h, w, 0, T, nq, T, acc, 0);
      for (let i = 0; i < nq; i++) {
        for (let t = 0; t < T; t++) {
          let ref = 0;
          for (let d = 0; d < headDim; d++) ref += q[i * headDim + d] * dec[t * width + h * headDim + d];
          expect(s[i * 40 + t]).toBeCloseTo(ref, 4);
        }
        for (let d = 0; d < headDim; d++) {
          let ref = 0;
          for (let t = 0; t < T; t++) ref += w[i * T + t] * dec[t * width + h * headDim + d];
          expect(acc[i * headDim + d]).toBeCloseTo(ref, 4);
        }
      }
    }
  });

  it('stores what its number format keeps, and counts its bytes exactly', () => {
    const width = 2 * 8;
    const src = randn(3 * width, 3);
    const codec = createCodec(spec, { role: 'v', layer: 2, nKvHeads: 2, headDim: 8, capacity: 3 });
    codec.append(src, 3);
    const dec = new Float32Array(src.length);
    codec.decode(0, 3, dec);
    const relTol = spec === 'f32' ? 0 : spec === 'f16' ? 2 ** -11 : 2 ** -8;
    for (let i = 0; i < src.length; i++) expect(Math.abs(dec[i] - src[i])).toBeLessThanOrEqual(Math.abs(src[i]) * relTol);
    if (spec === 'f16') for (let i = 0; i < src.length; i++) expect(dec[i]).toBe(f16ToF32(f32ToF16(src[i])));
    expect(codec.bytes()).toBe(3 * width * (spec === 'f32' ? 4 : 2));
    codec.truncate(1);
    expect(codec.length).toBe(1);
    expect(codec.bytes()).toBe(width * (spec === 'f32' ? 4 : 2));
  });

  it('rejects NaN/Inf, overflowing appends and out-of-range reads', () => {
    const codec = createCodec(spec, { role: 'k', layer: 1, nKvHeads: 1, headDim: 8, capacity: 2 });
    const bad = new Float32Array(8);
    bad[5] = NaN;
    expect(() => codec.append(bad, 1)).toThrow(/non-finite value NaN in k of layer 1/);
    bad[5] = Infinity;
    expect(() => codec.append(bad, 1)).toThrow(/non-finite/);
    expect(codec.length).toBe(0);
    codec.append(new Float32Array(16), 2);
    expect(() => codec.append(new Float32Array(8), 1)).toThrow(/KV cache full/);
    expect(() => codec.scores(0, new Float32Array(8), 0, 1, 3, new Float32Array(3), 0, 3)).toThrow(/3 tokens, 2 stored/);
  });
});

describe('spec grammar and registry', () => {
  it('parses names, arguments and parameters', () => {
    const p = parseSpec('kivi:2,g=32,r=128');
    expect(p.name).toBe('kivi');
    expect(p.arg).toBe('2');
    expect([...p.params]).toEqual([
      ['g', '32'],
      ['r', '128'],
    ]);
    expect(parseSpec('F16').name).toBe('f16');
  });

  it('refuses unknown types with the list of valid ones, and malformed specs', () => {
    const ctx = { role: 'k' as const, layer: 0, nKvHeads: 1, headDim: 8, capacity: 1 };
    expect(() => createCodec('q3_foo', ctx)).toThrow(CodecSpecError);
    expect(() => createCodec('q3_foo', ctx)).toThrow(/unknown KV cache type "q3_foo"; valid types:[\s\S]*f16/);
    expect(() => createCodec('f16:4', ctx)).toThrow(/takes no parameters/);
    expect(() => createCodec('f16,=3', ctx)).toThrow(/malformed parameter "=3"/);
    expect(parseSpec('nvfp4,hadamard').params.get('hadamard')).toBe('true');
    expect(parseSpec('window(sink=4,recent=64):kivi:2,g=32').inner).toBe('kivi:2,g=32');
    expect(() => createCodec('kivi:2,g=1,g=2', ctx)).toThrow(/given twice/);
    expect(() => createCodec('', ctx)).toThrow(/malformed KV cache spec/);
  });

  it('builds per-layer policies and sums bytes over layers', () => {
    const cache = new KvCache({ nLayers: 3, nKvHeads: 2, headDim: 8, capacity: 4 }, { k: 'f16', v: 'f32', layers: { 1: { k: 'f32' } } });
    expect(cache.layers.map((l) => l.k.spec)).toEqual(['f16', 'f32', 'f16']);
    for (const l of cache.layers) {
      l.k.append(new Float32Array(2 * 16), 2);
      l.v.append(new Float32Array(2 * 16), 2);
    }
    expect(cache.bytes()).toEqual({ k: 2 * 16 * (2 + 4 + 2), v: 3 * 2 * 16 * 4, total: 2 * 16 * 8 + 3 * 2 * 16 * 4 });
    expect(cache.bitsPerValue().v).toBe(32);
    expect(cache.bitsPerValue().k).toBeCloseTo((16 + 32 + 16) / 3, 10);
    expect(() => new KvCache({ nLayers: 3, nKvHeads: 2, headDim: 8, capacity: 4 }, { k: 'f16', v: 'f16', layers: { 5: { k: 'f32' } } })).toThrow(/layer "5"/);
  });
});
