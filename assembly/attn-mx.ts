// Attention kernels for the microscaling block formats (src/kv/codecs/mx.ts), twins of its
// plain-TS paths. One call serves one KV head for nq queries and tokens t < n; `codes` and
// `scales` address the head's token 0, and each token is tokenBytes / scaleStride further on.
// Blocks run along head_dim; the host only calls these for head_dim % 8 == 0, so every block
// holds 8, 16, 24 or 32 codes. A block's scale S is scaleTable[code] (f64) × tensor: E8M0
// (tensor 1) or NV's E4M3 times the fp32 per-tensor scale, exactly as the twin computes it.
//
// 4-bit formats (E2M1, INT4) score in the integer domain: an i8x16.swizzle maps each nibble to
// its element as a small integer (E2M1 doubled: 0, ±1, ±2, ±3, ±4, ±6, ±8, ±12), the host
// quantizes the query to i16 per block (step sq, halved for E2M1), and a block contributes
// isum·(S·sq) in f64: exact integer sums and the same f64 order as the TS twin. The 8-bit
// formats (INT8, E4M3) score in f32 (see mx.ts for why), with the lane order the twin repeats.
// Accumulate runs in f32 for all, every step rounded as in the twin (4-bit formats multiply the
// table's integers by f32(p·half), which is the same product as p times the element value).
//
// Shuffles are written as the unpack patterns V8 turns into one instruction each.

/** Block scale S of `code`, exact: scaleTable[code] × tensor. */
// @ts-ignore: decorator
@inline function scaleOf(scaleTable: usize, code: u32, tensor: f64): f64 {
  return load<f64>(scaleTable + (<usize>code << 3)) * tensor;
}

/** Codes 0–15 of 8 bytes at p through the table, lanes 0–7 the even codes, 8–15 the odd ones. */
// @ts-ignore: decorator
@inline function nibbles16(p: usize, table: v128): v128 {
  const b = v128.load64_zero(p);
  // Low nibbles in bytes 0–7, high nibbles in 8–15 (punpcklqdq).
  const c = i64x2.shuffle(v128.and(b, i8x16.splat(0x0f)), i8x16.shr_u(b, 4), 0, 2);
  return i8x16.swizzle(table, c);
}

/** Codes 0–7 of 4 bytes at p through the table: lanes 0–7 = codes 0, 2, 4, 6, 1, 3, 5, 7. */
// @ts-ignore: decorator
@inline function nibbles8(p: usize, table: v128): v128 {
  const b = v128.load32_zero(p);
  const c = i32x4.shuffle(v128.and(b, i8x16.splat(0x0f)), i8x16.shr_u(b, 4), 0, 4, 1, 5);
  return i8x16.swizzle(table, c);
}

/** Codes of the bytes in b (low 8 bytes) in natural order through the table: lane j = code j. */
// @ts-ignore: decorator
@inline function nibblesNatural(b: v128, table: v128): v128 {
  // punpcklbw: byte j's low nibble (code 2j), then its high nibble (code 2j + 1).
  const c = i8x16.shuffle(v128.and(b, i8x16.splat(0x0f)), i8x16.shr_u(b, 4), 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  return i8x16.swizzle(table, c);
}

/**
 * One token's block of len codes at p (len 8, 16 or 24; 32 goes through unit32), dotted with
 * the i16 query at qb.
 */
// @ts-ignore: decorator
@inline function blockDot(p: usize, len: i32, tbl: v128, qb: usize): v128 {
  let a = i32x4.splat(0);
  let d = 0;
  if (len >= 16) {
    const u = nibbles16(p, tbl);
    a = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(u), v128.load(qb)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(u), v128.load(qb, 16)));
    d = 16;
  }
  if (len - d == 8) a = i32x4.add(a, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(nibbles8(p + (<usize>d >> 1), tbl)), v128.load(qb + (<usize>d << 1))));
  return a;
}

