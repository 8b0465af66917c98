// The small float formats of the OCP Microscaling (MX) spec v1.0 and NVIDIA's NVFP4:
//   E4M3 (OCP FP8 "E4M3FN"): sign, 4 exponent bits (bias 7), 3 mantissa bits; no infinities,
//        S.1111.111 is NaN, largest finite ±448, smallest subnormal 2^−9.
//   E2M1 (FP4): sign, 2 exponent bits (bias 1), 1 mantissa bit; ±{0, 0.5, 1, 1.5, 2, 3, 4, 6},
//        no NaN or infinity.
//   E8M0 (MX block scale): 8-bit unsigned biased exponent, value 2^(code − 127), 0xFF is NaN.
// Encoders take any double and round exactly (round-to-nearest, ties to even mantissa), then
// saturate to the largest finite value (the spec's "satfinite" conversion), as MX and NVFP4
// quantizers do: overflow must clip, never become NaN.

/** Nearest integer to v ≥ 0, ties to even (exact for any double: v − floor(v) is exact). */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** floor(log2(x)) for a finite x > 0, exact (Math.log2 alone can be off by one near powers of 2). */
export function floorLog2(x: number): number {
  let e = Math.floor(Math.log2(x));
  if (2 ** e > x) e--;
  else if (2 ** (e + 1) <= x) e++;
  return e;
}

/** ceil(log2(x)) for a finite x > 0, exact. */
export function ceilLog2(x: number): number {
  const e = floorLog2(x);
  return 2 ** e === x ? e : e + 1;
}

function negative(x: number): boolean {
  return x < 0 || Object.is(x, -0);
}

/**
 * A sign-magnitude minifloat with `mBits` mantissa bits, exponent bias `bias`, subnormals, and
 * largest finite magnitude code `maxCode`: the magnitude code of |x| rounded to nearest even and
 * saturated. Codes are contiguous in value, so a mantissa carry into the exponent is just +1.
 */
function encodeMagnitude(a: number, mBits: number, bias: number, maxCode: number, maxValue: number): number {
  if (a >= maxValue) return maxCode;
  const minNormalExp = 1 - bias;
  const scale = 2 ** mBits;
  if (a < 2 ** minNormalExp) {
    // Subnormals: multiples of 2^(minNormalExp − mBits); a result of `scale` is the smallest normal.
    return roundHalfEven(a / 2 ** (minNormalExp - mBits));
  }
  const e = floorLog2(a);
  const q = roundHalfEven((a / 2 ** e - 1) * scale);
  return Math.min(((e + bias) << mBits) + q, maxCode);
}

const E4M3_MAX = 448;

/** Any number → E4M3 code (RNE, saturating to ±448; NaN → 0x7F). */
export function e4m3Encode(x: number): number {
  if (x !== x) return 0x7f;
  return (negative(x) ? 0x80 : 0) | encodeMagnitude(Math.abs(x), 3, 7, 0x7e, E4M3_MAX);
}

/** E4M3 code → value (exact). */
export function e4m3Decode(code: number): number {
  const sign = code & 0x80 ? -1 : 1;
  const e = (code >>> 3) & 0xf;
  const m = code & 7;
  if (e === 15 && m === 7) return NaN;
  return sign * (e === 0 ? m * 2 ** -9 : (1 + m / 8) * 2 ** (e - 7));
}

const E2M1_MAX = 6;

/** Any finite number → E2M1 code (RNE, saturating to ±6). E2M1 has no NaN, so NaN is refused. */
export function e2m1Encode(x: number): number {
  if (x !== x) throw new RangeError('E2M1 cannot represent NaN');
  return (negative(x) ? 0x8 : 0) | encodeMagnitude(Math.abs(x), 1, 1, 0x7, E2M1_MAX);
}

/** E2M1 code → value (exact). */
export function e2m1Decode(code: number): number {
  const sign = code & 0x8 ? -1 : 1;
  const e = (code >>> 1) & 0x3;
  const m = code & 1;
  return sign * (e === 0 ? m * 0.5 : (1 + m / 2) * 2 ** (e - 1));
}

/** Every E4M3 / E2M1 code's value, for table-driven dequantization. */
export const E4M3_VALUES: Readonly<Float64Array> = Float64Array.from({ length: 256 }, (_, c) => e4m3Decode(c));
export const E2M1_VALUES: Readonly<Float64Array> = Float64Array.from({ length: 16 }, (_, c) => e2m1Decode(c));

/** Exponents E8M0 represents: 2^−127 … 2^127. */
export const E8M0_MIN_EXP = -127;
export const E8M0_MAX_EXP = 127;

/**
 * Positive number → E8M0 code. E8M0 has no mantissa, so "nearest" is not what scale rules use:
 * `floor` keeps 2^floor(log2 x) (PTX cvt.rz), `ceil` the smallest power of two ≥ x (cvt.rp).
 * Saturates to codes 0 and 254; x ≤ 0 and NaN (not scales) give 0xFF, the NaN code.
 */
export function e8m0Encode(x: number, mode: 'floor' | 'ceil'): number {
  if (!(x > 0)) return 0xff;
  if (x === Infinity) return 254;
  const e = mode === 'floor' ? floorLog2(x) : ceilLog2(x);
  return Math.min(Math.max(e, E8M0_MIN_EXP), E8M0_MAX_EXP) + 127;
}

/** E8M0 code → 2^(code − 127); 0xFF is NaN. */
export function e8m0Decode(code: number): number {
  return code === 0xff ? NaN : 2 ** (code - 127);
}
