// Decode attention over uniform integer codes (rtn, kivi: src/kv/codecs/int-quant.ts; plain-TS
// twin of intScoresI8 in src/kv/codecs/ref/int-query.ts).
//
// Storage: B-bit codes packed LSB-first in token-major order (code of token t, channel c at index
// t·width + c), fp16 scales and zero points. A layout descriptor (int32 fields, see D_*) written
// once by the codec says where they are and how channels and tokens are grouped.
//
// scores, default: the query is quantized to int8 per group (absmax/127, round half to even) and
// multiplied with the unpacked codes in integer arithmetic (i32x4.dot_i16x8_s: ext-mul plus
// pairwise add); scale and zero point are applied once per group (MixPE's factoring):
//   per-token groups   q·k̂ = Σ_g s_g·(d_g·Σ_c l_c·code_c) + z_g·Σ_c q_c
//   per-channel groups q·k̂ = Σ_c (q_c·s_c)·code_c + Σ_c q_c·z_c, with q⊙s quantized per group of
//                      QG channels, once per group of G tokens.
// Symmetric codes use code − offset and no zero term. Float operations run in a fixed order that
// the twin repeats, so the two agree bit for bit.
// scores with dot=f32 and accumulate decode rows to float32 (code·s + z) and use attn-fp's tiles.
import { accumulateTile, f16, scoreTile, TILE } from './attn-fp';

// Descriptor fields (int32 index).
const D_CODES = 0;
const D_SCALES = 1;
const D_ZEROS = 2; // 0: symmetric, no zero points
const D_BITS = 3;
const D_WIDTH = 4;
const D_HEAD_DIM = 5;
const D_OFFSET = 6; // symmetric: the code of 0
const D_AXIS = 7; // 0: per-token groups, 1: per-channel groups
const D_GPR = 8; // per-token: scale groups per row
const D_PER_HEAD = 9; // per-token: groups covering one head
const D_SPAN = 10; // per-token: channels per group within a head; per-channel: query group QG
const D_G = 11; // per-channel: tokens per group
const D_WHOLE = 12; // per-token: one group over the whole row (all heads)

@inline function field(desc: usize, i: i32): i32 {
  return load<i32>(desc + (<usize>i << 2));
}

@inline function align16(n: usize): usize {
  return (n + 15) & ~15;
}

/**
 * Codes [idx, idx + n) as int16 (code − off) to dst. Byte-aligned 2-, 4- and 8-bit runs unpack 16
 * codes per step; anything else code by code.
 */
