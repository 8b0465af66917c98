// llama.cpp's 32-value block formats (ggml/src/ggml-quants.c), bit-exact: the reference
// quantizers quantize_row_<type>_ref, the dequantizers dequantize_row_<type>, the q8_0/q8_1
// quantizers (reference and the x86 CPU backend's) that turn a query into vec_dot's operand, and
// the integer vec_dot of each type in the x86 kernels' float order. Checked against bytes,
// values and scores that llama.cpp produced (golden/ggml-blocks).
//
// Every function works on one block held in a Uint8Array in ggml's own struct layout
// (little-endian fp16 fields first, then qh for the 5-bit types, then qs), so a block written
// here is byte-identical to the one llama.cpp writes into its KV cache.
//
// ggml computes in float32. Each float operation below is wrapped in Math.fround: for +, −, ×, ÷
// the double result of two float32 operands rounded once to float32 equals the float32 operation
// (double has more than 2·24+2 bits), so the rounding is exactly ggml's.
import { f16Table, f32ToF16 } from './f16.js';

export type GgmlBlockType = 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'iq4_nl';
/** The formats a query is converted to before vec_dot (ggml's vec_dot_type). */
export type Q8Type = 'q8_0' | 'q8_1';

/**
 * Which of ggml's q8 quantizers: 'ref' is quantize_row_q8_0_ref/q8_1_ref (id = 1/d, roundf);
 * 'x86' is the CPU backend's AVX2 from_float (id = 127/amax, round half to even), which llama.cpp
 * on x86 runs to write a q8_0 KV cache and to convert every query to q8_0/q8_1. They differ only
 * where x·id lands on (or one ulp from) a half (golden q8_0.cpu.bin: one block of 256).
 */
export type Q8Path = 'ref' | 'x86';

/** Values per block, for every type here. */
export const QK = 32;

export interface BlockFormat {
  readonly type: GgmlBlockType;
  /** sizeof(block_<type>). */
  readonly bytes: number;
  /** The fp16 fields: d, and m for the _1 types. */
  readonly headerBytes: number;
  /** Bits of one value's code (for the 5-bit types qh holds the fifth). */
  readonly bits: number;
  /** _1 types store a minimum: x̂ = level·d + m. */
  readonly hasMin: boolean;
  readonly vecDotType: Q8Type;
  /**
   * code → the integer ggml's vec_dot multiplies with the query's int8 (q4_0: nibble − 8,
   * q5_0: code − 16, iq4_nl: codebook entry, q8_0: the signed byte, _1 types: the code).
   */
  readonly levels: Int32Array;
}

/** kvalues_iq4nl: iq4_nl's non-uniform 4-bit codebook. */
export const IQ4NL_VALUES: Readonly<Int8Array> = Int8Array.of(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);

function levelTable(n: number, level: (code: number) => number): Int32Array {
  const t = new Int32Array(n);
  for (let c = 0; c < n; c++) t[c] = level(c);
  return t;
}

export const BLOCK_FORMATS: Readonly<Record<GgmlBlockType, BlockFormat>> = {
  q8_0: { type: 'q8_0', bytes: 34, headerBytes: 2, bits: 8, hasMin: false, vecDotType: 'q8_0', levels: levelTable(256, (c) => (c << 24) >> 24) },
  q4_0: { type: 'q4_0', bytes: 18, headerBytes: 2, bits: 4, hasMin: false, vecDotType: 'q8_0', levels: levelTable(16, (c) => c - 8) },
  q4_1: { type: 'q4_1', bytes: 20, headerBytes: 4, bits: 4, hasMin: true, vecDotType: 'q8_1', levels: levelTable(16, (c) => c) },
  q5_0: { type: 'q5_0', bytes: 22, headerBytes: 2, bits: 5, hasMin: false, vecDotType: 'q8_0', levels: levelTable(32, (c) => c - 16) },
  q5_1: { type: 'q5_1', bytes: 24, headerBytes: 4, bits: 5, hasMin: true, vecDotType: 'q8_1', levels: levelTable(32, (c) => c) },
  iq4_nl: { type: 'iq4_nl', bytes: 18, headerBytes: 2, bits: 4, hasMin: false, vecDotType: 'q8_0', levels: levelTable(16, (c) => IQ4NL_VALUES[c]) },
};

/** sizeof(block_q8_0) = 34 (fp16 d, int8 qs[32]); sizeof(block_q8_1) = 36 (fp16 d, fp16 s, qs). */
export const Q8_BYTES: Readonly<Record<Q8Type, number>> = { q8_0: 34, q8_1: 36 };

