// Products of ggml block-quantized weights with n > 1 activation rows (prefill): each weight block
// is decoded once into scratch and then serves every activation row with plain integer SIMD dot
// products, instead of being decoded again for each row (quant.ts and q8.ts, the one-row paths).
//
// A tile of TILE_ROWS weight rows × CHUNK_VALUES input values is unpacked at a time, so the tile
// stays in L2 and one group of four rows with one pair of activation rows stays in L1:
// - levels: each value's level times its sub-block's integer scale, as i16 (|s·L| ≤ 32·127 for
//   iq4_xs, 128·32 for q6_K), so a block's scaled integer sum isum = Σ_k s_k·Σ_{i∈k} L_i·q_i is
//   a plain Σ (s·L)_i·q_i: the same integer, in any order. The four rows of a group are
//   interleaved by 8 values (row c's values 8k … 8k+7 at 64k + 16c), so one pointer walks them.
// - mins (q2_K, q4_K, q5_K): 16 i16 per row and block, one per 16 values (q4_K/q5_K's per-32
//   mins twice), so msum = Σ_k m_k·bsum_k is two dot products with the activation's bsums.
// - d and the dmin / float min of the group's four rows as two f32x4.
// The float terms are quant.ts's, lane for lane (q8.ts's isum·(d_w·d_a) is the same product),
// and the running sum of each output is kept in out between chunks (the first chunk starts it at
// 0), so every output sees the same float operations in the same order as the one-row path and
// the plain-TS twin: the same bits.
import { f16ToF32Scalar } from './f16';
import { pairSum, quadSum } from './q8';
import { bitBytes, blockBytes, dOffset, hasIntMin, highNibbles, IQ4NL_TABLE, isSuper, k4Min, k4Scale, lowNibbles, minOffset, q3KScale } from './quant-blocks';

// @ts-ignore: decorator
@lazy const TILE_ROWS: i32 = 64;
// @ts-ignore: decorator
@lazy const CHUNK_VALUES: i32 = 1024;

// How a block's min enters its term.
// @ts-ignore: decorator
@lazy const MIN_NONE: i32 = 0;
// @ts-ignore: decorator
@lazy const MIN_INT: i32 = 1; // − (dmin·d_a)·msum
// @ts-ignore: decorator
@lazy const MIN_FLOAT: i32 = 2; // + min·s_a

// @ts-ignore: decorator
@inline function blockValues(kind: i32): i32 {
  return isSuper(kind) ? 256 : 32;
}

/** Blocks per chunk of input values. */
// @ts-ignore: decorator
@inline function chunkBlocks(kind: i32, inDim: i32): i32 {
  return min(inDim, CHUNK_VALUES) / blockValues(kind);
}

/** Bytes of scratch matmulQuant needs for rows of inDim values of type `kind`. */
export function quantScratchBytes(kind: i32, inDim: i32): i32 {
  // Per row and block: its levels (i16), 16 i16 mins, and its share of the group's two f32x4.
  return TILE_ROWS * chunkBlocks(kind, inDim) * (2 * blockValues(kind) + 32 + 8);
}

// ---- unpacking: one weight row's block into its group's interleaved levels at dst ----

/** Stores the 16 i8 levels of v as i16 for values v0 … v0+15 (dst: the row's value 0, v0 % 16 == 0). */
// @ts-ignore: decorator
@inline function put(dst: usize, v0: i32, v: v128): void {
  const at = dst + (<usize>v0 << 3);
  v128.store(at, i16x8.extend_low_i8x16_s(v));
  v128.store(at, i16x8.extend_high_i8x16_s(v), 64);
}

/** put with every level times the integer scale s. */
// @ts-ignore: decorator
@inline function putScaled(dst: usize, v0: i32, v: v128, s: i32): void {
  const at = dst + (<usize>v0 << 3);
  const m = i16x8.splat(<i16>s);
  v128.store(at, i16x8.mul(i16x8.extend_low_i8x16_s(v), m));
  v128.store(at, i16x8.mul(i16x8.extend_high_i8x16_s(v), m), 64);
}