function unpackCodes(codes: usize, bits: i32, idx: u64, n: i32, off: i32, dst: usize): void {
  const bit0 = idx * <u64>bits;
  let j = 0;
  if ((bit0 & 7) == 0 && (bits == 2 || bits == 4 || bits == 8)) {
    const p = codes + <usize>(bit0 >> 3);
    const o = i16x8.splat(<i16>off);
    if (bits == 8) {
      for (; j + 8 <= n; j += 8) v128.store(dst + (<usize>j << 1), i16x8.sub(v128.load8x8_u(p + <usize>j), o));
    } else if (bits == 4) {
      const m = i8x16.splat(0x0f);
      for (; j + 16 <= n; j += 16) {
        const v = v128.load64_zero(p + (<usize>j >> 1));
        const c = i8x16.shuffle(v128.and(v, m), i8x16.shr_u(v, 4), 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        v128.store(dst + (<usize>j << 1), i16x8.sub(i16x8.extend_low_i8x16_u(c), o));
        v128.store(dst + (<usize>j << 1), i16x8.sub(i16x8.extend_high_i8x16_u(c), o), 16);
      }
    } else {
      const m = i8x16.splat(3);
      for (; j + 16 <= n; j += 16) {
        const v = v128.load32_zero(p + (<usize>j >> 2));
        const c0 = v128.and(v, m);
        const c1 = v128.and(i8x16.shr_u(v, 2), m);
        const c2 = v128.and(i8x16.shr_u(v, 4), m);
        const c3 = i8x16.shr_u(v, 6);
        const a = i8x16.shuffle(c0, c1, 0, 16, 1, 17, 2, 18, 3, 19, 0, 0, 0, 0, 0, 0, 0, 0);
        const b = i8x16.shuffle(c2, c3, 0, 16, 1, 17, 2, 18, 3, 19, 0, 0, 0, 0, 0, 0, 0, 0);
        const c = i8x16.shuffle(a, b, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
        v128.store(dst + (<usize>j << 1), i16x8.sub(i16x8.extend_low_i8x16_u(c), o));
        v128.store(dst + (<usize>j << 1), i16x8.sub(i16x8.extend_high_i8x16_u(c), o), 16);
      }
    }
  }
  const mask: u32 = (1 << bits) - 1;
  for (; j < n; j++) {
    const bit = bit0 + <u64>j * <u64>bits;
    const p = codes + <usize>(bit >> 3);
    const sh = <u32>(bit & 7);
    let v = <u32>load<u8>(p);
    // Further bytes only when the code reaches them: the last code may end the buffer.
    if (sh + <u32>bits > 8) v |= <u32>load<u8>(p, 1) << 8;
    store<i16>(dst + (<usize>j << 1), <i16>(<i32>((v >>> sh) & mask) - off));
  }
}

/** Σ a[j]·b[j] over n int16 values (exact). */
@inline function dotI16(a: usize, b: usize, n: i32): i32 {
  let acc = i32x4.splat(0);
  let j = 0;
  for (; j + 8 <= n; j += 8) acc = i32x4.add(acc, i32x4.dot_i16x8_s(v128.load(a + (<usize>j << 1)), v128.load(b + (<usize>j << 1))));
  acc = i32x4.add(acc, i32x4.shuffle(acc, acc, 2, 3, 0, 1));
  let s = i32x4.extract_lane(acc, 0) + i32x4.extract_lane(acc, 1);
  for (; j < n; j++) s += <i32>load<i16>(a + (<usize>j << 1)) * <i32>load<i16>(b + (<usize>j << 1));
  return s;
}

/**
 * x[0 … n) (float32) to int8 levels stored as int16 at dst: d = amax/127, level = nearest(x·127/amax).
 * Returns d.
 */
function quantizeGroup(x: usize, n: i32, dst: usize): f32 {
  let amax: f32 = 0;
  for (let j = 0; j < n; j++) amax = max(amax, abs(load<f32>(x + (<usize>j << 2))));
  const id: f32 = amax != 0 ? <f32>127 / amax : 0;
  for (let j = 0; j < n; j++) store<i16>(dst + (<usize>j << 1), <i16>nearest<f32>(load<f32>(x + (<usize>j << 2)) * id));
  return amax / 127;
}

/**
 * Levels of one query (int16, natural order, hd of them) to int8 in the order the packed codes
 * come out of a 16-byte load: per 32 codes at 4 bits [even channels, odd channels]; per 64 codes
 * at 2 bits, four runs of 16 [channels 4k, 4k+1, 4k+2, 4k+3].
 */
function permuteLevels(src: usize, hd: i32, bits: i32, dst: usize): void {
  if (bits == 4) {
    for (let c = 0; c < hd; c++) store<i8>(dst + <usize>((c & ~31) + ((c & 1) << 4) + ((c & 31) >> 1)), <i8>load<i16>(src + (<usize>c << 1)));
  } else {
    for (let c = 0; c < hd; c++) store<i8>(dst + <usize>((c & ~63) + ((c & 3) << 4) + ((c & 63) >> 2)), <i8>load<i16>(src + (<usize>c << 1)));
  }
}

/** off·Σ levels per group of `span` (int32 at dst[g]): the fast path's symmetric-code correction. */
function levelSums(src: usize, hd: i32, span: i32, off: i32, dst: usize): void {
  for (let a = 0, g = 0; a < hd; a += span, g++) {
    let sum = 0;
    for (let c = a; c < a + span; c++) sum += <i32>load<i16>(src + (<usize>c << 1));
    store<i32>(dst + (<usize>g << 2), off * sum);
  }
}

/** Four partial sums (i32x4) of 32 4-bit codes (16 bytes at p) times their permuted int8 levels at q. */
@inline function part4(p: usize, q: usize): v128 {
  const v = v128.load(p);
  const lo = v128.and(v, i8x16.splat(0x0f));
  const hi = i8x16.shr_u(v, 4);
  const qe = v128.load(q);
  const qo = v128.load(q, 16);
  // |code·level| ≤ 15·127: four of them still fit an int16.
  let s = i16x8.add(i16x8.extmul_low_i8x16_s(lo, qe), i16x8.extmul_high_i8x16_s(lo, qe));
  s = i16x8.add(s, i16x8.add(i16x8.extmul_low_i8x16_s(hi, qo), i16x8.extmul_high_i8x16_s(hi, qo)));
  return i32x4.extadd_pairwise_i16x8_s(s);
}

/**
 * Integer partial sums (one i32x4 per group, to P[g]) of one token's head: 4-bit or 2-bit codes
 * from byte p, permuted query levels at q, groups of `span` channels (a multiple of 32).
 */
@inline function partials(p: usize, bits: i32, hd: i32, span: i32, q: usize, P: usize): void {
  const perGroup = span >> 5;
  if (bits == 4) {
    let c = 0;
    for (let g = 0; g < hd / span; g++) {
      let acc = i32x4.splat(0);
      for (let k = 0; k < perGroup; k++, c++) acc = i32x4.add(acc, part4(p + (<usize>c << 4), q + (<usize>c << 5)));
      v128.store(P + (<usize>g << 4), acc);
    }
    return;
  }
  // 2 bits: 16 bytes hold 64 codes, lanes 0..7 the first 32 and 8..15 the next 32.
  const m = i8x16.splat(3);
  let g = 0;
  let k = 0;
  let acc = i32x4.splat(0);
  for (let b = 0; b < hd >> 6; b++) {
    const v = v128.load(p + (<usize>b << 4));
    const qb = q + (<usize>b << 6);
    const c0 = v128.and(v, m);
    const c1 = v128.and(i8x16.shr_u(v, 2), m);
    const c2 = v128.and(i8x16.shr_u(v, 4), m);
    const c3 = i8x16.shr_u(v, 6);
    const q0 = v128.load(qb);
    const q1 = v128.load(qb, 16);
    const q2 = v128.load(qb, 32);
    const q3 = v128.load(qb, 48);
    const sA = i16x8.add(
      i16x8.add(i16x8.extmul_low_i8x16_s(c0, q0), i16x8.extmul_low_i8x16_s(c1, q1)),
      i16x8.add(i16x8.extmul_low_i8x16_s(c2, q2), i16x8.extmul_low_i8x16_s(c3, q3)),
    );
    const sB = i16x8.add(
      i16x8.add(i16x8.extmul_high_i8x16_s(c0, q0), i16x8.extmul_high_i8x16_s(c1, q1)),
      i16x8.add(i16x8.extmul_high_i8x16_s(c2, q2), i16x8.extmul_high_i8x16_s(c3, q3)),
    );
    acc = i32x4.add(acc, i32x4.extadd_pairwise_i16x8_s(sA));
    if (++k == perGroup) {
      v128.store(P + (<usize>(g++) << 4), acc);
      acc = i32x4.splat(0);
      k = 0;
    }
    acc = i32x4.add(acc, i32x4.extadd_pairwise_i16x8_s(sB));
    if (++k == perGroup) {
      v128.store(P + (<usize>(g++) << 4), acc);
      acc = i32x4.splat(0);
      k = 0;
    }
  }
}

/** [Σa, Σb, Σc, Σd] of four i32x4. */
@inline function transposeSum(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(i32x4.shuffle(c, d, 0, 4, 1, 5), i32x4.shuffle(c, d, 2, 6, 3, 7));
  return i32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

/** fp16 values at p, p + stride, p + 2·stride, p + 3·stride (bytes) as f32x4. */
@inline function gatherF16(p: usize, stride: usize): v128 {
  let v = i16x8.splat(0);
  v = v128.load16_lane(p, v, 0);
  v = v128.load16_lane(p + stride, v, 1);
  v = v128.load16_lane(p + 2 * stride, v, 2);
  v = v128.load16_lane(p + 3 * stride, v, 3);
  // As f16x4 in attn-fp.ts: sign-extended, shifted, masked, rebased by 2^112.
  return f32x4.mul(v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(v), 13), i32x4.splat(0x8fffe000)), f32x4.splat(5.192296858534828e33));
}

/**
 * scores(), int8 query (see the file comment): out[i·outStride + t] for tokens t < nTokens, all
 * of them held as codes. q: nq·headDim float32. scratch: intScratchBytes(headDim, nq).
 *
 * 2- and 4-bit codes in groups of whole 32-channel chunks take the fast path: four tokens at a
 * time, codes multiplied straight out of their bytes with the query levels permuted to match
 * (i16x8.extmul of int8 pairs, summed in int16, widened pairwise), and the four tokens' group
 * sums scaled together in one f32x4; the float operations per token are the same as the
 * one-token path's, so every lane computes exactly what the twin does.
 */
export function intScoresI8(desc: usize, head: i32, nTokens: i32, q: usize, nq: i32, out: usize, outStride: i32, scratch: usize): void {
  const codes = <usize>field(desc, D_CODES);
  const scales = <usize>field(desc, D_SCALES);
  const zeros = <usize>field(desc, D_ZEROS);
  const bits = field(desc, D_BITS);
  const width = field(desc, D_WIDTH);
  const hd = field(desc, D_HEAD_DIM);
  const off = field(desc, D_OFFSET);
  const span = field(desc, D_SPAN);
  const perToken = field(desc, D_AXIS) == 0;
  const G = field(desc, D_G);
  const c0 = head * hd;
  const nG = (hd + span - 1) / span;
  const fast = ((bits == 4 && hd % 32 == 0) || (bits == 2 && hd % 64 == 0)) && span % 32 == 0 && hd % span == 0 && (perToken || G % 4 == 0);
  // Scratch: the unpacked row, the query levels (natural and permuted), one d and one Σq or
  // zero term per query and group, one folded query, and the fast path's partial sums and scales.
  const row = scratch;
  const ql = row + align16(<usize>(hd + 8) << 1);
  const qp = ql + align16((<usize>nq * <usize>hd) << 1);
  const qd = qp + align16(<usize>nq * <usize>hd);
  const qz = qd + ((<usize>nq * <usize>nG) << 2);
  const qf = qz + ((<usize>nq * <usize>nG) << 2);
  const P = align16(qf + (<usize>hd << 2));
  const S4 = P + (<usize>(4 * nG) << 4);
  const Z4 = S4 + (<usize>nG << 4);
  // Symmetric codes on the fast path: Σ l·(code − off) = Σ l·code − off·Σ l, per query and group.
  const LS = Z4 + (<usize>nG << 4);
  const rowBits = <u64>width * <u64>bits;
  const headBit = <u64>c0 * <u64>bits;

  if (perToken) {
    const gpr = field(desc, D_GPR);
    const k0 = field(desc, D_WHOLE) ? 0 : head * field(desc, D_PER_HEAD);
    for (let i = 0; i < nq; i++) {
      const qi = q + ((<usize>i * <usize>hd) << 2);
      for (let g = 0; g < nG; g++) {
        const a = g * span;
        const len = min(span, hd - a);
        const k = <usize>(i * nG + g) << 2;
        store<f32>(qd + k, quantizeGroup(qi + (<usize>a << 2), len, ql + ((<usize>(i * hd + a)) << 1)));
        let sum: f32 = 0;
        for (let c = 0; c < len; c++) sum += load<f32>(qi + (<usize>(a + c) << 2));
        store<f32>(qz + k, sum);
      }
      if (fast) {
        permuteLevels(ql + ((<usize>(i * hd)) << 1), hd, bits, qp + <usize>(i * hd));
        levelSums(ql + ((<usize>(i * hd)) << 1), hd, span, off, LS + (<usize>(i * nG) << 2));
      }
    }
    let t = 0;
    if (fast) {
      const sStride = <usize>gpr << 1;
      for (; t + 4 <= nTokens; t += 4) {
        const sk = scales + (<usize>(t * gpr + k0) << 1);
        for (let g = 0; g < nG; g++) {
          v128.store(S4 + (<usize>g << 4), gatherF16(sk + (<usize>g << 1), sStride));
          if (zeros) v128.store(Z4 + (<usize>g << 4), gatherF16(zeros + (sk - scales) + (<usize>g << 1), sStride));
        }
        for (let i = 0; i < nq; i++) {
          const qpi = qp + <usize>(i * hd);
          for (let j = 0; j < 4; j++) {
            const p = codes + <usize>((<u64>(t + j) * rowBits + headBit) >> 3);
            partials(p, bits, hd, span, qpi, P + (<usize>(j * nG) << 4));
          }
          let acc = f32x4.splat(0);
          for (let g = 0; g < nG; g++) {
            const gs = <usize>g << 4;
            const k = <usize>(i * nG + g) << 2;
            const isum = i32x4.sub(
              transposeSum(v128.load(P + gs), v128.load(P + (<usize>nG << 4) + gs), v128.load(P + (<usize>(2 * nG) << 4) + gs), v128.load(P + (<usize>(3 * nG) << 4) + gs)),
              v128.load_splat<i32>(LS + k),
            );
            acc = f32x4.add(acc, f32x4.mul(f32x4.mul(v128.load(S4 + gs), v128.load_splat<f32>(qd + k)), f32x4.convert_i32x4_s(isum)));
            if (zeros) acc = f32x4.add(acc, f32x4.mul(v128.load(Z4 + gs), v128.load_splat<f32>(qz + k)));
          }
          v128.store(out + ((<usize>i * <usize>outStride + <usize>t) << 2), acc);
        }
      }
    }
    for (; t < nTokens; t++) {
      unpackCodes(codes, bits, <u64>t * <u64>width + <u64>c0, hd, off, row);
      const sk = <usize>(t * gpr + k0) << 1;
      for (let i = 0; i < nq; i++) {
        let acc: f32 = 0;
        for (let g = 0; g < nG; g++) {
          const a = g * span;
          const isum = dotI16(row + (<usize>a << 1), ql + (<usize>(i * hd + a) << 1), min(span, hd - a));
          const k = <usize>(i * nG + g) << 2;
          const gs = sk + (<usize>g << 1);
          acc += f16(load<u16>(scales + gs)) * load<f32>(qd + k) * <f32>isum;
          if (zeros) acc += f16(load<u16>(zeros + gs)) * load<f32>(qz + k);
        }
        store<f32>(out + ((<usize>i * <usize>outStride + <usize>t) << 2), acc);
      }
    }
    return;
  }

  for (let t0 = 0; t0 < nTokens; t0 += G) {
    const sRow = scales + ((<usize>(t0 / G) * <usize>width + <usize>c0) << 1);
    const zRow = zeros ? zeros + ((<usize>(t0 / G) * <usize>width + <usize>c0) << 1) : 0;
    for (let i = 0; i < nq; i++) {
      const qi = q + ((<usize>i * <usize>hd) << 2);
      let z: f32 = 0;
      for (let c = 0; c < hd; c++) {
        const x = load<f32>(qi + (<usize>c << 2));
        store<f32>(qf + (<usize>c << 2), x * f16(load<u16>(sRow + (<usize>c << 1))));
        if (zRow) z += x * f16(load<u16>(zRow + (<usize>c << 1)));
      }
      store<f32>(qz + (<usize>i << 2), z);
      for (let g = 0; g < nG; g++) {
        const a = g * span;
        store<f32>(qd + (<usize>(i * nG + g) << 2), quantizeGroup(qf + (<usize>a << 2), min(span, hd - a), ql + (<usize>(i * hd + a) << 1)));
      }
      if (fast) {
        permuteLevels(ql + ((<usize>(i * hd)) << 1), hd, bits, qp + <usize>(i * hd));
        levelSums(ql + ((<usize>(i * hd)) << 1), hd, span, off, LS + (<usize>(i * nG) << 2));
      }
    }
    const t1 = min(t0 + G, nTokens);
    let t = t0;
    if (fast) {
      for (; t + 4 <= t1; t += 4) {
        for (let i = 0; i < nq; i++) {
          const qpi = qp + <usize>(i * hd);
          for (let j = 0; j < 4; j++) {
            const p = codes + <usize>((<u64>(t + j) * rowBits + headBit) >> 3);
            partials(p, bits, hd, span, qpi, P + (<usize>(j * nG) << 4));
          }
          let acc = v128.load_splat<f32>(qz + (<usize>i << 2));
          for (let g = 0; g < nG; g++) {
            const gs = <usize>g << 4;
            const k = <usize>(i * nG + g) << 2;
            const isum = i32x4.sub(
              transposeSum(v128.load(P + gs), v128.load(P + (<usize>nG << 4) + gs), v128.load(P + (<usize>(2 * nG) << 4) + gs), v128.load(P + (<usize>(3 * nG) << 4) + gs)),
              v128.load_splat<i32>(LS + k),
            );
            acc = f32x4.add(acc, f32x4.mul(v128.load_splat<f32>(qd + k), f32x4.convert_i32x4_s(isum)));
          }
          v128.store(out + ((<usize>i * <usize>outStride + <usize>t) << 2), acc);
        }
      }
    }
    for (; t < t1; t++) {
      unpackCodes(codes, bits, <u64>t * <u64>width + <u64>c0, hd, off, row);
      for (let i = 0; i < nq; i++) {
        let acc = load<f32>(qz + (<usize>i << 2));
        for (let g = 0; g < nG; g++) {
          const a = g * span;
          const isum = dotI16(row + (<usize>a << 1), ql + (<usize>(i * hd + a) << 1), min(span, hd - a));
          acc += load<f32>(qd + (<usize>(i * nG + g) << 2)) * <f32>isum;
        }
        store<f32>(out + ((<usize>i * <usize>outStride + <usize>t) << 2), acc);
      }
    }
  }
}

/** Scratch bytes intScoresI8 / intScoresF32 / intAccumulate need (all three fit in this). */
export function intScratchBytes(headDim: i32, nq: i32): i32 {
  const hd = <usize>headDim;
  // Groups per head ≤ hd; the fast path's partials and scales take (4 + 2)·16 bytes per group, its
  // level sums 4 per query and group.
  const i8 = align16((hd + 8) << 1) + align16((<usize>nq * hd) << 1) + align16(<usize>nq * hd) + ((<usize>nq * hd) << 3) + (hd << 2) + 16 + hd * 96 + ((<usize>nq * hd) << 2);
  // intAccumulate: the tile, then s, z and p·s per tile row and group (≤ hd groups), Σ p·z per
  // query and group.
  const f32 = align16((hd + 8) << 1) + ((<usize>TILE * hd) << 2) + (hd << 3) + ((<usize>TILE * hd) << 2) * 3 + ((<usize>nq * hd) << 2);
  return <i32>(max(i8, f32) + 64);
}

/**
 * Tokens [t0, t0 + n) of head `head` decoded to float32 rows (code·s + z, or (code − off)·s) at dst.
 * row: int16 scratch of headDim + 8; sz: 2·headDim floats (per-channel scales and zeros).
 */
function decodeRows(desc: usize, head: i32, t0: i32, n: i32, dst: usize, row: usize, sz: usize): void {
  const codes = <usize>field(desc, D_CODES);
  const scales = <usize>field(desc, D_SCALES);
  const zeros = <usize>field(desc, D_ZEROS);
  const bits = field(desc, D_BITS);
  const width = field(desc, D_WIDTH);
  const hd = field(desc, D_HEAD_DIM);
  const off = field(desc, D_OFFSET);
  const c0 = head * hd;
  const perToken = field(desc, D_AXIS) == 0;
  const span = perToken ? field(desc, D_SPAN) : hd;
  const nG = (hd + span - 1) / span;
  const gpr = field(desc, D_GPR);
  const k0 = field(desc, D_WHOLE) ? 0 : head * field(desc, D_PER_HEAD);
  const G = field(desc, D_G);
  const zs = sz + (<usize>hd << 2);
  let loaded = -1;
  for (let r = 0; r < n; r++) {
    const t = t0 + r;
    unpackCodes(codes, bits, <u64>t * <u64>width + <u64>c0, hd, off, row);
    const o = dst + ((<usize>r * <usize>hd) << 2);
    if (perToken) {
      const sk = <usize>(t * gpr + k0) << 1;
      for (let g = 0; g < nG; g++) {
        const a = g * span;
        const b = min(a + span, hd);
        const s = f16(load<u16>(scales + sk + (<usize>g << 1)));
        const z: f32 = zeros ? f16(load<u16>(zeros + sk + (<usize>g << 1))) : 0;
        let c = a;
        for (; c + 4 <= b; c += 4) {
          let x = f32x4.mul(f32x4.convert_i32x4_s(v128.load16x4_s(row + (<usize>c << 1))), f32x4.splat(s));
          if (zeros) x = f32x4.add(x, f32x4.splat(z));
          v128.store(o + (<usize>c << 2), x);
        }
        for (; c < b; c++) {
          let x = <f32>load<i16>(row + (<usize>c << 1)) * s;
          if (zeros) x += z;
          store<f32>(o + (<usize>c << 2), x);
        }
      }
    } else {
      const j = t / G;
      if (j != loaded) {
        const base = (<usize>j * <usize>width + <usize>c0) << 1;
        for (let c = 0; c < hd; c++) {
          store<f32>(sz + (<usize>c << 2), f16(load<u16>(scales + base + (<usize>c << 1))));
          store<f32>(zs + (<usize>c << 2), zeros ? f16(load<u16>(zeros + base + (<usize>c << 1))) : 0);
        }
        loaded = j;
      }
      let c = 0;
      for (; c + 4 <= hd; c += 4) {
        let x = f32x4.mul(f32x4.convert_i32x4_s(v128.load16x4_s(row + (<usize>c << 1))), v128.load(sz + (<usize>c << 2)));
        if (zeros) x = f32x4.add(x, v128.load(zs + (<usize>c << 2)));
        v128.store(o + (<usize>c << 2), x);
      }
      for (; c < hd; c++) {
        let x = <f32>load<i16>(row + (<usize>c << 1)) * load<f32>(sz + (<usize>c << 2));
        if (zeros) x += load<f32>(zs + (<usize>c << 2));
        store<f32>(o + (<usize>c << 2), x);
      }
    }
  }
}

/** scores() with a float32 query (dot=f32): decoded rows times q, tokens t < nTokens held as codes. */
export function intScoresF32(desc: usize, head: i32, nTokens: i32, q: usize, nq: i32, out: usize, outStride: i32, scratch: usize): void {
  const hd = field(desc, D_HEAD_DIM);
  const row = scratch;
  const tile = row + align16(<usize>(hd + 8) << 1);
  const sz = tile + ((<usize>TILE * <usize>hd) << 2);
  for (let t0 = 0; t0 < nTokens; t0 += TILE) {
    const n = min(TILE, nTokens - t0);
    decodeRows(desc, head, t0, n, tile, row, sz);
    scoreTile(q, nq, hd, tile, <usize>hd << 2, n, out + (<usize>t0 << 2), outStride);
  }
}

/** Codes [idx, idx + n) as float32 (code − off) to dst, through the int16 row scratch. */
function codesToF32(codes: usize, bits: i32, idx: u64, n: i32, off: i32, row: usize, dst: usize): void {
  unpackCodes(codes, bits, idx, n, off, row);
  let c = 0;
  for (; c + 4 <= n; c += 4) v128.store(dst + (<usize>c << 2), f32x4.convert_i32x4_s(v128.load16x4_s(row + (<usize>c << 1))));
  for (; c < n; c++) store<f32>(dst + (<usize>c << 2), <f32>load<i16>(row + (<usize>c << 1)));
}

/**
 * accumulate() over tokens t < nTokens held as codes: out[i·headDim + d] += Σ_t w[i·wStride + t]·v̂_t[d].
 *
 * Per-token groups factor the scale out of the sum (twin: GroupQuantCodec.accumulateRange):
 * out += (p·s)·(code − off) token by token, and Σ_t p·z per group is added once at the end. The
 * codes are converted to float32 once per tile and serve every query. Per-channel groups decode
 * v̂ = code·s + z and add p·v̂.
 */
export function intAccumulate(desc: usize, head: i32, nTokens: i32, w: usize, wStride: i32, nq: i32, out: usize, scratch: usize): void {
  const hd = field(desc, D_HEAD_DIM);
  const row = scratch;
  const tile = row + align16(<usize>(hd + 8) << 1);
  if (field(desc, D_AXIS) != 0) {
    const sz = tile + ((<usize>TILE * <usize>hd) << 2);
    for (let t0 = 0; t0 < nTokens; t0 += TILE) {
      const n = min(TILE, nTokens - t0);
      decodeRows(desc, head, t0, n, tile, row, sz);
      accumulateTile(w + (<usize>t0 << 2), wStride, nq, hd, tile, <usize>hd << 2, n, out);
    }
    return;
  }
  const codes = <usize>field(desc, D_CODES);
  const scales = <usize>field(desc, D_SCALES);
  const zeros = <usize>field(desc, D_ZEROS);
  const bits = field(desc, D_BITS);
  const width = field(desc, D_WIDTH);
  const off = field(desc, D_OFFSET);
  const span = field(desc, D_SPAN);
  const gpr = field(desc, D_GPR);
  const k0 = field(desc, D_WHOLE) ? 0 : head * field(desc, D_PER_HEAD);
  const c0 = head * hd;
  const nG = (hd + span - 1) / span;
  // Scratch after the tile: per tile row and group s and z, p·s of the current query, and the
  // zero-point sums Σ p·z per query and group.
  const S = tile + ((<usize>TILE * <usize>hd) << 2);
  const Z = S + ((<usize>TILE * <usize>nG) << 2);
  const A = Z + ((<usize>TILE * <usize>nG) << 2);
  const ZA = A + ((<usize>TILE * <usize>nG) << 2);
  const rowBytes = <usize>hd << 2;
  memory.fill(ZA, 0, (<usize>nq * <usize>nG) << 2);
  for (let t0 = 0; t0 < nTokens; t0 += TILE) {
    const n = min(TILE, nTokens - t0);
    for (let r = 0; r < n; r++) {
      const t = t0 + r;
      codesToF32(codes, bits, <u64>t * <u64>width + <u64>c0, hd, off, row, tile + <usize>r * rowBytes);
      const sk = <usize>(t * gpr + k0) << 1;
      for (let g = 0; g < nG; g++) {
        const k = <usize>(r * nG + g) << 2;
        store<f32>(S + k, f16(load<u16>(scales + sk + (<usize>g << 1))));
        if (zeros) store<f32>(Z + k, f16(load<u16>(zeros + sk + (<usize>g << 1))));
      }
    }
    for (let i = 0; i < nq; i++) {
      const wi = w + ((<usize>i * <usize>wStride + <usize>t0) << 2);
      const za = ZA + (<usize>(i * nG) << 2);
      for (let r = 0; r < n; r++) {
        const p = load<f32>(wi + (<usize>r << 2));
        for (let g = 0; g < nG; g++) {
          const k = <usize>(r * nG + g) << 2;
          store<f32>(A + k, p * load<f32>(S + k));
          if (zeros) store<f32>(za + (<usize>g << 2), load<f32>(za + (<usize>g << 2)) + p * load<f32>(Z + k));
        }
      }
      const oi = out + ((<usize>i * <usize>hd) << 2);
      for (let g = 0; g < nG; g++) {
        const a = g * span;
        const b = min(a + span, hd);
        let d = a;
        for (; d + 4 <= b; d += 4) {
          const o = <usize>d << 2;
          let acc = v128.load(oi + o);
          let x = tile + o;
          let ap = A + (<usize>g << 2);
          for (let r = 0; r < n; r++, x += rowBytes, ap += <usize>nG << 2) acc = f32x4.add(acc, f32x4.mul(v128.load_splat<f32>(ap), v128.load(x)));
          v128.store(oi + o, acc);
        }
        for (; d < b; d++) {
          const o = <usize>d << 2;
          let acc = load<f32>(oi + o);
          for (let r = 0; r < n; r++) acc += load<f32>(A + (<usize>(r * nG + g) << 2)) * load<f32>(tile + <usize>r * rowBytes + o);
          store<f32>(oi + o, acc);
        }
      }
    }
  }
  if (zeros) {
    for (let i = 0; i < nq; i++) {
      const oi = out + ((<usize>i * <usize>hd) << 2);
      for (let g = 0; g < nG; g++) {
        const z = load<f32>(ZA + (<usize>(i * nG + g) << 2));
        for (let d = g * span; d < min((g + 1) * span, hd); d++) store<f32>(oi + (<usize>d << 2), load<f32>(oi + (<usize>d << 2)) + z);
      }
    }
  }
}
