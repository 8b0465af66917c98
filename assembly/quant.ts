// Products of ggml block-quantized weights (q4_0, q4_1, q5_0, q5_1, iq4_nl; the K-quants q2_K …
// q6_K; iq4_xs; and q8_0, whose one-row path is q8.ts) with activations, the way llama.cpp's CPU
// backend computes them: each activation row is first quantized to the type's vec_dot_type
// (q8_0/q8_1 by q8.ts quantizeQ8Rows, q8_K by quantizeQ8KRows here), then every block's products
// are summed exactly in integers (i32x4.dot_i16x8_s on the unpacked 8-bit levels, times each
// sub-block's integer scale).
// Layouts and the float order are those of src/numeric/weight-quants.ts (vecDotRow, blockTerm),
// the plain-TS twin, which this reproduces bit for bit: per block
//   t = (d_w·d_a)·isum  [− (dmin_w·d_a)·msum]  [+ min_w·s_a],   acc += t.
// Four weight rows run side by side, one per f32 lane, so each lane keeps that scalar order.
//
// One activation row (decode) decodes each block straight into its products here; more rows
// (prefill) go to quant-tiles.ts, which decodes each block once for all of them. Both sum the
// same integers in the same float order, so a row's result does not depend on n.
//
// Block layouts and type ids: quant-blocks.ts. 32-value blocks take q8_0/q8_1 activations,
// 256-value super-blocks q8_K.
//
// q8_K activations (q8KActivationBytes): the levels of all n·nb super-blocks as i16 (512 bytes
// each), then the n·nb scales d as f32, then the n·nb·16 sums of 16 levels (bsums) as i32.
import { f16x4 } from './f16';
import { matmulQ8, pairSum, quadSum } from './q8';
import { tileRows } from './matmul';
import { bitBytes, blockBytes, dOffset, hasIntMin, highNibbles, IQ4NL_TABLE, isSuper, k4Min, k4Scale, lowNibbles, minOffset, q3KScale } from './quant-blocks';
import { matmulQuantTiled } from './quant-tiles';

// The integer-min sum of the last block (q2_K, q4_K, q5_K): Σ_k m_k·bsum_k.
let msum: i32 = 0;

/** Σ of 16 i8 lanes of v × the 16 i16 activation levels at xl, as four i32 partial sums. */
// @ts-ignore: decorator
@inline function dot16(v: v128, xl: usize): v128 {
  return i32x4.add(
    i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(v), v128.load(xl)),
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(v), v128.load(xl, 16)),
  );
}

// ---- 32-value blocks (activation block: 32 i16 levels at xl) ----

/** q4_0 (d, qs[16]) and q4_1 (d, m, qs[16]): nibbles − 8 for q4_0, as they are for q4_1. */
// @ts-ignore: decorator
@inline function q4Block(wb: usize, xl: usize, qs: usize, offset: i32): v128 {
  const q = v128.load(wb + qs);
  const o = i8x16.splat(<i8>offset);
  return i32x4.add(dot16(i8x16.sub(lowNibbles(q), o), xl), dot16(i8x16.sub(highNibbles(q), o), xl + 32));
}

/** q5_0 (d, qh u32, qs[16]) and q5_1 (d, m, qh, qs): nibble | qh bit << 4, − 16 for q5_0. */
// @ts-ignore: decorator
@inline function q5Block(wb: usize, xl: usize, qh: usize, offset: i32): v128 {
  const q = v128.load(wb + qh + 4);
  const o = i8x16.splat(<i8>offset);
  const lo = v128.or(lowNibbles(q), i8x16.shl(bitBytes(wb + qh, 0), 4));
  const hi = v128.or(highNibbles(q), i8x16.shl(bitBytes(wb + qh, 16), 4));
  return i32x4.add(dot16(i8x16.sub(lo, o), xl), dot16(i8x16.sub(hi, o), xl + 32));
}

/** iq4_nl (d, qs[16]): the nibbles index kvalues_iq4nl. */
// @ts-ignore: decorator
@inline function iq4nlBlock(wb: usize, xl: usize): v128 {
  const q = v128.load(wb + 2);
  return i32x4.add(dot16(i8x16.swizzle(IQ4NL_TABLE, lowNibbles(q)), xl), dot16(i8x16.swizzle(IQ4NL_TABLE, highNibbles(q)), xl + 32));
}