/** q4_0 (qs at 2, nibble − 8) and q4_1 (qs at 4, nibble). */
// @ts-ignore: decorator
@inline function unpackQ4(wb: usize, dst: usize, qs: usize, offset: i32): void {
  const q = v128.load(wb + qs);
  const o = i8x16.splat(<i8>offset);
  put(dst, 0, i8x16.sub(lowNibbles(q), o));
  put(dst, 16, i8x16.sub(highNibbles(q), o));
}

/** q5_0 (qh at 2, − 16) and q5_1 (qh at 4): nibble | qh bit << 4. */
// @ts-ignore: decorator
@inline function unpackQ5(wb: usize, dst: usize, qh: usize, offset: i32): void {
  const q = v128.load(wb + qh + 4);
  const o = i8x16.splat(<i8>offset);
  put(dst, 0, i8x16.sub(v128.or(lowNibbles(q), i8x16.shl(bitBytes(wb + qh, 0), 4)), o));
  put(dst, 16, i8x16.sub(v128.or(highNibbles(q), i8x16.shl(bitBytes(wb + qh, 16), 4)), o));
}

function unpackQ8(wb: usize, dst: usize): void {
  put(dst, 0, v128.load(wb + 2));
  put(dst, 16, v128.load(wb + 18));
}

function unpackIq4nl(wb: usize, dst: usize): void {
  const q = v128.load(wb + 2);
  put(dst, 0, i8x16.swizzle(IQ4NL_TABLE, lowNibbles(q)));
  put(dst, 16, i8x16.swizzle(IQ4NL_TABLE, highNibbles(q)));
}

function unpackQ2K(wb: usize, dst: usize, mins: usize): void {
  for (let k = 0; k < 16; k++) store<i16>(mins + (<usize>k << 1), <i16>(<i32>load<u8>(wb + k) >> 4));
  for (let h = 0; h < 2; h++) {
    for (let b = 0; b < 2; b++) {
      const q = v128.load(wb + 16 + 32 * h + 16 * b);
      for (let j = 0; j < 4; j++) {
        putScaled(dst, 128 * h + 32 * j + 16 * b, v128.and(i8x16.shr_u(q, 2 * j), i8x16.splat(3)), <i32>load<u8>(wb + 8 * h + 2 * j + b) & 15);
      }
    }
  }
}

function unpackQ3K(wb: usize, dst: usize): void {
  for (let h = 0; h < 2; h++) {
    for (let b = 0; b < 2; b++) {
      const q = v128.load(wb + 32 + 32 * h + 16 * b);
      const hm = v128.load(wb + 16 * b);
      for (let j = 0; j < 4; j++) {
        const lo = v128.and(i8x16.shr_u(q, 2 * j), i8x16.splat(3));
        const hi = i8x16.shl(v128.and(i8x16.shr_u(hm, 4 * h + j), i8x16.splat(1)), 2);
        putScaled(dst, 128 * h + 32 * j + 16 * b, i8x16.sub(v128.or(lo, hi), i8x16.splat(4)), q3KScale(wb + 96, 8 * h + 2 * j + b));
      }
    }
  }
}

/** q4_K/q5_K mins: sub-block j's min for both of its 16-value halves. */
// @ts-ignore: decorator
@inline function k4Mins(wb: usize, mins: usize): void {
  for (let j = 0; j < 8; j++) {
    const m = <i16>k4Min(wb + 4, j);
    store<i16>(mins + (<usize>j << 2), m);
    store<i16>(mins + (<usize>j << 2), m, 2);
  }
}

function unpackQ4K(wb: usize, dst: usize, mins: usize): void {
  k4Mins(wb, mins);
  for (let c = 0; c < 4; c++) {
    const q0 = v128.load(wb + 16 + 32 * c);
    const q1 = v128.load(wb + 16 + 32 * c, 16);
    const sl = k4Scale(wb + 4, 2 * c);
    const sh = k4Scale(wb + 4, 2 * c + 1);
    putScaled(dst, 64 * c, lowNibbles(q0), sl);
    putScaled(dst, 64 * c + 16, lowNibbles(q1), sl);
    putScaled(dst, 64 * c + 32, highNibbles(q0), sh);
    putScaled(dst, 64 * c + 48, highNibbles(q1), sh);
  }
}

