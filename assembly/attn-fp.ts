// Decode attention over float caches (f32, f16, bf16), and the pieces every attention kernel
// shares: exact half-float conversion, dot products of one query with a tile of decoded rows, and
// the weighted row sums of accumulate().
//
// Tiling: tokens go in tiles of TILE rows; a tile is decoded once (f16/bf16 to float32 in
// `scratch`) and then serves every query of the group while it sits in L1, so the cache's bytes
// are read from memory once per call whatever the number of query heads (GQA).
//
// Float order (the plain-TS twins accumulate in double): a score sums q·k in four lanes over
// groups of four values, lanes added (0+2)+(1+3), then the head_dim mod 4 leftovers in order;
// accumulate() adds p·v token by token, product and sum each rounded to float32.

/** Tokens decoded and consumed together. */
export const TILE: i32 = 16;

const F16_SCALE: f32 = 5.192296858534828e33; // 2^112: f16 bits << 13 read as f32 are the value / 2^112

/** Four fp16 numbers at p to float32, exactly (finite inputs; the codecs never store Inf/NaN). */
@inline export function f16x4(p: usize): v128 {
  // Sign-extended, shifted: the sign lands in bit 31 (and 28..30, masked), exponent and mantissa
  // in 27..13; scaling by 2^112 rebases the exponent and turns f16 subnormals into normals.
  const h = v128.load16x4_s(p);
  return f32x4.mul(v128.and(i32x4.shl(h, 13), i32x4.splat(0x8fffe000)), f32x4.splat(F16_SCALE));
}

/** One fp16 number to float32, exactly. */
@inline export function f16(h: u32): f32 {
  return reinterpret<f32>(((h & 0x7fff) << 13) | ((h & 0x8000) << 16)) * F16_SCALE;
}

/** Four bfloat16 numbers at p to float32 (exact: bf16 is the top half of a float32). */
@inline function bf16x4(p: usize): v128 {
  return i32x4.shl(v128.load16x4_u(p), 16);
}

/** float32 to fp16 bits, round to nearest even, overflow to ±Inf (numeric/f16.ts f32ToF16). */
export function f32ToF16(x: f32): u32 {
  const u = reinterpret<u32>(x);
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp == 0xff) return sign | 0x7c00 | (mant != 0 ? 0x200 | (mant >>> 13) : 0);
  const e = <i32>exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = <u32>(14 - e);
    const half: u32 = 1 << (shift - 1);
    const rest = mant & ((<u32>1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest == half && (m & 1) != 0)) m++;
    return sign | m;
  }
  let h = (<u32>e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1) != 0)) h++;
  return sign | h;
}

