import { describe, expect, it } from 'vitest';
import { kmeans, kmeans1d, nearestCentroid, nearestSorted } from '../src/numeric/kmeans.js';
import { randn } from './helpers/codec-conformance.js';

/** Points around the given centres, `per` each, gaussian with standard deviation sd. */
function blobs(centres: number[][], per: number, sd: number, seed: number): Float64Array {
  const dim = centres[0].length;
  const noise = randn(centres.length * per * dim, seed);
  const out = new Float64Array(noise.length);
  for (let c = 0; c < centres.length; c++)
    for (let p = 0; p < per; p++)
      for (let e = 0; e < dim; e++) {
        const i = (c * per + p) * dim + e;
        out[i] = centres[c][e] + sd * noise[i];
      }
  return out;
}

/** A Lloyd fixed point: each point sits with its nearest centroid, each centroid is its points' weighted mean. */
function expectFixedPoint(points: Float64Array, dim: number, centroids: Float64Array, k: number, weights?: ArrayLike<number>): void {
  const n = points.length / dim;
  const sums = new Float64Array(k * dim);
  const mass = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    const j = nearestCentroid(centroids, k, dim, points, i * dim);
    const w = weights ? weights[i] : 1;
    mass[j] += w;
    for (let e = 0; e < dim; e++) sums[j * dim + e] += w * points[i * dim + e];
  }
  for (let j = 0; j < k; j++) {
    if (mass[j] === 0) continue;
    for (let e = 0; e < dim; e++) expect(centroids[j * dim + e]).toBeCloseTo(sums[j * dim + e] / mass[j], 9);
  }
}

describe('1-D k-means', () => {
  it('recovers well-separated clusters, ascending, at a Lloyd fixed point', () => {
    const xs = blobs([[10], [-10], [0], [25]], 200, 0.5, 3);
    const r = kmeans1d(xs, { k: 4, seed: 7 });
    expect(Array.from(r.centroids, (c) => Math.round(c))).toEqual([-10, 0, 10, 25]);
    expect(r.inertia / xs.length).toBeLessThan(0.3);
    expectFixedPoint(xs, 1, r.centroids, 4);
  });

  it('is deterministic for a seed', () => {
    const xs = randn(5000, 11);
    const a = kmeans1d(xs, { k: 8, seed: 5 });
    const b = kmeans1d(xs, { k: 8, seed: 5 });
    expect(b.centroids).toEqual(a.centroids);
    expect(b.inertia).toBe(a.inertia);
  });

  it('weights points: weighted means, and zero-weight points pull nothing', () => {
    expect(kmeans1d([0, 1], { k: 1, weights: [3, 1] }).centroids[0]).toBeCloseTo(0.25, 12);
    const xs = blobs([[-5], [5], [100]], 50, 0.1, 4);
    const w = Array.from(xs, (x) => (x > 50 ? 0 : 1 + Math.abs(x)));
    const r = kmeans1d(xs, { k: 2, weights: w, seed: 2 });
    expect(Array.from(r.centroids, (c) => Math.round(c))).toEqual([-5, 5]);
    expectFixedPoint(xs.filter((x) => x < 50), 1, r.centroids, 2, w.filter((x, i) => xs[i] < 50));
  });

  it('copes with fewer distinct values than clusters', () => {
    const r = kmeans1d([1, 1, 1, 2], { k: 4 });
    expect(r.centroids.every(Number.isFinite)).toBe(true);
    expect(r.inertia).toBe(0);
  });

  it('refuses bad input by name', () => {
    expect(() => kmeans1d([1, 2], { k: 0 })).toThrow(/k must be a positive integer/);
    expect(() => kmeans1d([1, NaN], { k: 1 })).toThrow(/not finite/);
    expect(() => kmeans1d([1, 2], { k: 1, weights: [1, -1] })).toThrow(/weight -1/);
    expect(() => kmeans1d([1, 2], { k: 1, weights: [0, 0] })).toThrow(/positive weight/);
    expect(() => kmeans1d([1, 2], { k: 1, weights: [1] })).toThrow(/1 weights for 2 points/);
  });
});