function unpackQ5K(wb: usize, dst: usize, mins: usize): void {
  k4Mins(wb, mins);
  const h0 = v128.load(wb + 16);
  const h1 = v128.load(wb + 32);
  const one = i8x16.splat(1);
  for (let c = 0; c < 4; c++) {
    const q0 = v128.load(wb + 48 + 32 * c);
    const q1 = v128.load(wb + 48 + 32 * c, 16);
    const sl = k4Scale(wb + 4, 2 * c);
    const sh = k4Scale(wb + 4, 2 * c + 1);
    putScaled(dst, 64 * c, v128.or(lowNibbles(q0), i8x16.shl(v128.and(i8x16.shr_u(h0, 2 * c), one), 4)), sl);
    putScaled(dst, 64 * c + 16, v128.or(lowNibbles(q1), i8x16.shl(v128.and(i8x16.shr_u(h1, 2 * c), one), 4)), sl);
    putScaled(dst, 64 * c + 32, v128.or(highNibbles(q0), i8x16.shl(v128.and(i8x16.shr_u(h0, 2 * c + 1), one), 4)), sh);
    putScaled(dst, 64 * c + 48, v128.or(highNibbles(q1), i8x16.shl(v128.and(i8x16.shr_u(h1, 2 * c + 1), one), 4)), sh);
  }
}

function unpackQ6K(wb: usize, dst: usize): void {
  const m4 = i8x16.splat(0x0f);
  const m3 = i8x16.splat(3);
  const o = i8x16.splat(32);
  for (let h = 0; h < 2; h++) {
    for (let half = 0; half < 2; half++) {
      const l0 = 16 * half;
      const a = v128.load(wb + 64 * h + l0);
      const b = v128.load(wb + 64 * h + l0 + 32);
      const hb = v128.load(wb + 128 + 32 * h + l0);
      const sc = wb + 192 + 8 * h + half;
      const v0 = 128 * h + l0;
      putScaled(dst, v0, i8x16.sub(v128.or(v128.and(a, m4), i8x16.shl(v128.and(hb, m3), 4)), o), <i32>load<i8>(sc));
      putScaled(dst, v0 + 32, i8x16.sub(v128.or(v128.and(b, m4), i8x16.shl(v128.and(i8x16.shr_u(hb, 2), m3), 4)), o), <i32>load<i8>(sc + 2));
      putScaled(dst, v0 + 64, i8x16.sub(v128.or(i8x16.shr_u(a, 4), i8x16.shl(v128.and(i8x16.shr_u(hb, 4), m3), 4)), o), <i32>load<i8>(sc + 4));
      putScaled(dst, v0 + 96, i8x16.sub(v128.or(i8x16.shr_u(b, 4), i8x16.shl(i8x16.shr_u(hb, 6), 4)), o), <i32>load<i8>(sc + 6));
    }
  }
}

function unpackIq4xs(wb: usize, dst: usize): void {
  const sh = <i32>load<u16>(wb + 2);
  for (let ib = 0; ib < 8; ib++) {
    const ls = ((<i32>load<u8>(wb + 4 + (ib >> 1)) >> (4 * (ib & 1))) & 15) | (((sh >> (2 * ib)) & 3) << 4);
    const q = v128.load(wb + 8 + 16 * ib);
    putScaled(dst, 32 * ib, i8x16.swizzle(IQ4NL_TABLE, lowNibbles(q)), ls - 32);
    putScaled(dst, 32 * ib + 16, i8x16.swizzle(IQ4NL_TABLE, highNibbles(q)), ls - 32);
  }
}

