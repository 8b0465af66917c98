// Attention kernels for DecoQuant (src/kv/codecs/decoquant.ts), twins of its plain-TS paths.
//
// Path A scores dot an integer query (the rotated query q' quantized per piece by the host to
// 31-bit integers Q = 32768·hi + lo, carried as two i16 planes: hi ∈ [−2^15, 2^15), lo ∈ [0, 2^15))
// with the B-bit codes of the large factor in the integer domain (i32x4.dot_i16x8_s per plane),
// then apply the piece's scales in f64 in the same order as the TS twin, so both agree bit for bit. Accumulate sums
// weights × codes in f32 in token order per coefficient (the twin rounds every step to f32).
// The fp16 kernels serve the tail (tokens not yet in a block) and Path B's fp16 T_S.
//
// A piece is a run of one token row's codes that shares one scale group: the i32 table
// `pieces` holds [byte offset in the row, codes, group index in the row, element position] per
// piece. Within a piece the codes are taken 16 bytes at a time (a chunk: 16 codes at 8 bits, 32
// at 4, 64 at 2) and unpacked by bit position, not by code order: lane j of class k holds code
// j·(8/B) + k. The host lays the query (and reads the accumulator) out in that order
// (classes of 16 lanes per chunk), so no shuffle is needed; a piece's last len mod (128/B) codes
// follow in natural order and run scalar.

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

/** Halves 0–3 of the 8 in v, each in the upper half of an i32 lane. */
// @ts-ignore: decorator
@inline function halvesLow(v: v128): v128 {
  return i8x16.shuffle(i32x4.splat(0), v, 0, 1, 16, 17, 0, 1, 18, 19, 0, 1, 20, 21, 0, 1, 22, 23);
}

// @ts-ignore: decorator
@inline function halvesHigh(v: v128): v128 {
  return i8x16.shuffle(i32x4.splat(0), v, 0, 1, 24, 25, 0, 1, 26, 27, 0, 1, 28, 29, 0, 1, 30, 31);
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
  return v128.and(i8x16.shr_u(v, k << 1), i8x16.splat(3));
}

/**
 * Integer sums Σ code·hi and Σ code·lo of one piece for every query into the i32x4 slots
 * acc[2i], acc[2i + 1] (added), the SIMD part only: nChunks chunks of 16 bytes at p, query i's
 * hi plane at q + i·qBytes, its lo plane planeBytes further.
 */
function chunkSums(p: usize, nChunks: i32, bits: i32, q: usize, qBytes: i32, planeBytes: i32, nq: i32, acc: usize): void {
  const classes = 8 / bits;
  for (let c = 0; c < nChunks; c++) {
    const v = v128.load(p + (<usize>c << 4));
    const qc = q + <usize>c * 256 / <usize>bits; // 128/bits codes of 2 bytes per chunk
    for (let k = 0; k < classes; k++) {
      const x = codeClass(v, bits, k);
      const x0 = i16x8.extend_low_i8x16_u(x);
      const x1 = i16x8.extend_high_i8x16_u(x);
      const qk = qc + (<usize>k << 5);
      for (let i = 0; i < nq; i++) {
        const qh = qk + <usize>i * qBytes;
        const ql = qh + <usize>planeBytes;
        const a = acc + (<usize>i << 5);
        const sh = i32x4.add(i32x4.dot_i16x8_s(x0, v128.load(qh)), i32x4.dot_i16x8_s(x1, v128.load(qh, 16)));
        const sl = i32x4.add(i32x4.dot_i16x8_s(x0, v128.load(ql)), i32x4.dot_i16x8_s(x1, v128.load(ql, 16)));
        v128.store(a, i32x4.add(v128.load(a), sh));
        v128.store(a, i32x4.add(v128.load(a, 16), sl), 16);
      }
    }
  }
}

/** Σ of the four i32 lanes, exactly (each lane stays below 2^31). */
// @ts-ignore: decorator
@inline function lanesF64(a: v128): f64 {
  return <f64>i32x4.extract_lane(a, 0) + <f64>i32x4.extract_lane(a, 1) + <f64>i32x4.extract_lane(a, 2) + <f64>i32x4.extract_lane(a, 3);
}

/**
 * Path A scores for tokens t < n of one block and one KV head:
 *   out[i·outStride + t] = Σ_pieces s·(sq·(Σ code·Q − offset·qsum)) [+ z·qfs]
 * with s (and z, when zeros ≠ 0) the fp16 scale (zero point) of the piece's group in token t's
 * row, and [sq, qsum, qfs] = qInfo[(i·nPieces + p)·3 …] (f64): the query's step, Σ Q and Σ q'
 * over the piece. codes/scales/zeros address the block's token 0. `scratch`: nq·40 bytes.
 */