@inline function hsum(a: v128): f32 {
  const s = f32x4.add(a, f32x4.shuffle(a, a, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

/**
 * out[t·4] = q · row_t for t < n, rows at `rows + t·rowStride` (bytes), head_dim values each.
 * Four rows at a time share each query load and one transposed horizontal sum.
 */
export function dotRows(q: usize, rows: usize, rowStride: usize, n: i32, headDim: i32, out: usize): void {
  const d4 = headDim & ~3;
  let t = 0;
  for (; t + 4 <= n; t += 4) {
    const r0 = rows + <usize>t * rowStride;
    const r1 = r0 + rowStride;
    const r2 = r1 + rowStride;
    const r3 = r2 + rowStride;
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let a3 = f32x4.splat(0);
    for (let d = 0; d < d4; d += 4) {
      const o = <usize>d << 2;
      const qv = v128.load(q + o);
      a0 = f32x4.add(a0, f32x4.mul(qv, v128.load(r0 + o)));
      a1 = f32x4.add(a1, f32x4.mul(qv, v128.load(r1 + o)));
      a2 = f32x4.add(a2, f32x4.mul(qv, v128.load(r2 + o)));
      a3 = f32x4.add(a3, f32x4.mul(qv, v128.load(r3 + o)));
    }
    // [a0₀+a0₂, a1₀+a1₂, a0₁+a0₃, a1₁+a1₃] and the same for rows 2, 3; then pair them up.
    const s01 = f32x4.add(f32x4.shuffle(a0, a1, 0, 4, 1, 5), f32x4.shuffle(a0, a1, 2, 6, 3, 7));
    const s23 = f32x4.add(f32x4.shuffle(a2, a3, 0, 4, 1, 5), f32x4.shuffle(a2, a3, 2, 6, 3, 7));
    let s = f32x4.add(f32x4.shuffle(s01, s23, 0, 1, 4, 5), f32x4.shuffle(s01, s23, 2, 3, 6, 7));
    if (d4 < headDim) {
      let e0: f32 = 0;
      let e1: f32 = 0;
      let e2: f32 = 0;
      let e3: f32 = 0;
      for (let d = d4; d < headDim; d++) {
        const o = <usize>d << 2;
        const qd = load<f32>(q + o);
        e0 += qd * load<f32>(r0 + o);
        e1 += qd * load<f32>(r1 + o);
        e2 += qd * load<f32>(r2 + o);
        e3 += qd * load<f32>(r3 + o);
      }
      s = f32x4.add(s, f32x4(e0, e1, e2, e3));
    }
    v128.store(out + (<usize>t << 2), s);
  }
  for (; t < n; t++) {
    const r = rows + <usize>t * rowStride;
    let a = f32x4.splat(0);
    for (let d = 0; d < d4; d += 4) {
      const o = <usize>d << 2;
      a = f32x4.add(a, f32x4.mul(v128.load(q + o), v128.load(r + o)));
    }
    let e: f32 = 0;
    for (let d = d4; d < headDim; d++) e += load<f32>(q + (<usize>d << 2)) * load<f32>(r + (<usize>d << 2));
    store<f32>(out + (<usize>t << 2), hsum(a) + e);
  }
}

/**
 * out[d] += Σ_t p[t]·row_t[d] over t < n, token by token (float32 product, float32 sum). Sixteen
 * columns at a time: four independent sums hide the add latency and share each weight load.
 */
export function axpyRows(p: usize, rows: usize, rowStride: usize, n: i32, headDim: i32, out: usize): void {
  const d16 = headDim & ~15;
  const d4 = headDim & ~3;
  let d = 0;
  for (; d < d16; d += 16) {
    const o = <usize>d << 2;
    let a0 = v128.load(out + o);
    let a1 = v128.load(out + o, 16);
    let a2 = v128.load(out + o, 32);
    let a3 = v128.load(out + o, 48);
    let r = rows + o;
    for (let t = 0; t < n; t++, r += rowStride) {
      const w = v128.load_splat<f32>(p + (<usize>t << 2));
      a0 = f32x4.add(a0, f32x4.mul(w, v128.load(r)));
      a1 = f32x4.add(a1, f32x4.mul(w, v128.load(r, 16)));
      a2 = f32x4.add(a2, f32x4.mul(w, v128.load(r, 32)));
      a3 = f32x4.add(a3, f32x4.mul(w, v128.load(r, 48)));
    }
    v128.store(out + o, a0);
    v128.store(out + o, a1, 16);
    v128.store(out + o, a2, 32);
    v128.store(out + o, a3, 48);
  }
  for (; d < d4; d += 4) {
    const o = <usize>d << 2;
    let acc = v128.load(out + o);
    let r = rows + o;
    for (let t = 0; t < n; t++, r += rowStride) acc = f32x4.add(acc, f32x4.mul(v128.load_splat<f32>(p + (<usize>t << 2)), v128.load(r)));
    v128.store(out + o, acc);
  }
  for (; d < headDim; d++) {
    const o = <usize>d << 2;
    let acc = load<f32>(out + o);
    let r = rows + o;
    for (let t = 0; t < n; t++, r += rowStride) acc += load<f32>(p + (<usize>t << 2)) * load<f32>(r);
    store<f32>(out + o, acc);
  }
}

/**
 * Scores of nq queries (q: nq·headDim float32) against n decoded rows, written to
 * out[i·outStride + t] (floats).
 */
export function scoreTile(q: usize, nq: i32, headDim: i32, rows: usize, rowStride: usize, n: i32, out: usize, outStride: i32): void {
  for (let i = 0; i < nq; i++) dotRows(q + ((<usize>i * <usize>headDim) << 2), rows, rowStride, n, headDim, out + ((<usize>i * <usize>outStride) << 2));
}

/** accumulate() over a tile: out[i·headDim + d] += Σ_t w[i·wStride + t]·row_t[d]. */
export function accumulateTile(w: usize, wStride: i32, nq: i32, headDim: i32, rows: usize, rowStride: usize, n: i32, out: usize): void {
  for (let i = 0; i < nq; i++) axpyRows(w + ((<usize>i * <usize>wStride) << 2), rows, rowStride, n, headDim, out + ((<usize>i * <usize>headDim) << 2));
}

/** n rows of 16-bit floats (kind 1: f16, 2: bf16) at src (stride in bytes) to float32 rows of headDim. */
export function decodeHalfRows(kind: i32, src: usize, srcStride: usize, n: i32, headDim: i32, dst: usize): void {
  const d4 = headDim & ~3;
  const rowBytes = <usize>headDim << 2;
  for (let t = 0; t < n; t++) {
    const s = src + <usize>t * srcStride;
    const o = dst + <usize>t * rowBytes;
    if (kind == 1) {
      for (let d = 0; d < d4; d += 4) v128.store(o + (<usize>d << 2), f16x4(s + (<usize>d << 1)));
      for (let d = d4; d < headDim; d++) store<f32>(o + (<usize>d << 2), f16(load<u16>(s + (<usize>d << 1))));
    } else {
      for (let d = 0; d < d4; d += 4) v128.store(o + (<usize>d << 2), bf16x4(s + (<usize>d << 1)));
      for (let d = d4; d < headDim; d++) store<u32>(o + (<usize>d << 2), <u32>load<u16>(s + (<usize>d << 1)) << 16);
    }
  }
}

/**
 * scores() of a float cache: kind 0 f32, 1 f16, 2 bf16. k: the head's values of token 0,
 * kStride bytes between tokens; scratch: TILE·headDim floats (16-bit kinds only).
 */
export function attnScoresFp(kind: i32, k: usize, kStride: usize, nTokens: i32, q: usize, nq: i32, headDim: i32, out: usize, outStride: i32, scratch: usize): void {
  const rowBytes = <usize>headDim << 2;
  for (let t0 = 0; t0 < nTokens; t0 += TILE) {
    const n = min(TILE, nTokens - t0);
    const src = k + <usize>t0 * kStride;
    const o = out + (<usize>t0 << 2);
    if (kind == 0) scoreTile(q, nq, headDim, src, kStride, n, o, outStride);
    else {
      decodeHalfRows(kind, src, kStride, n, headDim, scratch);
      scoreTile(q, nq, headDim, scratch, rowBytes, n, o, outStride);
    }
  }
}

/** accumulate() of a float cache (kinds as attnScoresFp); out: nq·headDim floats, added to. */
export function attnAccumulateFp(kind: i32, v: usize, vStride: usize, nTokens: i32, w: usize, wStride: i32, nq: i32, headDim: i32, out: usize, scratch: usize): void {
  const rowBytes = <usize>headDim << 2;
  for (let t0 = 0; t0 < nTokens; t0 += TILE) {
    const n = min(TILE, nTokens - t0);
    const src = v + <usize>t0 * vStride;
    const wt = w + (<usize>t0 << 2);
    if (kind == 0) accumulateTile(wt, wStride, nq, headDim, src, vStride, n, out);
    else {
      decodeHalfRows(kind, src, vStride, n, headDim, scratch);
      accumulateTile(wt, wStride, nq, headDim, scratch, rowBytes, n, out);
    }
  }
}

/** TILE, for hosts sizing scratch buffers. */
export function attnTile(): i32 {
  return TILE;
}

/**
 * Σ of n float32 at p (n a multiple of 16), 64 bytes per step in four lanes of four: a pure read
 * stream, for measuring the machine's memory bandwidth next to the attention kernels.
 */
export function streamSumF32(p: usize, n: i32): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  const end = p + (<usize>n << 2);
  for (; p < end; p += 64) {
    a0 = f32x4.add(a0, v128.load(p));
    a1 = f32x4.add(a1, v128.load(p, 16));
    a2 = f32x4.add(a2, v128.load(p, 32));
    a3 = f32x4.add(a3, v128.load(p, 48));
  }
  return hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
}