const fr = Math.fround;

/** C's roundf: nearest, ties away from zero (exact: |x| + 0.5 is exact in double for float x). */
function roundf(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/** _mm256_round_ps(_MM_ROUND_NEAREST): nearest, ties to even (Math.round sends ties up). */
function roundEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/** A little-endian fp16 field as float32 (GGML_FP16_TO_FP32). */
export function readF16(src: Uint8Array, off: number): number {
  return f16Table[src[off] | (src[off + 1] << 8)];
}

/** Stores GGML_FP32_TO_FP16(x); false when the result is not finite (the caller refuses it). */
function writeF16(dst: Uint8Array, off: number, x: number): boolean {
  const h = f32ToF16(x);
  dst[off] = h & 0xff;
  dst[off + 1] = h >>> 8;
  return (h & 0x7c00) !== 0x7c00;
}

/**
 * Writes the raw codes (0 ≤ code < 2^bits) of one block into ggml's qh/qs layout: qs[j] holds
 * element j in its low nibble and element j+16 in its high nibble (q8_0: one byte each); for
 * the 5-bit types bit j of the little-endian 32-bit qh is bit 4 of element j.
 */
export function setBlockCodes(type: GgmlBlockType, codes: ArrayLike<number>, dst: Uint8Array, off: number): void {
  const f = BLOCK_FORMATS[type];
  let p = off + f.headerBytes;
  if (f.bits === 8) {
    for (let j = 0; j < QK; j++) dst[p + j] = codes[j] & 0xff;
    return;
  }
  if (f.bits === 5) {
    let qh = 0;
    for (let j = 0; j < QK; j++) qh |= ((codes[j] >>> 4) & 1) << j;
    dst[p] = qh & 0xff;
    dst[p + 1] = (qh >>> 8) & 0xff;
    dst[p + 2] = (qh >>> 16) & 0xff;
    dst[p + 3] = (qh >>> 24) & 0xff;
    p += 4;
  }
  for (let j = 0; j < 16; j++) dst[p + j] = (codes[j] & 0x0f) | ((codes[j + 16] & 0x0f) << 4);
}

/** Reads the 32 raw codes of one block (inverse of setBlockCodes). */
export function blockCodes(type: GgmlBlockType, src: Uint8Array, off: number, codes: Int32Array | Uint8Array): void {
  const f = BLOCK_FORMATS[type];
  let p = off + f.headerBytes;
  if (f.bits === 8) {
    for (let j = 0; j < QK; j++) codes[j] = src[p + j];
    return;
  }
  let qh = 0;
  if (f.bits === 5) {
    qh = (src[p] | (src[p + 1] << 8) | (src[p + 2] << 16) | (src[p + 3] << 24)) >>> 0;
    p += 4;
  }
  for (let j = 0; j < 16; j++) {
    const b = src[p + j];
    codes[j] = (b & 0x0f) | (((qh >>> j) & 1) << 4);
    codes[j + 16] = (b >>> 4) | (((qh >>> (j + 16)) & 1) << 4);
  }
}

const codeScratch = new Int32Array(QK);

/**
 * quantize_row_<type>_ref for one block: x[xOff … xOff+31] → dst[off … off+bytes). `path`
 * matters for q8_0 only (see Q8Path); for the other types llama.cpp's CPU cache write is the
 * reference quantizer itself. Returns false when a stored fp16 field (scale or minimum) is not
 * finite, i.e. the input exceeds what the format can represent; the block bytes are then
 * meaningless.
 */
export function quantizeBlock(type: GgmlBlockType, x: ArrayLike<number>, xOff: number, dst: Uint8Array, off: number, path: Q8Path = 'ref'): boolean {
  if (type === 'q8_0') return quantizeQ8Block('q8_0', x, xOff, dst, off, path);
  const codes = codeScratch;
  let ok: boolean;
  switch (type) {
    case 'q4_0':
      ok = quantizeSymmetric(x, xOff, dst, off, 8, codes);
      break;
    case 'q5_0':
      ok = quantizeSymmetric(x, xOff, dst, off, 16, codes);
      break;
    case 'q4_1':
      ok = quantizeMinMax(x, xOff, dst, off, 15, codes);
      break;
    case 'q5_1':
      ok = quantizeMinMax(x, xOff, dst, off, 31, codes);
      break;
    case 'iq4_nl':
      ok = quantizeIq4nl(x, xOff, dst, off, codes);
      break;
  }
  setBlockCodes(type, codes, dst, off);
  return ok;
}

/**
 * q4_0 (half = 8) and q5_0 (half = 16): d = max / −half where max is the signed element of
 * largest magnitude (first one on ties), code = min(2·half − 1, (int8_t)(x·id + half + 0.5)).
 */
function quantizeSymmetric(x: ArrayLike<number>, xOff: number, dst: Uint8Array, off: number, half: number, codes: Int32Array): boolean {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < QK; j++) {
    const v = x[xOff + j];
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  const d = fr(max / -half);
  const id = d ? fr(1 / d) : 0;
  const ok = writeF16(dst, off, d);
  const top = 2 * half - 1;
  // The C cast to int8_t truncates toward zero; x·id + half + 0.5 lies in [0.5, 2·half + 0.5].
  for (let j = 0; j < QK; j++) codes[j] = Math.min(top, Math.trunc(fr(fr(x[xOff + j] * id) + (half + 0.5))));
  return ok;
}

/**
 * q4_1 (top = 15) and q5_1 (top = 31): d = (max − min)/top, m = min,
 * code = (x − min)·id + 0.5 truncated (q4_1 clamps to 15; q5_1 keeps the low five bits, as its
 * uint8_t cast followed by the nibble/qh split does).
 */
function quantizeMinMax(x: ArrayLike<number>, xOff: number, dst: Uint8Array, off: number, top: number, codes: Int32Array): boolean {
  let min = Infinity;
  let max = -Infinity;
  for (let j = 0; j < QK; j++) {
    const v = x[xOff + j];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const d = fr(fr(max - min) / top);
  const id = d ? fr(1 / d) : 0;
  const ok = writeF16(dst, off, d) && writeF16(dst, off + 2, min);
  for (let j = 0; j < QK; j++) {
    const c = Math.trunc(fr(fr(fr(x[xOff + j] - min) * id) + 0.5));
    codes[j] = top === 15 ? Math.min(15, c) : c & 31;
  }
  return ok;
}

/** best_index_int8: the codebook entry nearest to v (the upper one wins exact ties). */
function bestIndex(v: number): number {
  const val = IQ4NL_VALUES;
  if (v <= val[0]) return 0;
  if (v >= val[15]) return 15;
  let ml = 0;
  let mu = 15;
  while (mu - ml > 1) {
    const mav = (ml + mu) >> 1;
    if (v < val[mav]) mu = mav;
    else ml = mav;
  }
  return fr(v - val[mu - 1]) < fr(val[mu] - v) ? mu - 1 : mu;
}

/**
 * quantize_row_iq4_nl_ref → quantize_row_iq4_nl_impl(32, 32, …, weights NULL, ntry −1):
 * weights w = x², first scale d = max/−127 (max: signed element of largest magnitude), nearest
 * codebook entry per value, then the weighted least-squares refit d = Σwqx / Σwq²; the codes stay
 * those of the first scale (ntry −1 skips both the scale search and the re-mapping).
 * Blocks with max|x| < 1e-15 (GROUP_MAX_EPS) get d = 0; their codes, which ggml leaves as
 * whatever its scratch held, are zero here.
 */
function quantizeIq4nl(x: ArrayLike<number>, xOff: number, dst: Uint8Array, off: number, codes: Int32Array): boolean {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < QK; j++) {
    const v = x[xOff + j];
    if (Math.abs(v) > amax) {
      amax = Math.abs(v);
      max = v;
    }
  }
  if (amax < fr(1e-15)) {
    codes.fill(0);
    return writeF16(dst, off, 0);
  }
  const id = fr(1 / fr(max / IQ4NL_VALUES[0]));
  let sumqx = 0;
  let sumq2 = 0;
  for (let j = 0; j < QK; j++) {
    const v = x[xOff + j];
    const l = bestIndex(fr(id * v));
    codes[j] = l;
    const q = IQ4NL_VALUES[l];
    const wq = fr(fr(v * v) * q);
    sumqx = fr(sumqx + fr(wq * v));
    sumq2 = fr(sumq2 + fr(wq * q));
  }
  return writeF16(dst, off, fr(sumqx / sumq2));
}

/**
 * quantize_row_q8_0 / quantize_row_q8_1 for one block: d = amax/127, q = x·id rounded, with
 * id and the rounding of `path` (ref: 1/d and roundf; x86: 127/amax and ties to even); q8_1 also
 * stores s = d·Σq (d before its fp16 rounding), which vec_dot multiplies with the other operand's
 * minimum. Used both for the q8_0 cache type and for the query side of every vec_dot. Returns
 * false when d or s overflows fp16.
 */
export function quantizeQ8Block(kind: Q8Type, x: ArrayLike<number>, xOff: number, dst: Uint8Array, off: number, path: Q8Path = 'ref'): boolean {
  let amax = 0;
  for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[xOff + j]));
  const d = fr(amax / 127);
  let id: number;
  if (path === 'ref') id = d ? fr(1 / d) : 0;
  else id = amax !== 0 ? fr(127 / amax) : 0;
  const round = path === 'ref' ? roundf : roundEven;
  let ok = writeF16(dst, off, d);
  const qs = off + (kind === 'q8_0' ? 2 : 4);
  let sum = 0;
  for (let j = 0; j < QK; j++) {
    const q = round(fr(x[xOff + j] * id));
    dst[qs + j] = q & 0xff;
    sum += q;
  }
  if (kind === 'q8_1') ok = writeF16(dst, off + 2, fr(sum * d)) && ok;
  return ok;
}