export function dqScores(
  codes: usize, rowBytes: i32, bits: i32, n: i32,
  pieces: usize, nPieces: i32,
  q: usize, qBytes: i32, planeBytes: i32, qInfo: usize, nq: i32,
  scales: usize, zeros: usize, groupsPerRow: i32, offset: i32,
  scratch: usize, out: usize, outStride: i32,
): void {
  const chunkCodes = 128 / bits;
  const acc = scratch;
  const tot = scratch + (<usize>nq << 5);
  for (let t = 0; t < n; t++) {
    const row = codes + <usize>t * rowBytes;
    const groups = <usize>t * groupsPerRow;
    for (let i = 0; i < nq; i++) store<f64>(tot + (<usize>i << 3), 0);
    for (let p = 0; p < nPieces; p++) {
      const e = pieces + (<usize>p << 4);
      const base = row + <usize>load<i32>(e);
      const len = load<i32>(e, 4);
      const g = <usize>load<i32>(e, 8) + groups;
      const pos = load<i32>(e, 12);
      const nChunks = len / chunkCodes;
      for (let i = 0; i < nq << 1; i++) v128.store(acc + (<usize>i << 4), i32x4.splat(0));
      chunkSums(base, nChunks, bits, q + (<usize>pos << 1), qBytes, planeBytes, nq, acc);
      const s = f16ToF64(load<u16>(scales + (g << 1)));
      const z = zeros ? f16ToF64(load<u16>(zeros + (g << 1))) : 0.0;
      for (let i = 0; i < nq; i++) {
        let hi = lanesF64(v128.load(acc + (<usize>i << 5)));
        let lo = lanesF64(v128.load(acc + (<usize>i << 5), 16));
        const qh = q + <usize>i * qBytes + (<usize>pos << 1);
        for (let j = nChunks * chunkCodes; j < len; j++) {
          const c = codeAt(base, j, bits);
          hi += <f64>(c * <i32>load<i16>(qh + (<usize>j << 1)));
          lo += <f64>(c * <i32>load<i16>(qh + <usize>planeBytes + (<usize>j << 1)));
        }
        const isum = hi * 32768 + lo;
        const info = qInfo + <usize>(i * nPieces + p) * 24;
        let c = s * (load<f64>(info) * (isum - <f64>offset * load<f64>(info, 8)));
        if (zeros) c += z * load<f64>(info, 16);
        store<f64>(tot + (<usize>i << 3), load<f64>(tot + (<usize>i << 3)) + c);
      }
    }
    for (let i = 0; i < nq; i++) store<f32>(out + ((<usize>i * outStride + t) << 2), <f32>load<f64>(tot + (<usize>i << 3)));
  }
}

/**
 * Path A accumulate for tokens t < n of one block and one KV head, in the rotated domain:
 *   acc[i·accStride + pos + e] += ws·(code − offset) [+ wz]   (each step rounded to f32)
 * with ws = f32(w[i·wStride + t]·s), wz = f32(w·z), s and z the fp16 scale and zero point of
 * the piece's group; acc is laid out like the query of dqScores (chunk classes, then the rest).
 */
export function dqAccumulate(
  codes: usize, rowBytes: i32, bits: i32, n: i32,
  pieces: usize, nPieces: i32,
  w: usize, wStride: i32, nq: i32,
  scales: usize, zeros: usize, groupsPerRow: i32, offset: i32,
  acc: usize, accStride: i32,
): void {
  const chunkCodes = 128 / bits;
  const classes = 8 / bits;
  const off = i16x8.splat(<i16>offset);
  for (let t = 0; t < n; t++) {
    const row = codes + <usize>t * rowBytes;
    const groups = <usize>t * groupsPerRow;
    for (let p = 0; p < nPieces; p++) {
      const e = pieces + (<usize>p << 4);
      const base = row + <usize>load<i32>(e);
      const len = load<i32>(e, 4);
      const g = <usize>load<i32>(e, 8) + groups;
      const pos = <usize>load<i32>(e, 12);
      const nChunks = len / chunkCodes;
      const s = f16ToF64(load<u16>(scales + (g << 1)));
      const z = zeros ? f16ToF64(load<u16>(zeros + (g << 1))) : 0.0;
      for (let i = 0; i < nq; i++) {
        const wt = <f64>load<f32>(w + ((<usize>i * wStride + t) << 2));
        const ws = <f32>(wt * s);
        const wz = <f32>(wt * z);
        const vs = f32x4.splat(ws);
        const vz = f32x4.splat(wz);
        const a = acc + ((<usize>i * accStride + pos) << 2);
        for (let c = 0; c < nChunks; c++) {
          const v = v128.load(base + (<usize>c << 4));
          const ac = a + <usize>c * 512 / <usize>bits; // 128/bits floats per chunk
          for (let k = 0; k < classes; k++) {
            const x = codeClass(v, bits, k);
            const lo = i16x8.sub(i16x8.extend_low_i8x16_u(x), off);
            const hi = i16x8.sub(i16x8.extend_high_i8x16_u(x), off);
            const ak = ac + (<usize>k << 6);
            let t0 = f32x4.mul(vs, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)));
            let t1 = f32x4.mul(vs, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)));
            let t2 = f32x4.mul(vs, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)));
            let t3 = f32x4.mul(vs, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)));
            if (zeros) {
              t0 = f32x4.add(t0, vz);
              t1 = f32x4.add(t1, vz);
              t2 = f32x4.add(t2, vz);
              t3 = f32x4.add(t3, vz);
            }
            v128.store(ak, f32x4.add(v128.load(ak), t0));
            v128.store(ak, f32x4.add(v128.load(ak, 16), t1), 16);
            v128.store(ak, f32x4.add(v128.load(ak, 32), t2), 32);
            v128.store(ak, f32x4.add(v128.load(ak, 48), t3), 48);
          }
        }
        for (let j = nChunks * chunkCodes; j < len; j++) {
          let term = ws * <f32>(codeAt(base, j, bits) - offset);
          if (zeros) term += wz;
          const aj = a + (<usize>j << 2);
          store<f32>(aj, load<f32>(aj) + term);
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
