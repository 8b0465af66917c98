// Attention over compressed KV in WASM SIMD (assembly/attn-fp.ts, attn-ggml.ts, attn-int.ts)
// against each codec's plain-TS twin: the same codec built with withPlainStorage holds the same
// bits in ordinary arrays and runs the twin. Where kernel and twin do the same float operations in
// the same order the results must be identical; where the twin sums a dot product in double and
// the kernel in float32 lanes, within the rounding bound of the kernel's summation. Then the
// integer-domain products of rtn/kivi (int16 or int8 query, int16 weights) against the exact
// float ones, within bounds derived from the quantization steps.
import { describe, expect, it } from 'vitest';
import type { CodecContext, KvCodec, KvRole } from '../src/kv/codec.js';
import { storedInHeap, withPlainStorage } from '../src/kv/codecs/attn-wasm.js';
import { GroupQuantCodec } from '../src/kv/codecs/int-quant.js';
import { createCodec } from '../src/kv/registry.js';
import { wasmHeap } from '../src/kernels/wasm/runtime.js';
import { decoded, kvRows, randn } from './helpers/codec-conformance.js';

const U = 2 ** -24; // float32 unit roundoff

const GGML = ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl'];
const INT = [
  'rtn:2',
  'rtn:3',
  'rtn:4',
  'rtn:8',
  'rtn:4,mode=sym',
  'rtn:8,mode=sym',
  'rtn:4,g=48',
  'rtn:4,g=head',
  'rtn:4,g=row,mode=sym',
  'rtn:2,axis=channel',
  'rtn:4,axis=channel,g=16,mode=sym',
  'kivi:2',
  'kivi:4',
  'kivi:2,g=16,r=64',
];
const SPECS = ['f32', 'f16', 'bf16', ...GGML, ...GGML.map((t) => `${t},dot=f32`), ...INT, 'rtn:4,dot=i8', 'kivi:2,dot=i8', 'rtn:4,dot=f32', 'kivi:2,dot=f32'];

/** Scores whose kernel does the twin's float operations in the twin's order (quantized queries). */
const exactScores = (spec: string): boolean => !spec.includes('dot=f32') && (GGML.includes(spec) || INT.includes(spec.replace(',dot=i8', '')));

const N_KV = 2;

interface Arrays {
  q: Float32Array;
  w: Float32Array;
  s: Float32Array;
  o: Float32Array;
}

/** Query, weights and outputs at odd offsets and strides, in the heap or in ordinary memory. */
function arrays(inHeap: boolean, nq: number, hd: number, T: number, seed: number): Arrays & { qOff: number; wOff: number; wStride: number; sOff: number; sStride: number; oOff: number } {
  const qOff = 3;
  const wOff = 5;
  const wStride = T + 7;
  const sOff = 2;
  const sStride = T + 9;
  const oOff = 1;
  const make = (n: number): Float32Array => (inHeap ? wasmHeap().f32(n) : new Float32Array(n));
  const q = make(qOff + nq * hd);
  q.set(randn(nq * hd, seed), qOff);
  const w = make(wOff + nq * wStride);
  w.set(randn(nq * wStride, seed + 1), wOff);
  const s = make(sOff + nq * sStride);
  const o = make(oOff + nq * hd);
  return { q, w, s, o, qOff, wOff, wStride, sOff, sStride, oOff };
}

function pair(spec: string, ctx: CodecContext): { fast: KvCodec; ref: KvCodec } {
  const fast = createCodec(spec, ctx);
  const ref = withPlainStorage(() => createCodec(spec, ctx));
  expect(storedInHeap(fast)).toBe(true);
  expect(storedInHeap(ref)).toBe(false);
  return { fast, ref };
}

/** Tokens the int codecs hold as codes (the rest, fp16 residual, always takes the float query). */
const codesHeld = (c: KvCodec, T: number): number => (c instanceof GroupQuantCodec ? Math.min(T, c.quantizedLength) : T);