/** The four lanes of each of a0 … a3 summed: [Σ a0, Σ a1, Σ a2, Σ a3] (exact in i32). */
// @ts-ignore: decorator
@inline function transposeSum(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const s01 = i32x4.add(i32x4.shuffle(a0, a1, 0, 4, 1, 5), i32x4.shuffle(a0, a1, 2, 6, 3, 7));
  const s23 = i32x4.add(i32x4.shuffle(a2, a3, 0, 4, 1, 5), i32x4.shuffle(a2, a3, 2, 6, 3, 7));
  return i32x4.add(i64x2.shuffle(s01, s23, 0, 2), i64x2.shuffle(s01, s23, 1, 3));
}

/** Half of a 32-code unit (codes 0–15, or 16–31 when upper) dotted with the i16 query at qb. */
// @ts-ignore: decorator
@inline function segDot(ev: v128, od: v128, qb: usize, upper: bool): v128 {
  if (upper) return i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(ev), v128.load(qb, 32)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(od), v128.load(qb, 48)));
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(ev), v128.load(qb)), i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(od), v128.load(qb, 16)));
}

/** isum·(S·sq) for tokens 0, 1 (or 2, 3 when upper) of a block, S from the tokens' scale bytes at sA, sB. */
// @ts-ignore: decorator
@inline function blockTerm(sums: v128, sA: usize, sB: usize, b: i32, scaleTable: usize, tensor: f64, sq: f64, upper: bool): v128 {
  const x = upper ? i64x2.shuffle(sums, sums, 1, 0) : sums;
  const S = f64x2.replace_lane(f64x2.splat(scaleOf(scaleTable, load<u8>(sA + <usize>b), tensor)), 1, scaleOf(scaleTable, load<u8>(sB + <usize>b), tensor));
  return f64x2.mul(f64x2.convert_low_i32x4_s(x), f64x2.mul(S, f64x2.splat(sq)));
}

/**
 * 4-bit formats: out[i·outStride + t] = Σ_blocks isum·(S·qScale[i·nBlocks + b]), isum the
 * integer dot of the block's table values with the i16 query at q + i·qBytes (per 16 codes: the
 * even codes, then the odd ones; a last unit of 8: codes 0, 2, 4, 6, 1, 3, 5, 7). Four tokens at
 * a time: their integer sums are transposed into one vector and the f64 products run two tokens
 * per f64x2, each lane in the twin's order. 32 codes come from one 16-byte load: one MX block, or
 * two NV blocks.
 */
