// Kernels the non-Llama architectures add: NEOX RoPE pairing and RoPE frequency factors (forward
// pass, WASM twin, and the table pre-RoPE codecs rotate keys with), GEGLU, soft-capping, row
// biases. Plain-TS references are checked against the published formulas; WASM twins against
// the references (bit-exact where both do the same float operations, else within a derived bound).
import { describe, expect, it } from 'vitest';
import * as ref from '../src/kernels/ref/ops.js';
import * as wasm from '../src/kernels/wasm/ops.js';
import { wasmHeap } from '../src/kernels/wasm/runtime.js';
import { RopeTable } from '../src/kv/rope-table.js';
import { randn } from './helpers/codec-conformance.js';

/** float32 unit roundoff. */
const U = 2 ** -24;

type Where = 'js' | 'heap';
const keep: object[] = [];
function put(v: Float32Array, where: Where): Float32Array {
  if (where === 'js') return Float32Array.from(v);
  const h = wasmHeap().f32(v.length, v);
  h.set(v);
  keep.push(v);
  return h;
}

const bits = (a: Float32Array): Uint32Array => new Uint32Array(Float32Array.from(a).buffer);

/** Llama-3.1-like factors: 1 for the fast pairs, up to 8 for the slow ones. */
const factors = (half: number): number[] => Array.from({ length: half }, (_, i) => 1 + (7 * i) / Math.max(1, half - 1));

describe('RoPE pairings and frequency factors', () => {
  it('NEOX pairing is HF rotate_half: x·cos(emb) + rotate_half(x)·sin(emb), emb = [freqs, freqs]', () => {
    const [n, nHeads, headDim, pos0, theta] = [5, 3, 16, 7, 1e6];
    const x = randn(n * nHeads * headDim, 1);
    const inv = ref.ropeInvFreq(theta, headDim);
    const ours = Float32Array.from(x);
    ref.rope(ours, n, nHeads, headDim, pos0, inv, new Float32Array(headDim / 2), new Float32Array(headDim / 2), true);
    const half = headDim / 2;
    for (let r = 0; r < n; r++) {
      for (let h = 0; h < nHeads; h++) {
        const o = (r * nHeads + h) * headDim;
        for (let d = 0; d < headDim; d++) {
          const a = (pos0 + r) * theta ** (-(2 * (d % half)) / headDim);
          const rotated = d < half ? -x[o + d + half] : x[o + d - half];
          const want = x[o + d] * Math.cos(a) + rotated * Math.sin(a);
          expect(Math.abs(ours[o + d] - want)).toBeLessThan(1e-6 * (Math.abs(x[o + d]) + Math.abs(rotated)));
        }
      }
    }
  });

  it('NORM pairing rotates (x[2i], x[2i+1]) as the complex number x[2i] + i·x[2i+1] times e^(i·angle)', () => {
    const [n, headDim] = [4, 8];
    const x = randn(n * headDim, 2);
    const inv = ref.ropeInvFreq(500000, headDim, factors(headDim / 2));
    const ours = Float32Array.from(x);
    ref.rope(ours, n, 1, headDim, 0, inv, new Float32Array(headDim / 2), new Float32Array(headDim / 2));
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < headDim / 2; i++) {
        const a = (r * 500000 ** ((-2 * i) / headDim)) / factors(headDim / 2)[i];
        const [re, im] = [x[r * headDim + 2 * i], x[r * headDim + 2 * i + 1]];
        expect(ours[r * headDim + 2 * i]).toBeCloseTo(re * Math.cos(a) - im * Math.sin(a), 6);
        expect(ours[r * headDim + 2 * i + 1]).toBeCloseTo(re * Math.sin(a) + im * Math.cos(a), 6);
      }
    }
  });

  it('frequency factors divide the frequencies: θ^(−2i/d) / f_i', () => {
    const f = factors(16);
    const inv = ref.ropeInvFreq(500000, 32, f);
    inv.forEach((v, i) => expect(v).toBe(500000 ** ((-2 * i) / 32) / f[i]));
    expect(() => ref.ropeInvFreq(10000, 32, f.slice(1))).toThrow(/15 frequency factors for 16 pairs/);
  });

  it.each([
    ['norm', 32],
    ['neox', 32],
    ['neox', 12], // half = 6: two pairs per SIMD step, no tail
    ['neox', 6], // half = 3: a scalar tail
  ] as const)('WASM rope equals the plain-TS twin bit for bit (%s, head_dim %i)', (pairing, headDim) => {
    const [n, nHeads] = [9, 3];
    const neox = pairing === 'neox';
    const inv = ref.ropeInvFreq(10000, headDim, factors(headDim / 2));
    const x = randn(n * nHeads * headDim, headDim);
    const want = Float32Array.from(x);
    ref.rope(want, n, nHeads, headDim, 100, inv, new Float32Array(headDim / 2), new Float32Array(headDim / 2), neox);
    for (const where of ['js', 'heap'] as const) {
      const got = put(x, where);
      wasm.rope(got, n, nHeads, headDim, 100, inv, new Float32Array(headDim / 2), new Float32Array(headDim / 2), neox);
      expect(bits(got)).toEqual(bits(want));
    }
  });

  it.each(['norm', 'neox'] as const)('the pre-RoPE codecs’ RopeTable rotates exactly as the forward pass (%s, with factors)', (pairing) => {
    const headDim = 16;
    const f = factors(headDim / 2);
    const table = new RopeTable({ theta: 500000, dim: headDim, pairing, freqFactors: f });
    const inv = ref.ropeInvFreq(500000, headDim, f);
    table.ensure(300);
    for (const pos of [0, 1, 17, 299]) {
      const x = randn(headDim, pos + 3);
      const want = Float32Array.from(x);
      ref.rope(want, 1, 1, headDim, pos, inv, new Float32Array(headDim / 2), new Float32Array(headDim / 2), pairing === 'neox');
      table.rotate(x, 0, pos);
      expect(bits(x)).toEqual(bits(want));
    }
  });
});

