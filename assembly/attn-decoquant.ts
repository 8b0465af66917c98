// Attention kernels for DecoQuant (src/kv/codecs/decoquant.ts), twins of its plain-TS paths.
//
// Path A scores dot an integer query (the rotated query q' quantized per piece by the host to
// 31-bit integers Q = 32768·hi + lo, carried as two i16 planes: hi ∈ [−2^15, 2^15), lo ∈ [0, 2^15))
// with the B-bit codes of the large factor in the integer domain (i32x4.dot_i16x8_s per plane),
// then apply the piece's scales in f64 in the same order as the TS twin, so both agree bit for
// bit. Accumulate sums weights × codes in f32 in token order per coefficient (the twin rounds
// every step to f32). The fp16 kernels serve the tail (tokens not yet in a block) and Path B's
// fp16 T_S.
//
// The codes of one block are read as runs of rowBytes per token (a head's slice when the host
// stores the block head-major, else the whole central row). A piece is a stretch of a run under
// one scale group: the i32 table `pieces` holds [byte offset in the run, codes, group index in
// the row, element position] per piece. Within a piece the codes are taken 16 bytes at a time
// (a chunk: 16 codes at 8 bits, 32 at 4, 64 at 2) and unpacked by bit position, not by code
// order: lane j of class k holds code j·(8/B) + k. The host lays the query (and reads the
// accumulator) out in that order (classes of 16 lanes per chunk), so no shuffle is needed; a
// piece's last len mod (128/B) codes follow in natural order and run scalar.

/** fp16 bits → f64, exact for every finite half. */
// @ts-ignore: decorator
@inline function f16ToF64(h: u32): f64 {
  // (h & 0x7fff) << 13 is h's exponent and mantissa as an f32 pattern 112 binades too low
  // (subnormal halves land on f32 subnormals, still exact); 2^112 rescales.
  const f = reinterpret<f32>((h & 0x7fff) << 13) * reinterpret<f32>(0x77800000);
  return <f64>(h & 0x8000 ? -f : f);
}

/** Four fp16 values (upper halves of the i32 lanes of x) → f32x4, exact for finite halves. */
// @ts-ignore: decorator
@inline function f16x4(x: v128): v128 {
  // Shifting the half from bits 16–31 down by 3 (arithmetic) puts exponent and mantissa at f32
  // bits 13–27 and copies the sign into 29–31; the mask keeps bit 31 and 13–27.
  const bits = v128.and(i32x4.shr_s(x, 3), i32x4.splat(<i32>0x8fffe000));
  return f32x4.mul(bits, f32x4.splat(reinterpret<f32>(0x77800000)));
}

/** Halves 0–3 of the 8 in v, each in the upper half of an i32 lane (punpcklwd with zeros). */
// @ts-ignore: decorator
@inline function halvesLow(v: v128): v128 {
  return i16x8.shuffle(i16x8.splat(0), v, 0, 8, 1, 9, 2, 10, 3, 11);
}

/** Halves 4–7 of v, likewise (punpckhwd). */
// @ts-ignore: decorator
@inline function halvesHigh(v: v128): v128 {
  return i16x8.shuffle(i16x8.splat(0), v, 4, 12, 5, 13, 6, 14, 7, 15);
}

/** Code `idx` of a byte-aligned run of `bits`-bit codes (LSB first). */
// @ts-ignore: decorator
@inline function codeAt(base: usize, idx: i32, bits: i32): i32 {
  const bit = idx * bits;
  return (<i32>load<u8>(base + <usize>(bit >> 3)) >> (bit & 7)) & ((1 << bits) - 1);
}

/** Class k (k < 8/bits) of a 16-byte chunk: 16 u8 lanes, lane j = code j·(8/bits) + k. */
// @ts-ignore: decorator
@inline function codeClass(v: v128, bits: i32, k: i32): v128 {
  if (bits == 8) return v;
  if (bits == 4) return k == 0 ? v128.and(v, i8x16.splat(0x0f)) : i8x16.shr_u(v, 4);
  // Constant shifts: V8 emulates byte shifts, and a variable amount costs more.
  if (k == 0) return v128.and(v, i8x16.splat(3));
  if (k == 1) return v128.and(i8x16.shr_u(v, 2), i8x16.splat(3));
  if (k == 2) return v128.and(i8x16.shr_u(v, 4), i8x16.splat(3));
  return i8x16.shr_u(v, 6);
}

