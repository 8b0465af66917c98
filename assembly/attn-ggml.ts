// Decode attention over llama.cpp's block-quantized caches (q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl;
// layout and float order in src/kv/codecs/ggml.ts and src/numeric/ggml-blocks.ts, whose laneDot
// is the plain-TS twin of ggmlScores).
//
// Type ids: 0 q8_0, 1 q4_0, 2 q4_1, 3 q5_0, 4 q5_1, 5 iq4_nl.
//
// A head's vector of one token is nFull whole blocks in ggml's struct layout, then, when
// head_dim is not a multiple of 32, a partial block: its fp16 field(s) and the codes of its
// `tail` real values packed LSB-first at the type's bits per code.
//
// scores: the queries are converted once per call to q8_0/q8_1 (x86 quantizer), each token's
// blocks are unpacked once into signed 8-bit levels, and every query of the group takes ggml's
// integer dot from them: per block 8 lanes of four-product sums, each lane fma'd with d_k·d_q
// into a float accumulator. The fma is done in double (d·p is exact, then one double add and one
// float rounding), exactly as the twin computes it, so scores equal the twin's bit for bit.
import { accumulateTile, f16, f32ToF16, scoreTile, TILE } from './attn-fp';

const QK: i32 = 32;

const IQ4NL = memory.data<i8>([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]);

@inline function blockBytes(type: i32): i32 {
  return type == 0 ? 34 : type == 1 || type == 5 ? 18 : type == 2 ? 20 : type == 3 ? 22 : 24;
}

@inline function headerBytes(type: i32): i32 {
  return type == 2 || type == 4 ? 4 : 2;
}

@inline function codeBits(type: i32): i32 {
  return type == 0 ? 8 : type == 3 || type == 4 ? 5 : 4;
}

/** A raw code's level (the integer vec_dot multiplies). */
@inline function level(type: i32, code: u32): i32 {
  if (type == 0) return <i32>(<i8>code);
  if (type == 1) return <i32>code - 8;
  if (type == 3) return <i32>code - 16;
  if (type == 5) return <i32>load<i8>(IQ4NL + code);
  return <i32>code;
}

/** Bit 4 of each of 16 codes from 16 bits of qh (byte lanes j ← bit j). */
@inline function highBits(qh16: v128): v128 {
  const bits = v128.and(qh16, i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128));
  return v128.and(i8x16.ne(bits, i8x16.splat(0)), i8x16.splat(16));
}

/**
 * One token's head: the 32·nb levels (int8, padding 0) to lv, d and m (0 without a minimum) to
 * dm[2b], dm[2b + 1].
 */
@inline function unpackHead(type: i32, at: usize, nFull: i32, tail: i32, lv: usize, dm: usize): void {
  const bb = <usize>blockBytes(type);
  const lo4 = i8x16.splat(0x0f);
  for (let b = 0; b < nFull; b++) {
    const p = at + <usize>b * bb;
    const l = lv + (<usize>b << 5);
    const o = dm + (<usize>b << 3);
    store<f32>(o, f16(load<u16>(p)));
    store<f32>(o, type == 2 || type == 4 ? f16(load<u16>(p, 2)) : 0, 4);
    if (type == 0) {
      v128.store(l, v128.load(p, 2));
      v128.store(l, v128.load(p, 18), 16);
    } else if (type == 3 || type == 4) {
      const qh = v128.load32_splat(p + <usize>headerBytes(type));
      const qs = v128.load(p + <usize>headerBytes(type), 4);
      const hLo = highBits(i8x16.swizzle(qh, i8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)));
      const hHi = highBits(i8x16.swizzle(qh, i8x16(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3)));
      let c0 = v128.or(v128.and(qs, lo4), hLo);
      let c1 = v128.or(i8x16.shr_u(qs, 4), hHi);
      if (type == 3) {
        c0 = i8x16.sub(c0, i8x16.splat(16));
        c1 = i8x16.sub(c1, i8x16.splat(16));
      }
      v128.store(l, c0);
      v128.store(l, c1, 16);
    } else {
      const qs = v128.load(p + <usize>headerBytes(type));
      let c0 = v128.and(qs, lo4);
      let c1 = i8x16.shr_u(qs, 4);
      if (type == 1) {
        c0 = i8x16.sub(c0, i8x16.splat(8));
        c1 = i8x16.sub(c1, i8x16.splat(8));
      } else if (type == 5) {
        const table = v128.load(IQ4NL);
        c0 = i8x16.swizzle(table, c0);
        c1 = i8x16.swizzle(table, c1);
      }
      v128.store(l, c0);
      v128.store(l, c1, 16);
    }
  }
  if (tail > 0) {
    const p = at + <usize>nFull * bb;
    const l = lv + (<usize>nFull << 5);
    const o = dm + (<usize>nFull << 3);
    store<f32>(o, f16(load<u16>(p)));
    store<f32>(o, type == 2 || type == 4 ? f16(load<u16>(p, 2)) : 0, 4);
    const codes = p + <usize>headerBytes(type);
    const bits = codeBits(type);
    const mask: u32 = (1 << bits) - 1;
    v128.store(l, i8x16.splat(0));
    v128.store(l, i8x16.splat(0), 16);
    for (let j = 0; j < tail; j++) {
      const bit = j * bits;
      const q = codes + <usize>(bit >>> 3);
      let v = <u32>load<u8>(q);
      // Read the second byte only when the code spans it: the last code may end the buffer.
      if ((bit & 7) + bits > 8) v |= <u32>load<u8>(q, 1) << 8;
      store<i8>(l + <usize>j, <i8>level(type, (v >>> (bit & 7)) & mask));
    }
  }
}