/** The block at wb: scaled levels into its row's slot dst of the interleaved group, mins at mins. */
function unpackBlock(kind: i32, wb: usize, dst: usize, mins: usize): void {
  switch (kind) {
    case 2: unpackQ4(wb, dst, 2, 8); break;
    case 3: unpackQ4(wb, dst, 4, 0); break;
    case 6: unpackQ5(wb, dst, 2, 16); break;
    case 7: unpackQ5(wb, dst, 4, 0); break;
    case 8: unpackQ8(wb, dst); break;
    case 20: unpackIq4nl(wb, dst); break;
    case 10: unpackQ2K(wb, dst, mins); break;
    case 11: unpackQ3K(wb, dst); break;
    case 12: unpackQ4K(wb, dst, mins); break;
    case 13: unpackQ5K(wb, dst, mins); break;
    case 14: unpackQ6K(wb, dst); break;
    default: unpackIq4xs(wb, dst);
  }
}

// ---- products ----

/** Lanes [0, left) of out (left < 4: the rest belong to other rows, or other threads). */
// @ts-ignore: decorator
@inline function loadOut(at: usize, left: i32): v128 {
  if (left >= 4) return v128.load(at);
  let v = f32x4.splat(0);
  v = f32x4.replace_lane(v, 0, load<f32>(at));
  if (left > 1) v = f32x4.replace_lane(v, 1, load<f32>(at, 4));
  if (left > 2) v = f32x4.replace_lane(v, 2, load<f32>(at, 8));
  return v;
}

// @ts-ignore: decorator
@inline function storeOut(at: usize, v: v128, left: i32): void {
  if (left >= 4) {
    v128.store(at, v);
    return;
  }
  store<f32>(at, f32x4.extract_lane(v, 0));
  if (left > 1) store<f32>(at, f32x4.extract_lane(v, 1), 4);
  if (left > 2) store<f32>(at, f32x4.extract_lane(v, 2), 8);
}

/** Σ_k m_k·bsum_k of the group's four rows (mins at m) with one activation block's bsums (i32 at bs). */
// @ts-ignore: decorator
@inline function msum4(m: usize, bs: usize): v128 {
  const b0 = i16x8.narrow_i32x4_s(v128.load(bs), v128.load(bs, 16));
  const b1 = i16x8.narrow_i32x4_s(v128.load(bs, 32), v128.load(bs, 48));
  const p0 = i32x4.add(i32x4.dot_i16x8_s(v128.load(m), b0), i32x4.dot_i16x8_s(v128.load(m, 16), b1));
  const p1 = i32x4.add(i32x4.dot_i16x8_s(v128.load(m, 32), b0), i32x4.dot_i16x8_s(v128.load(m, 48), b1));
  const p2 = i32x4.add(i32x4.dot_i16x8_s(v128.load(m, 64), b0), i32x4.dot_i16x8_s(v128.load(m, 80), b1));
  const p3 = i32x4.add(i32x4.dot_i16x8_s(v128.load(m, 96), b0), i32x4.dot_i16x8_s(v128.load(m, 112), b1));
  return quadSum(pairSum(p0, p1), pairSum(p2, p3));
}

/** The float term of one block for the group's four rows and one activation row (quant.ts's order). */
// @ts-ignore: decorator
@inline function blockTerm4(isum: v128, ds: usize, da: f32, mode: i32, m: usize, ex: usize): v128 {
  const a = f32x4.splat(da);
  let t = f32x4.mul(f32x4.mul(v128.load(ds), a), f32x4.convert_i32x4_s(isum));
  if (mode == MIN_INT) t = f32x4.sub(t, f32x4.mul(f32x4.mul(v128.load(ds, 16), a), f32x4.convert_i32x4_s(msum4(m, ex))));
  else if (mode == MIN_FLOAT) t = f32x4.add(t, f32x4.mul(v128.load(ds, 16), f32x4.splat(load<f32>(ex))));
  return t;
}

/**
 * Activation rows a and b (levels xa/xb, scales da/db, extras ea/eb, at the chunk's first block)
 * × the unpacked group (levels lw, mins m, d/min ds) over cb blocks of lvBytes levels each, added
 * to the running sums at oa/ob (or started there when `first`).
 */
