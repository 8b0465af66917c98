// Decode attention over uniform integer codes (rtn, kivi: src/kv/codecs/int-quant.ts; plain-TS
// twins in src/kv/codecs/ref/int-products.ts).
//
// Storage: B-bit codes packed LSB-first, head by head (see D_*), fp16 scales and zero points. A
// layout descriptor (int32 fields) written once by the codec says where they are and how channels
// and tokens are grouped.
//
// scores, default (dot=int, intScoresI16): the query is quantized to int16 levels per group
// (absmax/Q, round half to even; Q = 32767 unless a group's Σ level·code could pass 2^31) and
// multiplied with the unpacked codes in integer arithmetic (i32x4.dot_i16x8_s); scale and zero
// point are applied once per group (MixPE's factoring):
//   per-token groups   q·k̂ = Σ_g s_g·(d_g·Σ_c l_c·code_c) + z_g·Σ_c q_c
//   per-channel groups q·k̂ = Σ_c (q_c·s_c)·code_c + Σ_c q_c·z_c, with q⊙s quantized per group of
//                      QG channels, once per group of G tokens.
// dot=i8 (intScoresI8) is the same with int8 levels (Q = 127) and i16x8.extmul of int8 pairs.
// Symmetric codes use code − offset and no zero term.
// accumulate, integer (per-token groups): the weights a_t = p_t·s_t of a tile of tokens are
// quantized to int16 per group (σ = max|a|/32767) and Σ_t ai_t·code_t summed in integers
// (i32x4.dot_i16x8_s over token pairs), added as σ·Σ per tile; Σ_t p_t·z_t once at the end.
// With dot=f32 (and for per-channel groups) the weights stay float32: scores decode rows to
// float32 (code·s + z) for attn-fp's tiles, accumulate adds (p·s)·code, or p·v̂ per channel.
// Float operations run in a fixed order that the twins repeat, so the two agree bit for bit.
import { accumulateTile, f16, f16x4, scoreTile, TILE } from './attn-fp';

// Descriptor fields (int32 index). Storage is head-major: the code of token t, value d of head h
// has index h·headCodes + t·headDim + d; per-token group g of token t in head h has its scale at
// h·headScales + t·tokenScales + g, per-channel token group j at h·headScales + j·tokenScales + d.
const D_CODES = 0;
const D_SCALES = 1;
const D_ZEROS = 2; // 0: symmetric, no zero points
const D_BITS = 3;
const D_HEAD_DIM = 4;
const D_OFFSET = 5; // symmetric: the code of 0
const D_AXIS = 6; // 0: per-token groups, 1: per-channel groups
const D_HEAD_CODES = 7;
const D_HEAD_SCALES = 8;
const D_TOKEN_SCALES = 9;
const D_SPAN = 10; // per-token: channels per group within a head; per-channel: query group QG
const D_G = 11; // per-channel: tokens per group

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
 * x[0 … n) (float32) to levels ≤ Q in magnitude, stored as int16 at dst: d = amax/Q, level =
 * nearest(x·Q/amax). Returns d.
 */
function quantizeGroup(x: usize, n: i32, dst: usize, Q: f32): f32 {
  let amax: f32 = 0;
  for (let j = 0; j < n; j++) amax = max(amax, abs(load<f32>(x + (<usize>j << 2))));
  const id: f32 = amax != 0 ? Q / amax : 0;
  for (let j = 0; j < n; j++) store<i16>(dst + (<usize>j << 1), <i16>nearest<f32>(load<f32>(x + (<usize>j << 2)) * id));
  return amax / Q;
}

/**
 * The largest query level: 127 for int8; for int16 32767, or less where Σ level·(code − off) over
 * a group of `span` channels could pass 2^31 (the integer sums are exact int32).
 */
function queryMax(bits: i32, off: i32, span: i32, wide: bool): f32 {
  if (!wide) return 127;
  const code = off != 0 ? off : (1 << bits) - 1;
  return <f32>min<i64>(32767, <i64>0x7fffffff / (<i64>code * <i64>span));
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

/** The folded query qf[c] = q[c]·s[c] (fp16 scales at sRow). */
function foldQuery(q: usize, sRow: usize, hd: i32, qf: usize): void {
  let c = 0;
  for (; c + 4 <= hd; c += 4) v128.store(qf + (<usize>c << 2), f32x4.mul(v128.load(q + (<usize>c << 2)), f16x4(sRow + (<usize>c << 1))));
  for (; c < hd; c++) store<f32>(qf + (<usize>c << 2), load<f32>(q + (<usize>c << 2)) * f16(load<u16>(sRow + (<usize>c << 1))));
}

/**
 * The zero term Σ_c q̃_c·z_c of one query on per-channel codes, q̃_c = d_g·l_c/s_c the query its
 * levels l (of q⊙s, d_g per group of span channels) stand for, or q_c where s_c = 0 (l_c is 0
 * there). Summed in four lanes by c mod 4, returned as (l0 + l1) + (l2 + l3). With q̃ in both
 * terms the score is q̃·k̂: the query's rounding never meets the zero points, which can be far
 * larger than the keys (a group's minimum next to an outlier).
 */
function zeroTerm(q: usize, ql: usize, qd: usize, sRow: usize, zRow: usize, hd: i32, span: i32): f32 {
  let lanes = f32x4.splat(0);
  let c = 0;
  if (span % 4 == 0) {
    for (; c + 4 <= hd; c += 4) {
      const s = f16x4(sRow + (<usize>c << 1));
      const l = f32x4.convert_i32x4_s(v128.load16x4_s(ql + (<usize>c << 1)));
      const qt = f32x4.div(f32x4.mul(v128.load_splat<f32>(qd + (<usize>(c / span) << 2)), l), s);
      const x = v128.bitselect(qt, v128.load(q + (<usize>c << 2)), f32x4.ne(s, f32x4.splat(0)));
      lanes = f32x4.add(lanes, f32x4.mul(x, f16x4(zRow + (<usize>c << 1))));
    }
  }
  let l0 = f32x4.extract_lane(lanes, 0);
  let l1 = f32x4.extract_lane(lanes, 1);
  let l2 = f32x4.extract_lane(lanes, 2);
  let l3 = f32x4.extract_lane(lanes, 3);
  for (; c < hd; c++) {
    const s = f16(load<u16>(sRow + (<usize>c << 1)));
    const x = s != 0 ? (load<f32>(qd + (<usize>(c / span) << 2)) * <f32>load<i16>(ql + (<usize>c << 1))) / s : load<f32>(q + (<usize>c << 2));
    const p = x * f16(load<u16>(zRow + (<usize>c << 1)));
    if ((c & 3) == 0) l0 += p;
    else if ((c & 3) == 1) l1 += p;
    else if ((c & 3) == 2) l2 += p;
    else l3 += p;
  }
  return (l0 + l1) + (l2 + l3);
}

/** quantizeGroup of 32 values in SIMD (the same levels and d). */
function quantize32(x: usize, dst: usize, Q: f32): f32 {
  let m = f32x4.abs(v128.load(x));
  for (let j = 16; j < 128; j += 16) m = f32x4.max(m, f32x4.abs(v128.load(x + <usize>j)));
  const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
  const id = f32x4.splat(amax != 0 ? Q / amax : 0);
  for (let j = 0; j < 32; j += 8) {
    const a = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(x + (<usize>j << 2)), id)));
    const b = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(x + (<usize>j << 2), 16), id)));
    v128.store(dst + (<usize>j << 1), i16x8.narrow_i32x4_s(a, b));
  }
  return amax / Q;
}

