// Row-wise and elementwise kernels of the forward pass: RMSNorm, RoPE, softmax, SwiGLU, GEGLU,
// soft-capping, x += y. RMSNorm and RoPE compute in f64 exactly as their plain-TS twins
// (kernels/ref/ops.ts) do and match them bit for bit; the others use the f32 vector exp below.

// Cephes expf: x = k·ln2 + r (Cody–Waite split of ln2, |r| ≤ ln2/2), e^r by a degree-7 polynomial,
// 2^k added to the exponent bits.
// @ts-ignore: decorator
@lazy const LOG2E: f32 = 1.44269504088896341;
// @ts-ignore: decorator
@lazy const LN2_HI: f32 = 0.693359375;
// @ts-ignore: decorator
@lazy const LN2_LO: f32 = -2.12194440e-4;
/** 1.5·2^23: adding it rounds a float below 2^22 to an integer (nearest even) held in the low mantissa bits. */
// @ts-ignore: decorator
@lazy const ROUNDER: f32 = 12582912;
/** Above ln(FLT_MAX) e^x overflows. */
// @ts-ignore: decorator
@lazy const EXP_MAX: f32 = 88.72283;
/**
 * Below this e^x (< 1.7e-38) is returned as 0: from here up, 2^k·e^r stays a normal float,
 * so the exponent-bit addition is exact.
 */
// @ts-ignore: decorator
@lazy const EXP_MIN: f32 = -87;

/**
 * e^x in four f32 lanes: within 1 ulp of the rounded true value, relative error < 1e-7
 * (8.2e-8 measured over 4M points against Math.exp; asserted in test/kernels-wasm.test.ts) for
 * x ∈ [−87, 88.72], +inf above, 0 below −87, NaN for NaN. Lanes outside [−87, 88.72] compute
 * garbage (no traps: only float and bit operations) that the two final selects replace.
 */
// @ts-ignore: decorator
@inline export function exp4(x: v128): v128 {
  const t = f32x4.add(f32x4.mul(x, f32x4.splat(LOG2E)), f32x4.splat(ROUNDER));
  const k = f32x4.sub(t, f32x4.splat(ROUNDER)); // nearest(x·log2e)
  let r = f32x4.sub(x, f32x4.mul(k, f32x4.splat(LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(k, f32x4.splat(LN2_LO)));
  let p = f32x4.add(f32x4.mul(f32x4.splat(1.9875691500e-4), r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), f32x4.splat(1));
  // t's bits are those of ROUNDER plus k; shifted left by 23 only k·2^23 survives.
  let y = i32x4.add(p, i32x4.shl(t, 23));
  y = v128.andnot(y, f32x4.lt(x, f32x4.splat(EXP_MIN)));
  return v128.bitselect(f32x4.splat(Infinity), y, f32x4.gt(x, f32x4.splat(EXP_MAX)));
}

/** exp4 on one value. */
// @ts-ignore: decorator
@inline function exp1(x: f32): f32 {
  return f32x4.extract_lane(exp4(f32x4.splat(x)), 0);
}

/** dst[i] = e^src[i] (exp4), i < n. */
export function expF32(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), exp4(v128.load(src + (<usize>i << 2))));
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), exp1(load<f32>(src + (<usize>i << 2))));
}

/** Lanes 2 and 3 of an f32x4 as f64x2 (promote_low_f32x4 gives lanes 0 and 1). */
// @ts-ignore: decorator
@inline function high2(v: v128): v128 {
  return f64x2.promote_low_f32x4(i64x2.shuffle(v, v, 1, 1));
}

/** Two f64x2 rounded to f32, as one f32x4 [lo0, lo1, hi0, hi1]. */
// @ts-ignore: decorator
@inline function join2(lo: v128, hi: v128): v128 {
  return i64x2.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 2);
}

/**
 * RMSNorm of n rows of dim: out = x · 1/sqrt(mean(x²) + eps) · weight, in f64 as the twin:
 * Σx² summed in order (each square of a float is exact in f64), then (x·scale)·weight rounded
 * once to f32.
 */