export function mxScores4(
  codes: usize, tokenBytes: i32, scales: usize, scaleStride: i32, n: i32, headDim: i32, block: i32,
  table: usize, scaleTable: usize, tensor: f64,
  q: usize, qBytes: i32, qScale: usize, nBlocks: i32, nq: i32,
  out: usize, outStride: i32,
): void {
  const tbl = v128.load(table);
  const lowNibbles = i8x16.splat(0x0f);
  for (let t = 0; t < n; t += 4) {
    // A last group of fewer than 4 tokens repeats the last one and stores only what is real.
    const c0 = codes + <usize>t * tokenBytes;
    const c1 = codes + <usize>min(t + 1, n - 1) * tokenBytes;
    const c2 = codes + <usize>min(t + 2, n - 1) * tokenBytes;
    const c3 = codes + <usize>min(t + 3, n - 1) * tokenBytes;
    const s0 = scales + <usize>t * scaleStride;
    const s1 = scales + <usize>min(t + 1, n - 1) * scaleStride;
    const s2 = scales + <usize>min(t + 2, n - 1) * scaleStride;
    const s3 = scales + <usize>min(t + 3, n - 1) * scaleStride;
    for (let i = 0; i < nq; i++) {
      let lo = f64x2.splat(0);
      let hi = f64x2.splat(0);
      const qi = q + <usize>i * qBytes;
      const qs = qScale + (<usize>(i * nBlocks) << 3);
      let b = 0;
      for (let d0 = 0; d0 < headDim; ) {
        const qb = qi + (<usize>d0 << 1);
        const off = <usize>d0 >> 1;
        if (headDim - d0 >= 32) {
          const v0 = v128.load(c0 + off);
          const v1 = v128.load(c1 + off);
          const v2 = v128.load(c2 + off);
          const v3 = v128.load(c3 + off);
          const e0 = i8x16.swizzle(tbl, v128.and(v0, lowNibbles));
          const e1 = i8x16.swizzle(tbl, v128.and(v1, lowNibbles));
          const e2 = i8x16.swizzle(tbl, v128.and(v2, lowNibbles));
          const e3 = i8x16.swizzle(tbl, v128.and(v3, lowNibbles));
          const o0 = i8x16.swizzle(tbl, i8x16.shr_u(v0, 4));
          const o1 = i8x16.swizzle(tbl, i8x16.shr_u(v1, 4));
          const o2 = i8x16.swizzle(tbl, i8x16.shr_u(v2, 4));
          const o3 = i8x16.swizzle(tbl, i8x16.shr_u(v3, 4));
          const a0 = segDot(e0, o0, qb, false);
          const a1 = segDot(e1, o1, qb, false);
          const a2 = segDot(e2, o2, qb, false);
          const a3 = segDot(e3, o3, qb, false);
          const u0 = segDot(e0, o0, qb, true);
          const u1 = segDot(e1, o1, qb, true);
          const u2 = segDot(e2, o2, qb, true);
          const u3 = segDot(e3, o3, qb, true);
          if (block == 32) {
            const sums = transposeSum(i32x4.add(a0, u0), i32x4.add(a1, u1), i32x4.add(a2, u2), i32x4.add(a3, u3));
            const sq = load<f64>(qs + (<usize>b << 3));
            lo = f64x2.add(lo, blockTerm(sums, s0, s1, b, scaleTable, tensor, sq, false));
            hi = f64x2.add(hi, blockTerm(sums, s2, s3, b, scaleTable, tensor, sq, true));
            b += 1;
          } else {
            const sumsA = transposeSum(a0, a1, a2, a3);
            const sqA = load<f64>(qs + (<usize>b << 3));
            lo = f64x2.add(lo, blockTerm(sumsA, s0, s1, b, scaleTable, tensor, sqA, false));
            hi = f64x2.add(hi, blockTerm(sumsA, s2, s3, b, scaleTable, tensor, sqA, true));
            const sumsB = transposeSum(u0, u1, u2, u3);
            const sqB = load<f64>(qs + (<usize>(b + 1) << 3));
            lo = f64x2.add(lo, blockTerm(sumsB, s0, s1, b + 1, scaleTable, tensor, sqB, false));
            hi = f64x2.add(hi, blockTerm(sumsB, s2, s3, b + 1, scaleTable, tensor, sqB, true));
            b += 2;
          }
          d0 += 32;
        } else {
          const len = min(block, headDim - d0);
          const sums = transposeSum(blockDot(c0 + off, len, tbl, qb), blockDot(c1 + off, len, tbl, qb), blockDot(c2 + off, len, tbl, qb), blockDot(c3 + off, len, tbl, qb));
          const sq = load<f64>(qs + (<usize>b << 3));
          lo = f64x2.add(lo, blockTerm(sums, s0, s1, b, scaleTable, tensor, sq, false));
          hi = f64x2.add(hi, blockTerm(sums, s2, s3, b, scaleTable, tensor, sq, true));
          b += 1;
          d0 += len;
        }
      }
      const r = i64x2.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 2);
      const o = out + ((<usize>i * outStride + t) << 2);
      if (t + 4 <= n) v128.store(o, r);
      else {
        store<f32>(o, f32x4.extract_lane(r, 0));
        if (t + 1 < n) store<f32>(o, f32x4.extract_lane(r, 1), 4);
        if (t + 2 < n) store<f32>(o, f32x4.extract_lane(r, 2), 8);
      }
    }
  }
}

const TWO_120: f32 = 1.329227995784916e36;