/** dequantize_row_<type> for one block: out[oOff + j] = level_j·d (+ m). */
export function dequantizeBlock(type: GgmlBlockType, src: Uint8Array, off: number, out: Float32Array, oOff: number): void {
  const f = BLOCK_FORMATS[type];
  const codes = codeScratch;
  blockCodes(type, src, off, codes);
  const d = readF16(src, off);
  const levels = f.levels;
  if (f.hasMin) {
    const m = readF16(src, off + 2);
    for (let j = 0; j < QK; j++) out[oOff + j] = fr(levels[codes[j]] * d) + m;
  } else {
    for (let j = 0; j < QK; j++) out[oOff + j] = levels[codes[j]] * d;
  }
}

/** The 32 levels (see BlockFormat.levels) of one block, the integers vec_dot multiplies. */
export function blockLevels(type: GgmlBlockType, src: Uint8Array, off: number, levels: Int32Array, lOff: number): void {
  const table = BLOCK_FORMATS[type].levels;
  const codes = codeScratch;
  blockCodes(type, src, off, codes);
  for (let j = 0; j < QK; j++) levels[lOff + j] = table[codes[j]];
}

/** The 32 int8 values of a q8_0/q8_1 block. */
export function q8Levels(kind: Q8Type, src: Uint8Array, off: number, levels: Int32Array, lOff: number): void {
  const qs = off + (kind === 'q8_0' ? 2 : 4);
  for (let j = 0; j < QK; j++) levels[lOff + j] = (src[qs + j] << 24) >> 24;
}