export function rmsnorm(out: usize, x: usize, weight: usize, n: i32, dim: i32, eps: f64): void {
  const row = <usize>dim << 2;
  for (let r = 0; r < n; r++) {
    const xr = x + <usize>r * row;
    const o = out + <usize>r * row;
    let ss: f64 = 0;
    for (let j: usize = 0; j < row; j += 4) {
      const v = <f64>load<f32>(xr + j);
      ss += v * v;
    }
    const scale = 1 / Math.sqrt(ss / <f64>dim + eps);
    const s = f64x2.splat(scale);
    let j: usize = 0;
    for (; j + 16 <= row; j += 16) {
      const v = v128.load(xr + j);
      const w = v128.load(weight + j);
      const lo = f64x2.mul(f64x2.mul(f64x2.promote_low_f32x4(v), s), f64x2.promote_low_f32x4(w));
      const hi = f64x2.mul(f64x2.mul(high2(v), s), high2(w));
      v128.store(o + j, join2(lo, hi));
    }
    for (; j < row; j += 4) store<f32>(o + j, <f32>(<f64>load<f32>(xr + j) * scale * <f64>load<f32>(weight + j)));
  }
}

/**
 * RoPE of one row of nHeads heads of headDim: pairs (x[2i], x[2i+1]), i < half, of every head
 * rotated by (cos[i], sin[i]) (f32 tables), in f64 as the twin: x0·c − x1·s and x0·s + x1·c
 * rounded once to f32.
 */
export function ropeRow(x: usize, nHeads: i32, headDim: i32, half: i32, cos: usize, sin: usize): void {
  const head = <usize>headDim << 2;
  for (let i = 0; i < half; i++) {
    const c = <f64>load<f32>(cos + (<usize>i << 2));
    const s = <f64>load<f32>(sin + (<usize>i << 2));
    const cc = f64x2.splat(c);
    const ss = f64x2(-s, s);
    let p = x + (<usize>i << 3);
    for (let h = 0; h < nHeads; h++, p += head) {
      const v = f64x2.promote_low_f32x4(v128.load64_zero(p));
      // [x0·c + (−x1·s), x1·c + x0·s]: a + (−b) is a − b, and the sum commutes, so each lane
      // rounds exactly as the twin's expression.
      const rot = f64x2.add(f64x2.mul(v, cc), f64x2.mul(i64x2.shuffle(v, v, 1, 0), ss));
      v128.store64_lane(p, f32x4.demote_f64x2_zero(rot), 0);
    }
  }
}

/**
 * RoPE of one row in NEOX pairing: (x[i], x[i + half]) of every head rotated by (cos[i], sin[i]),
 * i < half, in f64 as the twin, two pairs per step.
 */
export function ropeRowNeox(x: usize, nHeads: i32, headDim: i32, half: i32, cos: usize, sin: usize): void {
  const head = <usize>headDim << 2;
  const span = <usize>half << 2;
  const even = half & ~1;
  for (let h = 0; h < nHeads; h++) {
    const p = x + <usize>h * head;
    let i = 0;
    for (; i < even; i += 2) {
      const o = <usize>i << 2;
      const c = f64x2.promote_low_f32x4(v128.load64_zero(cos + o));
      const s = f64x2.promote_low_f32x4(v128.load64_zero(sin + o));
      const v0 = f64x2.promote_low_f32x4(v128.load64_zero(p + o));
      const v1 = f64x2.promote_low_f32x4(v128.load64_zero(p + o + span));
      v128.store64_lane(p + o, f32x4.demote_f64x2_zero(f64x2.sub(f64x2.mul(v0, c), f64x2.mul(v1, s))), 0);
      v128.store64_lane(p + o + span, f32x4.demote_f64x2_zero(f64x2.add(f64x2.mul(v0, s), f64x2.mul(v1, c))), 0);
    }
    for (; i < half; i++) {
      const o = <usize>i << 2;
      const c = <f64>load<f32>(cos + o);
      const s = <f64>load<f32>(sin + o);
      const x0 = <f64>load<f32>(p + o);
      const x1 = <f64>load<f32>(p + o + span);
      store<f32>(p + o, <f32>(x0 * c - x1 * s));
      store<f32>(p + o + span, <f32>(x0 * s + x1 * c));
    }
  }
}

