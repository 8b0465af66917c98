// The normalised Walsh–Hadamard transform H = H_n / √n (Sylvester order) for power-of-two n.
// H is orthonormal and symmetric, so H·H = I: the same transform rotates and un-rotates, and
// (H·q)·(H·k) = q·k. Rotating before block quantization spreads an outlier channel over the
// whole vector, shrinking block maxima (QuaRot; the INT-vs-FP study's Hadamard option).
//
// Sizes that are not powers of two have no Sylvester Hadamard matrix; rather than pick a
// padded or block-diagonal variant silently, callers are refused (checkHadamardSize).

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;
}

/** Throws a RangeError naming the size unless n is a power of two. */
export function checkHadamardSize(n: number): void {
  if (!isPowerOfTwo(n)) throw new RangeError(`the Hadamard transform needs a power-of-two size (got ${n})`);
}

/** In place: x[offset … offset+n) ← H·x[offset … offset+n), butterflies in O(n log n). */
export function fwht(x: Float64Array, offset: number, n: number): void {
  checkHadamardSize(n);
  for (let h = 1; h < n; h <<= 1) {
    for (let i = offset; i < offset + n; i += h << 1) {
      for (let j = i; j < i + h; j++) {
        const a = x[j];
        const b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
  const norm = 1 / Math.sqrt(n);
  for (let i = offset; i < offset + n; i++) x[i] *= norm;
}