/** The four lanes of each of a0 … a3 summed: [Σ a0, Σ a1, Σ a2, Σ a3]. */
// @ts-ignore: decorator
@inline function transposeSum(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const s01 = i32x4.add(i32x4.shuffle(a0, a1, 0, 4, 1, 5), i32x4.shuffle(a0, a1, 2, 6, 3, 7));
  const s23 = i32x4.add(i32x4.shuffle(a2, a3, 0, 4, 1, 5), i32x4.shuffle(a2, a3, 2, 6, 3, 7));
  return i32x4.add(i64x2.shuffle(s01, s23, 0, 2), i64x2.shuffle(s01, s23, 1, 3));
}

/** Σ code·plane over codes [from, len) of a piece at base, the plane's i16 in natural order. */
// @ts-ignore: decorator
@inline function restSum(base: usize, from: i32, len: i32, bits: i32, plane: usize): i32 {
  let s = 0;
  for (let j = from; j < len; j++) s += codeAt(base, j, bits) * <i32>load<i16>(plane + (<usize>j << 1));
  return s;
}

/** f64x2 of the fp16 values at a and b. */
// @ts-ignore: decorator
@inline function f16Pair(a: usize, b: usize): v128 {
  return f64x2.replace_lane(f64x2.splat(f16ToF64(load<u16>(a))), 1, f16ToF64(load<u16>(b)));
}

/**
 * Path A scores for tokens t < n of one block and one KV head:
 *   out[i·outStride + t] = Σ_pieces s·(sq·(Σ code·Q − offset·qsum)) [+ z·qfs]
 * with s (and z, when zeros ≠ 0) the fp16 scale (zero point) of the piece's group in token t's
 * row, and [sq, qsum, qfs] = qInfo[(i·nPieces + p)·3 …] (f64): the query's step, Σ Q and Σ q'
 * over the piece. codes/scales/zeros address the block's token 0 of this head. Four tokens at a
 * time: their integer sums are transposed into one vector (|Σ| < 2^31: pieces hold at most 256
 * codes), and the f64 products run two tokens per f64x2, each lane in the twin's order.
 */
