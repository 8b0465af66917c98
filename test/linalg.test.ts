import { describe, expect, it } from 'vitest';
import { matmul, svd, symmetricEigen, transpose } from '../src/numeric/linalg.js';
import { randn } from './helpers/codec-conformance.js';

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** ‖QᵀQ − I‖_max for Q rows×cols. */
function orthoGap(q: Float64Array, rows: number, cols: number): number {
  const g = matmul(transpose(q, rows, cols), q, cols, rows, cols);
  for (let i = 0; i < cols; i++) g[i * cols + i] -= 1;
  return maxAbs(g);
}

function usvt(u: Float64Array, s: Float64Array, v: Float64Array, rows: number, cols: number): Float64Array {
  const r = s.length;
  const us = new Float64Array(rows * r);
  for (let i = 0; i < rows; i++) for (let k = 0; k < r; k++) us[i * r + k] = u[i * r + k] * s[k];
  return matmul(us, transpose(v, cols, r), rows, r, cols);
}

describe('matmul / transpose', () => {
  it('multiplies a 2×3 by a 3×2 by hand', () => {
    expect(Array.from(matmul([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], 2, 3, 2))).toEqual([58, 64, 139, 154]);
    expect(Array.from(transpose([1, 2, 3, 4, 5, 6], 2, 3))).toEqual([1, 4, 2, 5, 3, 6]);
  });
});

describe('symmetricEigen', () => {
  it('solves [[2,1],[1,2]]: eigenvalues 3 and 1, eigenvectors (1,1)/√2 and (1,−1)/√2', () => {
    const { values, vectors } = symmetricEigen([2, 1, 1, 2], 2);
    expect(values[0]).toBeCloseTo(3, 14);
    expect(values[1]).toBeCloseTo(1, 14);
    expect(Math.abs(vectors[0])).toBeCloseTo(Math.SQRT1_2, 14);
    expect(vectors[0] * vectors[2]).toBeCloseTo(0.5, 14); // same sign: (1, 1)
    expect(vectors[1] * vectors[3]).toBeCloseTo(-0.5, 14); // opposite signs: (1, −1)
  });

  it('solves a 3×3 with known spectrum: diag(5, 2, −1) and an already-diagonal matrix', () => {
    expect(Array.from(symmetricEigen([2, 0, 0, 0, 5, 0, 0, 0, -1], 3).values)).toEqual([5, 2, -1]);
    // [[4,1,0],[1,4,1],[0,1,4]] has eigenvalues 4 + √2, 4, 4 − √2.
    const { values } = symmetricEigen([4, 1, 0, 1, 4, 1, 0, 1, 4], 3);
    expect(values[0]).toBeCloseTo(4 + Math.SQRT2, 13);
    expect(values[1]).toBeCloseTo(4, 13);
    expect(values[2]).toBeCloseTo(4 - Math.SQRT2, 13);
  });

  it.each([5, 16, 33])('diagonalises a random symmetric %i×%i to 1e-12 with orthonormal eigenvectors', (n) => {
    const r = randn(n * n, n);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = r[i * n + j] + r[j * n + i];
    const { values, vectors } = symmetricEigen(a, n);
    expect(orthoGap(vectors, n, n)).toBeLessThan(1e-13);
    for (let k = 1; k < n; k++) expect(values[k]).toBeLessThanOrEqual(values[k - 1]);
    const vl = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) vl[i * n + k] = vectors[i * n + k] * values[k];
    const back = matmul(vl, transpose(vectors, n, n), n, n, n);
    expect(maxDiff(back, a) / maxAbs(a)).toBeLessThan(1e-12);
  });
});

