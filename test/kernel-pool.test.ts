import { afterAll, describe, expect, it } from 'vitest';
import { KernelPool, partRange } from '../src/kernels/wasm/pool.js';
import { wasmHeap } from '../src/kernels/wasm/runtime.js';

describe('partRange', () => {
  it('cuts [0, total) into contiguous aligned parts that cover it exactly', () => {
    for (const [total, parts, align] of [[2048, 2, 4], [10, 3, 1], [7, 4, 4], [1, 8, 1], [1000, 7, 32]]) {
      let at = 0;
      for (let p = 0; p < parts; p++) {
        const [from, to] = partRange(total, parts, p, align);
        expect(from).toBe(at);
        expect(to).toBeGreaterThanOrEqual(from);
        if (to < total) expect(to % align).toBe(0);
        at = to;
      }
      expect(at).toBe(total);
    }
  });
});

describe('KernelPool', () => {
  const pools: KernelPool[] = [];
  afterAll(async () => Promise.all(pools.map((p) => p.close())));

  it('gives the same matmul as one call, with 1, 2 and 3 threads', () => {
    const h = wasmHeap();
    const inDim = 96;
    const outDim = 70;
    const n = 3;
    const x = h.f32(n * inDim);
    const w = h.f32(inDim * outDim);
    for (let i = 0; i < x.length; i++) x[i] = Math.sin(i);
    for (let i = 0; i < w.length; i++) w[i] = Math.cos(i * 0.37);
    const want = h.f32(n * outDim);
    h.kernels.matmulF32(want.byteOffset, outDim, x.byteOffset, w.byteOffset, n, inDim, 0, outDim);
    for (const threads of [1, 2, 3]) {
      const pool = new KernelPool(threads);
      pools.push(pool);
      const got = h.f32(n * outDim);
      for (let rep = 0; rep < 50; rep++) {
        got.fill(NaN);
        pool.run('matmulF32', [got.byteOffset, outDim, x.byteOffset, w.byteOffset, n, inDim, 0, 0], { lo: 6, hi: 7, total: outDim, align: 4 });
        expect(Array.from(got)).toEqual(Array.from(want));
      }
    }
  });

  it('refuses bad thread counts and unknown kernels by name', () => {
    expect(() => new KernelPool(0)).toThrow(/--threads must be a positive integer/);
    const pool = new KernelPool(1);
    pools.push(pool);
    expect(() => pool.run('nope', [], { lo: 0, hi: 1, total: 1 })).toThrow(/no WASM kernel "nope"/);
  });
});