export function dqScores(
  codes: usize, rowBytes: i32, bits: i32, n: i32,
  pieces: usize, nPieces: i32,
  q: usize, qBytes: i32, planeBytes: i32, qInfo: usize, nq: i32,
  scales: usize, zeros: usize, groupsPerRow: i32, offset: i32,
  out: usize, outStride: i32,
): void {
  const chunkCodes = 128 / bits;
  const classes = 8 / bits;
  for (let t = 0; t < n; t += 4) {
    // A last group of fewer than 4 tokens repeats the last one and stores only what is real.
    const t1 = min(t + 1, n - 1);
    const t2 = min(t + 2, n - 1);
    const t3 = min(t + 3, n - 1);
    const r0 = codes + <usize>t * rowBytes;
    const r1 = codes + <usize>t1 * rowBytes;
    const r2 = codes + <usize>t2 * rowBytes;
    const r3 = codes + <usize>t3 * rowBytes;
    for (let i = 0; i < nq; i++) {
      let lo = f64x2.splat(0);
      let hi = f64x2.splat(0);
      for (let p = 0; p < nPieces; p++) {
        const e = pieces + (<usize>p << 4);
        const off = <usize>load<i32>(e);
        const len = load<i32>(e, 4);
        const g = load<i32>(e, 8);
        const pos = <usize>load<i32>(e, 12);
        const nChunks = len / chunkCodes;
        const qh = q + <usize>i * qBytes + (pos << 1);
        const ql = qh + <usize>planeBytes;
        let h0 = i32x4.splat(0), h1 = h0, h2 = h0, h3 = h0;
        let l0 = h0, l1 = h0, l2 = h0, l3 = h0;
        for (let c = 0; c < nChunks; c++) {
          const co = off + (<usize>c << 4);
          const qc = <usize>c * 256 / <usize>bits; // 128/bits codes of 2 bytes per chunk
          for (let k = 0; k < classes; k++) {
            const qo = qc + (<usize>k << 5);
            const qh0 = v128.load(qh + qo);
            const qh1 = v128.load(qh + qo, 16);
            const ql0 = v128.load(ql + qo);
            const ql1 = v128.load(ql + qo, 16);
            let x = codeClass(v128.load(r0 + co), bits, k);
            let x0 = i16x8.extend_low_i8x16_u(x);
            let x1 = i16x8.extend_high_i8x16_u(x);
            h0 = i32x4.add(h0, i32x4.add(i32x4.dot_i16x8_s(x0, qh0), i32x4.dot_i16x8_s(x1, qh1)));
            l0 = i32x4.add(l0, i32x4.add(i32x4.dot_i16x8_s(x0, ql0), i32x4.dot_i16x8_s(x1, ql1)));
            x = codeClass(v128.load(r1 + co), bits, k);
            x0 = i16x8.extend_low_i8x16_u(x);
            x1 = i16x8.extend_high_i8x16_u(x);
            h1 = i32x4.add(h1, i32x4.add(i32x4.dot_i16x8_s(x0, qh0), i32x4.dot_i16x8_s(x1, qh1)));
            l1 = i32x4.add(l1, i32x4.add(i32x4.dot_i16x8_s(x0, ql0), i32x4.dot_i16x8_s(x1, ql1)));
            x = codeClass(v128.load(r2 + co), bits, k);
            x0 = i16x8.extend_low_i8x16_u(x);
            x1 = i16x8.extend_high_i8x16_u(x);
            h2 = i32x4.add(h2, i32x4.add(i32x4.dot_i16x8_s(x0, qh0), i32x4.dot_i16x8_s(x1, qh1)));
            l2 = i32x4.add(l2, i32x4.add(i32x4.dot_i16x8_s(x0, ql0), i32x4.dot_i16x8_s(x1, ql1)));
            x = codeClass(v128.load(r3 + co), bits, k);
            x0 = i16x8.extend_low_i8x16_u(x);
            x1 = i16x8.extend_high_i8x16_u(x);
            h3 = i32x4.add(h3, i32x4.add(i32x4.dot_i16x8_s(x0, qh0), i32x4.dot_i16x8_s(x1, qh1)));
            l3 = i32x4.add(l3, i32x4.add(i32x4.dot_i16x8_s(x0, ql0), i32x4.dot_i16x8_s(x1, ql1)));
          }
        }
        let sh = transposeSum(h0, h1, h2, h3);
        let sl = transposeSum(l0, l1, l2, l3);
        const rest = nChunks * chunkCodes;
        if (rest < len) {
          // The piece's last codes, in natural order.
          const b0 = r0 + off, b1 = r1 + off, b2 = r2 + off, b3 = r3 + off;
          sh = i32x4.add(sh, i32x4.replace_lane(i32x4.replace_lane(i32x4.replace_lane(i32x4.splat(restSum(b0, rest, len, bits, qh)), 1, restSum(b1, rest, len, bits, qh)), 2, restSum(b2, rest, len, bits, qh)), 3, restSum(b3, rest, len, bits, qh)));
          sl = i32x4.add(sl, i32x4.replace_lane(i32x4.replace_lane(i32x4.replace_lane(i32x4.splat(restSum(b0, rest, len, bits, ql)), 1, restSum(b1, rest, len, bits, ql)), 2, restSum(b2, rest, len, bits, ql)), 3, restSum(b3, rest, len, bits, ql)));
        }
        const two15 = f64x2.splat(32768);
        const isum01 = f64x2.add(f64x2.mul(f64x2.convert_low_i32x4_s(sh), two15), f64x2.convert_low_i32x4_s(sl));
        const isum23 = f64x2.add(f64x2.mul(f64x2.convert_low_i32x4_s(i64x2.shuffle(sh, sh, 1, 0)), two15), f64x2.convert_low_i32x4_s(i64x2.shuffle(sl, sl, 1, 0)));
        const info = qInfo + <usize>(i * nPieces + p) * 24;
        const sq = f64x2.splat(load<f64>(info));
        const oq = f64x2.splat(<f64>offset * load<f64>(info, 8));
        const ga = scales + (<usize>(<usize>t * groupsPerRow + g) << 1);
        const gb = scales + (<usize>(<usize>t1 * groupsPerRow + g) << 1);
        const gc = scales + (<usize>(<usize>t2 * groupsPerRow + g) << 1);
        const gd = scales + (<usize>(<usize>t3 * groupsPerRow + g) << 1);
        let c01 = f64x2.mul(f16Pair(ga, gb), f64x2.mul(sq, f64x2.sub(isum01, oq)));
        let c23 = f64x2.mul(f16Pair(gc, gd), f64x2.mul(sq, f64x2.sub(isum23, oq)));
        if (zeros) {
          const qfs = f64x2.splat(load<f64>(info, 16));
          const dz = zeros - scales;
          c01 = f64x2.add(c01, f64x2.mul(f16Pair(ga + dz, gb + dz), qfs));
          c23 = f64x2.add(c23, f64x2.mul(f16Pair(gc + dz, gd + dz), qfs));
        }
        lo = f64x2.add(lo, c01);
        hi = f64x2.add(hi, c23);
      }
      const res = i64x2.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 2);
      const o = out + ((<usize>i * outStride + t) << 2);
      if (t + 4 <= n) v128.store(o, res);
      else {
        store<f32>(o, f32x4.extract_lane(res, 0));
        if (t + 1 < n) store<f32>(o, f32x4.extract_lane(res, 1), 4);
        if (t + 2 < n) store<f32>(o, f32x4.extract_lane(res, 2), 8);
      }
    }
  }
}

