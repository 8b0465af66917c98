// Small dense linear algebra in float64, row-major, for the matrix decompositions the KV codecs
// run on CPU (DecoQuant's MPO/SVD). Jacobi methods: slower than QR-based LAPACK routines on big
// matrices but simple, and accurate to a few ulps relative to the largest singular value.

const EPS = 2.220446049250313e-16;

/** C = A·B with A m×k and B k×n. */
export function matmul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const x = a[i * k + p];
      if (x === 0) continue;
      for (let j = 0, bo = p * n, co = i * n; j < n; j++) c[co + j] += x * b[bo + j];
    }
  }
  return c;
}

/** Aᵀ for A m×n. */
export function transpose(a: ArrayLike<number>, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
  return t;
}

export interface SymmetricEigen {
  /** Eigenvalues, descending. */
  readonly values: Float64Array;
  /** n×n, column k (vectors[i·n + k]) is the unit eigenvector of values[k]. */
  readonly vectors: Float64Array;
}

/**
 * Eigendecomposition of a symmetric n×n matrix by cyclic Jacobi rotations. Only the upper
 * triangle's symmetric part is trusted: the input is symmetrised first.
 */
export function symmetricEigen(a: ArrayLike<number>, n: number): SymmetricEigen {
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m[i * n + j] = 0.5 * (a[i * n + j] + a[j * n + i]);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let norm = 0;
  for (let i = 0; i < n * n; i++) norm += m[i] * m[i];
  const tol = EPS * EPS * norm;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p * n + q] * m[p * n + q];
    if (off <= tol) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q];
        if (apq === 0) continue;
        const app = m[p * n + p];
        const aqq = m[q * n + q];
        // Rotation that zeroes m[p][q] (Golub & Van Loan 8.5.2), the smaller of the two angles.
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(1 + theta * theta));
        const cs = 1 / Math.sqrt(1 + t * t);
        const sn = t * cs;
        for (let k = 0; k < n; k++) {
          const mkp = m[k * n + p];
          const mkq = m[k * n + q];
          m[k * n + p] = cs * mkp - sn * mkq;
          m[k * n + q] = sn * mkp + cs * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p * n + k];
          const mqk = m[q * n + k];
          m[p * n + k] = cs * mpk - sn * mqk;
          m[q * n + k] = sn * mpk + cs * mqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = cs * vkp - sn * vkq;
          v[k * n + q] = sn * vkp + cs * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => m[y * n + y] - m[x * n + x]);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, k) => {
    values[k] = m[src * n + src];
    for (let i = 0; i < n; i++) vectors[i * n + k] = v[i * n + src];
  });
  return { values, vectors };
}

export interface Svd {
  /** rows×r, orthonormal columns. */
  readonly u: Float64Array;
  /** r singular values, descending, r = min(rows, cols). */
  readonly s: Float64Array;
  /** cols×r, orthonormal columns: A = U·diag(s)·Vᵀ. */
  readonly v: Float64Array;
  readonly rank: number;
}

/**
 * Thin SVD of A (rows×cols) by one-sided Jacobi (Hestenes) on whichever of A, Aᵀ has fewer
 * columns. Singular vectors of (numerically) zero singular values are completed to an
 * orthonormal set, so U and V are exact isometries even for rank-deficient A.
 */
export function svd(a: ArrayLike<number>, rows: number, cols: number): Svd {
  if (cols > rows) {
    const t = svd(transpose(a, rows, cols), cols, rows);
    return { u: t.v, s: t.s, v: t.u, rank: t.rank };
  }
  const n = cols;
  const m = rows;
  // Columns stored contiguously: the rotations walk whole columns.
  const w = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) w[j * m + i] = a[i * n + j];
  const v = new Float64Array(n * n);
  for (let j = 0; j < n; j++) v[j * n + j] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0, po = p * m, qo = q * m; i < m; i++) {
          const x = w[po + i];
          const y = w[qo + i];
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (gamma === 0 || Math.abs(gamma) <= 4 * EPS * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const cs = 1 / Math.sqrt(1 + t * t);
        const sn = cs * t;
        for (let i = 0, po = p * m, qo = q * m; i < m; i++) {
          const x = w[po + i];
          const y = w[qo + i];
          w[po + i] = cs * x - sn * y;
          w[qo + i] = sn * x + cs * y;
        }
        for (let i = 0, po = p * n, qo = q * n; i < n; i++) {
          const x = v[po + i];
          const y = v[qo + i];
          v[po + i] = cs * x - sn * y;
          v[qo + i] = sn * x + cs * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let i = 0; i < m; i++) s += w[j * m + i] * w[j * m + i];
    norms[j] = Math.sqrt(s);
  }
  const order = Array.from({ length: n }, (_, j) => j).sort((x, y) => norms[y] - norms[x]);
  const s = new Float64Array(n);
  const u = new Float64Array(m * n);
  const vOut = new Float64Array(n * n);
  const zeroBelow = Math.max(m, n) * EPS * norms[order[0]];
  let rank = 0;
  const incomplete: number[] = [];
  order.forEach((src, k) => {
    s[k] = norms[src];
    for (let i = 0; i < n; i++) vOut[i * n + k] = v[src * n + i];
    if (s[k] > zeroBelow && s[k] > 0) {
      rank++;
      for (let i = 0; i < m; i++) u[i * n + k] = w[src * m + i] / s[k];
    } else {
      incomplete.push(k);
    }
  });
  completeColumns(u, m, n, incomplete);
  return { u, s, v: vOut, rank };
}

/**
 * Fills the listed columns of Q (rows×cols, the others orthonormal) with unit vectors orthogonal
 * to every other column, by Gram–Schmidt (twice, for stability) on the standard basis.
 */
function completeColumns(q: Float64Array, rows: number, cols: number, missing: readonly number[]): void {
  const done = new Set(Array.from({ length: cols }, (_, j) => j).filter((j) => !missing.includes(j)));
  let candidate = 0;
  for (const k of missing) {
    for (; candidate < rows; candidate++) {
      const x = new Float64Array(rows);
      x[candidate] = 1;
      for (let pass = 0; pass < 2; pass++) {
        for (const j of done) {
          let d = 0;
          for (let i = 0; i < rows; i++) d += q[i * cols + j] * x[i];
          for (let i = 0; i < rows; i++) x[i] -= d * q[i * cols + j];
        }
      }
      let nrm = 0;
      for (let i = 0; i < rows; i++) nrm += x[i] * x[i];
      nrm = Math.sqrt(nrm);
      // Residual norms² over all basis vectors sum to the missing dimension (≥ 1) and only shrink
      // as columns are added, so a candidate passing this threshold is always left; it also
      // bounds the digits lost when normalising.
      if (nrm * nrm * 2 * rows < 1) continue;
      for (let i = 0; i < rows; i++) q[i * cols + k] = x[i] / nrm;
      done.add(k);
      candidate++;
      break;
    }
  }
}