describe('svd', () => {
  it('2×2 by hand: [[3,0],[4,5]] has singular values √45 and √5', () => {
    const { s, u, v } = svd([3, 0, 4, 5], 2, 2);
    expect(s[0]).toBeCloseTo(Math.sqrt(45), 13);
    expect(s[1]).toBeCloseTo(Math.sqrt(5), 13);
    expect(maxDiff(usvt(u, s, v, 2, 2), [3, 0, 4, 5])).toBeLessThan(1e-14);
    // Right singular vectors of this matrix are (1, 1)/√2 and (1, −1)/√2 up to sign.
    expect(Math.abs(v[0])).toBeCloseTo(Math.SQRT1_2, 14);
    expect(Math.abs(v[2])).toBeCloseTo(Math.SQRT1_2, 14);
  });

  it('3×3 by hand: a permuted diagonal gives its absolute entries, sorted', () => {
    const a = [0, 0, -2, 7, 0, 0, 0, 3, 0];
    const { s, u, v } = svd(a, 3, 3);
    expect(Array.from(s)).toEqual([7, 3, 2]);
    expect(maxDiff(usvt(u, s, v, 3, 3), a)).toBe(0);
  });

  it('rank-1 3×2 [[1,2],[2,4],[3,6]]: σ = √70, 0, and U is completed to an isometry', () => {
    const a = [1, 2, 2, 4, 3, 6];
    const { s, u, v, rank } = svd(a, 3, 2);
    expect(rank).toBe(1);
    expect(s[0]).toBeCloseTo(Math.sqrt(70), 13);
    expect(s[1]).toBeLessThan(1e-14);
    expect(orthoGap(u, 3, 2)).toBeLessThan(1e-14);
    expect(orthoGap(v, 2, 2)).toBeLessThan(1e-14);
    expect(maxDiff(usvt(u, s, v, 3, 2), a)).toBeLessThan(1e-13);
  });

  it('the zero matrix: all σ = 0, U and V still orthonormal', () => {
    const { s, u, v, rank } = svd(new Float64Array(12), 4, 3);
    expect(rank).toBe(0);
    expect(Array.from(s)).toEqual([0, 0, 0]);
    expect(orthoGap(u, 4, 3)).toBeLessThan(1e-15);
    expect(orthoGap(v, 3, 3)).toBeLessThan(1e-15);
  });

  it.each([
    [1, 1],
    [7, 3],
    [3, 7],
    [16, 16],
    [200, 16],
    [12, 90],
  ])('reconstructs a random %i×%i to 1e-12 with orthonormal U, V and sorted σ', (rows, cols) => {
    const a = Float64Array.from(randn(rows * cols, rows * 131 + cols));
    const { u, s, v } = svd(a, rows, cols);
    const r = Math.min(rows, cols);
    expect(s.length).toBe(r);
    for (let k = 1; k < r; k++) expect(s[k]).toBeLessThanOrEqual(s[k - 1]);
    expect(orthoGap(u, rows, r)).toBeLessThan(1e-13);
    expect(orthoGap(v, cols, r)).toBeLessThan(1e-13);
    expect(maxDiff(usvt(u, s, v, rows, cols), a) / maxAbs(a)).toBeLessThan(1e-12);
  });

  it('agrees with the eigenvalues of AᵀA (σ² = λ)', () => {
    const a = Float64Array.from(randn(40 * 6, 9));
    const { s } = svd(a, 40, 6);
    const { values } = symmetricEigen(matmul(transpose(a, 40, 6), a, 6, 40, 6), 6);
    for (let k = 0; k < 6; k++) expect(Math.abs(s[k] * s[k] - values[k]) / values[0]).toBeLessThan(1e-13);
  });

  it('keeps a badly conditioned matrix exact: columns scaled by 1, 1e-4, 1e-8', () => {
    const a = Float64Array.from(randn(30 * 3, 4));
    for (let i = 0; i < 30; i++) {
      a[i * 3 + 1] *= 1e-4;
      a[i * 3 + 2] *= 1e-8;
    }
    const { u, s, v } = svd(a, 30, 3);
    expect(maxDiff(usvt(u, s, v, 30, 3), a) / maxAbs(a)).toBeLessThan(1e-14);
    expect(s[2] / s[0]).toBeLessThan(1e-7);
    expect(orthoGap(u, 30, 3)).toBeLessThan(1e-13);
  });
});