/** Tokens per tile of dqAccumulate: their weights and codes stay in L1 while it sweeps a piece. */
const TILE = 64;

/**
 * Path A accumulate for tokens t < n of one block and one KV head, in the rotated domain:
 *   acc[i·accStride + pos + e] += ws·(code − offset) [+ wz]   (each step rounded to f32)
 * with ws = f32(w[i·wStride + t]·s), wz = f32(w·z), s and z the fp16 scale and zero point of
 * the piece's group; acc is laid out like the query of dqScores (chunk classes, then the rest).
 * Tokens go in tiles: per tile and piece the weights are computed once into `scratch`
 * (2·TILE floats), then each class of 16 codes stays in registers over the tile's tokens.
 */
export function dqAccumulate(
  codes: usize, rowBytes: i32, bits: i32, n: i32,
  pieces: usize, nPieces: i32,
  w: usize, wStride: i32, nq: i32,
  scales: usize, zeros: usize, groupsPerRow: i32, offset: i32,
  acc: usize, accStride: i32, scratch: usize,
): void {
  const chunkCodes = 128 / bits;
  const classes = 8 / bits;
  const off16 = i16x8.splat(<i16>offset);
  const wzs = scratch + (TILE << 2);
  for (let t0 = 0; t0 < n; t0 += TILE) {
    const nt = min(TILE, n - t0);
    for (let i = 0; i < nq; i++) {
      for (let p = 0; p < nPieces; p++) {
        const e = pieces + (<usize>p << 4);
        const off = <usize>load<i32>(e);
        const len = load<i32>(e, 4);
        const g = <usize>load<i32>(e, 8);
        const pos = <usize>load<i32>(e, 12);
        for (let t = 0; t < nt; t++) {
          const wt = <f64>load<f32>(w + ((<usize>i * wStride + t0 + t) << 2));
          const gi = (<usize>(t0 + t) * groupsPerRow + g) << 1;
          store<f32>(scratch + (<usize>t << 2), <f32>(wt * f16ToF64(load<u16>(scales + gi))));
          if (zeros) store<f32>(wzs + (<usize>t << 2), <f32>(wt * f16ToF64(load<u16>(zeros + gi))));
        }
        const a = acc + ((<usize>i * accStride + pos) << 2);
        const base = codes + <usize>t0 * rowBytes + off;
        const nChunks = len / chunkCodes;
        for (let c = 0; c < nChunks; c++) {
          for (let k = 0; k < classes; k++) {
            const ak = a + <usize>c * 512 / <usize>bits + (<usize>k << 6); // 128/bits floats per chunk
            let a0 = v128.load(ak);
            let a1 = v128.load(ak, 16);
            let a2 = v128.load(ak, 32);
            let a3 = v128.load(ak, 48);
            for (let t = 0; t < nt; t++) {
              const x = codeClass(v128.load(base + <usize>t * rowBytes + (<usize>c << 4)), bits, k);
              const lo = i16x8.sub(i16x8.extend_low_i8x16_u(x), off16);
              const hi = i16x8.sub(i16x8.extend_high_i8x16_u(x), off16);
              const ws = v128.load32_splat(scratch + (<usize>t << 2));
              let v0 = f32x4.mul(ws, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)));
              let v1 = f32x4.mul(ws, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)));
              let v2 = f32x4.mul(ws, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)));
              let v3 = f32x4.mul(ws, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)));
              if (zeros) {
                const wz = v128.load32_splat(wzs + (<usize>t << 2));
                v0 = f32x4.add(v0, wz);
                v1 = f32x4.add(v1, wz);
                v2 = f32x4.add(v2, wz);
                v3 = f32x4.add(v3, wz);
              }
              a0 = f32x4.add(a0, v0);
              a1 = f32x4.add(a1, v1);
              a2 = f32x4.add(a2, v2);
              a3 = f32x4.add(a3, v3);
            }
            v128.store(ak, a0);
            v128.store(ak, a1, 16);
            v128.store(ak, a2, 32);
            v128.store(ak, a3, 48);
          }
        }
        for (let j = nChunks * chunkCodes; j < len; j++) {
          const aj = a + (<usize>j << 2);
          let s = load<f32>(aj);
          for (let t = 0; t < nt; t++) {
            let term = load<f32>(scratch + (<usize>t << 2)) * <f32>(codeAt(base + <usize>t * rowBytes, j, bits) - offset);
            if (zeros) term += load<f32>(wzs + (<usize>t << 2));
            s += term;
          }
          store<f32>(aj, s);
        }
      }
    }
  }
}

