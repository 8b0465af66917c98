// llama.cpp's weight block formats (ggml-quants.c), in plain TypeScript: the 32-value types
// (q4_0 … q8_0, iq4_nl), the 256-value K-quant super-blocks (q2_K … q6_K) and iq4_xs; their
// dequantization (bit-exact with dequantize_row_<type>), the activation quantizers the CPU
// matmul applies first (q8_0/q8_1 with the x86 rule, q8_K), and their integer dot products.
// This is the reference the WASM kernels (assembly/quant.ts) are checked against.
//
// Every block is read through one shape: integer levels L (the values the dot product
// multiplies), an integer scale per sub-block s, for q2_K/q4_K/q5_K an integer min per
// sub-block m, and the float fields d, dmin (or, for q4_1/q5_1, a float minimum). Then
//   value = (d·s)·L − dmin·m     (q4_1/q5_1: L·d + min)
// which is each dequantize_row_<type>'s own float order (with s = 1 for the 32-value types).
import { f16Table } from './f16.js';
import { blockCodes, BLOCK_FORMATS, IQ4NL_VALUES, quantizeQ8Block, type GgmlBlockType } from './ggml-blocks.js';

export type QuantWeightType = 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q8_0' | 'iq4_nl' | 'q2_K' | 'q3_K' | 'q4_K' | 'q5_K' | 'q6_K' | 'iq4_xs';

/** What llama.cpp converts activations to before multiplying with a weight type (vec_dot_type). */
export type ActivationType = 'q8_0' | 'q8_1' | 'q8_K';

export interface QuantFormat {
  readonly type: QuantWeightType;
  /** ggml type id (ggml.h). */
  readonly ggmlId: number;
  /** Values per block (32, or QK_K = 256 for the super-block types). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly bytes: number;
  /** Values that share one integer scale. */
  readonly subBlock: number;
  readonly vecDotType: ActivationType;
  /** Byte offset of the fp16 d. */
  readonly dOffset: number;
  /** Byte offset of the fp16 dmin of the integer-min K-quants (q2_K, q4_K, q5_K), else −1. */
  readonly dminOffset: number;
  /** Byte offset of the fp16 float minimum of q4_1/q5_1, else −1. */
  readonly minOffset: number;
}

export const QK_K = 256;

const fmt = (type: QuantWeightType, ggmlId: number, blockSize: number, bytes: number, subBlock: number, vecDotType: ActivationType, dOffset: number, dminOffset = -1, minOffset = -1): QuantFormat => ({
  type, ggmlId, blockSize, bytes, subBlock, vecDotType, dOffset, dminOffset, minOffset,
});

export const QUANT_FORMATS: Readonly<Record<QuantWeightType, QuantFormat>> = {
  q4_0: fmt('q4_0', 2, 32, 18, 32, 'q8_0', 0),
  q4_1: fmt('q4_1', 3, 32, 20, 32, 'q8_1', 0, -1, 2),
  q5_0: fmt('q5_0', 6, 32, 22, 32, 'q8_0', 0),
  q5_1: fmt('q5_1', 7, 32, 24, 32, 'q8_1', 0, -1, 2),
  q8_0: fmt('q8_0', 8, 32, 34, 32, 'q8_0', 0),
  iq4_nl: fmt('iq4_nl', 20, 32, 18, 32, 'q8_0', 0),
  q2_K: fmt('q2_K', 10, QK_K, 84, 16, 'q8_K', 80, 82),
  q3_K: fmt('q3_K', 11, QK_K, 110, 16, 'q8_K', 108),
  q4_K: fmt('q4_K', 12, QK_K, 144, 32, 'q8_K', 0, 2),
  q5_K: fmt('q5_K', 13, QK_K, 176, 32, 'q8_K', 0, 2),
  q6_K: fmt('q6_K', 14, QK_K, 210, 16, 'q8_K', 208),
  iq4_xs: fmt('iq4_xs', 23, QK_K, 136, 32, 'q8_K', 0),
};