function group4x2(oa: usize, ob: usize, left: i32, first: bool, xa: usize, xb: usize, da: usize, db: usize, ea: usize, eb: usize, exBytes: usize, lw: usize, m: usize, ds: usize, cb: i32, lvBytes: usize, mode: i32): void {
  let accA = first ? f32x4.splat(0) : loadOut(oa, left);
  let accB = first ? f32x4.splat(0) : loadOut(ob, left);
  for (let i = 0; i < cb; i++) {
    let a0 = i32x4.splat(0);
    let a1 = i32x4.splat(0);
    let a2 = i32x4.splat(0);
    let a3 = i32x4.splat(0);
    let b0 = i32x4.splat(0);
    let b1 = i32x4.splat(0);
    let b2 = i32x4.splat(0);
    let b3 = i32x4.splat(0);
    const end = xa + lvBytes;
    while (xa < end) {
      const x = v128.load(xa);
      const y = v128.load(xb);
      let v = v128.load(lw);
      a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v, x));
      b0 = i32x4.add(b0, i32x4.dot_i16x8_s(v, y));
      v = v128.load(lw, 16);
      a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v, x));
      b1 = i32x4.add(b1, i32x4.dot_i16x8_s(v, y));
      v = v128.load(lw, 32);
      a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v, x));
      b2 = i32x4.add(b2, i32x4.dot_i16x8_s(v, y));
      v = v128.load(lw, 48);
      a3 = i32x4.add(a3, i32x4.dot_i16x8_s(v, x));
      b3 = i32x4.add(b3, i32x4.dot_i16x8_s(v, y));
      xa += 16;
      xb += 16;
      lw += 64;
    }
    accA = f32x4.add(accA, blockTerm4(quadSum(pairSum(a0, a1), pairSum(a2, a3)), ds, load<f32>(da), mode, m, ea));
    accB = f32x4.add(accB, blockTerm4(quadSum(pairSum(b0, b1), pairSum(b2, b3)), ds, load<f32>(db), mode, m, eb));
    da += 4;
    db += 4;
    ea += exBytes;
    eb += exBytes;
    m += 128;
    ds += 32;
  }
  storeOut(oa, accA, left);
  storeOut(ob, accB, left);
}

/** group4x2 for one activation row. */
function group4x1(oa: usize, left: i32, first: bool, xa: usize, da: usize, ea: usize, exBytes: usize, lw: usize, m: usize, ds: usize, cb: i32, lvBytes: usize, mode: i32): void {
  let acc = first ? f32x4.splat(0) : loadOut(oa, left);
  for (let i = 0; i < cb; i++) {
    let a0 = i32x4.splat(0);
    let a1 = i32x4.splat(0);
    let a2 = i32x4.splat(0);
    let a3 = i32x4.splat(0);
    const end = xa + lvBytes;
    while (xa < end) {
      const x = v128.load(xa);
      a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.load(lw), x));
      a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.load(lw, 16), x));
      a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v128.load(lw, 32), x));
      a3 = i32x4.add(a3, i32x4.dot_i16x8_s(v128.load(lw, 48), x));
      xa += 16;
      lw += 64;
    }
    acc = f32x4.add(acc, blockTerm4(quadSum(pairSum(a0, a1), pairSum(a2, a3)), ds, load<f32>(da), mode, m, ea));
    da += 4;
    ea += exBytes;
    m += 128;
    ds += 32;
  }
  storeOut(oa, acc, left);
}

/**
 * matmulQuant (quant.ts) for n > 1 activation rows, with quantScratchBytes(kind, inDim) bytes
 * of scratch: bit for bit the same outputs.
 */