// ---- 256-value super-blocks (activation: 256 i16 levels at xl, 16 i32 bsums at bs) ----

/** q2_K: scales[16] (scale | min << 4), qs[64] (2-bit levels), d, dmin. */
function q2KBlock(wb: usize, xl: usize, bs: usize): v128 {
  let acc = i32x4.splat(0);
  let m = 0;
  for (let k = 0; k < 16; k++) m += (<i32>load<u8>(wb + k) >> 4) * load<i32>(bs + (<usize>k << 2));
  msum = m;
  for (let h = 0; h < 2; h++) {
    for (let b = 0; b < 2; b++) {
      const q = v128.load(wb + 16 + 32 * h + 16 * b);
      for (let j = 0; j < 4; j++) {
        const k = 8 * h + 2 * j + b;
        const v = v128.and(i8x16.shr_u(q, 2 * j), i8x16.splat(3));
        const p = dot16(v, xl + (<usize>(128 * h + 32 * j + 16 * b) << 1));
        acc = i32x4.add(acc, i32x4.mul(p, i32x4.splat(<i32>load<u8>(wb + k) & 15)));
      }
    }
  }
  return acc;
}

/** q3_K: hmask[32], qs[64], scales[12], d; level = (2 bits | hmask bit << 2) − 4. */
function q3KBlock(wb: usize, xl: usize): v128 {
  let acc = i32x4.splat(0);
  for (let h = 0; h < 2; h++) {
    for (let b = 0; b < 2; b++) {
      const q = v128.load(wb + 32 + 32 * h + 16 * b);
      const hm = v128.load(wb + 16 * b);
      for (let j = 0; j < 4; j++) {
        const lo = v128.and(i8x16.shr_u(q, 2 * j), i8x16.splat(3));
        const hi = i8x16.shl(v128.and(i8x16.shr_u(hm, 4 * h + j), i8x16.splat(1)), 2);
        const v = i8x16.sub(v128.or(lo, hi), i8x16.splat(4));
        const p = dot16(v, xl + (<usize>(128 * h + 32 * j + 16 * b) << 1));
        acc = i32x4.add(acc, i32x4.mul(p, i32x4.splat(q3KScale(wb + 96, 8 * h + 2 * j + b))));
      }
    }
  }
  return acc;
}

/** Σ_j min_j·(bsum_2j + bsum_2j+1) of q4_K/q5_K (mins per 32 values, bsums per 16). */
// @ts-ignore: decorator
@inline function k4Msum(s: usize, bs: usize): i32 {
  let m = 0;
  for (let j = 0; j < 8; j++) m += k4Min(s, j) * (load<i32>(bs + (<usize>j << 3)) + load<i32>(bs + (<usize>j << 3), 4));
  return m;
}

/** q4_K: d, dmin, scales[12], qs[128]: chunk c's low nibbles are sub-block 2c, high ones 2c+1. */
function q4KBlock(wb: usize, xl: usize, bs: usize): v128 {
  msum = k4Msum(wb + 4, bs);
  let acc = i32x4.splat(0);
  for (let c = 0; c < 4; c++) {
    const q0 = v128.load(wb + 16 + 32 * c);
    const q1 = v128.load(wb + 16 + 32 * c, 16);
    const x = xl + (<usize>(64 * c) << 1);
    const lo = i32x4.add(dot16(lowNibbles(q0), x), dot16(lowNibbles(q1), x + 32));
    const hi = i32x4.add(dot16(highNibbles(q0), x + 64), dot16(highNibbles(q1), x + 96));
    acc = i32x4.add(acc, i32x4.add(i32x4.mul(lo, i32x4.splat(k4Scale(wb + 4, 2 * c))), i32x4.mul(hi, i32x4.splat(k4Scale(wb + 4, 2 * c + 1)))));
  }
  return acc;
}