/**
 * One float32 fused multiply-add, fmaf(a, b, c), for a·b exact in double (a float, b an integer
 * below 2^29): the double sum is rounded once more to float, which differs from the hardware
 * fma only when that sum is inexact and lands exactly on a float tie (about 2^-29 of cases).
 */
function fmaf(a: number, b: number, c: number): number {
  return fr(a * b + c);
}

/** hsum_float_8: (l0+l4 + l2+l6) + (l1+l5 + l3+l7), as the SSE shuffles pair them. */
function hsum8(l: Float32Array): number {
  return fr(fr(fr(l[0] + l[4]) + fr(l[2] + l[6])) + fr(fr(l[1] + l[5]) + fr(l[3] + l[7])));
}

// Float32Array lanes: every store rounds to float32, as the vector registers do.
const lanesA = new Float32Array(8);
const lanesB = new Float32Array(8);

/**
 * Adds d·(Σ of four products) into the lanes (maddubs + madd + cvt + fmadd). Lanes wholly past
 * the n real values of a zero-padded block are skipped: their products are 0 and fma(d, 0, acc)
 * is acc.
 */
function accumulateLanes(lanes: Float32Array, d: number, x: Int32Array, xOff: number, y: Int32Array, yOff: number, n: number): void {
  const nLanes = Math.min(8, (n + 3) >> 2);
  for (let k = 0, j = 0; k < nLanes; k++, j += 4) {
    const p = x[xOff + j] * y[yOff + j] + x[xOff + j + 1] * y[yOff + j + 1] + x[xOff + j + 2] * y[yOff + j + 2] + x[xOff + j + 3] * y[yOff + j + 3];
    lanes[k] = fmaf(d, p, lanes[k]);
  }
}

