// The byte layouts of ggml's weight blocks (ggml-common.h), shared by the one-row products
// (quant.ts, q8.ts) and the batched ones (quant-tiles.ts). Type ids are ggml's: 2 q4_0, 3 q4_1,
// 6 q5_0, 7 q5_1, 8 q8_0, 20 iq4_nl (32-value blocks); 10 q2_K, 11 q3_K, 12 q4_K, 13 q5_K, 14 q6_K,
// 23 iq4_xs (256-value super-blocks).

/** kvalues_iq4nl: the levels iq4_nl and iq4_xs nibbles index. */
export const IQ4NL_TABLE: v128 = i8x16(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);

// @ts-ignore: decorator
@inline export function lowNibbles(q: v128): v128 {
  return v128.and(q, i8x16.splat(0x0f));
}

// @ts-ignore: decorator
@inline export function highNibbles(q: v128): v128 {
  return i8x16.shr_u(q, 4);
}

/** Bit j of the little-endian u32 at p, for j in [first, first + 16), as 0/1 bytes. */
// @ts-ignore: decorator
@inline export function bitBytes(p: usize, first: i32): v128 {
  const v = i32x4.splat(load<u32>(p));
  const spread = first == 0 ? i8x16.swizzle(v, i8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)) : i8x16.swizzle(v, i8x16(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const sel = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return v128.and(i8x16.eq(v128.and(spread, sel), sel), i8x16.splat(1));
}

/** The 6-bit scale k − 32 of q3_K's 12 packed bytes at s. */
// @ts-ignore: decorator
@inline export function q3KScale(s: usize, k: i32): i32 {
  const low = k < 8 ? <i32>load<u8>(s + k) & 15 : <i32>load<u8>(s + k - 8) >> 4;
  const high = (<i32>load<u8>(s + 8 + (k & 3)) >> (2 * (k >> 2))) & 3;
  return (low | (high << 4)) - 32;
}

/** Scale j (0…7) of q4_K/q5_K's 12 packed bytes at s (get_scale_min_k4). */
// @ts-ignore: decorator
@inline export function k4Scale(s: usize, j: i32): i32 {
  return j < 4 ? <i32>load<u8>(s + j) & 63 : (<i32>load<u8>(s + j + 4) & 15) | ((<i32>load<u8>(s + j - 4) >> 6) << 4);
}

/** Min j (0…7) of q4_K/q5_K's 12 packed bytes at s (get_scale_min_k4). */
// @ts-ignore: decorator
@inline export function k4Min(s: usize, j: i32): i32 {
  return j < 4 ? <i32>load<u8>(s + j + 4) & 63 : (<i32>load<u8>(s + j + 4) >> 4) | ((<i32>load<u8>(s + j) >> 6) << 4);
}

// @ts-ignore: decorator
@inline export function blockBytes(kind: i32): i32 {
  switch (kind) {
    case 2: return 18;
    case 3: return 20;
    case 6: return 22;
    case 7: return 24;
    case 8: return 34;
    case 20: return 18;
    case 10: return 84;
    case 11: return 110;
    case 12: return 144;
    case 13: return 176;
    case 14: return 210;
    default: return 136;
  }
}

/** Offset of the fp16 d in a block. */
// @ts-ignore: decorator
@inline export function dOffset(kind: i32): i32 {
  return kind == 10 ? 80 : kind == 11 ? 108 : kind == 14 ? 208 : 0;
}

/** Offset of the fp16 dmin (integer-min K-quants) or float minimum (q4_1, q5_1); −1 if none. */
// @ts-ignore: decorator
@inline export function minOffset(kind: i32): i32 {
  return kind == 10 ? 82 : kind == 12 || kind == 13 || kind == 3 || kind == 7 ? 2 : -1;
}

/** True for the types whose min is an integer per sub-block times dmin (q2_K, q4_K, q5_K). */
// @ts-ignore: decorator
@inline export function hasIntMin(kind: i32): bool {
  return kind == 10 || kind == 12 || kind == 13;
}

/** True for the 256-value super-block types (q8_K activations). */
// @ts-ignore: decorator
@inline export function isSuper(kind: i32): bool {
  return kind >= 10 && kind != 20;
}