export const QUANT_WEIGHT_TYPES = Object.keys(QUANT_FORMATS) as QuantWeightType[];

export function isQuantWeightType(t: string): t is QuantWeightType {
  return Object.hasOwn(QUANT_FORMATS, t);
}

/** Bytes of one row of `cols` values (cols a multiple of the block size). */
export function quantRowBytes(type: QuantWeightType, cols: number): number {
  const f = QUANT_FORMATS[type];
  if (cols % f.blockSize !== 0) throw new RangeError(`${type} rows need a multiple of ${f.blockSize} values, got ${cols}`);
  return (cols / f.blockSize) * f.bytes;
}

const fr = Math.fround;

function f16(src: Uint8Array, off: number): number {
  return f16Table[src[off] | (src[off + 1] << 8)];
}

/** One block read as levels, scales and mins (see the top of the file). */
export interface UnpackedBlock {
  /** blockSize integer levels. */
  readonly levels: Int32Array;
  /** One integer scale per sub-block. */
  readonly scales: Int32Array;
  /** One integer min per sub-block (zeros where the type has none). */
  readonly mins: Int32Array;
  d: number;
  /** dmin (integer-min K-quants) or the float minimum (q4_1/q5_1); 0 otherwise. */
  dmin: number;
}

export function unpackedBlock(): UnpackedBlock {
  return { levels: new Int32Array(QK_K), scales: new Int32Array(16), mins: new Int32Array(16), d: 0, dmin: 0 };
}

/** The 6-bit scale and min j of the 12 packed bytes of q4_K/q5_K (get_scale_min_k4). */
function scaleMinK4(src: Uint8Array, s: number, j: number, out: UnpackedBlock): void {
  if (j < 4) {
    out.scales[j] = src[s + j] & 63;
    out.mins[j] = src[s + j + 4] & 63;
  } else {
    out.scales[j] = (src[s + j + 4] & 15) | ((src[s + j - 4] >> 6) << 4);
    out.mins[j] = (src[s + j + 4] >> 4) | ((src[s + j] >> 6) << 4);
  }
}

