import { describe, expect, it } from 'vitest';
import { matmul, rmsnorm, rope, ropeInvFreq, softmax, swiglu } from '../src/kernels/ref/ops.js';

function rand(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1);
}

describe('reference kernels', () => {
  it.each([1, 3, 4, 7, 9])('matmul equals the naive triple loop for %i rows', (n) => {
    const inDim = 37;
    const outDim = 1000; // spans several weight-row blocks
    const x = rand(n * inDim, 1);
    const w = rand(outDim * inDim, 2);
    const out = new Float32Array(n * outDim + 5);
    matmul(out, x, w, n, inDim, outDim, 0, 5);
    for (let i = 0; i < n; i++)
      for (let o = 0; o < outDim; o += 37) {
        let s = 0;
        for (let j = 0; j < inDim; j++) s += x[i * inDim + j] * w[o * inDim + j];
        expect(out[5 + i * outDim + o]).toBeCloseTo(s, 5);
      }
  });

  it('rmsnorm follows its definition', () => {
    const x = rand(2 * 16, 3);
    const w = rand(16, 4);
    const out = new Float32Array(16);
    rmsnorm(out, x, w, 1, 16, 1e-5, 16);
    let ss = 0;
    for (let j = 0; j < 16; j++) ss += x[16 + j] ** 2;
    for (let j = 0; j < 16; j++) expect(out[j]).toBeCloseTo((x[16 + j] / Math.sqrt(ss / 16 + 1e-5)) * w[j], 6);
  });

  it('rope rotates interleaved pairs as complex multiplication by e^{i·pos·θ^(-2k/d)}', () => {
    const hd = 8;
    const x = rand(2 * 2 * hd, 5); // 2 tokens × 2 heads
    const orig = Float32Array.from(x);
    const inv = ropeInvFreq(10000, hd);
    rope(x, 2, 2, hd, 7, inv, new Float32Array(hd / 2), new Float32Array(hd / 2));
    for (let r = 0; r < 2; r++)
      for (let h = 0; h < 2; h++)
        for (let k = 0; k < hd / 2; k++) {
          const o = r * 2 * hd + h * hd + 2 * k;
          const a = (7 + r) * 10000 ** ((-2 * k) / hd);
          expect(x[o]).toBeCloseTo(orig[o] * Math.cos(a) - orig[o + 1] * Math.sin(a), 6);
          expect(x[o + 1]).toBeCloseTo(orig[o] * Math.sin(a) + orig[o + 1] * Math.cos(a), 6);
        }
    // Relative positions: a rotated q·k depends only on the distance.
    const q = rand(hd, 8);
    const k = rand(hd, 9);
    const dot = (p: number, s: number): number => {
      const qq = Float32Array.from(q);
      const kk = Float32Array.from(k);
      const c = new Float32Array(hd / 2);
      const sn = new Float32Array(hd / 2);
      rope(qq, 1, 1, hd, p, inv, c, sn);
      rope(kk, 1, 1, hd, s, inv, c, sn);
      return qq.reduce((acc, v, i) => acc + v * kk[i], 0);
    };
    expect(dot(10, 3)).toBeCloseTo(dot(107, 100), 4);
  });

  it('softmax sums to one and is shift invariant; swiglu is silu(g)·u', () => {
    const x = Float32Array.from([1000, 1001, 999, 1000.5]);
    softmax(x, 0, 4, 0.5);
    expect(x.reduce((a, b) => a + b)).toBeCloseTo(1, 6);
    expect(x[1] / x[0]).toBeCloseTo(Math.exp(0.5), 5);
    const g = Float32Array.from([-2, 0, 3]);
    swiglu(g, Float32Array.from([1, 5, 2]), 3);
    expect(g[0]).toBeCloseTo(-2 / (1 + Math.exp(2)), 6);
    expect(g[1]).toBe(0);
    expect(g[2]).toBeCloseTo((3 / (1 + Math.exp(-3))) * 2, 6);
  });
});