/** The eight four-product integer sums of one block (k: levels, q: query levels), as two i32x4. */
@inline function lanes4(k: v128, q: v128): v128 {
  const pl = i32x4.extadd_pairwise_i16x8_s(i16x8.extmul_low_i8x16_s(k, q));
  const ph = i32x4.extadd_pairwise_i16x8_s(i16x8.extmul_high_i8x16_s(k, q));
  return i32x4.add(i32x4.shuffle(pl, ph, 0, 2, 4, 6), i32x4.shuffle(pl, ph, 1, 3, 5, 7));
}

/** fmaf(d, p, acc) on two lanes held in double: d·p is exact, one double add, one float rounding. */
@inline function fma2(d: v128, p: v128, acc: v128): v128 {
  return f64x2.promote_low_f32x4(f32x4.demote_f64x2_zero(f64x2.add(f64x2.mul(d, f64x2.convert_low_i32x4_s(p)), acc)));
}

@inline function hi2(p: v128): v128 {
  return i32x4.shuffle(p, p, 2, 3, 0, 1);
}

/** hsum_float_8 of lanes (a: 0..3 as two f64x2 a0, a1; b: 4..7): (l0+l4 + l2+l6) + (l1+l5 + l3+l7). */
@inline function hsum8(a0: v128, a1: v128, b0: v128, b1: v128): f32 {
  const a = f32x4.add(lanesF32(a0, a1), lanesF32(b0, b1));
  return (f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 2)) + (f32x4.extract_lane(a, 1) + f32x4.extract_lane(a, 3));
}

@inline function lanesF32(x: v128, y: v128): v128 {
  return i64x2.shuffle(f32x4.demote_f64x2_zero(x), f32x4.demote_f64x2_zero(y), 0, 2);
}

/**
 * ggml's vec_dot of one unpacked key head (levels kl, d/m pairs kdm) with one converted query
 * (levels ql, d qd[b], s qs[b]) over nb blocks: laneDot in src/numeric/ggml-blocks.ts.
 */