describe('attention kernels equal their plain-TS twins', () => {
  const cases = SPECS.flatMap((spec) => [8, 64, 128].map((headDim) => ({ spec, headDim })));

  it.each(cases)('$spec, head_dim $headDim', ({ spec, headDim: hd }) => {
    // KIVI quantizes keys per channel and values per token: both layouts.
    const roles: KvRole[] = spec.startsWith('kivi') ? ['k', 'v'] : ['k'];
    for (const role of roles) {
      for (const [T, nTokens] of [
        [1, 1],
        [45, 45],
        [1029, 1029],
        [1029, 500],
      ]) {
        const ctx: CodecContext = { role, layer: 0, nKvHeads: N_KV, headDim: hd, capacity: T + 3 };
        const { fast, ref } = pair(spec, ctx);
        const x = kvRows(T, N_KV, hd, T + hd);
        fast.append(x, T);
        ref.append(x, T);
        const dec = decoded(ref, N_KV * hd);
        expect(decoded(fast, N_KV * hd)).toEqual(dec);
        const exactUpTo = exactScores(spec) ? codesHeld(ref, nTokens) : 0;
        // Long runs: fewer variants (the twin is slow); short ones: every variant and head.
        const variants: [number, boolean][] = T > 100 ? [[1, false], [4, true]] : [[1, false], [1, true], [4, false], [4, true]];
        for (const [nq, inHeap] of variants) {
          for (let h = T > 100 ? 1 : 0; h < N_KV; h++) {
            const a = arrays(inHeap, nq, hd, nTokens, 7 * nq + h);
            const b = arrays(false, nq, hd, nTokens, 7 * nq + h);
            fast.scores(h, a.q, a.qOff, nq, nTokens, a.s, a.sOff, a.sStride);
            ref.scores(h, b.q, b.qOff, nq, nTokens, b.s, b.sOff, b.sStride);
            for (let i = 0; i < nq; i++) {
              for (let t = 0; t < nTokens; t++) {
                const got = a.s[a.sOff + i * a.sStride + t];
                const want = b.s[b.sOff + i * b.sStride + t];
                if (t < exactUpTo) {
                  if (got !== want) expect([i, t, got]).toEqual([i, t, want]);
                  continue;
                }
                // Float lanes: each of 4 lanes sums hd/4 rounded products, then 2 combining adds
                // and the leftovers: |error| ≤ (hd/4 + 4)·u·Σ|q·k̂|; the twin is within u·|want|.
                let mag = 0;
                for (let d = 0; d < hd; d++) mag += Math.abs(b.q[b.qOff + i * hd + d] * dec[t * N_KV * hd + h * hd + d]);
                const bound = (hd / 4 + 4) * U * mag * 1.01 + U * Math.abs(want);
                if (!(Math.abs(got - want) <= bound)) expect({ i, t, got, want, bound }).toBeUndefined();
              }
              // Entries outside [0, nTokens) of each row stay untouched.
              expect(a.s[a.sOff + i * a.sStride + nTokens]).toBe(0);
            }
            a.o.fill(0.25);
            b.o.fill(0.25);
            fast.accumulate(h, a.w, a.wOff, a.wStride, nq, nTokens, a.o, a.oOff);
            ref.accumulate(h, b.w, b.wOff, b.wStride, nq, nTokens, b.o, b.oOff);
            expect(Array.from(a.o)).toEqual(Array.from(b.o));
          }
        }
      }
    }
  });

  it('a codec whose storage the heap cannot take runs the plain-TS path and leaves the heap as it was', () => {
    const heap = wasmHeap();
    const u8 = heap.u8.bind(heap);
    const before = heap.allocated;
    let calls = 0;
    // The second block fails as it would past 4 GiB; the first must be given back.
    heap.u8 = (n: number, owner?: object) => {
      if (++calls === 2) throw new RangeError('wasm heap: past 4 GiB');
      return u8(n, owner);
    };
    let codec: KvCodec;
    try {
      codec = createCodec('kivi:2', { role: 'k', layer: 0, nKvHeads: 2, headDim: 64, capacity: 300 });
    } finally {
      heap.u8 = u8;
    }
    expect(calls).toBe(2);
    expect(heap.allocated).toBe(before);
    expect(storedInHeap(codec)).toBe(false);
    const x = kvRows(300, 2, 64, 1);
    codec.append(x, 300);
    const ref = withPlainStorage(() => createCodec('kivi:2', { role: 'k', layer: 0, nKvHeads: 2, headDim: 64, capacity: 300 }));
    ref.append(x, 300);
    const q = randn(64, 2);
    const a = new Float32Array(300);
    const b = new Float32Array(300);
    codec.scores(1, q, 0, 1, 300, a, 0, 300);
    ref.scores(1, q, 0, 1, 300, b, 0, 300);
    expect(a).toEqual(b);
  });
});