/** q5_K: q4_K plus qh[32] at 16 (bit 2c: low-nibble value's fifth bit, 2c+1: high's); qs at 48. */
function q5KBlock(wb: usize, xl: usize, bs: usize): v128 {
  msum = k4Msum(wb + 4, bs);
  let acc = i32x4.splat(0);
  const h0 = v128.load(wb + 16);
  const h1 = v128.load(wb + 32);
  const one = i8x16.splat(1);
  for (let c = 0; c < 4; c++) {
    const q0 = v128.load(wb + 48 + 32 * c);
    const q1 = v128.load(wb + 48 + 32 * c, 16);
    const x = xl + (<usize>(64 * c) << 1);
    const l0 = v128.or(lowNibbles(q0), i8x16.shl(v128.and(i8x16.shr_u(h0, 2 * c), one), 4));
    const l1 = v128.or(lowNibbles(q1), i8x16.shl(v128.and(i8x16.shr_u(h1, 2 * c), one), 4));
    const u0 = v128.or(highNibbles(q0), i8x16.shl(v128.and(i8x16.shr_u(h0, 2 * c + 1), one), 4));
    const u1 = v128.or(highNibbles(q1), i8x16.shl(v128.and(i8x16.shr_u(h1, 2 * c + 1), one), 4));
    const lo = i32x4.add(dot16(l0, x), dot16(l1, x + 32));
    const hi = i32x4.add(dot16(u0, x + 64), dot16(u1, x + 96));
    acc = i32x4.add(acc, i32x4.add(i32x4.mul(lo, i32x4.splat(k4Scale(wb + 4, 2 * c))), i32x4.mul(hi, i32x4.splat(k4Scale(wb + 4, 2 * c + 1)))));
  }
  return acc;
}

/** q6_K: ql[128], qh[64], int8 scales[16], d; level = (4 low | 2 high bits << 4) − 32. */
function q6KBlock(wb: usize, xl: usize): v128 {
  let acc = i32x4.splat(0);
  const m4 = i8x16.splat(0x0f);
  const m3 = i8x16.splat(3);
  const o = i8x16.splat(32);
  for (let h = 0; h < 2; h++) {
    for (let half = 0; half < 2; half++) {
      const l0 = 16 * half;
      const a = v128.load(wb + 64 * h + l0);
      const b = v128.load(wb + 64 * h + l0 + 32);
      const hb = v128.load(wb + 128 + 32 * h + l0);
      const v1 = i8x16.sub(v128.or(v128.and(a, m4), i8x16.shl(v128.and(hb, m3), 4)), o);
      const v2 = i8x16.sub(v128.or(v128.and(b, m4), i8x16.shl(v128.and(i8x16.shr_u(hb, 2), m3), 4)), o);
      const v3 = i8x16.sub(v128.or(i8x16.shr_u(a, 4), i8x16.shl(v128.and(i8x16.shr_u(hb, 4), m3), 4)), o);
      const v4 = i8x16.sub(v128.or(i8x16.shr_u(b, 4), i8x16.shl(i8x16.shr_u(hb, 6), 4)), o);
      const x = xl + (<usize>(128 * h + l0) << 1);
      const sc = wb + 192 + 8 * h + half;
      acc = i32x4.add(acc, i32x4.mul(dot16(v1, x), i32x4.splat(<i32>load<i8>(sc))));
      acc = i32x4.add(acc, i32x4.mul(dot16(v2, x + 64), i32x4.splat(<i32>load<i8>(sc + 2))));
      acc = i32x4.add(acc, i32x4.mul(dot16(v3, x + 128), i32x4.splat(<i32>load<i8>(sc + 4))));
      acc = i32x4.add(acc, i32x4.mul(dot16(v4, x + 192), i32x4.splat(<i32>load<i8>(sc + 6))));
    }
  }
  return acc;
}

/** iq4_xs: d, scales_h u16, scales_l[4], qs[128]; sub-block ib of 32: nibbles index kvalues_iq4nl. */
function iq4xsBlock(wb: usize, xl: usize): v128 {
  let acc = i32x4.splat(0);
  const sh = <i32>load<u16>(wb + 2);
  for (let ib = 0; ib < 8; ib++) {
    const ls = ((<i32>load<u8>(wb + 4 + (ib >> 1)) >> (4 * (ib & 1))) & 15) | (((sh >> (2 * ib)) & 3) << 4);
    const q = v128.load(wb + 8 + 16 * ib);
    const x = xl + (<usize>(32 * ib) << 1);
    const p = i32x4.add(dot16(i8x16.swizzle(IQ4NL_TABLE, lowNibbles(q)), x), dot16(i8x16.swizzle(IQ4NL_TABLE, highNibbles(q)), x + 32));
    acc = i32x4.add(acc, i32x4.mul(p, i32x4.splat(ls - 32)));
  }
  return acc;
}