/**
 * 8 codes at p as i16 lanes: INT8 sign-extended, or for E4M3 the upper half of the element's f32
 * pattern scaled by 2^−120 (sign at bit 15, exponent and mantissa at bits 4–10; E4M3's bias is 7,
 * f32's 127, and its subnormals land on f32 subnormals, still exact).
 */
// @ts-ignore: decorator
@inline function load8(p: usize, e4m3: i32): v128 {
  const x = v128.load8x8_s(p);
  return e4m3 ? v128.and(i16x8.shl(x, 4), i16x8.splat(<i16>0x87f0)) : x;
}

/** Elements 0–3 (or 4–7 when upper) of load8's lanes as f32x4, exact. */
// @ts-ignore: decorator
@inline function half8(x: v128, e4m3: i32, upper: bool): v128 {
  const w = upper ? i32x4.extend_high_i16x8_s(x) : i32x4.extend_low_i16x8_s(x);
  return e4m3 ? f32x4.mul(i32x4.shl(w, 16), f32x4.splat(TWO_120)) : f32x4.convert_i32x4_s(w);
}

/**
 * 8-bit formats (INT8 when e4m3 = 0, E4M3 when 1), E8M0 block scales:
 * out[i·outStride + t] = Σ_blocks f64(h)·S with h the block's f32 dot: lane j sums the products
 * of elements d0 + 4k + j in k order from 0, then h = (l0 + l1) + (l2 + l3). q: f32 queries,
 * natural order, i·qStride floats apart.
 */
export function mxScores8(
  codes: usize, tokenBytes: i32, scales: usize, scaleStride: i32, n: i32, headDim: i32, block: i32, e4m3: i32,
  scaleTable: usize, q: usize, qStride: i32, nq: i32, out: usize, outStride: i32,
): void {
  const nBlocks = (headDim + block - 1) / block;
  for (let t = 0; t < n; t++) {
    const ct = codes + <usize>t * tokenBytes;
    const st = scales + <usize>t * scaleStride;
    for (let i = 0; i < nq; i++) {
      const qi = q + ((<usize>i * qStride) << 2);
      let tot = 0.0;
      for (let b = 0; b < nBlocks; b++) {
        const d0 = b * block;
        const d1 = min(d0 + block, headDim);
        let a = f32x4.splat(0);
        for (let d = d0; d < d1; d += 8) {
          const x = load8(ct + <usize>d, e4m3);
          const qd = qi + (<usize>d << 2);
          a = f32x4.add(a, f32x4.mul(v128.load(qd), half8(x, e4m3, false)));
          a = f32x4.add(a, f32x4.mul(v128.load(qd, 16), half8(x, e4m3, true)));
        }
        const h: f32 = (f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 1)) + (f32x4.extract_lane(a, 2) + f32x4.extract_lane(a, 3));
        tot += <f64>h * scaleOf(scaleTable, load<u8>(st + <usize>b), 1);
      }
      store<f32>(out + ((<usize>i * outStride + t) << 2), <f32>tot);
    }
  }
}

/** Tokens per tile of mxAccumulate: their weights and codes stay in L1 while it sweeps head_dim. */
const TILE = 64;

/**
 * All formats: acc[i·accStride + d] += p·x_d for tokens t < n in order, p = f32(w[i·wStride + t]·S)
 * (× half, for 4-bit formats whose x_d is the table's integer), x_d the element (fmt 0 INT8,
 * 1 E4M3, 2 a 4-bit table), every product and sum rounded to f32. Tokens go in tiles: per tile
 * the weights p are computed once into `scratch` (TILE·nBlocks floats), then each 16 (or last 8)
 * values of head_dim stay in registers over the tile's tokens. Blocks hold 16 or 32 values from a
 * multiple of 16 on, so 16 values share one block.
 */