/**
 * int16 levels of one query (natural order, hd of them) to dst in the order int16 lanes of the
 * packed codes yield them (partials16): per 32 channels at 4 bits, four runs of 8 [channels 4k,
 * 4k+1, 4k+2, 4k+3]; per 64 channels at 2 bits, eight runs of 8 [channels 8k + j].
 */
function permuteLevels16(src: usize, hd: i32, bits: i32, dst: usize): void {
  for (let c = 0; c < hd; c++) {
    const at = bits == 4 ? (c & ~31) + ((c & 3) << 3) + ((c & 31) >> 2) : (c & ~63) + ((c & 7) << 3) + ((c & 63) >> 3);
    store<i16>(dst + (<usize>at << 1), load<i16>(src + (<usize>c << 1)));
  }
}

/** permuteLevels in SIMD (hd a multiple of 32 at 4 bits, of 64 at 2 bits). */
function permuteLevelsSimd(src: usize, hd: i32, bits: i32, dst: usize): void {
  if (bits == 4) {
    for (let c = 0; c < hd; c += 32) {
      const s = src + (<usize>c << 1);
      const n0 = i8x16.narrow_i16x8_s(v128.load(s), v128.load(s, 16));
      const n1 = i8x16.narrow_i16x8_s(v128.load(s, 32), v128.load(s, 48));
      v128.store(dst + <usize>c, i8x16.shuffle(n0, n1, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
      v128.store(dst + <usize>c, i8x16.shuffle(n0, n1, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), 16);
    }
    return;
  }
  for (let c = 0; c < hd; c += 64) {
    const s = src + (<usize>c << 1);
    const n0 = i8x16.narrow_i16x8_s(v128.load(s), v128.load(s, 16));
    const n1 = i8x16.narrow_i16x8_s(v128.load(s, 32), v128.load(s, 48));
    const n2 = i8x16.narrow_i16x8_s(v128.load(s, 64), v128.load(s, 80));
    const n3 = i8x16.narrow_i16x8_s(v128.load(s, 96), v128.load(s, 112));
    const d = dst + <usize>c;
    v128.store(d, i8x16.shuffle(
      i8x16.shuffle(n0, n1, 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0),
      i8x16.shuffle(n2, n3, 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0),
      0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23));
    v128.store(d, i8x16.shuffle(
      i8x16.shuffle(n0, n1, 1, 5, 9, 13, 17, 21, 25, 29, 0, 0, 0, 0, 0, 0, 0, 0),
      i8x16.shuffle(n2, n3, 1, 5, 9, 13, 17, 21, 25, 29, 0, 0, 0, 0, 0, 0, 0, 0),
      0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), 16);
    v128.store(d, i8x16.shuffle(
      i8x16.shuffle(n0, n1, 2, 6, 10, 14, 18, 22, 26, 30, 0, 0, 0, 0, 0, 0, 0, 0),
      i8x16.shuffle(n2, n3, 2, 6, 10, 14, 18, 22, 26, 30, 0, 0, 0, 0, 0, 0, 0, 0),
      0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), 32);
    v128.store(d, i8x16.shuffle(
      i8x16.shuffle(n0, n1, 3, 7, 11, 15, 19, 23, 27, 31, 0, 0, 0, 0, 0, 0, 0, 0),
      i8x16.shuffle(n2, n3, 3, 7, 11, 15, 19, 23, 27, 31, 0, 0, 0, 0, 0, 0, 0, 0),
      0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), 48);
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

/** One dot of int16 lanes: codes (v >> sh) & m, the query levels at q. */
@inline function dotField(v: v128, sh: i32, m: v128, q: usize): v128 {
  return i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v, sh), m), v128.load(q));
}

/**
 * partials() against int16 query levels permuted by permuteLevels16: 16 bytes read as int16 lanes
 * hold 4 codes each at 4 bits (lane k: channels 4k … 4k+3) or 8 at 2 bits (8k … 8k+7), so a shift
 * and a mask give one channel of every lane, ready for i32x4.dot_i16x8_s.
 */
@inline function partials16(p: usize, bits: i32, hd: i32, span: i32, q: usize, P: usize): void {
  const zero = i32x4.splat(0);
  let acc = zero;
  let g = 0;
  let end = span;
  if (bits == 4) {
    const m = i16x8.splat(0x0f);
    for (let c = 0; c < hd; c += 32) {
      const v = v128.load(p + (<usize>c >> 1));
      const qc = q + (<usize>c << 1);
      const x = i32x4.add(i32x4.add(dotField(v, 0, m, qc), dotField(v, 4, m, qc + 16)), i32x4.add(dotField(v, 8, m, qc + 32), dotField(v, 12, m, qc + 48)));
      acc = i32x4.add(acc, x);
      if (c + 32 == end) {
        v128.store(P + (<usize>(g++) << 4), acc);
        acc = zero;
        end += span;
      }
    }
    return;
  }
  const m = i16x8.splat(3);
  for (let c = 0; c < hd; c += 64) {
    const v = v128.load(p + (<usize>c >> 2));
    const qc = q + (<usize>c << 1);
    const x = i32x4.add(
      i32x4.add(i32x4.add(dotField(v, 0, m, qc), dotField(v, 2, m, qc + 16)), i32x4.add(dotField(v, 4, m, qc + 32), dotField(v, 6, m, qc + 48))),
      i32x4.add(i32x4.add(dotField(v, 8, m, qc + 64), dotField(v, 10, m, qc + 80)), i32x4.add(dotField(v, 12, m, qc + 96), dotField(v, 14, m, qc + 112))),
    );
    // Lanes 0, 1 sum channels c … c + 31; lanes 2, 3 the next 32 (groups are whole 32s).
    acc = i32x4.add(acc, i32x4.shuffle(x, zero, 0, 1, 4, 5));
    if (c + 32 == end) {
      v128.store(P + (<usize>(g++) << 4), acc);
      acc = zero;
      end += span;
    }
    acc = i32x4.add(acc, i32x4.shuffle(x, zero, 2, 3, 4, 5));
    if (c + 64 == end) {
      v128.store(P + (<usize>(g++) << 4), acc);
      acc = zero;
      end += span;
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
 * scores() in integers (see the file comment): out[i·outStride + t] for tokens t < nTokens, all
 * of them held as codes. q: nq·headDim float32. scratch: intScratchBytes(headDim, nq). wide: int16
 * query levels (dot=int), else int8 (dot=i8).
 *
 * 2- and 4-bit codes in groups of whole 32-channel chunks take the fast path: four tokens at a
 * time, codes multiplied straight out of their bytes with the query levels permuted to match
 * (int16: i32x4.dot_i16x8_s of shifted and masked int16 lanes; int8: i16x8.extmul of int8 pairs,
 * summed in int16, widened pairwise), and the four tokens' group sums scaled together in one
 * f32x4; the float operations per token are the same as the one-token path's, so every lane
 * computes exactly what the twin does.
 */
@inline function scoresInt(desc: usize, head: i32, nTokens: i32, q: usize, nq: i32, out: usize, outStride: i32, scratch: usize, wide: bool): void {
  const codes = <usize>field(desc, D_CODES);
  const scales = <usize>field(desc, D_SCALES);
  const zeros = <usize>field(desc, D_ZEROS);
  const bits = field(desc, D_BITS);
  const hd = field(desc, D_HEAD_DIM);
  const off = field(desc, D_OFFSET);
  const span = field(desc, D_SPAN);
  const perToken = field(desc, D_AXIS) == 0;
  const G = field(desc, D_G);
  const code0 = <u64>head * <u64>field(desc, D_HEAD_CODES);
  const scale0 = <usize>(head * field(desc, D_HEAD_SCALES));
  const tokenScales = field(desc, D_TOKEN_SCALES);
  const nG = (hd + span - 1) / span;
  const fast = ((bits == 4 && hd % 32 == 0) || (bits == 2 && hd % 64 == 0)) && span % 32 == 0 && hd % span == 0 && (perToken || G % 4 == 0);
  const Q = queryMax(bits, off, span, wide);
  // Bytes per query of permuted levels (int16 or int8).
  const qpLen = wide ? hd << 1 : hd;
  // Scratch: the unpacked row, the query levels (natural and permuted), one d and one Σq or
  // zero term per query and group, one folded query, and the fast path's partial sums and scales.
  const row = scratch;
  const ql = row + align16(<usize>(hd + 8) << 1);
  const qp = ql + align16((<usize>nq * <usize>hd) << 1);
  const qd = qp + align16((<usize>nq * <usize>hd) << 1);
  const qz = qd + ((<usize>nq * <usize>nG) << 2);
  const qf = qz + ((<usize>nq * <usize>nG) << 2);
  const P = align16(qf + (<usize>hd << 2));
  const S4 = P + (<usize>(4 * nG) << 4);
  const Z4 = S4 + (<usize>nG << 4);
  // Symmetric codes on the fast path: Σ l·(code − off) = Σ l·code − off·Σ l, per query and group.
  const LS = Z4 + (<usize>nG << 4);
  const tokenBits = <u64>hd * <u64>bits;
  const headBit = code0 * <u64>bits;

  if (perToken) {
    for (let i = 0; i < nq; i++) {
      const qi = q + ((<usize>i * <usize>hd) << 2);
      for (let g = 0; g < nG; g++) {
        const a = g * span;
        const len = min(span, hd - a);
        const k = <usize>(i * nG + g) << 2;
        store<f32>(qd + k, quantizeGroup(qi + (<usize>a << 2), len, ql + ((<usize>(i * hd + a)) << 1), Q));
        // The zero term over the levels' query d·Σl, not Σq: then the score is q̃·k̂ (see zeroTerm).
        let sum = 0;
        for (let c = 0; c < len; c++) sum += <i32>load<i16>(ql + (<usize>(i * hd + a + c) << 1));
        store<f32>(qz + k, <f32>sum * load<f32>(qd + k));
      }
      if (fast) {
        if (wide) permuteLevels16(ql + ((<usize>(i * hd)) << 1), hd, bits, qp + <usize>(i * qpLen));
        else permuteLevels(ql + ((<usize>(i * hd)) << 1), hd, bits, qp + <usize>(i * qpLen));
        levelSums(ql + ((<usize>(i * hd)) << 1), hd, span, off, LS + (<usize>(i * nG) << 2));
      }
    }
    let t = 0;
    if (fast) {
      const sStride = <usize>tokenScales << 1;
      for (; t + 4 <= nTokens; t += 4) {
        const sk = scales + ((scale0 + <usize>t * <usize>tokenScales) << 1);
        for (let g = 0; g < nG; g++) {
          v128.store(S4 + (<usize>g << 4), gatherF16(sk + (<usize>g << 1), sStride));
          if (zeros) v128.store(Z4 + (<usize>g << 4), gatherF16(zeros + (sk - scales) + (<usize>g << 1), sStride));
        }
        for (let i = 0; i < nq; i++) {
          const qpi = qp + <usize>(i * qpLen);
          for (let j = 0; j < 4; j++) {
            const p = codes + <usize>((<u64>(t + j) * tokenBits + headBit) >> 3);
            if (wide) partials16(p, bits, hd, span, qpi, P + (<usize>(j * nG) << 4));
            else partials(p, bits, hd, span, qpi, P + (<usize>(j * nG) << 4));
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
      unpackCodes(codes, bits, code0 + <u64>t * <u64>hd, hd, off, row);
      const sk = (scale0 + <usize>t * <usize>tokenScales) << 1;
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
    const sOff = (scale0 + <usize>(t0 / G) * <usize>tokenScales) << 1;
    const sRow = scales + sOff;
    const zRow = zeros ? zeros + sOff : 0;
    for (let i = 0; i < nq; i++) {
      const qi = q + ((<usize>i * <usize>hd) << 2);
      foldQuery(qi, sRow, hd, qf);
      const qli = ql + ((<usize>(i * hd)) << 1);
      if (fast) {
        for (let g = 0; g < nG; g++) store<f32>(qd + (<usize>(i * nG + g) << 2), quantize32(qf + (<usize>(g * 32) << 2), qli + (<usize>(g * 32) << 1), Q));
        if (wide) permuteLevels16(qli, hd, bits, qp + <usize>(i * qpLen));
        else permuteLevelsSimd(qli, hd, bits, qp + <usize>(i * qpLen));
        if (off != 0) levelSums(qli, hd, span, off, LS + (<usize>(i * nG) << 2));
        else memory.fill(LS + (<usize>(i * nG) << 2), 0, <usize>nG << 2);
      } else {
        for (let g = 0; g < nG; g++) {
          const a = g * span;
          store<f32>(qd + (<usize>(i * nG + g) << 2), quantizeGroup(qf + (<usize>a << 2), min(span, hd - a), qli + (<usize>a << 1), Q));
        }
      }
      store<f32>(qz + (<usize>i << 2), zRow ? zeroTerm(qi, qli, qd + (<usize>(i * nG) << 2), sRow, zRow, hd, span) : 0);
    }
    const t1 = min(t0 + G, nTokens);
    let t = t0;
    if (fast) {
      for (; t + 4 <= t1; t += 4) {
        for (let i = 0; i < nq; i++) {
          const qpi = qp + <usize>(i * qpLen);
          for (let j = 0; j < 4; j++) {
            const p = codes + <usize>((<u64>(t + j) * tokenBits + headBit) >> 3);
            if (wide) partials16(p, bits, hd, span, qpi, P + (<usize>(j * nG) << 4));
            else partials(p, bits, hd, span, qpi, P + (<usize>(j * nG) << 4));
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
      unpackCodes(codes, bits, code0 + <u64>t * <u64>hd, hd, off, row);
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

/** scores() against int16 query levels (dot=int, the default; twin: scoresIntRef with Q from queryMax). */
export function intScoresI16(desc: usize, head: i32, nTokens: i32, q: usize, nq: i32, out: usize, outStride: i32, scratch: usize): void {
  scoresInt(desc, head, nTokens, q, nq, out, outStride, scratch, true);
}

/** scores() against int8 query levels (dot=i8). */
export function intScoresI8(desc: usize, head: i32, nTokens: i32, q: usize, nq: i32, out: usize, outStride: i32, scratch: usize): void {
  scoresInt(desc, head, nTokens, q, nq, out, outStride, scratch, false);
}

/** Scratch bytes intScoresI16 / intScoresI8 / intScoresF32 / intAccumulate need (all fit in this). */
export function intScratchBytes(headDim: i32, nq: i32): i32 {
  const hd = <usize>headDim;
  // Groups per head ≤ hd; the fast path's partials and scales take (4 + 2)·16 bytes per group, its
  // level sums 4 per query and group.
  const i8 = align16((hd + 8) << 1) + (align16((<usize>nq * hd) << 1) << 1) + ((<usize>nq * hd) << 3) + (hd << 2) + 16 + hd * 96 + ((<usize>nq * hd) << 2);
  // intAccumulate: the tile, then s, z and p·s per tile row and group (≤ hd groups), Σ p·z per
  // query and group; its int16-weight path two int16 rows, the tile's token pairs, a, ai and s
  // per token, the pairs' weights, Σ p·z.
  const f32 = align16((hd + 8) << 1) + ((<usize>TILE * hd) << 2) + (hd << 3) + ((<usize>TILE * hd) << 2) * 3 + ((<usize>nq * hd) << 2);
  const pairs = <usize>(TILE + 1) >> 1;
  const i16 = (align16((hd + 8) << 1) << 1) + pairs * (((hd + 7) & ~7) << 2) + <usize>TILE * 12 + (pairs << 2) + 16 + ((<usize>nq * hd) << 2);
  return <i32>(max(max(i8, f32), i16) + 64);
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
  const hd = field(desc, D_HEAD_DIM);
  const off = field(desc, D_OFFSET);
  const perToken = field(desc, D_AXIS) == 0;
  const span = perToken ? field(desc, D_SPAN) : hd;
  const nG = (hd + span - 1) / span;
  const code0 = <u64>head * <u64>field(desc, D_HEAD_CODES);
  const scale0 = <usize>(head * field(desc, D_HEAD_SCALES));
  const tokenScales = <usize>field(desc, D_TOKEN_SCALES);
  const G = field(desc, D_G);
  const zs = sz + (<usize>hd << 2);
  let loaded = -1;
  for (let r = 0; r < n; r++) {
    const t = t0 + r;
    unpackCodes(codes, bits, code0 + <u64>t * <u64>hd, hd, off, row);
    const o = dst + ((<usize>r * <usize>hd) << 2);
    if (perToken) {
      const sk = (scale0 + <usize>t * tokenScales) << 1;
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
        const base = (scale0 + <usize>j * tokenScales) << 1;
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

@inline function pairWeights(a: i32, b: i32): v128 {
  return i32x4.splat((a & 0xffff) | (b << 16));
}

/** The 4-bit tile sums of one 32-channel chunk: Σ_t ai_t·code_t,d for d in the chunk, added to out as σ·Σ. */
@inline function chunk4(codes: usize, bit0: u64, tokenBits: u64, n: i32, ai: usize, corr: v128, sigma: v128, o: usize): void {
  let a0 = i32x4.splat(0);
  let a1 = i32x4.splat(0);
  let a2 = i32x4.splat(0);
  let a3 = i32x4.splat(0);
  let a4 = i32x4.splat(0);
  let a5 = i32x4.splat(0);
  let a6 = i32x4.splat(0);
  let a7 = i32x4.splat(0);
  const m = i8x16.splat(0x0f);
  for (let r = 0; r < n; r += 2) {
    // An odd last token pairs with itself at weight 0.
    const r1 = r + 1 < n ? r + 1 : r;
    const W = pairWeights(load<i32>(ai + (<usize>r << 2)), r + 1 < n ? load<i32>(ai + (<usize>r1 << 2)) : 0);
    const v0 = v128.load(codes + <usize>((bit0 + <u64>r * tokenBits) >> 3));
    const v1 = v128.load(codes + <usize>((bit0 + <u64>r1 * tokenBits) >> 3));
    const lo0 = v128.and(v0, m);
    const lo1 = v128.and(v1, m);
    const hi0 = i8x16.shr_u(v0, 4);
    const hi1 = i8x16.shr_u(v1, 4);
    // Tokens interleaved per channel: [c_r, c_r1] pairs, even channels (lo) and odd (hi).
    const L0 = i8x16.shuffle(lo0, lo1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const L1 = i8x16.shuffle(lo0, lo1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const H0 = i8x16.shuffle(hi0, hi1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const H1 = i8x16.shuffle(hi0, hi1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    a0 = i32x4.add(a0, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(L0), W));
    a1 = i32x4.add(a1, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(L0), W));
    a2 = i32x4.add(a2, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(L1), W));
    a3 = i32x4.add(a3, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(L1), W));
    a4 = i32x4.add(a4, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(H0), W));
    a5 = i32x4.add(a5, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(H0), W));
    a6 = i32x4.add(a6, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(H1), W));
    a7 = i32x4.add(a7, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(H1), W));
  }
  // a0..a3: channels 0, 2, …, 30 in fours; a4..a7: 1, 3, …, 31.
  flushPairs(a0, a4, corr, sigma, o);
  flushPairs(a1, a5, corr, sigma, o + 32);
  flushPairs(a2, a6, corr, sigma, o + 64);
  flushPairs(a3, a7, corr, sigma, o + 96);
}

/** out[0 … 8) += σ·(Σ − corr) for even-channel sums e and odd-channel sums d, interleaved. */
@inline function flushPairs(e: v128, d: v128, corr: v128, sigma: v128, o: usize): void {
  const fe = f32x4.mul(sigma, f32x4.convert_i32x4_s(i32x4.sub(e, corr)));
  const fd = f32x4.mul(sigma, f32x4.convert_i32x4_s(i32x4.sub(d, corr)));
  v128.store(o, f32x4.add(v128.load(o), f32x4.shuffle(fe, fd, 0, 4, 1, 5)));
  v128.store(o, f32x4.add(v128.load(o, 16), f32x4.shuffle(fe, fd, 2, 6, 3, 7)), 16);
}

/** The 2-bit tile sums of one 32-channel chunk (8 bytes per token), added to out as σ·Σ. */
@inline function chunk2(codes: usize, bit0: u64, tokenBits: u64, n: i32, ai: usize, corr: v128, sigma: v128, o: usize): void {
  let a0 = i32x4.splat(0);
  let a1 = i32x4.splat(0);
  let a2 = i32x4.splat(0);
  let a3 = i32x4.splat(0);
  let b0 = i32x4.splat(0);
  let b1 = i32x4.splat(0);
  let b2 = i32x4.splat(0);
  let b3 = i32x4.splat(0);
  const m = i8x16.splat(3);
  for (let r = 0; r < n; r += 2) {
    const r1 = r + 1 < n ? r + 1 : r;
    const W = pairWeights(load<i32>(ai + (<usize>r << 2)), r + 1 < n ? load<i32>(ai + (<usize>r1 << 2)) : 0);
    const v0 = v128.load64_zero(codes + <usize>((bit0 + <u64>r * tokenBits) >> 3));
    const v1 = v128.load64_zero(codes + <usize>((bit0 + <u64>r1 * tokenBits) >> 3));
    // Byte k holds channels 4k … 4k+3; X_j pairs the two tokens' channel 4k + j for k < 8.
    const X0 = i8x16.shuffle(v128.and(v0, m), v128.and(v1, m), 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const X1 = i8x16.shuffle(v128.and(i8x16.shr_u(v0, 2), m), v128.and(i8x16.shr_u(v1, 2), m), 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const X2 = i8x16.shuffle(v128.and(i8x16.shr_u(v0, 4), m), v128.and(i8x16.shr_u(v1, 4), m), 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const X3 = i8x16.shuffle(i8x16.shr_u(v0, 6), i8x16.shr_u(v1, 6), 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    a0 = i32x4.add(a0, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(X0), W));
    b0 = i32x4.add(b0, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(X0), W));
    a1 = i32x4.add(a1, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(X1), W));
    b1 = i32x4.add(b1, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(X1), W));
    a2 = i32x4.add(a2, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(X2), W));
    b2 = i32x4.add(b2, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(X2), W));
    a3 = i32x4.add(a3, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(X3), W));
    b3 = i32x4.add(b3, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(X3), W));
  }
  // a_j lane k: channel 4k + j (k < 4); b_j: channel 16 + 4k + j. Transpose to channel order.
  flushQuad(a0, a1, a2, a3, corr, sigma, o);
  flushQuad(b0, b1, b2, b3, corr, sigma, o + 64);
}

/** out[0 … 16) += σ·(Σ − corr) where x_j lane k holds channel 4k + j. */
@inline function flushQuad(x0: v128, x1: v128, x2: v128, x3: v128, corr: v128, sigma: v128, o: usize): void {
  const f0 = f32x4.mul(sigma, f32x4.convert_i32x4_s(i32x4.sub(x0, corr)));
  const f1 = f32x4.mul(sigma, f32x4.convert_i32x4_s(i32x4.sub(x1, corr)));
  const f2 = f32x4.mul(sigma, f32x4.convert_i32x4_s(i32x4.sub(x2, corr)));
  const f3 = f32x4.mul(sigma, f32x4.convert_i32x4_s(i32x4.sub(x3, corr)));
  const l01 = f32x4.shuffle(f0, f1, 0, 4, 1, 5);
  const l23 = f32x4.shuffle(f2, f3, 0, 4, 1, 5);
  const h01 = f32x4.shuffle(f0, f1, 2, 6, 3, 7);
  const h23 = f32x4.shuffle(f2, f3, 2, 6, 3, 7);
  v128.store(o, f32x4.add(v128.load(o), f32x4.shuffle(l01, l23, 0, 1, 4, 5)));
  v128.store(o, f32x4.add(v128.load(o, 16), f32x4.shuffle(l01, l23, 2, 3, 6, 7)), 16);
  v128.store(o, f32x4.add(v128.load(o, 32), f32x4.shuffle(h01, h23, 0, 1, 4, 5)), 32);
  v128.store(o, f32x4.add(v128.load(o, 48), f32x4.shuffle(h01, h23, 2, 3, 6, 7)), 48);
}

/**
 * accumulate() of per-token codes with int16 weights (twin: accumulateI16Ref): per tile of wt
 * tokens and group, a_t = p_t·s_t quantized with σ = max|a|/32767, Σ_t ai_t·(code − off) summed in
 * integers and added as σ·Σ; the zero term Σ_t p̃_t·z_t (p̃_t = σ·ai_t/s_t) added at the end.
 * One query (nq = 1) with 2- or 4-bit codes in groups of whole 32-channel chunks reads the codes
 * straight from their bytes (chunk4, chunk2). Otherwise the tile's codes are unpacked once for all
 * nq queries into int16 token pairs interleaved per channel ([code_t,d, code_t+1,d]), so one
 * i32x4.dot_i16x8_s against the pair's weights sums two tokens for four channels.
 */
function accumulateI16(desc: usize, head: i32, nTokens: i32, w: usize, wStride: i32, nq: i32, out: usize, scratch: usize, wt: i32): void {
  const codes = <usize>field(desc, D_CODES);
  const scales = <usize>field(desc, D_SCALES);
  const zeros = <usize>field(desc, D_ZEROS);
  const bits = field(desc, D_BITS);
  const hd = field(desc, D_HEAD_DIM);
  const off = field(desc, D_OFFSET);
  const span = field(desc, D_SPAN);
  const code0 = <u64>head * <u64>field(desc, D_HEAD_CODES);
  const scale0 = <usize>(head * field(desc, D_HEAD_SCALES));
  const tokenScales = <usize>field(desc, D_TOKEN_SCALES);
  const nG = (hd + span - 1) / span;
  const direct = nq == 1 && (bits == 4 || bits == 2) && hd % 32 == 0 && span % 32 == 0;
  const tokenBits = <u64>hd * <u64>bits;
  // Scratch: two int16 rows, the tile's token pairs (hd rounded up to 8 per pair), a and ai per
  // token (ai padded to whole pairs), each pair's two int16 weights, s per token, Σ p·z per query
  // and group.
  const rowBytes = align16(<usize>(hd + 8) << 1);
  const pairBytes = <usize>((hd + 7) & ~7) << 2;
  const maxPairs = (wt + 1) >> 1;
  const rowA = scratch;
  const rowB = rowA + rowBytes;
  const PT = rowB + rowBytes;
  const A = PT + <usize>maxPairs * pairBytes;
  const AI = A + (<usize>wt << 2);
  const W2 = AI + (<usize>(maxPairs << 1) << 2);
  const S = W2 + (<usize>maxPairs << 2);
  const ZA = S + (<usize>wt << 2);
  memory.fill(ZA, 0, (<usize>nq * <usize>nG) << 2);
  for (let t0 = 0; t0 < nTokens; t0 += wt) {
    const n = min(wt, nTokens - t0);
    const np = (n + 1) >> 1;
    for (let j = 0; !direct && j < np; j++) {
      const r = t0 + 2 * j;
      // An odd last token pairs with itself; the partner's weight is 0.
      unpackCodes(codes, bits, code0 + <u64>r * <u64>hd, hd, off, rowA);
      unpackCodes(codes, bits, code0 + <u64>(r + 1 < t0 + n ? r + 1 : r) * <u64>hd, hd, off, rowB);
      const dst = PT + <usize>j * pairBytes;
      for (let d = 0; d < hd; d += 8) {
        const a = v128.load(rowA + (<usize>d << 1));
        const b = v128.load(rowB + (<usize>d << 1));
        v128.store(dst + (<usize>d << 2), i16x8.shuffle(a, b, 0, 8, 1, 9, 2, 10, 3, 11));
        v128.store(dst + (<usize>d << 2), i16x8.shuffle(a, b, 4, 12, 5, 13, 6, 14, 7, 15), 16);
      }
    }
    if (n & 1) store<i32>(AI + (<usize>n << 2), 0);
    for (let i = 0; i < nq; i++) {
      const wi = w + ((<usize>i * <usize>wStride + <usize>t0) << 2);
      const oi = out + ((<usize>i * <usize>hd) << 2);
      for (let g = 0; g < nG; g++) {
        const za = ZA + (<usize>(i * nG + g) << 2);
        // Token r's scale at sp + r·sStride (zero point likewise from zp); four tokens per step.
        const sStride = tokenScales << 1;
        const sp = scales + ((scale0 + <usize>t0 * tokenScales + <usize>g) << 1);
        const zp = zeros + (sp - scales);
        let m4 = f32x4.splat(0);
        let r = 0;
        for (; r + 4 <= n; r += 4) {
          const sc = gatherF16(sp + <usize>r * sStride, sStride);
          v128.store(S + (<usize>r << 2), sc);
          const a = f32x4.mul(v128.load(wi + (<usize>r << 2)), sc);
          v128.store(A + (<usize>r << 2), a);
          m4 = f32x4.max(m4, f32x4.abs(a));
        }
        let amax = max(max(f32x4.extract_lane(m4, 0), f32x4.extract_lane(m4, 1)), max(f32x4.extract_lane(m4, 2), f32x4.extract_lane(m4, 3)));
        for (; r < n; r++) {
          const sc = f16(load<u16>(sp + <usize>r * sStride));
          store<f32>(S + (<usize>r << 2), sc);
          const a = load<f32>(wi + (<usize>r << 2)) * sc;
          store<f32>(A + (<usize>r << 2), a);
          amax = max(amax, abs(a));
        }
        if (amax == 0) {
          // Every p·s is 0: the tile adds Σ p·z alone, exactly.
          if (zeros) for (r = 0; r < n; r++) store<f32>(za, load<f32>(za) + load<f32>(wi + (<usize>r << 2)) * f16(load<u16>(zp + <usize>r * sStride)));
          continue;
        }
        const inv: f32 = <f32>32767 / amax;
        const sigma: f32 = amax / 32767;
        const sv = f32x4.splat(sigma);
        let ai4 = i32x4.splat(0);
        for (r = 0; r + 4 <= n; r += 4) {
          const v = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(A + (<usize>r << 2)), f32x4.splat(inv))));
          v128.store(AI + (<usize>r << 2), v);
          ai4 = i32x4.add(ai4, v);
        }
        let aiSum = i32x4.extract_lane(ai4, 0) + i32x4.extract_lane(ai4, 1) + i32x4.extract_lane(ai4, 2) + i32x4.extract_lane(ai4, 3);
        for (; r < n; r++) {
          const v = <i32>nearest<f32>(load<f32>(A + (<usize>r << 2)) * inv);
          store<i32>(AI + (<usize>r << 2), v);
          aiSum += v;
        }
        if (zeros) {
          // The zero term over the weights the integers stand for, p̃ = σ·ai/s (p where s = 0):
          // then the sum is Σ p̃·v̂, and the weights' rounding never meets the zero points. Summed
          // in four lanes by token mod 4, added to the query's total once per tile.
          let lanes = f32x4.splat(0);
          for (r = 0; r + 4 <= n; r += 4) {
            const sc = v128.load(S + (<usize>r << 2));
            const z = gatherF16(zp + <usize>r * sStride, sStride);
            const pt = f32x4.mul(f32x4.mul(sv, f32x4.convert_i32x4_s(v128.load(AI + (<usize>r << 2)))), f32x4.div(z, sc));
            lanes = f32x4.add(lanes, v128.bitselect(pt, f32x4.mul(v128.load(wi + (<usize>r << 2)), z), f32x4.ne(sc, f32x4.splat(0))));
          }
          let l0 = f32x4.extract_lane(lanes, 0);
          let l1 = f32x4.extract_lane(lanes, 1);
          let l2 = f32x4.extract_lane(lanes, 2);
          const l3 = f32x4.extract_lane(lanes, 3);
          for (; r < n; r++) {
            const sc = load<f32>(S + (<usize>r << 2));
            const z = f16(load<u16>(zp + <usize>r * sStride));
            const term = sc != 0 ? (sigma * <f32>load<i32>(AI + (<usize>r << 2))) * (z / sc) : load<f32>(wi + (<usize>r << 2)) * z;
            // n mod 4 ≤ 3 leftovers: lanes 0, 1, 2.
            if ((r & 3) == 0) l0 += term;
            else if ((r & 3) == 1) l1 += term;
            else l2 += term;
          }
          store<f32>(za, load<f32>(za) + ((l0 + l1) + (l2 + l3)));
        }
        const b0 = min(g * span + span, hd);
        if (direct) {
          // Σ ai·(code − off) = Σ ai·code − off·Σ ai.
          const corr = i32x4.splat(off * aiSum);
          for (let c = g * span; c < b0; c += 32) {
            const bit0 = (code0 + <u64>t0 * <u64>hd + <u64>c) * <u64>bits;
            if (bits == 4) chunk4(codes, bit0, tokenBits, n, AI, corr, sv, oi + (<usize>c << 2));
            else chunk2(codes, bit0, tokenBits, n, AI, corr, sv, oi + (<usize>c << 2));
          }
          continue;
        }
        for (let j = 0; j < np; j++) store<i32>(W2 + (<usize>j << 2), (load<i32>(AI + (<usize>j << 3)) & 0xffff) | (load<i32>(AI + (<usize>j << 3), 4) << 16));
        let d = g * span;
        for (; d + 8 <= b0; d += 8) {
          let x0 = i32x4.splat(0);
          let x1 = i32x4.splat(0);
          for (let j = 0; j < np; j++) {
            const wv = v128.load_splat<i32>(W2 + (<usize>j << 2));
            const src = PT + <usize>j * pairBytes + (<usize>d << 2);
            x0 = i32x4.add(x0, i32x4.dot_i16x8_s(v128.load(src), wv));
            x1 = i32x4.add(x1, i32x4.dot_i16x8_s(v128.load(src, 16), wv));
          }
          const o = oi + (<usize>d << 2);
          v128.store(o, f32x4.add(v128.load(o), f32x4.mul(sv, f32x4.convert_i32x4_s(x0))));
          v128.store(o, f32x4.add(v128.load(o, 16), f32x4.mul(sv, f32x4.convert_i32x4_s(x1))), 16);
        }
        for (; d + 4 <= b0; d += 4) {
          let x = i32x4.splat(0);
          for (let j = 0; j < np; j++) x = i32x4.add(x, i32x4.dot_i16x8_s(v128.load(PT + <usize>j * pairBytes + (<usize>d << 2)), v128.load_splat<i32>(W2 + (<usize>j << 2))));
          const o = oi + (<usize>d << 2);
          v128.store(o, f32x4.add(v128.load(o), f32x4.mul(sv, f32x4.convert_i32x4_s(x))));
        }
        for (; d < b0; d++) {
          let acc = 0;
          for (let j = 0; j < np; j++) {
            const at = PT + <usize>j * pairBytes + (<usize>d << 2);
            acc += <i32>load<i16>(at) * load<i32>(AI + (<usize>j << 3)) + <i32>load<i16>(at, 2) * load<i32>(AI + (<usize>j << 3), 4);
          }
          const o = oi + (<usize>d << 2);
          store<f32>(o, load<f32>(o) + sigma * <f32>acc);
        }
      }
    }
  }
  if (zeros && nTokens > 0) {
    for (let i = 0; i < nq; i++) {
      const oi = out + ((<usize>i * <usize>hd) << 2);
      for (let g = 0; g < nG; g++) {
        const z = load<f32>(ZA + (<usize>(i * nG + g) << 2));
        for (let d = g * span; d < min((g + 1) * span, hd); d++) store<f32>(oi + (<usize>d << 2), load<f32>(oi + (<usize>d << 2)) + z);
      }
    }
  }
}

/**
 * accumulate() over tokens t < nTokens held as codes: out[i·headDim + d] += Σ_t w[i·wStride + t]·v̂_t[d].
 *
 * Per-token groups factor the scale out of the sum (twin: GroupQuantCodec.accumulateRange):
 * out += (p·s)·(code − off) token by token, and Σ_t p·z per group is added once at the end. The
 * codes are converted to float32 once per tile and serve every query. Per-channel groups decode
 * v̂ = code·s + z and add p·v̂.
 */
export function intAccumulate(desc: usize, head: i32, nTokens: i32, w: usize, wStride: i32, nq: i32, out: usize, scratch: usize, weightTile: i32): void {
  const hd = field(desc, D_HEAD_DIM);
  const row = scratch;
  const tile = row + align16(<usize>(hd + 8) << 1);
  if (field(desc, D_AXIS) == 0 && weightTile > 0) {
    accumulateI16(desc, head, nTokens, w, wStride, nq, out, scratch, weightTile);
    return;
  }
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
  const off = field(desc, D_OFFSET);
  const span = field(desc, D_SPAN);
  const code0 = <u64>head * <u64>field(desc, D_HEAD_CODES);
  const scale0 = <usize>(head * field(desc, D_HEAD_SCALES));
  const tokenScales = <usize>field(desc, D_TOKEN_SCALES);
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
      codesToF32(codes, bits, code0 + <u64>t * <u64>hd, hd, off, row, tile + <usize>r * rowBytes);
      const sk = (scale0 + <usize>t * tokenScales) << 1;
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