@inline function laneDot(type: i32, nb: i32, kl: usize, kdm: usize, ql: usize, qd: usize, qs: usize): f32 {
  let a0 = f64x2.splat(0);
  let a1 = f64x2.splat(0);
  let a2 = f64x2.splat(0);
  let a3 = f64x2.splat(0);
  if (type == 5) {
    let b0 = f64x2.splat(0);
    let b1 = f64x2.splat(0);
    let b2 = f64x2.splat(0);
    let b3 = f64x2.splat(0);
    let ib = 0;
    for (; ib + 1 < nb; ib += 2) {
      const o = <usize>ib << 5;
      const dA = f64x2.splat(<f64>(load<f32>(qd + (<usize>ib << 2)) * load<f32>(kdm + (<usize>ib << 3))));
      const pA0 = lanes4(v128.load(kl + o), v128.load(ql + o));
      const pA1 = lanes4(v128.load(kl + o, 16), v128.load(ql + o, 16));
      a0 = fma2(dA, pA0, a0);
      a1 = fma2(dA, hi2(pA0), a1);
      a2 = fma2(dA, pA1, a2);
      a3 = fma2(dA, hi2(pA1), a3);
      const dB = f64x2.splat(<f64>(load<f32>(qd + (<usize>(ib + 1) << 2)) * load<f32>(kdm + (<usize>(ib + 1) << 3))));
      const pB0 = lanes4(v128.load(kl + o, 32), v128.load(ql + o, 32));
      const pB1 = lanes4(v128.load(kl + o, 48), v128.load(ql + o, 48));
      b0 = fma2(dB, pB0, b0);
      b1 = fma2(dB, hi2(pB0), b1);
      b2 = fma2(dB, pB1, b2);
      b3 = fma2(dB, hi2(pB1), b3);
    }
    // lanesA += lanesB in float32, then hsum_float_8; an odd last block goes through scalar code.
    const lo = f32x4.add(lanesF32(a0, a1), lanesF32(b0, b1));
    const hi = f32x4.add(lanesF32(a2, a3), lanesF32(b2, b3));
    const s = f32x4.add(lo, hi);
    let sumf: f32 = (f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 2)) + (f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 3));
    if (ib < nb) {
      const o = <usize>ib << 5;
      const p0 = lanes4(v128.load(kl + o), v128.load(ql + o));
      const p1 = lanes4(v128.load(kl + o, 16), v128.load(ql + o, 16));
      const ps = i32x4.add(p0, p1);
      const sumi = i32x4.extract_lane(ps, 0) + i32x4.extract_lane(ps, 1) + i32x4.extract_lane(ps, 2) + i32x4.extract_lane(ps, 3);
      const d = load<f32>(qd + (<usize>ib << 2)) * load<f32>(kdm + (<usize>ib << 3));
      sumf = <f32>(<f64>d * <f64>sumi + <f64>sumf);
    }
    return sumf;
  }
  // Block 0 lands on zero lanes: fmaf(d, p, 0) is the float32 product (p is exact in float32),
  // plus +0 so that a −0 product becomes +0 as in fmaf.
  const d0 = load<f32>(kdm) * load<f32>(qd);
  const zero = f32x4.splat(0);
  const f0 = f32x4.add(f32x4.mul(f32x4.splat(d0), f32x4.convert_i32x4_s(lanes4(v128.load(kl), v128.load(ql)))), zero);
  const f1 = f32x4.add(f32x4.mul(f32x4.splat(d0), f32x4.convert_i32x4_s(lanes4(v128.load(kl, 16), v128.load(ql, 16)))), zero);
  let summs: f32 = load<f32>(kdm, 4) * load<f32>(qs);
  if (nb == 1) {
    const a = f32x4.add(f0, f1);
    return (f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 2)) + (f32x4.extract_lane(a, 1) + f32x4.extract_lane(a, 3)) + summs;
  }
  a0 = f64x2.promote_low_f32x4(f0);
  a1 = f64x2.promote_low_f32x4(f32x4.shuffle(f0, f0, 2, 3, 0, 1));
  a2 = f64x2.promote_low_f32x4(f1);
  a3 = f64x2.promote_low_f32x4(f32x4.shuffle(f1, f1, 2, 3, 0, 1));
  for (let ib = 1; ib < nb; ib++) {
    const o = <usize>ib << 5;
    const d = f64x2.splat(<f64>(load<f32>(kdm + (<usize>ib << 3)) * load<f32>(qd + (<usize>ib << 2))));
    const p0 = lanes4(v128.load(kl + o), v128.load(ql + o));
    const p1 = lanes4(v128.load(kl + o, 16), v128.load(ql + o, 16));
    a0 = fma2(d, p0, a0);
    a1 = fma2(d, hi2(p0), a1);
    a2 = fma2(d, p1, a2);
    a3 = fma2(d, hi2(p1), a3);
    summs += load<f32>(kdm + (<usize>ib << 3), 4) * load<f32>(qs + (<usize>ib << 2));
  }
  return hsum8(a0, a1, a2, a3) + summs;
}

/**
 * Converts nq query vectors (q: nq·headDim float32) to q8_0 (kind 0) or q8_1 (kind 1) blocks
 * with the x86 quantizer (id = 127/amax, round half to even), zero-padded per head to nb blocks:
 * levels int8 to ql[(i·nb + b)·32 …], d (fp16-rounded) to qd[i·nb + b], s = fp16(d·Σlevels) to
 * qs. Returns 0, or 1 when a d or s overflows fp16.
 */