/** The scaled integer products of one block, as four i32 partial sums; sets msum for the integer-min types. */
function blockIsum(kind: i32, wb: usize, xl: usize, bs: usize): v128 {
  switch (kind) {
    case 2: return q4Block(wb, xl, 2, 8);
    case 3: return q4Block(wb, xl, 4, 0);
    case 6: return q5Block(wb, xl, 2, 16);
    case 7: return q5Block(wb, xl, 4, 0);
    case 20: return iq4nlBlock(wb, xl);
    case 10: return q2KBlock(wb, xl, bs);
    case 11: return q3KBlock(wb, xl);
    case 12: return q4KBlock(wb, xl, bs);
    case 13: return q5KBlock(wb, xl, bs);
    case 14: return q6KBlock(wb, xl);
    default: return iq4xsBlock(wb, xl);
  }
}

/** The fp16 at a, b, c, d as f32x4. */
// @ts-ignore: decorator
@inline function halves4(a: usize, b: usize, c: usize, d: usize): v128 {
  let h = i32x4.splat(<i32>load<i16>(a));
  h = i32x4.replace_lane(h, 1, <i32>load<i16>(b));
  h = i32x4.replace_lane(h, 2, <i32>load<i16>(c));
  h = i32x4.replace_lane(h, 3, <i32>load<i16>(d));
  return f16x4(h);
}

/** Bytes quantizeQ8KRows writes for n rows of inDim (a multiple of 256) values. */
export function q8KActivationBytes(n: i32, inDim: i32): i32 {
  return n * (inDim >> 8) * (512 + 4 + 64);
}

/**
 * quantize_row_q8_K_ref on n rows of inDim f32 values at x, into dst (layout at the top): per
 * 256 values max = the signed value of largest magnitude (the first on ties), iscale = −127/max,
 * level = round-half-even(iscale·x) capped at 127, d = 1/iscale. Returns how many blocks hold an
 * inf or NaN (their products are meaningless; the caller refuses them).
 */
export function quantizeQ8KRows(dst: usize, x: usize, n: i32, inDim: i32): i32 {
  const blocks = n * (inDim >> 8);
  const ds = dst + <usize>blocks * 512;
  const sums = ds + (<usize>blocks << 2);
  let bad = 0;
  for (let b = 0; b < blocks; b++) {
    const src = x + (<usize>b << 10);
    let m = f32x4.splat(0);
    for (let i = 0; i < 64; i++) m = f32x4.max(m, f32x4.abs(v128.load(src + (<usize>i << 4))));
    const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    if (!isFinite<f32>(amax)) bad++;
    const lv = dst + (<usize>b << 9);
    const bsum = sums + (<usize>b << 6);
    if (amax == 0 || !isFinite<f32>(amax)) {
      memory.fill(lv, 0, 512);
      memory.fill(bsum, 0, 64);
      store<f32>(ds + (<usize>b << 2), 0);
      continue;
    }
    let mx: f32 = 0;
    for (let i = 0; i < 256; i++) {
      const v = load<f32>(src + (<usize>i << 2));
      if (abs(v) == amax) {
        mx = v;
        break;
      }
    }
    const iscale: f32 = -127 / mx;
    const s = f32x4.splat(iscale);
    const cap = i32x4.splat(127);
    for (let k = 0; k < 16; k++) {
      const p = src + (<usize>k << 6);
      const a0 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(s, v128.load(p)))), cap);
      const a1 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(s, v128.load(p, 16)))), cap);
      const a2 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(s, v128.load(p, 32)))), cap);
      const a3 = i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(s, v128.load(p, 48)))), cap);
      v128.store(lv + (<usize>k << 5), i16x8.narrow_i32x4_s(a0, a1));
      v128.store(lv + (<usize>k << 5), i16x8.narrow_i32x4_s(a2, a3), 16);
      const t = i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3));
      store<i32>(bsum + (<usize>k << 2), i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1) + i32x4.extract_lane(t, 2) + i32x4.extract_lane(t, 3));
    }
    store<f32>(ds + (<usize>b << 2), 1 / iscale);
  }
  return bad;
}

/**
 * out[r·outStride + j] = x_r · W_j for rows r < n and output columns j ∈ [j0, j1), W of ggml
 * type `kind` [out][inDim], x as quantizeQ8Rows (32-value types) or quantizeQ8KRows (the
 * super-block types) wrote it at xq; `scratch` holds quantScratchBytes(kind, inDim) bytes.
 */
