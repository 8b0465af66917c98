// IEEE binary16 ↔ float32, exact (the same values as src/numeric/f16.ts), and f16-weight
// products. No F16C in WASM: a half is widened by moving its sign, exponent and mantissa into
// float32 position and multiplying by 2^112, which rebiases the exponent (15 → 127) and turns
// a half subnormal (exponent 0) into the f32 value m·2^-24 exactly. Only exponent 31 (inf/NaN)
// needs a separate fix.
import { f32Columns, hsum, tileRows } from './matmul';

// @ts-ignore: decorator
@lazy const REBIAS: f32 = 5.192296858534828e33; // 2^112

/**
 * Four halves, each sign-extended to its i32 lane (v128.load16x4_s), with sign, exponent and
 * mantissa moved into float32 position: the float32 value·2^-112 for every finite half, exactly
 * (subnormal halves become f32 subnormals).
 */
// @ts-ignore: decorator
@inline function f16x4Placed(h: v128): v128 {
  // Sign-extension filled bits 31…28 with the sign; the mask keeps bit 31 and the 15 value bits.
  return v128.and(i32x4.shl(h, 13), i32x4.splat(0x8fffe000));
}

/**
 * Four halves (sign-extended in their i32 lanes) → float32. Exact for every finite half; inf/NaN
 * come out finite (±2^16·(1+m/1024)), so callers either rule them out or use f16x4.
 */
// @ts-ignore: decorator
@inline function f16x4Finite(h: v128): v128 {
  return f32x4.mul(f16x4Placed(h), f32x4.splat(REBIAS));
}

/** Four halves (sign-extended in their i32 lanes) → float32, exact for all 65536 bit patterns. */
// @ts-ignore: decorator
@inline export function f16x4(h: v128): v128 {
  // Exponent 31 gives ±2^16·(1+m/1024): setting all eight f32 exponent bits makes it ±inf or a
  // NaN, keeping the mantissa.
  const special = i32x4.eq(v128.and(h, i32x4.splat(0x7c00)), i32x4.splat(0x7c00));
  return v128.or(f16x4Finite(h), v128.and(special, i32x4.splat(0x7f800000)));
}

/** One half (its 16 bits in the low half of h) → float32, exact. */
// @ts-ignore: decorator
@inline export function f16ToF32Scalar(h: i32): f32 {
  return f32x4.extract_lane(f16x4(i32x4.splat((h << 16) >> 16)), 0);
}

/** float32 → binary16 bits, round to nearest even, overflow to ±inf (numeric/f16.ts f32ToF16). */
export function f32ToF16Scalar(x: f32): i32 {
  const u = reinterpret<u32>(x);
  const sign = <i32>(u >>> 16) & 0x8000;
  const exp = <i32>(u >>> 23) & 0xff;
  let mant = <i32>(u & 0x7fffff);
  if (exp == 0xff) return sign | 0x7c00 | (mant != 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest == half && (m & 1) != 0)) m++;
    return sign | m;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1) != 0)) h++; // a carry into the exponent is still right
  return sign | h;
}

/** dst[i] = the float32 value of half src[i], i < n. */
export function f16ToF32(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const s = src + (<usize>i << 1);
    const d = dst + (<usize>i << 2);
    v128.store(d, f16x4(v128.load16x4_s(s)));
    v128.store(d, f16x4(v128.load16x4_s(s, 8)), 16);
  }
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), f16ToF32Scalar(load<u16>(src + (<usize>i << 1))));
}

/** Σ w[j]·x[j] over n values, w halves converted exactly (inf/NaN included), in matmul.ts's order. */
function dotF16(x: usize, w: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let j = 0;
  for (; j + 4 <= n; j += 4) acc = f32x4.add(acc, f32x4.mul(f16x4(v128.load16x4_s(w + (<usize>j << 1))), v128.load(x + (<usize>j << 2))));
  let s = hsum(acc);
  for (; j < n; j++) s += f16ToF32Scalar(load<u16>(w + (<usize>j << 1))) * load<f32>(x + (<usize>j << 2));
  return s;
}