/**
 * In-place softmax of n values: v = x·scale (in f64, rounded to f32, as the twin), e = exp4(v − max),
 * x = e · (1/Σe). Σe runs in 16 f32 lanes.
 */
export function softmax(x: usize, n: i32, scale: f64): void {
  const end = <usize>(n & ~3) << 2;
  const bytes = <usize>n << 2;
  const sc = f64x2.splat(scale);
  let mx = f32x4.splat(-Infinity);
  let p: usize = 0;
  for (; p < end; p += 16) {
    const v = v128.load(x + p);
    const s = join2(f64x2.mul(f64x2.promote_low_f32x4(v), sc), f64x2.mul(high2(v), sc));
    v128.store(x + p, s);
    mx = f32x4.pmax(mx, s); // a NaN is skipped, as by the twin's v > max (it turns every output NaN anyway)
  }
  let m = max(max(f32x4.extract_lane(mx, 0), f32x4.extract_lane(mx, 1)), max(f32x4.extract_lane(mx, 2), f32x4.extract_lane(mx, 3)));
  for (; p < bytes; p += 4) {
    const s = <f32>(<f64>load<f32>(x + p) * scale);
    store<f32>(x + p, s);
    if (s > m) m = s;
  }
  const mv = f32x4.splat(m);
  let s0 = f32x4.splat(0);
  let s1 = f32x4.splat(0);
  let s2 = f32x4.splat(0);
  let s3 = f32x4.splat(0);
  p = 0;
  for (; p + 64 <= end; p += 64) {
    const e0 = exp4(f32x4.sub(v128.load(x + p), mv));
    const e1 = exp4(f32x4.sub(v128.load(x + p, 16), mv));
    const e2 = exp4(f32x4.sub(v128.load(x + p, 32), mv));
    const e3 = exp4(f32x4.sub(v128.load(x + p, 48), mv));
    v128.store(x + p, e0);
    v128.store(x + p, e1, 16);
    v128.store(x + p, e2, 32);
    v128.store(x + p, e3, 48);
    s0 = f32x4.add(s0, e0);
    s1 = f32x4.add(s1, e1);
    s2 = f32x4.add(s2, e2);
    s3 = f32x4.add(s3, e3);
  }
  for (; p < end; p += 16) {
    const e = exp4(f32x4.sub(v128.load(x + p), mv));
    v128.store(x + p, e);
    s0 = f32x4.add(s0, e);
  }
  const sv = f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3));
  let sum = f32x4.extract_lane(sv, 0) + f32x4.extract_lane(sv, 1) + (f32x4.extract_lane(sv, 2) + f32x4.extract_lane(sv, 3));
  for (; p < bytes; p += 4) {
    const e = exp1(load<f32>(x + p) - m);
    store<f32>(x + p, e);
    sum += e;
  }
  const inv: f32 = 1 / sum;
  const iv = f32x4.splat(inv);
  p = 0;
  for (; p < end; p += 16) v128.store(x + p, f32x4.mul(v128.load(x + p), iv));
  for (; p < bytes; p += 4) store<f32>(x + p, load<f32>(x + p) * inv);
}

/** gate = SiLU(gate)·up = gate/(1 + e^−gate)·up over n values. */
export function swiglu(gate: usize, up: usize, n: i32): void {
  const end = <usize>(n & ~3) << 2;
  const bytes = <usize>n << 2;
  const one = f32x4.splat(1);
  let p: usize = 0;
  for (; p < end; p += 16) {
    const g = v128.load(gate + p);
    v128.store(gate + p, f32x4.mul(f32x4.div(g, f32x4.add(one, exp4(f32x4.neg(g)))), v128.load(up + p)));
  }
  for (; p < bytes; p += 4) {
    const g = load<f32>(gate + p);
    store<f32>(gate + p, (g / (1 + exp1(-g))) * load<f32>(up + p));
  }
}