export function mxAccumulate(
  codes: usize, tokenBytes: i32, scales: usize, scaleStride: i32, n: i32, headDim: i32, block: i32, fmt: i32,
  table: usize, half: f32, scaleTable: usize, tensor: f64,
  w: usize, wStride: i32, nq: i32, acc: usize, accStride: i32, scratch: usize,
): void {
  const nBlocks = (headDim + block - 1) / block;
  const tbl = v128.load(table);
  const e4m3 = fmt == 1 ? 1 : 0;
  for (let t0 = 0; t0 < n; t0 += TILE) {
    const nt = min(TILE, n - t0);
    for (let i = 0; i < nq; i++) {
      for (let t = 0; t < nt; t++) {
        const wt = <f64>load<f32>(w + ((<usize>i * wStride + t0 + t) << 2));
        const st = scales + <usize>(t0 + t) * scaleStride;
        for (let b = 0; b < nBlocks; b++) {
          let p = <f32>(wt * scaleOf(scaleTable, load<u8>(st + <usize>b), tensor));
          if (fmt == 2) p *= half;
          store<f32>(scratch + (<usize>(t * nBlocks + b) << 2), p);
        }
      }
      const ai = acc + ((<usize>i * accStride) << 2);
      let d = 0;
      for (; d + 16 <= headDim; d += 16) {
        const o = ai + (<usize>d << 2);
        let a0 = v128.load(o);
        let a1 = v128.load(o, 16);
        let a2 = v128.load(o, 32);
        let a3 = v128.load(o, 48);
        const pb = scratch + (<usize>(d / block) << 2);
        for (let t = 0; t < nt; t++) {
          const c = codes + <usize>(t0 + t) * tokenBytes;
          const p = v128.load32_splat(pb + (<usize>(t * nBlocks) << 2));
          let v0: v128, v1: v128, v2: v128, v3: v128;
          if (fmt == 2) {
            const x = nibblesNatural(v128.load64_zero(c + (<usize>d >> 1)), tbl);
            const x0 = i16x8.extend_low_i8x16_s(x);
            const x1 = i16x8.extend_high_i8x16_s(x);
            v0 = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(x0));
            v1 = f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(x0));
            v2 = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(x1));
            v3 = f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(x1));
          } else {
            const x0 = load8(c + <usize>d, e4m3);
            const x1 = load8(c + <usize>d + 8, e4m3);
            v0 = half8(x0, e4m3, false);
            v1 = half8(x0, e4m3, true);
            v2 = half8(x1, e4m3, false);
            v3 = half8(x1, e4m3, true);
          }
          a0 = f32x4.add(a0, f32x4.mul(p, v0));
          a1 = f32x4.add(a1, f32x4.mul(p, v1));
          a2 = f32x4.add(a2, f32x4.mul(p, v2));
          a3 = f32x4.add(a3, f32x4.mul(p, v3));
        }
        v128.store(o, a0);
        v128.store(o, a1, 16);
        v128.store(o, a2, 32);
        v128.store(o, a3, 48);
      }
      if (d < headDim) {
        const o = ai + (<usize>d << 2);
        let a0 = v128.load(o);
        let a1 = v128.load(o, 16);
        const pb = scratch + (<usize>(d / block) << 2);
        for (let t = 0; t < nt; t++) {
          const c = codes + <usize>(t0 + t) * tokenBytes;
          const p = v128.load32_splat(pb + (<usize>(t * nBlocks) << 2));
          let v0: v128, v1: v128;
          if (fmt == 2) {
            const x = i16x8.extend_low_i8x16_s(nibblesNatural(v128.load32_zero(c + (<usize>d >> 1)), tbl));
            v0 = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(x));
            v1 = f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(x));
          } else {
            const x = load8(c + <usize>d, e4m3);
            v0 = half8(x, e4m3, false);
            v1 = half8(x, e4m3, true);
          }
          a0 = f32x4.add(a0, f32x4.mul(p, v0));
          a1 = f32x4.add(a1, f32x4.mul(p, v1));
        }
        v128.store(o, a0);
        v128.store(o, a1, 16);
      }
    }
  }
}