describe('integer-domain scores of rtn/kivi stay within the query rounding of the exact scores', () => {
  // The kernels score against q̃, the query the levels stand for, in both the code part and the
  // zero term (file comment of src/kv/codecs/ref/int-products.ts), so the gap to the exact score
  // is Σ_c (q̃_c − q_c)·k̂_c, whatever the zero points. Per-token groups: q̃_c = d_g·l_c,
  // |q̃_c − q_c| ≤ d_g·(1/2 + 3Qu) with d_g = max_g|q|/Q (the round-off of x·Q/amax and of d).
  // Per-channel groups: the levels are those of q⊙s per group of 32 channels, q̃_c = d_g·l_c/s_c,
  // so |q̃_c − q_c| ≤ d_g·(1/2 + 3Qu)/s_c, s_c = (max − min)/(2^B − 1) over the token group read
  // off the decoded keys (at most the stored scale). Q: 32767 for dot=int (these head dims keep
  // Σ level·code within int32 at full range), 127 for dot=i8. Both paths' own float rounding adds
  // at most (hd + 2·groups + 8)·u·Σ_c |q_c|·(|k̂_c| + |z_c|), z_c the zero point.
  const cases = [
    { spec: 'rtn:4', axis: 'token', g: 32, bits: 4, sym: false },
    { spec: 'rtn:2', axis: 'token', g: 32, bits: 2, sym: false },
    { spec: 'rtn:8', axis: 'token', g: 32, bits: 8, sym: false },
    { spec: 'rtn:4,mode=sym', axis: 'token', g: 32, bits: 4, sym: true },
    { spec: 'rtn:4,g=row,mode=sym', axis: 'token', g: Infinity, bits: 4, sym: true },
    { spec: 'rtn:2,axis=channel,g=16', axis: 'channel', g: 16, bits: 2, sym: false },
    { spec: 'kivi:2', axis: 'channel', g: 32, bits: 2, sym: false },
    { spec: 'kivi:4', axis: 'channel', g: 32, bits: 4, sym: false },
  ] as const;
  const modes = [
    { dot: 'int', Q: 32767 },
    { dot: 'i8', Q: 127 },
  ] as const;

  it.each(cases.flatMap((c) => modes.flatMap((m) => [8, 64, 128].map((headDim) => ({ ...c, ...m, headDim })))))('$spec, dot=$dot, head_dim $headDim', ({ spec, axis, g, bits, sym, dot, Q, headDim: hd }) => {
    const T = 300;
    const W = N_KV * hd;
    const ctx: CodecContext = { role: 'k', layer: 0, nKvHeads: N_KV, headDim: hd, capacity: T };
    const fast = createCodec(dot === 'int' ? spec : `${spec},dot=${dot}`, ctx);
    const exact = createCodec(`${spec},dot=f32`, ctx);
    const x = kvRows(T, N_KV, hd, 61 + hd);
    fast.append(x, T);
    exact.append(x, T);
    const k = decoded(exact, W);
    const nq = 4;
    const q = randn(nq * hd, 62);
    q[5 % hd] *= 8;
    const held = codesHeld(fast, T);
    const span = axis === 'token' ? Math.min(g, hd) : Math.min(32, hd);
    let worst = 0;
    for (let h = 0; h < N_KV; h++) {
      const a = new Float32Array(nq * T);
      const b = new Float32Array(nq * T);
      fast.scores(h, q, 0, nq, T, a, 0, T);
      exact.scores(h, q, 0, nq, T, b, 0, T);
      for (let t = 0; t < T; t++) {
        const kt = (c: number): number => k[t * W + h * hd + c];
        // z per channel and, per channel on axis channel, s: from the decoded group.
        const z = new Float64Array(hd);
        const s = new Float64Array(hd).fill(1);
        for (let a0 = 0; a0 < hd; a0 += span) {
          const a1 = Math.min(a0 + span, hd);
          if (axis === 'token' && !sym) {
            let mn = Infinity;
            for (let c = a0; c < a1; c++) mn = Math.min(mn, kt(c));
            z.fill(mn, a0, a1);
          }
        }
        if (axis === 'channel' && t < held) {
          const t0 = t - (t % g);
          for (let c = 0; c < hd; c++) {
            let mn = Infinity;
            let mx = -Infinity;
            for (let u = t0; u < t0 + g; u++) {
              mn = Math.min(mn, k[u * W + h * hd + c]);
              mx = Math.max(mx, k[u * W + h * hd + c]);
            }
            z[c] = mn;
            s[c] = (mx - mn) / (2 ** bits - 1) || 1;
          }
        }
        for (let i = 0; i < nq; i++) {
          const qi = (c: number): number => q[i * hd + c];
          let allowed = 0;
          let mag = 0;
          for (let c = 0; c < hd; c++) mag += Math.abs(qi(c)) * (Math.abs(kt(c)) + Math.abs(z[c]));
          if (t < held) {
            for (let a0 = 0; a0 < hd; a0 += span) {
              const a1 = Math.min(a0 + span, hd);
              let amax = 0;
              for (let c = a0; c < a1; c++) amax = Math.max(amax, Math.abs(qi(c) * s[c]));
              const d = (amax / Q) * (1 + 1e-6);
              for (let c = a0; c < a1; c++) allowed += d * (0.5 + 3 * Q * U) * (Math.abs(kt(c)) / s[c]);
            }
          }
          allowed = allowed * (1 + 1e-3) + (hd + 2 * Math.ceil(hd / span) + 8) * U * mag;
          const gap = Math.abs(a[i * T + t] - b[i * T + t]);
          if (!(gap <= allowed)) expect({ h, i, t, gap, allowed }).toBeUndefined();
          if (allowed > 0) worst = Math.max(worst, gap / allowed);
        }
      }
    }
    // Not vacuous: the query's rounding shows.
    expect(worst).toBeGreaterThan(0.05);
  });
});