/**
 * ggml_vec_dot_<type>_<vec_dot_type> over nb unpacked blocks, in the x86 AVX2 kernels' float
 * order (llama.cpp's CPU build on x86, which made the golden scores): per block the integer
 * products summed in 8 lanes of 4 values, each lane fma'd with d_x·d_y into a float accumulator
 * across blocks, then a fixed horizontal sum; the _1 types add Σ m_x·s_y kept apart; iq4_nl runs
 * two accumulators over block pairs and finishes an odd last block in scalar code. The integer
 * part is exact, so this differs from the generic C loop only in float rounding (≤ ~1e-6
 * relative), and reproduces llama.cpp's x86 scores bit for bit.
 *
 * x: K levels (nb·32 from xOff·32), xd/xm its d and m per block (from xOff); y: query levels
 * and yd/ys its d and s per block (from yOff); m and s are 0 for the types without a minimum,
 * which makes their Σ m·s term an exact 0. n: values actually present (≤ nb·32; the rest are
 * zero padding on the query side, which lets their lanes be skipped).
 */
export function laneDot(
  type: GgmlBlockType,
  nb: number,
  n: number,
  x: Int32Array,
  xd: Float32Array,
  xm: Float32Array,
  xOff: number,
  y: Int32Array,
  yd: Float32Array,
  ys: Float32Array,
  yOff: number,
): number {
  for (let k = 0; k < 8; k++) lanesA[k] = 0;
  if (type === 'iq4_nl') {
    for (let k = 0; k < 8; k++) lanesB[k] = 0;
    let ib = 0;
    for (; ib + 1 < nb; ib += 2) {
      accumulateLanes(lanesA, fr(yd[yOff + ib] * xd[xOff + ib]), x, (xOff + ib) * QK, y, (yOff + ib) * QK, n - ib * QK);
      accumulateLanes(lanesB, fr(yd[yOff + ib + 1] * xd[xOff + ib + 1]), x, (xOff + ib + 1) * QK, y, (yOff + ib + 1) * QK, n - (ib + 1) * QK);
    }
    for (let k = 0; k < 8; k++) lanesA[k] += lanesB[k];
    let sumf = hsum8(lanesA);
    if (ib < nb) {
      let sumi = 0;
      const m = Math.min(QK, n - ib * QK);
      for (let j = 0, xo = (xOff + ib) * QK, yo = (yOff + ib) * QK; j < m; j++) sumi += x[xo + j] * y[yo + j];
      sumf = fmaf(fr(yd[yOff + ib] * xd[xOff + ib]), sumi, sumf);
    }
    return sumf;
  }
  let summs = 0;
  for (let ib = 0; ib < nb; ib++) {
    accumulateLanes(lanesA, fr(xd[xOff + ib] * yd[yOff + ib]), x, (xOff + ib) * QK, y, (yOff + ib) * QK, n - ib * QK);
    summs = fr(summs + fr(xm[xOff + ib] * ys[yOff + ib]));
  }
  return fr(hsum8(lanesA) + summs);
}

let dotScratch = { x: new Int32Array(0), xd: new Float32Array(0), xm: new Float32Array(0), y: new Int32Array(0), yd: new Float32Array(0), ys: new Float32Array(0) };

/**
 * The vec_dot of nb consecutive blocks of `type` (x, ggml layout) with nb consecutive blocks of
 * its vec_dot_type (q), as llama.cpp's CPU attention computes q·k.
 */
export function vecDot(type: GgmlBlockType, x: Uint8Array, xOff: number, q: Uint8Array, qOff: number, nb: number): number {
  const f = BLOCK_FORMATS[type];
  const qBytes = Q8_BYTES[f.vecDotType];
  if (dotScratch.xd.length < nb) {
    dotScratch = { x: new Int32Array(nb * QK), xd: new Float32Array(nb), xm: new Float32Array(nb), y: new Int32Array(nb * QK), yd: new Float32Array(nb), ys: new Float32Array(nb) };
  }
  const s = dotScratch;
  for (let b = 0; b < nb; b++) {
    const xo = xOff + b * f.bytes;
    const qo = qOff + b * qBytes;
    blockLevels(type, x, xo, s.x, b * QK);
    s.xd[b] = readF16(x, xo);
    s.xm[b] = f.hasMin ? readF16(x, xo + 2) : 0;
    q8Levels(f.vecDotType, q, qo, s.y, b * QK);
    s.yd[b] = readF16(q, qo);
    s.ys[b] = f.vecDotType === 'q8_1' ? readF16(q, qo + 2) : 0;
  }
  return laneDot(type, nb, nb * QK, s.x, s.xd, s.xm, 0, s.y, s.yd, s.ys, 0);
}