export function ggmlQuantizeQuery(kind: i32, q: usize, nq: i32, headDim: i32, nb: i32, ql: usize, qd: usize, qs: usize): i32 {
  let bad = 0;
  for (let i = 0; i < nq; i++) {
    const qi = q + ((<usize>i * <usize>headDim) << 2);
    for (let b = 0; b < nb; b++) {
      const k = <usize>(i * nb + b);
      const j0 = b * QK;
      const n = min(QK, headDim - j0);
      let amax: f32 = 0;
      for (let j = 0; j < n; j++) amax = max(amax, abs(load<f32>(qi + (<usize>(j0 + j) << 2))));
      const d: f32 = amax / 127;
      const id: f32 = amax != 0 ? <f32>127 / amax : 0;
      const l = ql + (k << 5);
      let sum = 0;
      for (let j = 0; j < QK; j++) {
        const v = j < n ? <i32>nearest<f32>(load<f32>(qi + (<usize>(j0 + j) << 2)) * id) : 0;
        store<i8>(l + <usize>j, <i8>v);
        sum += v;
      }
      const hd = f32ToF16(d);
      if ((hd & 0x7c00) == 0x7c00) bad = 1;
      store<f32>(qd + (k << 2), f16(hd));
      let s: f32 = 0;
      if (kind == 1) {
        const hs = f32ToF16(<f32>sum * d);
        if ((hs & 0x7c00) == 0x7c00) bad = 1;
        s = f16(hs);
      }
      store<f32>(qs + (k << 2), s);
    }
  }
  return bad;
}

/**
 * scores() with the converted queries of ggmlQuantizeQuery: out[i·outStride + t] for t < nTokens.
 * k: the head's bytes of token 0, rowBytes between tokens; scratch: nb·32 bytes + nb·8.
 */
export function ggmlScores(
  type: i32,
  k: usize,
  rowBytes: usize,
  nTokens: i32,
  nFull: i32,
  tail: i32,
  ql: usize,
  qd: usize,
  qs: usize,
  nq: i32,
  out: usize,
  outStride: i32,
  scratch: usize,
): void {
  // One copy of the loop per type, so each is compiled with its type constant.
  if (type == 0) scoresOf(0, k, rowBytes, nTokens, nFull, tail, ql, qd, qs, nq, out, outStride, scratch);
  else if (type == 1) scoresOf(1, k, rowBytes, nTokens, nFull, tail, ql, qd, qs, nq, out, outStride, scratch);
  else if (type == 2) scoresOf(2, k, rowBytes, nTokens, nFull, tail, ql, qd, qs, nq, out, outStride, scratch);
  else if (type == 3) scoresOf(3, k, rowBytes, nTokens, nFull, tail, ql, qd, qs, nq, out, outStride, scratch);
  else if (type == 4) scoresOf(4, k, rowBytes, nTokens, nFull, tail, ql, qd, qs, nq, out, outStride, scratch);
  else scoresOf(5, k, rowBytes, nTokens, nFull, tail, ql, qd, qs, nq, out, outStride, scratch);
}

@inline function scoresOf(
  type: i32,
  k: usize,
  rowBytes: usize,
  nTokens: i32,
  nFull: i32,
  tail: i32,
  ql: usize,
  qd: usize,
  qs: usize,
  nq: i32,
  out: usize,
  outStride: i32,
  scratch: usize,
): void {
  const nb = nFull + (tail > 0 ? 1 : 0);
  const kdm = scratch + (<usize>nb << 5);
  for (let t = 0; t < nTokens; t++) {
    unpackHead(type, k + <usize>t * rowBytes, nFull, tail, scratch, kdm);
    for (let i = 0; i < nq; i++) {
      const qb = <usize>(i * nb);
      const s = laneDot(type, nb, scratch, kdm, ql + (qb << 5), qd + (qb << 2), qs + (qb << 2));
      store<f32>(out + ((<usize>i * <usize>outStride + <usize>t) << 2), s);
    }
  }
}

/**
 * dequantize_row of n tokens' heads into float32 rows of headDim (the twin's values exactly:
 * level·d, plus m for the _1 types). lv/dm: unpackHead scratch.
 */
function dequantRows(type: i32, at: usize, rowBytes: usize, n: i32, nFull: i32, tail: i32, headDim: i32, dst: usize, lv: usize, dm: usize): void {
  // One copy of the loop per type, so each is compiled with its type constant.
  if (type == 0) dequantRowsOf(0, at, rowBytes, n, nFull, tail, headDim, dst, lv, dm);
  else if (type == 1) dequantRowsOf(1, at, rowBytes, n, nFull, tail, headDim, dst, lv, dm);
  else if (type == 2) dequantRowsOf(2, at, rowBytes, n, nFull, tail, headDim, dst, lv, dm);
  else if (type == 3) dequantRowsOf(3, at, rowBytes, n, nFull, tail, headDim, dst, lv, dm);
  else if (type == 4) dequantRowsOf(4, at, rowBytes, n, nFull, tail, headDim, dst, lv, dm);
  else dequantRowsOf(5, at, rowBytes, n, nFull, tail, headDim, dst, lv, dm);
}