/** Reads the block of `type` at src[off …] into `out`. */
export function unpackBlock(type: QuantWeightType, src: Uint8Array, off: number, out: UnpackedBlock): void {
  const f = QUANT_FORMATS[type];
  const L = out.levels;
  out.d = f16(src, off + f.dOffset);
  out.dmin = f.dminOffset >= 0 ? f16(src, off + f.dminOffset) : f.minOffset >= 0 ? f16(src, off + f.minOffset) : 0;
  out.mins.fill(0);
  switch (type) {
    case 'q4_0':
    case 'q4_1':
    case 'q5_0':
    case 'q5_1':
    case 'q8_0':
    case 'iq4_nl': {
      const bf = BLOCK_FORMATS[type as GgmlBlockType];
      blockCodes(type as GgmlBlockType, src, off, L);
      for (let j = 0; j < 32; j++) L[j] = bf.levels[L[j]];
      out.scales[0] = 1;
      return;
    }
    case 'q2_K': {
      for (let k = 0; k < 16; k++) {
        out.scales[k] = src[off + k] & 15;
        out.mins[k] = src[off + k] >> 4;
      }
      const qs = off + 16;
      for (let h = 0; h < 2; h++) for (let j = 0; j < 4; j++) for (let b = 0; b < 2; b++) for (let l = 0; l < 16; l++) {
        L[128 * h + 32 * j + 16 * b + l] = (src[qs + 32 * h + 16 * b + l] >> (2 * j)) & 3;
      }
      return;
    }
    case 'q3_K': {
      const sc = off + 96;
      for (let k = 0; k < 16; k++) {
        const low = k < 8 ? src[sc + k] & 15 : src[sc + k - 8] >> 4;
        const high = (src[sc + 8 + (k % 4)] >> (2 * Math.floor(k / 4))) & 3;
        out.scales[k] = (low | (high << 4)) - 32;
      }
      const qs = off + 32;
      for (let h = 0; h < 2; h++) for (let j = 0; j < 4; j++) for (let b = 0; b < 2; b++) for (let l = 0; l < 16; l++) {
        const q2 = (src[qs + 32 * h + 16 * b + l] >> (2 * j)) & 3;
        const hi = (src[off + 16 * b + l] >> (4 * h + j)) & 1;
        L[128 * h + 32 * j + 16 * b + l] = q2 - (hi ? 0 : 4);
      }
      return;
    }
    case 'q4_K':
    case 'q5_K': {
      for (let j = 0; j < 8; j++) scaleMinK4(src, off + 4, j, out);
      const five = type === 'q5_K';
      const qs = off + (five ? 48 : 16);
      for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) {
        const byte = src[qs + 32 * c + l];
        const qh = five ? src[off + 16 + l] : 0;
        L[64 * c + l] = (byte & 15) | (((qh >> (2 * c)) & 1) << 4);
        L[64 * c + 32 + l] = (byte >> 4) | (((qh >> (2 * c + 1)) & 1) << 4);
      }
      return;
    }
    case 'q6_K': {
      for (let k = 0; k < 16; k++) out.scales[k] = (src[off + 192 + k] << 24) >> 24;
      for (let h = 0; h < 2; h++) for (let l = 0; l < 32; l++) {
        const a = src[off + 64 * h + l];
        const b = src[off + 64 * h + l + 32];
        const hb = src[off + 128 + 32 * h + l];
        L[128 * h + l] = ((a & 15) | ((hb & 3) << 4)) - 32;
        L[128 * h + 32 + l] = ((b & 15) | (((hb >> 2) & 3) << 4)) - 32;
        L[128 * h + 64 + l] = ((a >> 4) | (((hb >> 4) & 3) << 4)) - 32;
        L[128 * h + 96 + l] = ((b >> 4) | (((hb >> 6) & 3) << 4)) - 32;
      }
      return;
    }
    case 'iq4_xs': {
      const sh = src[off + 2] | (src[off + 3] << 8);
      for (let ib = 0; ib < 8; ib++) {
        const ls = ((src[off + 4 + (ib >> 1)] >> (4 * (ib & 1))) & 15) | (((sh >> (2 * ib)) & 3) << 4);
        out.scales[ib] = ls - 32;
        for (let j = 0; j < 16; j++) {
          const byte = src[off + 8 + 16 * ib + j];
          L[32 * ib + j] = IQ4NL_VALUES[byte & 15];
          L[32 * ib + 16 + j] = IQ4NL_VALUES[byte >> 4];
        }
      }
      return;
    }
  }
}

const scratch = unpackedBlock();

/**
 * dequantize_row_<type>: `n` values (whole blocks) from src[off …] into out[oOff …], bit-exact
 * (each product and sum rounded to float32 in ggml's order).
 */
export function dequantizeRow(type: QuantWeightType, src: Uint8Array, off: number, n: number, out: Float32Array, oOff: number): void {
  const f = QUANT_FORMATS[type];
  if (n % f.blockSize !== 0) throw new RangeError(`${type}: ${n} values are not whole ${f.blockSize}-value blocks`);
  const u = scratch;
  for (let b = 0; b < n / f.blockSize; b++) {
    unpackBlock(type, src, off + b * f.bytes, u);
    const o = oOff + b * f.blockSize;
    if (f.minOffset >= 0) {
      for (let j = 0; j < f.blockSize; j++) out[o + j] = fr(u.levels[j] * u.d) + u.dmin;
      continue;
    }
    for (let k = 0; k < f.blockSize / f.subBlock; k++) {
      const dl = fr(u.d * u.scales[k]);
      const ml = fr(u.dmin * u.mins[k]);
      for (let j = k * f.subBlock; j < (k + 1) * f.subBlock; j++) out[o + j] = f.dminOffset >= 0 ? fr(dl * u.levels[j]) - ml : dl * u.levels[j];
    }
  }
}