describe('int16 query levels on long groups', () => {
  it('cap the levels so that Σ level·code stays within int32 (rtn:8,g=head, head_dim 320)', () => {
    // One key: channel 0 at −1, the rest at 1, so every other code is 255; an all-ones query
    // quantizes to levels Q. Q = 32767 would sum 32767·255·319 > 2^31; the cap (2^31 − 1)/(255·320)
    // keeps the sum exact, and the score equals the exact one within the query's rounding.
    const hd = 320;
    const ctx: CodecContext = { role: 'k', layer: 0, nKvHeads: 1, headDim: hd, capacity: 4 };
    const x = new Float32Array(hd).fill(1);
    x[0] = -1;
    const q = new Float32Array(hd).fill(1);
    const score = (spec: string, plain: boolean): number => {
      const c = plain ? withPlainStorage(() => createCodec(spec, ctx)) : createCodec(spec, ctx);
      c.append(x, 1);
      const out = new Float32Array(1);
      c.scores(0, q, 0, 1, 1, out, 0, 1);
      return out[0];
    };
    const exact = score('rtn:8,g=head,dot=f32', false);
    const fast = score('rtn:8,g=head', false);
    expect(fast).toBe(score('rtn:8,g=head', true));
    expect(Math.abs(fast - exact)).toBeLessThan(1e-4 * Math.abs(exact));
  });
});

