// Weighted k-means (Lloyd's algorithm with k-means++ seeding), the codebook learner of the
// calibrated KV methods: 1-D for KVQuant's non-uniform datatypes, d-dimensional for Coupled
// Quantization's channel-group codebooks. A seed fixes every random choice, so a calibration
// file is reproducible.
import { Rng } from '../engine/rng.js';

export interface KMeansOptions {
  /** Clusters wanted (≥ 1). */
  readonly k: number;
  /** Non-negative weight per point (default 1 each); zero-weight points never pull a centroid. */
  readonly weights?: ArrayLike<number>;
  /** Seed of the k-means++ draws (default 1). */
  readonly seed?: number;
  /** Lloyd iterations at most (default 50, KVQuant's sklearn max_iter); stops early at a fixed point. */
  readonly maxIter?: number;
}

export interface KMeansResult {
  /** k centroids of `dim` values each, centroid j at j·dim (1-D: ascending). */
  readonly centroids: Float64Array;
  /** Σ w·‖x − nearest centroid‖² over the points. */
  readonly inertia: number;
  /** Lloyd iterations run. */
  readonly iterations: number;
}

interface Checked {
  readonly k: number;
  readonly maxIter: number;
  readonly rng: Rng;
}

function check(n: number, opts: KMeansOptions): Checked {
  const { k } = opts;
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k-means: k must be a positive integer (got ${k})`);
  const maxIter = opts.maxIter ?? 50;
  if (!Number.isInteger(maxIter) || maxIter < 0) throw new RangeError(`k-means: maxIter must be a non-negative integer (got ${maxIter})`);
  const w = opts.weights;
  if (w !== undefined && w.length !== n) throw new RangeError(`k-means: ${w.length} weights for ${n} points`);
  let positive = 0;
  for (let i = 0; i < n; i++) {
    const wi = w === undefined ? 1 : w[i];
    if (!(wi >= 0) || !Number.isFinite(wi)) throw new RangeError(`k-means: weight ${wi} of point ${i} is not a finite non-negative number`);
    if (wi > 0) positive++;
  }
  if (positive === 0) throw new RangeError('k-means: needs at least one point with positive weight');
  return { k, maxIter, rng: new Rng(opts.seed ?? 1) };
}

/** Index i with prefix[i] ≤ u < prefix[i + 1] (prefix ascending, prefix[0] = 0): a weighted draw. */
function drawFromPrefix(prefix: Float64Array, u: number): number {
  let lo = 0;
  let hi = prefix.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (prefix[mid] <= u) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * k-means++ seeding: the first centre drawn ∝ w, each next one ∝ w·D² (D the distance to the
 * nearest centre so far). When every point already sits on a centre, the rest repeat it.
 */
function seedCentres(points: Float64Array, n: number, dim: number, w: (i: number) => number, c: Checked): Float64Array {
  const { k, rng } = c;
  const centres = new Float64Array(k * dim);
  const cum = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) cum[i + 1] = cum[i] + w(i);
  let pick = drawFromPrefix(cum, rng.next() * cum[n]);
  const d2 = new Float64Array(n).fill(Infinity);
  for (let j = 0; j < k; j++) {
    for (let e = 0; e < dim; e++) centres[j * dim + e] = points[pick * dim + e];
    if (j === k - 1) break;
    let total = 0;
    for (let i = 0; i < n; i++) {
      let d = 0;
      for (let e = 0; e < dim; e++) {
        const diff = points[i * dim + e] - centres[j * dim + e];
        d += diff * diff;
      }
      if (d < d2[i]) d2[i] = d;
      total += w(i) * d2[i];
    }
    if (total === 0) continue; // keeps `pick`: a duplicate centre
    let u = rng.next() * total;
    pick = -1;
    for (let i = 0; i < n; i++) {
      const p = w(i) * d2[i];
      if (p > 0) {
        pick = i;
        if (u < p) break;
        u -= p;
      }
    }
  }
  return centres;
}

/** Index of the entry of an ascending codebook nearest to x (ties to the lower entry). */
export function nearestSorted(codebook: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = codebook.length - 1;
  if (!(x > codebook[0])) return 0;
  if (x >= codebook[hi]) return hi;
  // Invariant: codebook[lo] < x ≤ codebook[hi].
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (codebook[mid] < x) lo = mid;
    else hi = mid;
  }
  return x - codebook[lo] <= codebook[hi] - x ? lo : hi;
}

/** Index of the centroid nearest (L2) to x[xOff … xOff+dim) among k centroids; ties to the lower index. */
export function nearestCentroid(centroids: ArrayLike<number>, k: number, dim: number, x: ArrayLike<number>, xOff: number): number {
  let best = 0;
  let bestD = Infinity;
  for (let j = 0, co = 0; j < k; j++, co += dim) {
    let d = 0;
    for (let e = 0; e < dim && d < bestD; e++) {
      const diff = x[xOff + e] - centroids[co + e];
      d += diff * diff;
    }
    if (d < bestD) {
      bestD = d;
      best = j;
    }
  }
  return best;
}

/**
 * Weighted 1-D k-means. The points are sorted once; then every Lloyd step is exact and costs
 * O(k log n): clusters are the runs between midpoints of adjacent centroids, and their weighted
 * means come from prefix sums. Centroids are returned ascending.
 */
export function kmeans1d(values: ArrayLike<number>, opts: KMeansOptions): KMeansResult {
  const n = values.length;
  const c = check(n, opts);
  for (let i = 0; i < n; i++) if (!Number.isFinite(values[i])) throw new RangeError(`k-means: point ${i} is not finite (${values[i]})`);
  const xs = new Float64Array(n);
  const ws = new Float64Array(n);
  if (opts.weights === undefined) {
    for (let i = 0; i < n; i++) xs[i] = values[i];
    xs.sort();
    ws.fill(1);
  } else {
    const w = opts.weights;
    const order = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a] - values[b] || a - b);
    for (let i = 0; i < n; i++) {
      xs[i] = values[order[i]];
      ws[i] = w[order[i]];
    }
  }
  const sw = new Float64Array(n + 1);
  const swx = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) {
    sw[i + 1] = sw[i] + ws[i];
    swx[i + 1] = swx[i] + ws[i] * xs[i];
  }

  const { k } = c;
  const cent = seedCentres(xs, n, 1, (i) => ws[i], c).sort();
  // ends[j]: one past the last sorted point of cluster j (points at a midpoint go to the lower one).
  const ends = new Int32Array(k);
  const split = (): boolean => {
    let changed = false;
    for (let j = 0; j < k; j++) {
      let e = n;
      if (j < k - 1) {
        const mid = (cent[j] + cent[j + 1]) / 2;
        let lo = j === 0 ? 0 : ends[j - 1];
        let hi = n;
        while (lo < hi) {
          const m = (lo + hi) >>> 1;
          if (xs[m] <= mid) lo = m + 1;
          else hi = m;
        }
        e = lo;
      }
      if (ends[j] !== e) changed = true;
      ends[j] = e;
    }
    return changed;
  };
  split();
  let iterations = 0;
  while (iterations < c.maxIter) {
    iterations++;
    for (let j = 0, s = 0; j < k; s = ends[j], j++) {
      const wSum = sw[ends[j]] - sw[s];
      // An empty cluster keeps its centroid; with sorted centres it stays between its neighbours.
      if (wSum > 0) cent[j] = (swx[ends[j]] - swx[s]) / wSum;
    }
    cent.sort();
    if (!split()) break;
  }
  let inertia = 0;
  for (let j = 0, s = 0; j < k; s = ends[j], j++) for (let i = s; i < ends[j]; i++) inertia += ws[i] * (xs[i] - cent[j]) ** 2;
  return { centroids: cent, inertia, iterations };
}

/**
 * Weighted k-means of n points of `dim` values (point i at i·dim): Lloyd's algorithm, with
 * Hamerly's bounds to skip the points whose nearest centroid cannot have changed (the same fixed
 * point as plain Lloyd, many times fewer distance computations once centroids settle). An empty
 * cluster is moved to the point worst served by its centroid (largest w·D²), the usual repair.
 */
export function kmeans(points: ArrayLike<number>, dim: number, opts: KMeansOptions): KMeansResult & { readonly assignments: Int32Array } {
  if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`k-means: dim must be a positive integer (got ${dim})`);
  if (points.length % dim !== 0) throw new RangeError(`k-means: ${points.length} values are not whole points of ${dim}`);
  const n = points.length / dim;
  const c = check(n, opts);
  for (let i = 0; i < points.length; i++) if (!Number.isFinite(points[i])) throw new RangeError(`k-means: value ${i} is not finite (${points[i]})`);
  const wts = opts.weights;
  const w = wts === undefined ? () => 1 : (i: number) => wts[i];
  const { k } = c;
  const pts = Float64Array.from(points);
  const cent = seedCentres(pts, n, dim, w, c);
  const prev = new Float64Array(k * dim);
  const assign = new Int32Array(n);
  const upper = new Float64Array(n); // ≥ distance to the assigned centroid
  const lower = new Float64Array(n); // ≤ distance to every other centroid
  const half = new Float64Array(k); // half the distance to the nearest other centroid
  const moved = new Float64Array(k);
  const sums = new Float64Array(k * dim);
  const mass = new Float64Array(k);

  const dist = (i: number, j: number): number => {
    let d = 0;
    for (let e = 0, po = i * dim, co = j * dim; e < dim; e++) {
      const diff = pts[po + e] - cent[co + e];
      d += diff * diff;
    }
    return Math.sqrt(d);
  };
  // Centroids sorted along the coordinate where they spread most: a search walks outwards from
  // the point's own coordinate and stops once that coordinate alone puts the rest out of reach.
  let axis = 0;
  const byKey = new Int32Array(k);
  const keys = new Float64Array(k);
  const index = (): void => {
    let bestSpread = -1;
    for (let e = 0; e < dim; e++) {
      let mean = 0;
      for (let j = 0; j < k; j++) mean += cent[j * dim + e];
      mean /= k;
      let spread = 0;
      for (let j = 0; j < k; j++) spread += (cent[j * dim + e] - mean) ** 2;
      if (spread > bestSpread) {
        bestSpread = spread;
        axis = e;
      }
    }
    for (let j = 0; j < k; j++) byKey[j] = j;
    byKey.sort((a, b) => cent[a * dim + axis] - cent[b * dim + axis] || a - b);
    for (let r = 0; r < k; r++) keys[r] = cent[byKey[r] * dim + axis];
  };
  /** Nearest (ties to the lower index) and second-nearest centroid of point i; returns whether its assignment changed. */
  const search = (i: number): boolean => {
    let best = 0;
    let d1 = Infinity; // squared distances here
    let d2 = Infinity;
    const po = i * dim;
    const x = pts[po + axis];
    let hi = 0;
    let top = k;
    while (hi < top) {
      const mid = (hi + top) >>> 1;
      if (keys[mid] < x) hi = mid + 1;
      else top = mid;
    }
    let lo = hi - 1;
    while (lo >= 0 || hi < k) {
      const gapLo = lo >= 0 ? x - keys[lo] : Infinity;
      const gapHi = hi < k ? keys[hi] - x : Infinity;
      let j: number;
      let gap: number;
      if (gapLo <= gapHi) {
        j = byKey[lo--];
        gap = gapLo;
      } else {
        j = byKey[hi++];
        gap = gapHi;
      }
      // Gaps only grow from here on: nothing further can beat the second best.
      if (gap * gap > d2) break;
      let d = 0;
      for (let e = 0, co = j * dim; e < dim && d <= d2; e++) {
        const diff = pts[po + e] - cent[co + e];
        d += diff * diff;
      }
      if (d < d1 || (d === d1 && j < best)) {
        d2 = d1;
        d1 = d;
        best = j;
      } else if (d < d2) d2 = d;
    }
    upper[i] = Math.sqrt(d1);
    lower[i] = Math.sqrt(d2);
    const changed = assign[i] !== best;
    assign[i] = best;
    return changed;
  };

  index();
  for (let i = 0; i < n; i++) search(i);
  let iterations = 0;
  while (iterations < c.maxIter) {
    iterations++;
    sums.fill(0);
    mass.fill(0);
    for (let i = 0; i < n; i++) {
      const wi = w(i);
      if (wi === 0) continue;
      const j = assign[i];
      mass[j] += wi;
      for (let e = 0; e < dim; e++) sums[j * dim + e] += wi * pts[i * dim + e];
    }
    prev.set(cent);
    let repaired = false;
    for (let j = 0; j < k; j++) {
      if (mass[j] > 0) {
        for (let e = 0; e < dim; e++) cent[j * dim + e] = sums[j * dim + e] / mass[j];
        continue;
      }
      let worst = -1;
      let worstCost = 0;
      for (let i = 0; i < n; i++) {
        const cost = w(i) * dist(i, assign[i]) ** 2;
        if (cost > worstCost) {
          worstCost = cost;
          worst = i;
        }
      }
      if (worst < 0) continue; // every point sits on a centroid: nothing to repair
      for (let e = 0; e < dim; e++) cent[j * dim + e] = pts[worst * dim + e];
      repaired = true;
    }
    let far = -1;
    let farMove = 0;
    let nextMove = 0;
    for (let j = 0; j < k; j++) {
      let d = 0;
      for (let e = 0; e < dim; e++) d += (cent[j * dim + e] - prev[j * dim + e]) ** 2;
      moved[j] = Math.sqrt(d);
      if (moved[j] > farMove) {
        nextMove = farMove;
        farMove = moved[j];
        far = j;
      } else if (moved[j] > nextMove) nextMove = moved[j];
    }
    for (let i = 0; i < n; i++) {
      upper[i] += moved[assign[i]];
      lower[i] -= assign[i] === far ? nextMove : farMove;
    }
    index();
    for (let j = 0; j < k; j++) {
      let m = Infinity;
      for (let j2 = 0; j2 < k; j2++) {
        if (j2 === j) continue;
        let d = 0;
        for (let e = 0; e < dim; e++) d += (cent[j * dim + e] - cent[j2 * dim + e]) ** 2;
        m = Math.min(m, d);
      }
      half[j] = Math.sqrt(m) / 2;
    }
    let changed = false;
    for (let i = 0; i < n; i++) {
      const bound = Math.max(half[assign[i]], lower[i]);
      if (upper[i] <= bound) continue;
      upper[i] = dist(i, assign[i]);
      if (upper[i] <= bound) continue;
      if (search(i)) changed = true;
    }
    if (!changed && !repaired) break;
  }
  let inertia = 0;
  for (let i = 0; i < n; i++) inertia += w(i) * dist(i, assign[i]) ** 2;
  return { centroids: cent, inertia, iterations, assignments: assign };
}