/**
 * One activation row × four f16 weight rows (stride wStride bytes) → out[0…3], in the summation
 * order of assembly/matmul.ts (so equal to converting first and using the f32 kernels). The
 * vector part multiplies f16x4Placed(w) = w·2^-112 by xs = x·2^112: the exact product is w·x, so
 * it rounds as the converted weight times x does, one multiply fewer per four weights. The
 * largest exponent field seen is tracked, and when one of the rows holds an inf/NaN (exponent
 * 31) the four are recomputed with the exact conversion.
 */
function f16Kernel1x4(out: usize, x: usize, xs: usize, w: usize, wStride: usize, n: i32): void {
  const w1 = w + wStride;
  const w2 = w1 + wStride;
  const w3 = w2 + wStride;
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let expMax = i16x8.splat(0);
  const expMask = i16x8.splat(0x7c00);
  const end8 = <usize>(n & ~7) << 1;
  let p: usize = 0;
  for (; p < end8; p += 16) {
    const xp = xs + (p << 1);
    const x0 = v128.load(xp);
    const x1 = v128.load(xp, 16);
    const h0 = v128.load(w + p);
    const h1 = v128.load(w1 + p);
    const h2 = v128.load(w2 + p);
    const h3 = v128.load(w3 + p);
    expMax = i16x8.max_u(expMax, i16x8.max_u(i16x8.max_u(v128.and(h0, expMask), v128.and(h1, expMask)), i16x8.max_u(v128.and(h2, expMask), v128.and(h3, expMask))));
    a0 = placed8(a0, h0, x0, x1);
    a1 = placed8(a1, h1, x0, x1);
    a2 = placed8(a2, h2, x0, x1);
    a3 = placed8(a3, h3, x0, x1);
  }
  if (n & 4) {
    const x0 = v128.load(xs + (p << 1));
    const e01 = i16x8.max_u(v128.and(v128.load64_zero(w + p), expMask), v128.and(v128.load64_zero(w1 + p), expMask));
    const e23 = i16x8.max_u(v128.and(v128.load64_zero(w2 + p), expMask), v128.and(v128.load64_zero(w3 + p), expMask));
    expMax = i16x8.max_u(expMax, i16x8.max_u(e01, e23));
    a0 = f32x4.add(a0, f32x4.mul(f16x4Placed(v128.load16x4_s(w + p)), x0));
    a1 = f32x4.add(a1, f32x4.mul(f16x4Placed(v128.load16x4_s(w1 + p)), x0));
    a2 = f32x4.add(a2, f32x4.mul(f16x4Placed(v128.load16x4_s(w2 + p)), x0));
    a3 = f32x4.add(a3, f32x4.mul(f16x4Placed(v128.load16x4_s(w3 + p)), x0));
  }
  if (v128.any_true(i16x8.eq(expMax, expMask))) {
    store<f32>(out, dotF16(x, w, n));
    store<f32>(out, dotF16(x, w1, n), 4);
    store<f32>(out, dotF16(x, w2, n), 8);
    store<f32>(out, dotF16(x, w3, n), 12);
    return;
  }
  let s0 = hsum(a0);
  let s1 = hsum(a1);
  let s2 = hsum(a2);
  let s3 = hsum(a3);
  for (let j = n & ~3; j < n; j++) {
    const xj = load<f32>(x + (<usize>j << 2));
    const o = <usize>j << 1;
    s0 += f16ToF32Scalar(load<u16>(w + o)) * xj;
    s1 += f16ToF32Scalar(load<u16>(w1 + o)) * xj;
    s2 += f16ToF32Scalar(load<u16>(w2 + o)) * xj;
    s3 += f16ToF32Scalar(load<u16>(w3 + o)) * xj;
  }
  store<f32>(out, s0);
  store<f32>(out, s1, 4);
  store<f32>(out, s2, 8);
  store<f32>(out, s3, 12);
}