describe('d-dimensional k-means', () => {
  const centres = [
    [0, 0, 0],
    [10, 0, 0],
    [0, 10, 0],
    [0, 0, 10],
    [10, 10, 10],
  ];

  it('recovers well-separated clusters and assigns every point to its own', () => {
    const pts = blobs(centres, 100, 0.3, 9);
    const r = kmeans(pts, 3, { k: 5, seed: 1 });
    for (const c of centres) {
      const j = nearestCentroid(r.centroids, 5, 3, c, 0);
      for (let e = 0; e < 3; e++) expect(Math.abs(r.centroids[j * 3 + e] - c[e])).toBeLessThan(0.1);
    }
    for (let b = 0; b < centres.length; b++) {
      const label = r.assignments[b * 100];
      for (let p = 0; p < 100; p++) expect(r.assignments[b * 100 + p]).toBe(label);
    }
    expectFixedPoint(pts, 3, r.centroids, 5);
  });

  it('is deterministic for a seed, and reaches a Lloyd fixed point on unclustered data', () => {
    const pts = Float64Array.from(randn(4 * 3000, 21));
    const a = kmeans(pts, 4, { k: 64, seed: 3, maxIter: 200 });
    const b = kmeans(pts, 4, { k: 64, seed: 3, maxIter: 200 });
    expect(b.centroids).toEqual(a.centroids);
    expect(b.assignments).toEqual(a.assignments);
    expect(a.iterations).toBeLessThan(200);
    expectFixedPoint(pts, 4, a.centroids, 64);
  });

  it('weights points', () => {
    const r = kmeans([0, 0, 2, 4], 2, { k: 1, weights: [1, 3] });
    expect(Array.from(r.centroids)).toEqual([1.5, 3]);
    const pts = blobs(centres, 40, 0.2, 5);
    const w = Array.from({ length: pts.length / 3 }, (_, i) => (i < 40 ? 0 : 1 + (i % 3)));
    const rw = kmeans(pts, 3, { k: 4, weights: w, seed: 8 });
    // The zero-weight blob at the origin attracts no centroid.
    for (let j = 0; j < 4; j++) expect(Math.hypot(rw.centroids[j * 3], rw.centroids[j * 3 + 1], rw.centroids[j * 3 + 2])).toBeGreaterThan(5);
  });

  it('repairs empty clusters and copes with duplicate points', () => {
    const r = kmeans([1, 1, 1, 1, 1, 1, 5, 5], 2, { k: 3 });
    expect(r.centroids.every(Number.isFinite)).toBe(true);
    expect(r.inertia).toBe(0);
  });

  it('refuses bad shapes', () => {
    expect(() => kmeans([1, 2, 3], 2, { k: 1 })).toThrow(/not whole points of 2/);
    expect(() => kmeans([1, 2], 0, { k: 1 })).toThrow(/dim must be a positive integer/);
  });
});

describe('nearest-entry lookups', () => {
  it('finds the nearest entry of an ascending codebook, ties to the lower', () => {
    const book = [-1, -0.25, 0.5, 1];
    expect([-5, -1, -0.7, -0.625, -0.5, 0.125, 0.74, 9].map((x) => nearestSorted(book, x))).toEqual([0, 0, 0, 0, 1, 1, 2, 3]);
    expect(nearestSorted(book, -Infinity)).toBe(0);
    expect(nearestSorted(book, Infinity)).toBe(3);
  });

  it('finds the nearest centroid, ties to the lower index', () => {
    const cents = [0, 0, 2, 0, 0, 2];
    expect(nearestCentroid(cents, 3, 2, [1.9, 0.2], 0)).toBe(1);
    expect(nearestCentroid(cents, 3, 2, [9, 1, 1], 1)).toBe(0);
    expect(nearestCentroid(cents, 3, 2, [1, 1], 0)).toBe(0);
  });
});
