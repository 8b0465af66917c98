// Matrix Product Operator (tensor-train) decomposition of a matrix, as DecoQuant uses it
// (methods.md §1.2): reshape W (I×J) with I = ∏ i_k, J = ∏ j_k into the interleaved 2n-way
// tensor (i_1, j_1, …, i_n, j_n), split it by sequential SVD at full bond dimension (exact), then
// fix the gauge. Local tensor k is stored row-major as [d_k, i_k, j_k, d_{k+1}], d_0 = d_n = 1.
import { svd } from '../numeric/linalg.js';

export interface Mpo {
  readonly rowDims: readonly number[];
  readonly colDims: readonly number[];
  /** d_0 … d_n: d_0 = d_n = 1, d_k the full bond dimension of fullBondDims(). */
  readonly bonds: readonly number[];
  /** Local tensors, row-major [d_k, i_k, j_k, d_{k+1}]. */
  readonly cores: readonly Float64Array[];
}

export type MpoGauge =
  /**
   * Every bond's Schmidt values split as √Λ onto both neighbours (Vidal form
   * T_k = Λ_{k}^{1/2} Γ_k Λ_{k+1}^{1/2}). For n = 2 this is DecoQuant's canonical result,
   * T_1 = U·Σ^{1/2}, T_2 = Σ^{1/2}·Vᵀ (methods.md §1.2); for n ≥ 3 the official code's gauge was
   * not reproduced and this symmetric extension is our choice [derived]. Entries of inner tensors
   * are bounded by 1 in magnitude (√(min Λ / max Λ) across each tensor), so no local tensor
   * carries the matrix's outliers alone.
   */
  | 'balanced'
  /** Plain TT-SVD output: every tensor but the last left-orthonormal, the last holds the norm. */
  | 'left';

export interface MpoOptions {
  readonly gauge?: MpoGauge;
  /**
   * Balanced gauge only: bond components whose Schmidt value is at most rankTol × the bond's
   * largest are dropped (zeroed on both sides) instead of being divided by ~0. They carry at most
   * that fraction of the norm each. Default 1e-12.
   */
  readonly rankTol?: number;
}

/** d_0 … d_n with d_k = min(∏_{m<k} i_m j_m, ∏_{m≥k} i_m j_m): the untruncated bond dimensions. */
export function fullBondDims(rowDims: readonly number[], colDims: readonly number[]): number[] {
  const n = checkDims(rowDims, colDims);
  const sizes = rowDims.map((i, k) => i * colDims[k]);
  const bonds = [1];
  let left = 1;
  for (let k = 1; k < n; k++) {
    left *= sizes[k - 1];
    const right = sizes.slice(k).reduce((a, b) => a * b, 1);
    bonds.push(Math.min(left, right));
  }
  bonds.push(1);
  return bonds;
}

function checkDims(rowDims: readonly number[], colDims: readonly number[]): number {
  const n = rowDims.length;
  if (n < 1 || colDims.length !== n) throw new RangeError(`MPO needs as many row factors as column factors, at least one (got ${rowDims.length} and ${colDims.length})`);
  for (const d of [...rowDims, ...colDims]) {
    if (!Number.isInteger(d) || d < 1) throw new RangeError(`MPO factors must be positive integers (got ${rowDims} / ${colDims})`);
  }
  return n;
}

/** Flat index of W[r, c] in the interleaved tensor, split as rowPart[r] + colPart[c]. */
function interleaving(rowDims: readonly number[], colDims: readonly number[]): { rowPart: Int32Array; colPart: Int32Array } {
  const n = rowDims.length;
  // Stride of mode k (size i_k·j_k) in the interleaved row-major tensor.
  const stride = new Array<number>(n);
  for (let k = n - 1, s = 1; k >= 0; k--) {
    stride[k] = s;
    s *= rowDims[k] * colDims[k];
  }
  const part = (dims: readonly number[], weight: (k: number) => number): Int32Array => {
    const total = dims.reduce((a, b) => a * b, 1);
    const out = new Int32Array(total);
    for (let x = 0; x < total; x++) {
      // Row-major digits of x: dims[0] is the most significant.
      let rest = x;
      let idx = 0;
      for (let k = n - 1; k >= 0; k--) {
        idx += (rest % dims[k]) * weight(k);
        rest = Math.floor(rest / dims[k]);
      }
      out[x] = idx;
    }
    return out;
  };
  return {
    rowPart: part(rowDims, (k) => colDims[k] * stride[k]),
    colPart: part(colDims, (k) => stride[k]),
  };
}