/**
 * acc + placed(h₀…₃)·x0 + placed(h₄…₇)·x1 for eight halves h (i16x8), in that order: the
 * float32 high halves (sign, 3 zero bits, exponent, top 7 mantissa bits) and low halves (last 3
 * mantissa bits) are built for all eight at once and interleaved.
 */
// @ts-ignore: decorator
@inline function placed8(acc: v128, h: v128, x0: v128, x1: v128): v128 {
  const hi = v128.and(i16x8.shr_s(h, 3), i16x8.splat(<i16>0x8fff));
  const lo = i16x8.shl(h, 13);
  const p0 = i16x8.shuffle(lo, hi, 0, 8, 1, 9, 2, 10, 3, 11);
  const p1 = i16x8.shuffle(lo, hi, 4, 12, 5, 13, 6, 14, 7, 15);
  return f32x4.add(f32x4.add(acc, f32x4.mul(p0, x0)), f32x4.mul(p1, x1));
}

/**
 * xs[i] = x[i]·2^112 (exact) for i < n; false when some |x[i]| ≥ 2^16 (or NaN), where that
 * would overflow.
 */
function scaleRow(xs: usize, x: usize, n: i32): bool {
  let m = f32x4.splat(0);
  const s = f32x4.splat(REBIAS);
  const end = <usize>(n & ~3) << 2;
  for (let p: usize = 0; p < end; p += 16) {
    const v = v128.load(x + p);
    m = f32x4.max(m, f32x4.abs(v));
    v128.store(xs + p, f32x4.mul(v, s));
  }
  let mx = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
  for (let p = end; p < (<usize>n << 2); p += 4) mx = max(mx, abs(load<f32>(x + p)));
  return mx < 65536;
}

/** Bytes of scratch matmulF16 needs for rows of inDim values: one tile of weight rows as f32. */
export function f16ScratchBytes(inDim: i32): i32 {
  return tileRows(inDim << 2) * (inDim << 2);
}

/**
 * out[r·outStride + j] = x_r · W_j for rows r < n and output columns j ∈ [j0, j1), W f16
 * [out][inDim], with f16ScratchBytes(inDim) bytes of scratch. Up to 3 activation rows convert
 * each weight on the fly (matrix-vector: bound by the conversion, half the bytes of f32); from 4
 * rows on, each tile of weight rows is converted once into scratch and multiplied by the f32
 * kernels. Either way every output is the f32 kernels' sum of the exactly converted weights.
 */
export function matmulF16(out: usize, outStride: i32, x: usize, w: usize, n: i32, inDim: i32, j0: i32, j1: i32, scratch: usize): void {
  const wRow = <usize>inDim << 1;
  const xRow = <usize>inDim << 2;
  const oRow = <usize>outStride << 2;
  if (n < 4) {
    for (let r = 0; r < n; r++) {
      const xr = x + <usize>r * xRow;
      const o = out + <usize>r * oRow;
      let j = j0;
      if (scaleRow(scratch, xr, inDim)) {
        for (; j + 4 <= j1; j += 4) f16Kernel1x4(o + (<usize>j << 2), xr, scratch, w + <usize>j * wRow, wRow, inDim);
      }
      for (; j < j1; j++) store<f32>(o + (<usize>j << 2), dotF16(xr, w + <usize>j * wRow, inDim));
    }
    return;
  }
  const tile = tileRows(<i32>xRow);
  for (let t0 = j0; t0 < j1; t0 += tile) {
    const cols = min(j1, t0 + tile) - t0;
    f16ToF32(scratch, w + <usize>t0 * wRow, cols * inDim);
    f32Columns(out + (<usize>t0 << 2), oRow, x, n, inDim, scratch, cols);
  }
}