/** 2·√(2/π): gelu_tanh(g) = 0.5·g·(1 + tanh(u)) = g / (1 + e^(−2u)), 2u = GELU_2K·(g + 0.044715·g³). */
// @ts-ignore: decorator
@lazy const GELU_2K: f32 = 1.5957691216057308;
// @ts-ignore: decorator
@lazy const GELU_C: f32 = 0.044715;

/**
 * gate = gelu_tanh(gate)·up over n values, as g/(1 + e^(−2u))·up: no cancellation near 0, and
 * e^(−2u) = +inf for large negative g gives −0, large positive g gives g.
 */
export function geglu(gate: usize, up: usize, n: i32): void {
  const end = <usize>(n & ~3) << 2;
  const bytes = <usize>n << 2;
  const one = f32x4.splat(1);
  const k = f32x4.splat(-GELU_2K);
  const c = f32x4.splat(GELU_C);
  let p: usize = 0;
  for (; p < end; p += 16) {
    const g = v128.load(gate + p);
    const t = f32x4.mul(k, f32x4.add(g, f32x4.mul(c, f32x4.mul(g, f32x4.mul(g, g)))));
    v128.store(gate + p, f32x4.mul(f32x4.div(g, f32x4.add(one, exp4(t))), v128.load(up + p)));
  }
  for (; p < bytes; p += 4) {
    const g = load<f32>(gate + p);
    store<f32>(gate + p, (g / (1 + exp1(-GELU_2K * (g + GELU_C * (g * (g * g)))))) * load<f32>(up + p));
  }
}

/**
 * tanh in four f32 lanes (Cephes tanhf): for |x| ≤ 0.625 the odd polynomial x + x³·P(x²), above
 * 1 − 2/(e^(2|x|) + 1) with x's sign (e^(2|x|) = +inf gives exactly ±1).
 */
// @ts-ignore: decorator
@inline function tanh4(x: v128): v128 {
  const one = f32x4.splat(1);
  const ax = f32x4.abs(x);
  const e = exp4(f32x4.add(ax, ax));
  const big = v128.or(f32x4.sub(one, f32x4.div(f32x4.splat(2), f32x4.add(e, one))), v128.and(x, f32x4.splat(-0.0)));
  const s = f32x4.mul(x, x);
  let q = f32x4.add(f32x4.mul(f32x4.splat(-5.70498872745e-3), s), f32x4.splat(2.06390887954e-2));
  q = f32x4.add(f32x4.mul(q, s), f32x4.splat(-5.37397155531e-2));
  q = f32x4.add(f32x4.mul(q, s), f32x4.splat(1.33314422036e-1));
  q = f32x4.add(f32x4.mul(q, s), f32x4.splat(-3.33332819422e-1));
  const small = f32x4.add(f32x4.mul(f32x4.mul(q, s), x), x);
  return v128.bitselect(small, big, f32x4.le(ax, f32x4.splat(0.625)));
}

/** x = cap·tanh(x·scale) over n values (soft-capping; scale includes 1/cap). */
export function softcap(x: usize, n: i32, scale: f32, cap: f32): void {
  const end = <usize>(n & ~3) << 2;
  const bytes = <usize>n << 2;
  const sv = f32x4.splat(scale);
  const cv = f32x4.splat(cap);
  let p: usize = 0;
  for (; p < end; p += 16) v128.store(x + p, f32x4.mul(cv, tanh4(f32x4.mul(v128.load(x + p), sv))));
  for (; p < bytes; p += 4) store<f32>(x + p, cap * f32x4.extract_lane(tanh4(f32x4.splat(load<f32>(x + p) * scale)), 0));
}

/** x += y over n values. */
export function addInPlace(x: usize, y: usize, n: i32): void {
  const end = <usize>(n & ~3) << 2;
  const bytes = <usize>n << 2;
  let p: usize = 0;
  for (; p < end; p += 16) v128.store(x + p, f32x4.add(v128.load(x + p), v128.load(y + p)));
  for (; p < bytes; p += 4) store<f32>(x + p, load<f32>(x + p) + load<f32>(y + p));
}