/** Decomposes W (I×J row-major) into n = rowDims.length local tensors, exactly. */
export function mpoDecompose(w: ArrayLike<number>, rowDims: readonly number[], colDims: readonly number[], opts: MpoOptions = {}): Mpo {
  const n = checkDims(rowDims, colDims);
  const I = rowDims.reduce((a, b) => a * b, 1);
  const J = colDims.reduce((a, b) => a * b, 1);
  if (w.length !== I * J) throw new RangeError(`MPO input has ${w.length} values, ${rowDims.join('·')} × ${colDims.join('·')} = ${I * J} expected`);
  const bonds = fullBondDims(rowDims, colDims);
  const { rowPart, colPart } = interleaving(rowDims, colDims);
  let rem = new Float64Array(I * J);
  for (let r = 0; r < I; r++) for (let c = 0; c < J; c++) rem[rowPart[r] + colPart[c]] = w[r * J + c];

  // Sequential SVD, left to right: core k = U (left-orthonormal), remainder ← Σ·Vᵀ.
  const cores: Float64Array[] = [];
  for (let k = 0; k < n - 1; k++) {
    const rows = bonds[k] * rowDims[k] * colDims[k];
    const cols = rem.length / rows;
    const { u, s, v } = svd(rem, rows, cols);
    const r = s.length;
    if (r !== bonds[k + 1]) throw new Error(`internal: bond ${k + 1} is ${r}, expected ${bonds[k + 1]}`);
    cores.push(u);
    const next = new Float64Array(r * cols);
    for (let a = 0; a < r; a++) for (let c = 0; c < cols; c++) next[a * cols + c] = s[a] * v[c * r + a];
    rem = next;
  }
  cores.push(rem);
  const mpo: Mpo = { rowDims: [...rowDims], colDims: [...colDims], bonds, cores };
  return (opts.gauge ?? 'balanced') === 'balanced' ? balance(mpo, opts.rankTol ?? 1e-12) : mpo;
}

/**
 * Right-to-left SVD sweep over a left-canonical MPO: makes cores 1…n−1 right-orthonormal and
 * yields each bond's Schmidt values (the left environment is an isometry at every step), then
 * splits √Λ onto both sides of each bond.
 */
function balance(mpo: Mpo, rankTol: number): Mpo {
  const { bonds } = mpo;
  const n = mpo.cores.length;
  const cores = mpo.cores.map((c) => Float64Array.from(c));
  const lambda: Float64Array[] = new Array<Float64Array>(n + 1);
  lambda[0] = Float64Array.of(1);
  lambda[n] = Float64Array.of(1);
  for (let k = n - 1; k >= 1; k--) {
    const dl = bonds[k];
    const cols = cores[k].length / dl;
    const { u, s, v } = svd(cores[k], dl, cols);
    // dl ≤ cols always holds at full bond dimension, so U is dl×dl orthogonal.
    const b = new Float64Array(dl * cols);
    for (let a = 0; a < dl; a++) for (let c = 0; c < cols; c++) b[a * cols + c] = v[c * dl + a];
    cores[k] = b;
    lambda[k] = s;
    // Absorb U·diag(s) into the previous core's right bond.
    const prev = cores[k - 1];
    const outer = prev.length / dl;
    const us = new Float64Array(dl * dl);
    for (let i = 0; i < dl; i++) for (let a = 0; a < dl; a++) us[i * dl + a] = u[i * dl + a] * s[a];
    const next = new Float64Array(prev.length);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < dl; i++) {
        const x = prev[o * dl + i];
        if (x === 0) continue;
        for (let a = 0; a < dl; a++) next[o * dl + a] += x * us[i * dl + a];
      }
    }
    cores[k - 1] = next;
  }
  // Core k = Λ_k^{1/2} · B_k · Λ_{k+1}^{-1/2}; core 0 = M_0 · Λ_1^{-1/2}. The products telescope.
  const sqrtL = lambda.map((l) => l.map((x, _i, all) => (x > rankTol * all[0] ? Math.sqrt(x) : 0)));
  const invSqrtL = sqrtL.map((l) => l.map((x) => (x > 0 ? 1 / x : 0)));
  for (let k = 0; k < n; k++) {
    const dl = bonds[k];
    const dr = bonds[k + 1];
    const mid = cores[k].length / (dl * dr);
    const core = cores[k];
    for (let a = 0; a < dl; a++) {
      const left = k === 0 ? 1 : sqrtL[k][a];
      for (let x = 0; x < mid; x++) {
        for (let b = 0; b < dr; b++) core[(a * mid + x) * dr + b] *= left * invSqrtL[k + 1][b];
      }
    }
  }
  return { ...mpo, cores };
}

/** W (I×J row-major) from its local tensors: contract the bonds, undo the interleaving. */
export function mpoReconstruct(mpo: Mpo): Float64Array {
  const { rowDims, colDims, bonds, cores } = mpo;
  const n = cores.length;
  // acc: [prefix of interleaved modes, d_k], grown one core at a time.
  let acc: Float64Array = Float64Array.from(cores[0]);
  let outer = rowDims[0] * colDims[0];
  for (let k = 1; k < n; k++) {
    const dl = bonds[k];
    const mid = rowDims[k] * colDims[k] * bonds[k + 1];
    const next = new Float64Array(outer * mid);
    const core = cores[k];
    for (let o = 0; o < outer; o++) {
      for (let a = 0; a < dl; a++) {
        const x = acc[o * dl + a];
        if (x === 0) continue;
        for (let j = 0; j < mid; j++) next[o * mid + j] += x * core[a * mid + j];
      }
    }
    acc = next;
    outer *= rowDims[k] * colDims[k];
  }
  const I = rowDims.reduce((a, b) => a * b, 1);
  const J = colDims.reduce((a, b) => a * b, 1);
  const { rowPart, colPart } = interleaving(rowDims, colDims);
  const w = new Float64Array(I * J);
  for (let r = 0; r < I; r++) for (let c = 0; c < J; c++) w[r * J + c] = acc[rowPart[r] + colPart[c]];
  return w;
}