describe('GEGLU, soft-capping, row biases', () => {
  // Gate values over the range where GELU bends, plus large ones (e^(−2u) under- and overflows).
  const gate = Float32Array.from([...randn(997, 5).map((v) => 3 * v), -90, -12, -1e-30, 0, 1e-30, 12, 90]);
  const up = randn(gate.length, 6);

  it('the reference is 0.5·g·(1 + tanh(√(2/π)(g + 0.044715·g³)))·up', () => {
    const out = Float32Array.from(gate);
    ref.geglu(out, up, gate.length);
    gate.forEach((g, i) => {
      const want = 0.5 * g * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (g + 0.044715 * g ** 3))) * up[i];
      expect(Math.abs(out[i] - want)).toBeLessThanOrEqual(U * Math.abs(want));
    });
  });

  it('WASM geglu matches the reference', () => {
    const want = Float32Array.from(gate);
    ref.geglu(want, up, gate.length);
    for (const where of ['js', 'heap'] as const) {
      const got = put(gate, where);
      wasm.geglu(got, put(up, where), gate.length);
      let worst = 0;
      gate.forEach((g, i) => {
        // g/(1 + e^t)·up in f32: a few roundings of the result, and t's rounding (relative 3U)
        // moves σ(−t) by at most |t|·σ(t)σ(−t)·3U ≤ 0.23·3U relative to |g·up|.
        const bound = 8 * U * Math.abs(want[i]) + 0.7 * U * Math.abs(g * up[i]);
        worst = Math.max(worst, got[i] === want[i] ? 0 : Math.abs(got[i] - want[i]) / bound);
      });
      expect(worst).toBeLessThanOrEqual(1);
    }
  });

  it('soft-capping: reference cap·tanh(x·scale), WASM within a few ulp of it', () => {
    const cap = 30;
    const x = Float32Array.from([...randn(1021, 7).map((v) => 40 * v), 0, -0, 1e-20, 1e4, -1e4]);
    const want = Float32Array.from(x);
    ref.softcap(want, 3, x.length - 3, 1 / cap, cap);
    for (let i = 0; i < x.length; i++) {
      const expected = i < 3 ? x[i] : cap * Math.tanh(x[i] / cap);
      expect(Math.abs(want[i] - expected)).toBeLessThanOrEqual(U * Math.abs(expected));
    }
    for (const where of ['js', 'heap'] as const) {
      const got = put(x, where);
      wasm.softcap(got, 3, x.length - 3, 1 / cap, cap);
      for (let i = 0; i < 3; i++) expect(got[i]).toBe(x[i]);
      for (let i = 3; i < x.length; i++) {
        // x·scale rounded in f32 (moves tanh by ≤ |y|·U), the polynomial or the exp form (≤ 4U of
        // the result), the product by cap (U).
        const y = x[i] / cap;
        expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(cap * (Math.abs(y) * U * (1 - Math.tanh(y) ** 2)) + 6 * U * Math.abs(want[i]) + 1e-45);
      }
    }
  });

  it('addRows adds the bias to every row', () => {
    const x = randn(3 * 5, 8);
    const b = randn(5, 9);
    const out = Float32Array.from(x);
    ref.addRows(out, b, 3, 5);
    out.forEach((v, i) => expect(v).toBe(Math.fround(x[i] + b[i % 5])));
  });
});