describe('int16-weight accumulate of rtn/kivi values stays within the weights\' rounding of the exact sum', () => {
  // With dot=int (and i8), per tile of 16 tokens and group the weights a_t = p_t·s_t are rounded to
  // σ·ai_t, σ = max|a|/32767, |a_t − σ·ai_t| ≤ σ·(1/2 + 65536u) (the round-off of a·(1/σ) and of
  // σ), and the zero term is taken over the same weights p̃_t = σ·ai_t/s_t, so the result is
  // Σ_t p̃_t·v̂_t and value d moves by at most Σ_tiles σ·(1/2 + 65536u)·Σ_t |v̂_t,d|/s_t, whatever the
  // zero points, with s_t = (max − min)/(2^B − 1) of the token's group read off the decoded values
  // (at most the stored scale; symmetric: max|v̂|/(2^(B−1) − 1)). The exact sum is taken in double;
  // the kernel's own float rounding adds at most (3·tiles + 4)·u·Σ_t |p_t|·(|v̂_t,d| + |z_t|)
  // (per tile one product and two sums, then the zero term).
  const cases = [
    { spec: 'rtn:4', bits: 4, sym: false, g: 32 },
    { spec: 'rtn:2', bits: 2, sym: false, g: 32 },
    { spec: 'rtn:3', bits: 3, sym: false, g: 32 },
    { spec: 'rtn:8', bits: 8, sym: false, g: 32 },
    { spec: 'rtn:4,mode=sym', bits: 4, sym: true, g: 32 },
    { spec: 'rtn:4,g=row,mode=sym', bits: 4, sym: true, g: Infinity },
    { spec: 'kivi:2', bits: 2, sym: false, g: 32 },
    { spec: 'kivi:4', bits: 4, sym: false, g: 32 },
  ] as const;

  it.each(cases.flatMap((c) => [8, 64, 128].map((headDim) => ({ ...c, headDim }))))('$spec, head_dim $headDim', ({ spec, bits, sym, g, headDim: hd }) => {
    const T = 300;
    const W = N_KV * hd;
    const ctx: CodecContext = { role: 'v', layer: 0, nKvHeads: N_KV, headDim: hd, capacity: T };
    const fast = createCodec(spec, ctx);
    const exact = createCodec(`${spec},dot=f32`, ctx);
    const x = kvRows(T, N_KV, hd, 71 + hd);
    fast.append(x, T);
    exact.append(x, T);
    const v = decoded(exact, W);
    const held = codesHeld(fast, T);
    const nq = 4;
    const p = randn(nq * T, 72);
    const levels = 2 ** bits - 1;
    const off = 2 ** (bits - 1) - 1;
    // Per token and channel of the row: z and s of its group, from the decoded values.
    const z = new Float64Array(T * W);
    const sc = new Float64Array(T * W).fill(1);
    for (let t = 0; t < held; t++) {
      const span = g === Infinity ? W : Math.min(g, hd);
      for (let h = 0; h < (g === Infinity ? 1 : N_KV); h++) {
        for (let a = 0; a < (g === Infinity ? W : hd); a += span) {
          const c0 = t * W + h * hd + a;
          const n = Math.min(span, (g === Infinity ? W : hd) - a);
          let mn = Infinity;
          let mx = -Infinity;
          let amax = 0;
          for (let c = c0; c < c0 + n; c++) {
            mn = Math.min(mn, v[c]);
            mx = Math.max(mx, v[c]);
            amax = Math.max(amax, Math.abs(v[c]));
          }
          z.fill(sym ? 0 : mn, c0, c0 + n);
          sc.fill((sym ? amax / off : (mx - mn) / levels) || 1, c0, c0 + n);
        }
      }
    }
    let worst = 0;
    let rmsI8 = 0;
    let rmsF32 = 0;
    for (let h = 0; h < N_KV; h++) {
      const a = new Float32Array(nq * hd);
      const b = new Float32Array(nq * hd);
      fast.accumulate(h, p, 0, T, nq, T, a, 0);
      exact.accumulate(h, p, 0, T, nq, T, b, 0);
      for (let i = 0; i < nq; i++) {
        for (let d = 0; d < hd; d++) {
          let ref = 0;
          let mag = 0;
          let weights = 0;
          const tiles = Math.ceil(held / 16);
          for (let t = 0; t < T; t++) {
            const c = t * W + h * hd + d;
            ref += p[i * T + t] * v[c];
            mag += Math.abs(p[i * T + t]) * (Math.abs(v[c]) + Math.abs(z[c]));
          }
          for (let t0 = 0; t0 < held; t0 += 16) {
            // σ of this tile for the group of channel d: max over the tile of |p·s|.
            let amax = 0;
            let lv = 0;
            for (let t = t0; t < Math.min(t0 + 16, held); t++) {
              const c = t * W + h * hd + d;
              amax = Math.max(amax, Math.abs(p[i * T + t] * sc[c]));
              lv += Math.abs(v[c]) / sc[c];
            }
            weights += (amax / 32767) * (1 + 1e-6) * (0.5 + 65536 * U) * lv;
          }
          const allowed = weights * (1 + 1e-3) + (3 * tiles + 4 + T - held) * U * mag * 1.01;
          const gap = Math.abs(a[i * hd + d] - ref);
          if (!(gap <= allowed)) expect({ h, i, d, gap, allowed }).toBeUndefined();
          worst = Math.max(worst, gap / allowed);
          rmsI8 += gap ** 2;
          rmsF32 += (b[i * hd + d] - ref) ** 2;
        }
      }
    }
    // Not vacuous: the weights' rounding shows, well above float32 summation noise.
    expect(worst).toBeGreaterThan(0.01);
    expect(Math.sqrt(rmsI8)).toBeGreaterThan(2 * Math.sqrt(rmsF32));
  });
});