/**
 * out[i·outStride + r] = Σ_j x[i·xStride + j]·f16(rows[r·rowStride + j]) for rows r < nRows,
 * j < len, in a fixed f32 order the TS twin (laneDot) repeats: four f32x4 partial sums over
 * groups of 16, remaining groups of 4 into the first, then ((A0 + A1) + (A2 + A3)), lanes
 * ((l0 + l1) + (l2 + l3)), then the last len mod 4 terms in order. rowStride in halves.
 */
export function dqF16Dots(out: usize, outStride: i32, x: usize, xStride: i32, nq: i32, rows: usize, rowStride: i32, nRows: i32, len: i32): void {
  for (let r = 0; r < nRows; r++) {
    const row = rows + ((<usize>r * rowStride) << 1);
    for (let i = 0; i < nq; i++) {
      const xi = x + ((<usize>i * xStride) << 2);
      let a0 = f32x4.splat(0);
      let a1 = f32x4.splat(0);
      let a2 = f32x4.splat(0);
      let a3 = f32x4.splat(0);
      let j = 0;
      for (; j + 16 <= len; j += 16) {
        const h0 = v128.load(row + (<usize>j << 1));
        const h1 = v128.load(row + (<usize>j << 1), 16);
        const xj = xi + (<usize>j << 2);
        a0 = f32x4.add(a0, f32x4.mul(v128.load(xj), f16x4(halvesLow(h0))));
        a1 = f32x4.add(a1, f32x4.mul(v128.load(xj, 16), f16x4(halvesHigh(h0))));
        a2 = f32x4.add(a2, f32x4.mul(v128.load(xj, 32), f16x4(halvesLow(h1))));
        a3 = f32x4.add(a3, f32x4.mul(v128.load(xj, 48), f16x4(halvesHigh(h1))));
      }
      for (; j + 4 <= len; j += 4) {
        a0 = f32x4.add(a0, f32x4.mul(v128.load(xi + (<usize>j << 2)), f16x4(halvesLow(v128.load64_zero(row + (<usize>j << 1))))));
      }
      const a = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
      let h: f32 = (f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 1)) + (f32x4.extract_lane(a, 2) + f32x4.extract_lane(a, 3));
      for (; j < len; j++) h += load<f32>(xi + (<usize>j << 2)) * <f32>f16ToF64(load<u16>(row + (<usize>j << 1)));
      store<f32>(out + ((<usize>i * outStride + r) << 2), h);
    }
  }
}

/**
 * out[i·outStride + j] += a[i·aStride + r]·f16(rows[r·rowStride + j]) for r < nRows in order,
 * j < len, every product and sum rounded to f32 (the TS twin does the same). rowStride in halves.
 */
export function dqF16Axpy(out: usize, outStride: i32, a: usize, aStride: i32, nq: i32, rows: usize, rowStride: i32, nRows: i32, len: i32): void {
  for (let r = 0; r < nRows; r++) {
    const row = rows + ((<usize>r * rowStride) << 1);
    let j = 0;
    for (; j + 8 <= len; j += 8) {
      const h = v128.load(row + (<usize>j << 1));
      const v0 = f16x4(halvesLow(h));
      const v1 = f16x4(halvesHigh(h));
      for (let i = 0; i < nq; i++) {
        const c = f32x4.splat(load<f32>(a + ((<usize>i * aStride + r) << 2)));
        const o = out + ((<usize>i * outStride + j) << 2);
        v128.store(o, f32x4.add(v128.load(o), f32x4.mul(c, v0)));
        v128.store(o, f32x4.add(v128.load(o, 16), f32x4.mul(c, v1)), 16);
      }
    }
    for (; j < len; j++) {
      const v = <f32>f16ToF64(load<u16>(row + (<usize>j << 1)));
      for (let i = 0; i < nq; i++) {
        const o = out + ((<usize>i * outStride + j) << 2);
        store<f32>(o, load<f32>(o) + load<f32>(a + ((<usize>i * aStride + r) << 2)) * v);
      }
    }
  }
}