export function matmulQuant(out: usize, outStride: i32, xq: usize, w: usize, n: i32, inDim: i32, j0: i32, j1: i32, kind: i32, scratch: usize): void {
  if (n > 1) matmulQuantTiled(out, outStride, xq, w, n, inDim, j0, j1, kind, scratch);
  else if (kind == 8) matmulQ8(out, outStride, xq, w, n, inDim, j0, j1);
  else matmulQuantRows(out, outStride, xq, w, n, inDim, j0, j1, kind);
}

/** matmulQuant decoding every block for every activation row, fused with its products. */
function matmulQuantRows(out: usize, outStride: i32, xq: usize, w: usize, n: i32, inDim: i32, j0: i32, j1: i32, kind: i32): void {
  const sup = isSuper(kind);
  const nb = sup ? inDim >> 8 : inDim >> 5;
  const levelBytes: usize = sup ? 512 : 64;
  const extraBytes: usize = sup ? 64 : 4; // bsums, or q8_1's s
  const bytes = <usize>blockBytes(kind);
  const rowBytes = <usize>nb * bytes;
  const ds = xq + <usize>n * <usize>nb * levelBytes;
  const extras = ds + (<usize>(n * nb) << 2);
  const dOff = <usize>dOffset(kind);
  const mOff = minOffset(kind);
  const intMin = hasIntMin(kind);
  const oRow = <usize>outStride << 2;
  const tile = tileRows(<i32>rowBytes);
  for (let t0 = j0; t0 < j1; t0 += tile) {
    const t1 = min(j1, t0 + tile);
    for (let r = 0; r < n; r++) {
      const o = out + <usize>r * oRow;
      for (let j = t0; j < t1; j += 4) {
        // A last group of fewer than four rows repeats its last row in the spare lanes.
        const w0 = w + <usize>j * rowBytes;
        const w1 = w + <usize>min(j + 1, t1 - 1) * rowBytes;
        const w2 = w + <usize>min(j + 2, t1 - 1) * rowBytes;
        const w3 = w + <usize>min(j + 3, t1 - 1) * rowBytes;
        let acc = f32x4.splat(0);
        for (let b = 0; b < nb; b++) {
          const ab = r * nb + b;
          const xl = xq + <usize>ab * levelBytes;
          const ex = extras + <usize>ab * extraBytes;
          const da = f32x4.splat(load<f32>(ds + (<usize>ab << 2)));
          const ob = <usize>b * bytes;
          const p0 = blockIsum(kind, w0 + ob, xl, ex);
          const m0 = msum;
          const p1 = blockIsum(kind, w1 + ob, xl, ex);
          const m1 = msum;
          const p2 = blockIsum(kind, w2 + ob, xl, ex);
          const m2 = msum;
          const p3 = blockIsum(kind, w3 + ob, xl, ex);
          const m3 = msum;
          const isum = quadSum(pairSum(p0, p1), pairSum(p2, p3));
          const dw = halves4(w0 + ob + dOff, w1 + ob + dOff, w2 + ob + dOff, w3 + ob + dOff);
          let t = f32x4.mul(f32x4.mul(dw, da), f32x4.convert_i32x4_s(isum));
          if (mOff >= 0) {
            const mo = ob + <usize>mOff;
            const mw = halves4(w0 + mo, w1 + mo, w2 + mo, w3 + mo);
            if (intMin) {
              let mv = i32x4.splat(m0);
              mv = i32x4.replace_lane(mv, 1, m1);
              mv = i32x4.replace_lane(mv, 2, m2);
              mv = i32x4.replace_lane(mv, 3, m3);
              t = f32x4.sub(t, f32x4.mul(f32x4.mul(mw, da), f32x4.convert_i32x4_s(mv)));
            } else {
              t = f32x4.add(t, f32x4.mul(mw, f32x4.splat(load<f32>(ex))));
            }
          }
          acc = f32x4.add(acc, t);
        }
        const at = o + (<usize>j << 2);
        const left = t1 - j;
        if (left >= 4) v128.store(at, acc);
        else {
          store<f32>(at, f32x4.extract_lane(acc, 0));
          if (left > 1) store<f32>(at, f32x4.extract_lane(acc, 1), 4);
          if (left > 2) store<f32>(at, f32x4.extract_lane(acc, 2), 8);
        }
      }
    }
  }
}