export function matmulQuantTiled(out: usize, outStride: i32, xq: usize, w: usize, n: i32, inDim: i32, j0: i32, j1: i32, kind: i32, scratch: usize): void {
  const values = blockValues(kind);
  const nb = inDim / values;
  const lvBytes = <usize>values << 1; // one block's levels as i16, weights and activations alike
  const exBytes: usize = isSuper(kind) ? 64 : 4; // bsums, or q8_1's s
  const bytes = <usize>blockBytes(kind);
  const rowBytes = <usize>nb * bytes;
  const dsAll = xq + <usize>n * <usize>nb * lvBytes;
  const exAll = dsAll + (<usize>(n * nb) << 2);
  const dOff = <usize>dOffset(kind);
  const mOff = minOffset(kind);
  const mode = hasIntMin(kind) ? MIN_INT : mOff >= 0 ? MIN_FLOAT : MIN_NONE;
  const chunk = chunkBlocks(kind, inDim);
  const levels = scratch;
  const mins = levels + <usize>(TILE_ROWS * chunk) * lvBytes;
  const scales = mins + (<usize>(TILE_ROWS * chunk) << 5);
  const oRow = <usize>outStride << 2;
  const xRow = <usize>nb * lvBytes;
  const dRow = <usize>nb << 2;
  const eRow = <usize>nb * exBytes;
  for (let t0 = j0; t0 < j1; t0 += TILE_ROWS) {
    const t1 = min(j1, t0 + TILE_ROWS);
    const groups = (t1 - t0 + 3) >> 2;
    for (let c0 = 0; c0 < nb; c0 += chunk) {
      const cb = min(chunk, nb - c0);
      // Group g's block i: levels at (g·cb + i)·4·lvBytes, mins at (g·cb + i)·128, d/min at
      // (g·cb + i)·32. A last group of fewer than four rows repeats its last row.
      for (let g = 0; g < groups; g++) {
        for (let c = 0; c < 4; c++) {
          const wr = w + <usize>min(t0 + 4 * g + c, t1 - 1) * rowBytes + <usize>c0 * bytes;
          for (let i = 0; i < cb; i++) {
            const gb = <usize>(g * cb + i);
            const wb = wr + <usize>i * bytes;
            unpackBlock(kind, wb, levels + (gb << 2) * lvBytes + (<usize>c << 4), mins + (gb << 7) + (<usize>c << 5));
            const ds = scales + (gb << 5) + (<usize>c << 2);
            store<f32>(ds, f16ToF32Scalar(load<u16>(wb + dOff)));
            store<f32>(ds, mOff >= 0 ? f16ToF32Scalar(load<u16>(wb + <usize>mOff)) : 0, 16);
          }
        }
      }
      const first = c0 == 0;
      const gLevels = <usize>(cb << 2) * lvBytes;
      const gMins = <usize>cb << 7;
      const gScales = <usize>cb << 5;
      let r = 0;
      for (; r + 2 <= n; r += 2) {
        const xa = xq + <usize>r * xRow + <usize>c0 * lvBytes;
        const da = dsAll + <usize>r * dRow + (<usize>c0 << 2);
        const ea = exAll + <usize>r * eRow + <usize>c0 * exBytes;
        const o = out + <usize>r * oRow + (<usize>t0 << 2);
        for (let g = 0; g < groups; g++) {
          const gg = <usize>g;
          const oa = o + (gg << 4);
          group4x2(oa, oa + oRow, t1 - t0 - 4 * g, first, xa, xa + xRow, da, da + dRow, ea, ea + eRow, exBytes, levels + gg * gLevels, mins + gg * gMins, scales + gg * gScales, cb, lvBytes, mode);
        }
      }
      if (r < n) {
        const xa = xq + <usize>r * xRow + <usize>c0 * lvBytes;
        const da = dsAll + <usize>r * dRow + (<usize>c0 << 2);
        const ea = exAll + <usize>r * eRow + <usize>c0 * exBytes;
        const o = out + <usize>r * oRow + (<usize>t0 << 2);
        for (let g = 0; g < groups; g++) {
          const gg = <usize>g;
          group4x1(o + (gg << 4), t1 - t0 - 4 * g, first, xa, da, ea, exBytes, levels + gg * gLevels, mins + gg * gMins, scales + gg * gScales, cb, lvBytes, mode);
        }
      }
    }
  }
}