@inline function dequantRowsOf(type: i32, at: usize, rowBytes: usize, n: i32, nFull: i32, tail: i32, headDim: i32, dst: usize, lv: usize, dm: usize): void {
  const nb = nFull + (tail > 0 ? 1 : 0);
  const withMin = type == 2 || type == 4;
  for (let t = 0; t < n; t++) {
    unpackHead(type, at + <usize>t * rowBytes, nFull, tail, lv, dm);
    const row = dst + ((<usize>t * <usize>headDim) << 2);
    for (let b = 0; b < nb; b++) {
      const d = v128.load_splat<f32>(dm + (<usize>b << 3));
      const m = v128.load_splat<f32>(dm + (<usize>b << 3) + 4);
      const l = lv + (<usize>b << 5);
      const o = row + (<usize>b << 7);
      const count = min(QK, headDim - b * QK);
      if (count == QK) {
        for (let h = 0; h < 2; h++) {
          const v = v128.load(l + (<usize>h << 4));
          const w0 = i16x8.extend_low_i8x16_s(v);
          const w1 = i16x8.extend_high_i8x16_s(v);
          let x0 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(w0)), d);
          let x1 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(w0)), d);
          let x2 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(w1)), d);
          let x3 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(w1)), d);
          if (withMin) {
            x0 = f32x4.add(x0, m);
            x1 = f32x4.add(x1, m);
            x2 = f32x4.add(x2, m);
            x3 = f32x4.add(x3, m);
          }
          const oh = o + (<usize>h << 6);
          v128.store(oh, x0);
          v128.store(oh, x1, 16);
          v128.store(oh, x2, 32);
          v128.store(oh, x3, 48);
        }
      } else {
        const ds = f32x4.extract_lane(d, 0);
        const ms = f32x4.extract_lane(m, 0);
        for (let j = 0; j < count; j++) {
          let x = <f32>load<i8>(l + <usize>j) * ds;
          if (withMin) x += ms;
          store<f32>(o + (<usize>j << 2), x);
        }
      }
    }
  }
}

/**
 * scores() with a float32 query (spec dot=f32): dequantized rows times q.
 * scratch: TILE·headDim floats, then nb·32 + nb·8 bytes.
 */
export function ggmlScoresF32(
  type: i32,
  k: usize,
  rowBytes: usize,
  nTokens: i32,
  nFull: i32,
  tail: i32,
  headDim: i32,
  q: usize,
  nq: i32,
  out: usize,
  outStride: i32,
  scratch: usize,
): void {
  const nb = nFull + (tail > 0 ? 1 : 0);
  const lv = scratch + ((<usize>TILE * <usize>headDim) << 2);
  const dm = lv + (<usize>nb << 5);
  for (let t0 = 0; t0 < nTokens; t0 += TILE) {
    const n = min(TILE, nTokens - t0);
    dequantRows(type, k + <usize>t0 * rowBytes, rowBytes, n, nFull, tail, headDim, scratch, lv, dm);
    scoreTile(q, nq, headDim, scratch, <usize>headDim << 2, n, out + (<usize>t0 << 2), outStride);
  }
}

/** accumulate(): out[i·headDim + d] += Σ_t w[i·wStride + t]·dequant(v_t)[d]. Scratch as ggmlScoresF32. */
export function ggmlAccumulate(
  type: i32,
  v: usize,
  rowBytes: usize,
  nTokens: i32,
  nFull: i32,
  tail: i32,
  headDim: i32,
  w: usize,
  wStride: i32,
  nq: i32,
  out: usize,
  scratch: usize,
): void {
  const nb = nFull + (tail > 0 ? 1 : 0);
  const lv = scratch + ((<usize>TILE * <usize>headDim) << 2);
  const dm = lv + (<usize>nb << 5);
  for (let t0 = 0; t0 < nTokens; t0 += TILE) {
    const n = min(TILE, nTokens - t0);
    dequantRows(type, v + <usize>t0 * rowBytes, rowBytes, n, nFull, tail, headDim, scratch, lv, dm);
    accumulateTile(w + (<usize>t0 << 2), wStride, nq, headDim, scratch, <usize>headDim << 2, n, out);
  }
}