// ---- activations ----

/** Bytes of one ggml block of an activation type, and its values. */
export const ACTIVATION_FORMATS: Readonly<Record<ActivationType, { readonly blockSize: number; readonly bytes: number }>> = {
  q8_0: { blockSize: 32, bytes: 34 },
  q8_1: { blockSize: 32, bytes: 36 },
  q8_K: { blockSize: QK_K, bytes: 4 + QK_K + 2 * 16 },
};

/** C's nearest_int for |x| < 2^22: round half to even. */
function nearestInt(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/**
 * quantize_row_q8_K_ref for one 256-value block of x into dst[off …] (float32 d, int8 qs[256],
 * int16 bsums[16]): max = the signed value of largest magnitude (the first on ties),
 * iscale = −127/max, q = nearest(iscale·x) capped at 127, d = 1/iscale. Returns false when the
 * block holds an inf or NaN (its bytes are then meaningless).
 */
export function quantizeQ8KBlock(x: ArrayLike<number>, xOff: number, dst: Uint8Array, off: number): boolean {
  let amax = 0;
  let max = 0;
  let finite = true;
  for (let j = 0; j < QK_K; j++) {
    const v = x[xOff + j];
    if (!Number.isFinite(v)) finite = false;
    const a = Math.abs(v);
    if (a > amax) {
      amax = a;
      max = v;
    }
  }
  const view = new DataView(dst.buffer, dst.byteOffset + off, ACTIVATION_FORMATS.q8_K.bytes);
  if (amax === 0) {
    dst.fill(0, off, off + ACTIVATION_FORMATS.q8_K.bytes);
    return finite;
  }
  const iscale = fr(-127 / max);
  for (let k = 0; k < 16; k++) {
    let sum = 0;
    for (let l = 0; l < 16; l++) {
      const q = Math.min(127, nearestInt(fr(iscale * x[xOff + 16 * k + l])));
      dst[off + 4 + 16 * k + l] = q & 0xff;
      sum += q;
    }
    view.setInt16(4 + QK_K + 2 * k, sum, true);
  }
  view.setFloat32(0, fr(1 / iscale), true);
  return finite;
}

/**
 * One activation row of n values as llama.cpp's CPU matmul converts it for a weight type:
 * q8_0/q8_1 with the x86 from_float (127/amax, ties to even), q8_K with quantize_row_q8_K_ref.
 * Returns the ggml bytes; throws when a block is not representable (inf, NaN, or a q8_0/q8_1
 * scale beyond fp16).
 */
export function quantizeActivationRow(type: ActivationType, x: ArrayLike<number>, xOff: number, n: number, dst?: Uint8Array, dOff = 0): Uint8Array {
  const a = ACTIVATION_FORMATS[type];
  if (n % a.blockSize !== 0) throw new RangeError(`${type} activations need a multiple of ${a.blockSize} values, got ${n}`);
  const out = dst ?? new Uint8Array((n / a.blockSize) * a.bytes);
  for (let b = 0; b < n / a.blockSize; b++) {
    const ok = type === 'q8_K' ? quantizeQ8KBlock(x, xOff + b * QK_K, out, dOff + b * a.bytes) : quantizeQ8Block(type, x, xOff + b * 32, out, dOff + b * a.bytes, 'x86');
    if (!ok) throw new RangeError(`matmul: activation block ${b} is not representable in ${type} (|x| too large, inf or NaN)`);
  }
  return out;
}

/** An activation row decoded from its ggml bytes: levels, and per block d (and s or bsums). */
export interface ActivationRow {
  readonly levels: Int32Array;
  readonly d: Float32Array;
  /** q8_1: the fp16 s = d·Σq per block; q8_K: the 16 bsums per block; else empty. */
  readonly extra: Float32Array | Int32Array;
}

export function decodeActivationRow(type: ActivationType, src: Uint8Array, off: number, n: number): ActivationRow {
  const a = ACTIVATION_FORMATS[type];
  const nb = n / a.blockSize;
  const levels = new Int32Array(n);
  const d = new Float32Array(nb);
  const view = new DataView(src.buffer, src.byteOffset + off);
  if (type === 'q8_K') {
    const bsums = new Int32Array(nb * 16);
    for (let b = 0; b < nb; b++) {
      const o = b * a.bytes;
      d[b] = view.getFloat32(o, true);
      for (let j = 0; j < QK_K; j++) levels[b * QK_K + j] = view.getInt8(o + 4 + j);
      for (let k = 0; k < 16; k++) bsums[b * 16 + k] = view.getInt16(o + 4 + QK_K + 2 * k, true);
    }
    return { levels, d, extra: bsums };
  }
  const s = new Float32Array(type === 'q8_1' ? nb : 0);
  const qs = type === 'q8_1' ? 4 : 2;
  for (let b = 0; b < nb; b++) {
    const o = off + b * a.bytes;
    d[b] = f16(src, o);
    if (type === 'q8_1') s[b] = f16(src, o + 2);
    for (let j = 0; j < 32; j++) levels[b * 32 + j] = (src[o + qs + j] << 24) >> 24;
  }
  return { levels, d, extra: s };
}

// ---- dot products ----

/**
 * Σ over blocks of one weight row (src[off …], cols values) · one activation row of its
 * vec_dot_type, in the order the WASM kernels use, per block b:
 *   t = (d_w·d_a)·isum  [− (dmin_w·d_a)·msum]  [+ min_w·s_a],   sum += t
 * with isum = Σ_k s_k·Σ_{i∈k} L_i·q_i and msum = Σ_k m_k·bsum_k exact integers (converted to
 * float32 once) and every float operation rounded to float32. llama.cpp's kernels group the same
 * terms differently (8-lane partial sums), so it agrees with them to float rounding only.
 */
export function vecDotRow(type: QuantWeightType, src: Uint8Array, off: number, cols: number, act: ActivationRow, u: UnpackedBlock = scratch): number {
  const f = QUANT_FORMATS[type];
  const nb = cols / f.blockSize;
  const nsub = f.blockSize / f.subBlock;
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    unpackBlock(type, src, off + b * f.bytes, u);
    sum = fr(sum + blockTerm(f, u, act, b, nsub));
  }
  return sum;
}

/** The float term of block b (see vecDotRow) for an unpacked weight block. */
export function blockTerm(f: QuantFormat, u: UnpackedBlock, act: ActivationRow, b: number, nsub: number): number {
  const base = b * f.blockSize;
  let isum = 0;
  for (let k = 0; k < nsub; k++) {
    let p = 0;
    for (let j = k * f.subBlock; j < (k + 1) * f.subBlock; j++) p += u.levels[j] * act.levels[base + j];
    isum += u.scales[k] * p;
  }
  const da = act.d[b];
  let t = fr(fr(u.d * da) * fr(isum));
  if (f.dminOffset >= 0) {
    const bs = act.extra as Int32Array;
    const per = f.subBlock / 16; // bsums cover 16 values
    let msum = 0;
    for (let k = 0; k < nsub; k++) {
      let s = 0;
      for (let i = 0; i < per; i++) s += bs[b * 16 + k * per + i];
      msum += u.mins[k] * s;
    }
    t = fr(t - fr(fr(u.dmin * da) * msum));
  } else if (f.minOffset >= 0) {
    t = fr(t + fr(u.dmin * (act.extra as Float32Array)[b]));
  }
  return t;
}
