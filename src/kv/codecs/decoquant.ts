/**
 * DecoQuant (methods.md §1; Liu et al., ACL 2024): decompose each block of cached K or V with a
 * Matrix Product Operator, quantize the large ("central") tensor to B bits, keep the small
 * tensors in fp16. No calibration.
 *
 * Spec: `decoquant[:B][,c=C][,l=L][,path=a|b][,n=N][,group=G][,basis=layer|head][,mode=sym|asym]
 * [,dot=int|f32][,kernel=wasm|ts]` B ∈ {2, 4, 8} (default 4), C = 16, L = 1024, path a, n = 2.
 * Canonical form `decoquant:4,c=16,l=1024` (path A), `decoquant:4,path=b,l=1024` (path B).
 *
 * Streaming (§1.5): new rows join an fp16 tail; when it holds L tokens they are encoded together
 * as one block (own decomposition, own small tensors: §1.5's "most natural reading") and the tail
 * empties. A bulk append goes through the same tail, so streaming = bulk bit for bit, and a block
 * always encodes the fp16-rounded rows. With ctx < L nothing is ever encoded: the cache is the
 * fp16 tail (16 bits/value); `l=64` makes short contexts use the method. A block's basis is
 * computed from all L of its rows, so within a prefill block a token's stored form depends on
 * later tokens of the same block (as in the paper's offline prefill encoding).
 *
 * Path A (default, §1.3 `KVStates`, §1.8): every token row (nKvHeads·headDim channels,
 * head-major) is cut into C-wide chunks; C must divide the row width (C > headDim lets a chunk
 * span heads). The block's chunks form A (m × C, m = L·width/C), decomposed exactly:
 *   n = 2: T_L = U·Σ^{1/2} (m × r), T_S = Σ^{1/2}·Vᵀ (r × C), r = min(m, C), from the eigen-
 *          decomposition of the C×C Gram matrix AᵀA (§1.8); directions with σ_k ≤ 1e-6·σ_0 are
 *          dropped (zero in both factors).
 *   n ≥ 3: general MPO (kv/mpo.ts) of A with the chunk-row axis on the central tensor
 *          k0 = ⌊(n−1)/2⌋: row factors [1…, m, …1], column factors: C = c_1·…·c_{n−1} split
 *          as evenly as C's prime factors allow (factorC), the first k0 on auxiliary tensors
 *          left of the centre, the rest right. Each chunk, seen as a c_left × c_right matrix,
 *          is left·Cent·right with the auxiliaries contracted into left (c_left × d_l) and
 *          right (d_r × c_right): a Kronecker-structured basis instead of n = 2's full C×C one.
 *          Gauge: balanced (√Λ on both sides of every bond; for n = 2 exactly T_L/T_S above).
 *          [derived: the paper gives no n ≥ 3 shapes; this keeps the per-token scoring cost of
 *          n = 2.] Consequence worth knowing: in this gauge the central tensor depends only on
 *          the two cuts next to it, so n = 4, 5 quantize the same tensor as n = 3 with the same
 *          c_left | c_right split (C = 16: 4 | 4 for n = 3, 4 | 2·2 for n = 4, 2·2 | 2·2 for
 *          n = 5) and differ only in how the fp16 auxiliaries are factored. Measured: n = 3 has
 *          slightly higher error than n = 2 on gaussian+outlier rows, but 32 fp16 auxiliary
 *          entries per block instead of 256.
 *   The central tensor is quantized symmetric absmax per token over the whole row (all chunks,
 *   all heads: §1.3), fp16 scale; the auxiliaries (T_S for n = 2) are stored fp16.
 * Path B (`path=b`, §1.3 `W8A8LinearMPO`): thin SVD of the block transposed, Yᵀ (width × L) =
 *   U Σ Vᵀ, r = min(width, L); T_L = U·Σ^{1/2} (width × r) quantized per row = per channel (fp16
 *   scale per channel), T_S = Σ^{1/2}·Vᵀ (r × L) fp16. T_S is as large as the block in fp16 once
 *   L ≥ width, so path B only compresses when L ≪ width (§1.9).
 *
 * Options beyond the paper, all off by default:
 *   group=G     one scale per G consecutive quantized coefficients instead of one per row
 *               (path A: G must divide the token row of the central tensor; path B: G must
 *               divide r, the channel's row of T_L).
 *   basis=head  path A: one decomposition per KV head per block (chunks of that head only);
 *               C must divide headDim. Default: one per layer (all heads), as the paper.
 *   mode=asym   asymmetric min/max quantization (fp16 scale and fp16 zero point per group),
 *               codes 0…2^B−1, instead of symmetric absmax with codes −(2^(B−1)−1)…2^(B−1)−1.
 *
 * Attention never reconstructs K or V (§1.6, derived kernel): scores() maps each query chunk to
 * the rotated domain once per block (q' = leftᵀ·q·rightᵀ; n = 2: q' = T_S·q) and dots it with the
 * dequantized codes; accumulate() sums weights × dequantized codes in the rotated domain and maps
 * the sum back once per block. Path B: q' = deq(T_L)ᵀ q per block, then per token q'·T_S[:, t].
 * decode() reconstructs, for tests.
 *
 * Kernels (issue 5): codes, scales, zero points, the tail and Path B's T_S live in the WASM heap
 * (owned by the codec, so a dropped cache frees them) and attention runs on the SIMD kernels of
 * assembly/attn-decoquant.ts; where the heap has no room (wasm32 stops at 4 GiB) they are
 * ordinary arrays and attention takes the plain-TS paths here, which are the kernels' twins:
 * the same formulas in the same order, bit-identical (test/attention-wasm-dq-mx.test.ts).
 * `kernel=ts` asks for that path (reference, benchmarks). What each computes:
 *   Path A scores (dot=int, default): per piece (a run of the head's central row under one
 *     scale group) the rotated query is quantized to 31-bit integers, Q = round(q'/sq),
 *     sq = max|q'|/(2^30 − 1), and dotted with the codes in the integer domain (design.md: stay
 *     in integers, apply scales after each group's sum): s·(sq·(Σ code·Q − offset·Σ Q)) + z·Σ q'
 *     per piece, in f64. The kernels carry Q as two i16 planes (two i16 dot products per code,
 *     no more bytes read). One i16 plane (2^−16 of the largest coefficient) is not enough: the
 *     rotated coefficients span orders of magnitude (√σ_k), and asym codes do not cancel, so
 *     scores moved by up to 2·10^−4 of their size; at 31 bits the rounding (2^−31) is far below
 *     f32's (scores agree with dot=f32 to ~3·10^−8). `lowkv ppl` on lowkv-tiny-hd64 (WikiText-2,
 *     3 chunks, the same spec for K and V), Q / dot=f32 / before the kernels (f64 sums):
 *     decoquant:4,l=64 278.998 / 279.248 / 279.288; :8 277.138 / 277.174 / 277.141; :2 314.229 /
 *     314.283 / 314.356. No direction: a last-bit change in one layer's attention flips some
 *     code roundings of the K/V rows appended later, so changes of this size are noise.
 *     dot=f32 keeps the float query (x̂·q' in f64, plain TS only).
 *   Path A accumulate: w·x̂ summed in f32 per coefficient in token order, then rotated back.
 *   fp16 parts (tail rows; Path B's T_S): f32 products and sums in a fixed order (laneDot,
 *     f16Axpy below).
 *   Per block, the query rotation and its quantization (and accumulate's rotation back) run in
 *   TS: negligible at L = 1024, but at l=64 they cost about as much as the kernels themselves.
 *
 * Bytes (exact): ⌈codes·B/8⌉ + 2 per fp16 scale (and zero point, asym) + 2 per fp16 auxiliary
 * entry + 2 per tail value. Path A, n = 2, per block: L·width·B/8 + L·(width/G)·2 + bases·r·C·2
 * (bases = 1, or nKvHeads with basis=head). Bits/value on encoded tokens:
 *   B + 16/width + 16·bases·r·C/(L·width) (+16/width again with mode=asym; 16/G instead of
 *   16/width with group=G). decoquant:4 at L = 1024, C = 16: 4 + 16/width + 4/width → 4.625 for
 *   width 32 (stories260K), 4.04 for width 512.
 * Path B per block: width·r·B/8 + width·(r/G)·2 + r·L·2.
 *
 * Error: tail values carry fp16 rounding only (2^−11 relative). An encoded value's error is
 * ΔT_L·T_S per chunk with |ΔT_L| ≤ s_t/2 per coefficient, s_t = max|row_t|/(2^(B−1)−1), so
 * ‖x̂_t − x_t‖ ≤ √width·(s_t/2)·√σ_0 (‖T_S‖₂ = √σ_0): data-dependent, smaller when the outliers
 * move into T_S. test/kv-decoquant.test.ts checks this bound token by token (n = 2) and pins the
 * conformance errors per spec and head_dim. Without quantization the decomposition is exact:
 * tested on decomposeChunks and kv/mpo.ts directly (no unquantized codec mode is offered).
 */
import { f16Table, f32ToF16 } from '../../numeric/f16.js';
import { getCode, packedWords, setCode } from '../../numeric/bitpack.js';
import { svd, symmetricEigen } from '../../numeric/linalg.js';
import { assertFinite, CodecSpecError, type CodecContext, type CodecFactory, type KvCodec, type ParsedSpec } from '../codec.js';
import { fullBondDims, mpoDecompose } from '../mpo.js';
import { wasmHeap, type WasmHeap } from '../../kernels/wasm/runtime.js';
import { heapStorageWanted, scratchParts } from './attn-wasm.js';

const F16_MAX = 65504;
const ONE = Float64Array.of(1);
/** Directions whose singular value is at most this fraction of the largest are dropped (§1.8). */
const RANK_TOL = 1e-6;

interface DecoQuantOptions {
  readonly bits: number;
  readonly path: 'a' | 'b';
  readonly c: number;
  readonly l: number;
  readonly n: number;
  /** Coefficients per scale; undefined: the whole quantized row. */
  readonly group: number | undefined;
  readonly basis: 'layer' | 'head';
  readonly mode: 'sym' | 'asym';
  /** Path A scores: 31-bit integer query (integer dot) or the float query. */
  readonly dot: 'int' | 'f32';
  /** Heap storage and the WASM kernels, or ordinary arrays and the TS twins. */
  readonly kernel: 'wasm' | 'ts';
}

/** fp16 bits of x, refusing values the format would turn into ±Inf. */
function f16Checked(x: number, what: string): number {
  const h = f32ToF16(x);
  if (!Number.isFinite(f16Table[h])) throw new RangeError(`decoquant: ${what} ${x} exceeds the fp16 range (largest finite ${F16_MAX})`);
  return h;
}

/** assembly/attn-decoquant.ts as the heap exports it: every pointer a byte offset in the heap. */
interface Kernels {
  dqScores(
    codes: number, rowBytes: number, bits: number, n: number, pieces: number, nPieces: number, q: number, qBytes: number, planeBytes: number, qInfo: number, nq: number,
    scales: number, zeros: number, groupsPerRow: number, offset: number, out: number, outStride: number,
  ): void;
  dqAccumulate(
    codes: number, rowBytes: number, bits: number, n: number, pieces: number, nPieces: number, w: number, wStride: number, nq: number,
    scales: number, zeros: number, groupsPerRow: number, offset: number, acc: number, accStride: number, scratch: number,
  ): void;
  dqF16Dots(out: number, outStride: number, x: number, xStride: number, nq: number, rows: number, rowStride: number, nRows: number, len: number): void;
  dqF16Axpy(out: number, outStride: number, a: number, aStride: number, nq: number, rows: number, rowStride: number, nRows: number, len: number): void;
}

interface Wasm {
  readonly heap: WasmHeap;
  readonly k: Kernels;
}

// Staging slots of the heap used within one call: the caller's q or w, its out, and scratch.
const SLOT_IN = 0;
const SLOT_OUT = 1;
const SLOT_SCRATCH = 2;

/**
 * Allocates a codec's arrays in the WASM heap, owned by the codec, or in ordinary memory when
 * there is no heap. Remembers what it took so a construction that runs out part way can free it.
 */
class Storage {
  private readonly taken: [number, object][] = [];

  constructor(readonly heap: WasmHeap | undefined) {}

  u16(n: number, owner: object): Uint16Array {
    if (!this.heap) return new Uint16Array(n);
    const a = this.heap.u16(n, owner);
    this.taken.push([a.byteOffset, owner]);
    return a;
  }

  u32(n: number, owner: object): Uint32Array {
    if (!this.heap) return new Uint32Array(n);
    const a = this.heap.u8(n * 4, owner);
    this.taken.push([a.byteOffset, owner]);
    return new Uint32Array(a.buffer, a.byteOffset, n);
  }

  release(): void {
    for (const [offset, owner] of this.taken) this.heap?.release(offset, owner);
  }
}

const lanes = new Float32Array(16);

/**
 * Σ_j x[xo + j]·f16(h[ho + j]) for j < len in dqF16Dots' f32 order: four 4-lane partial sums over
 * groups of 16 (lane k of the 16 takes j ≡ k), the remaining groups of 4 into the first vector,
 * then (A0 + A1) + (A2 + A3), the lanes (l0 + l1) + (l2 + l3), and the last len mod 4 terms.
 */
function laneDot(x: Float32Array, xo: number, h: Uint16Array, ho: number, len: number): number {
  lanes.fill(0);
  let j = 0;
  // Float32Array stores round each sum to f32; products of an f32 and an f16 are exact in f64.
  for (; j + 16 <= len; j += 16) for (let k = 0; k < 16; k++) lanes[k] += Math.fround(x[xo + j + k] * f16Table[h[ho + j + k]]);
  for (; j + 4 <= len; j += 4) for (let k = 0; k < 4; k++) lanes[k] += Math.fround(x[xo + j + k] * f16Table[h[ho + j + k]]);
  for (let k = 0; k < 4; k++) lanes[k] = Math.fround(lanes[k] + lanes[4 + k]) + Math.fround(lanes[8 + k] + lanes[12 + k]);
  let s = Math.fround(Math.fround(lanes[0] + lanes[1]) + Math.fround(lanes[2] + lanes[3]));
  for (; j < len; j++) s = Math.fround(s + Math.fround(x[xo + j] * f16Table[h[ho + j]]));
  return s;
}

/** out[oo + j] += a·f16(h[ho + j]) for j < len, product and sum rounded to f32 (dqF16Axpy). */
function f16Axpy(a: number, h: Uint16Array, ho: number, len: number, out: Float32Array, oo: number): void {
  for (let j = 0; j < len; j++) out[oo + j] += Math.fround(a * f16Table[h[ho + j]]);
}

/**
 * Largest magnitude of the integer query: 31 bits, which the kernels carry as two i16 planes
 * Q = 32768·hi + lo (hi = ⌊Q/32768⌋ ∈ [−2^15, 2^15), lo ∈ [0, 2^15)).
 */
const Q_MAX = 2 ** 30 - 1;
/** Longest piece: keeps dqScores' i32 sums below 2^31 (256 codes · 255 · 2^15 < 2^31). */
const MAX_PIECE = 256;
/** Tokens per tile of dqAccumulate (assembly/attn-decoquant.ts TILE): sizes its scratch. */
const ACC_TILE = 64;

/** A run of a head's slice of the central row under one scale group (assembly/attn-decoquant.ts). */
interface Piece {
  /** First code, counted from the token row's start. */
  readonly start: number;
  readonly len: number;
  /** Its scale group, counted from the row's first group. */
  readonly group: number;
  /** Its offset in the head's slice (and so in the rotated query). */
  readonly pos: number;
}

function splitPieces(first: number, len: number, group: number): Piece[] {
  const pieces: Piece[] = [];
  for (let e = 0; e < len; ) {
    const g = Math.floor((first + e) / group);
    const end = Math.min(len, (g + 1) * group - first, e + MAX_PIECE);
    pieces.push({ start: first + e, len: end - e, group: g, pos: e });
    e = end;
  }
  return pieces;
}

/**
 * Where the kernels keep coefficient e of a head's slice: per piece, 16-byte chunks of codes as
 * classes of 16 lanes (lane j of class k = code j·(8/bits) + k of the chunk), then the rest as is.
 */
function kernelLayout(pieces: readonly Piece[], bits: number, len: number): Int32Array {
  const at = new Int32Array(len);
  const chunk = 128 / bits;
  const classes = 8 / bits;
  for (const p of pieces) {
    const full = Math.floor(p.len / chunk) * chunk;
    for (let e = 0; e < p.len; e++) {
      const c = e - (e % chunk);
      at[p.pos + e] = e < full ? p.pos + c + ((e - c) % classes) * 16 + Math.floor((e - c) / classes) : p.pos + e;
    }
  }
  return at;
}

/** Per piece p: qi[pos …] = Q = round(q'/sq), info[io + 3p …] = [sq, Σ Q, Σ q'] with sq = max|q'|/Q_MAX. */
function quantizeQuery(qrot: Float64Array, pieces: readonly Piece[], qi: Int32Array, info: Float64Array, io: number): void {
  pieces.forEach((p, k) => {
    let amax = 0;
    for (let e = p.pos; e < p.pos + p.len; e++) amax = Math.max(amax, Math.abs(qrot[e]));
    const sq = amax / Q_MAX;
    let qsum = 0;
    let qfs = 0;
    for (let e = p.pos; e < p.pos + p.len; e++) {
      const v = sq === 0 ? 0 : Math.max(-Q_MAX, Math.min(Q_MAX, Math.round(qrot[e] / sq)));
      qi[e] = v;
      qsum += v;
      qfs += qrot[e];
    }
    info[io + 3 * k] = sq;
    info[io + 3 * k + 1] = qsum;
    info[io + 3 * k + 2] = qfs;
  });
}

/**
 * B-bit uniform quantizer with fp16 scales (and zero points, asym), codes packed LSB-first.
 * Symmetric: x̂ = (code − qmax)·s, s = max|x|/qmax, qmax = 2^(B−1) − 1 (SmoothQuant's Eq. 1).
 * Asymmetric: x̂ = code·s + z, z = fp16(min), s = (max − z)/(2^B − 1).
 */
class Quantizer {
  readonly codes: Uint32Array;
  readonly scales: Uint16Array;
  readonly zeros: Uint16Array | undefined;
  /** Code that decodes to 0 (symmetric), else 0. */
  readonly offset: number;
  private readonly top: number;

  /**
   * @param place where code i (token row after token row) is stored; the kernels want each
   *   head's codes of a block in one run (see PathACodec.headMajor).
   */
  constructor(
    readonly bits: number,
    readonly asym: boolean,
    readonly group: number,
    nCodes: number,
    storage: Storage,
    owner: object,
    private readonly place: (i: number) => number = (i) => i,
  ) {
    this.codes = storage.u32(packedWords(nCodes, bits), owner);
    this.scales = storage.u16(Math.ceil(nCodes / group), owner);
    this.zeros = asym ? storage.u16(this.scales.length, owner) : undefined;
    this.offset = asym ? 0 : 2 ** (bits - 1) - 1;
    this.top = asym ? 2 ** bits - 1 : this.offset;
  }

  /** Quantizes x[0 … len) to codes first … first+len; first and len are multiples of group. */
  encode(x: Float64Array, first: number): void {
    const { group, codes, bits, offset, top } = this;
    for (let g0 = 0; g0 < x.length; g0 += group) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = g0; i < g0 + group; i++) {
        lo = Math.min(lo, x[i]);
        hi = Math.max(hi, x[i]);
      }
      const gi = (first + g0) / group;
      let z = 0;
      let s: number;
      if (this.zeros) {
        this.zeros[gi] = f16Checked(lo, 'zero point');
        z = f16Table[this.zeros[gi]];
        s = Math.max(0, hi - z) / top;
      } else {
        s = Math.max(-lo, hi) / top;
      }
      this.scales[gi] = f16Checked(s, 'scale');
      const sv = f16Table[this.scales[gi]];
      for (let i = g0; i < g0 + group; i++) {
        // A scale that underflowed fp16 stores the group as its zero point (0 when symmetric).
        const q = sv === 0 ? 0 : Math.round((x[i] - z) / sv);
        setCode(codes, this.place(first + i), bits, Math.min(top, Math.max(-offset, q)) + offset);
      }
    }
  }

  /** Σ_{e<len} x̂[first + e]·v[vo + e]. */
  dot(first: number, len: number, v: ArrayLike<number>, vo: number): number {
    const { group, codes, bits, offset, scales, zeros } = this;
    let total = 0;
    for (let e = 0; e < len; ) {
      const gi = Math.floor((first + e) / group);
      const end = Math.min(len, (gi + 1) * group - first);
      let acc = 0;
      let vs = 0;
      for (; e < end; e++) {
        acc += (getCode(codes, this.place(first + e), bits) - offset) * v[vo + e];
        if (zeros) vs += v[vo + e];
      }
      total += f16Table[scales[gi]] * acc + (zeros ? f16Table[zeros[gi]] * vs : 0);
    }
    return total;
  }

  /** out[oo + e] += w·x̂[first + e] for e < len. */
  axpy(w: number, first: number, len: number, out: Float64Array, oo: number): void {
    const { group, codes, bits, offset, scales, zeros } = this;
    for (let e = 0; e < len; ) {
      const gi = Math.floor((first + e) / group);
      const end = Math.min(len, (gi + 1) * group - first);
      const ws = w * f16Table[scales[gi]];
      const wz = zeros ? w * f16Table[zeros[gi]] : 0;
      for (; e < end; e++) out[oo + e] += ws * (getCode(codes, this.place(first + e), bits) - offset) + wz;
    }
  }

  /**
   * A piece's share of a score in dqScores' f64 order, codes first … first+len (one group), the
   * integer query qi[qo …] and its [sq, Σ Q, Σ q'] at info[io …]: s·(sq·(Σ code·Q − offset·Σ Q)) + z·Σ q'.
   */
  pieceScore(first: number, len: number, qi: Int32Array, qo: number, info: Float64Array, io: number): number {
    const { codes, bits, zeros } = this;
    const gi = Math.floor(first / this.group);
    let isum = 0;
    for (let e = 0; e < len; e++) isum += getCode(codes, this.place(first + e), bits) * qi[qo + e];
    let c = f16Table[this.scales[gi]] * (info[io] * (isum - this.offset * info[io + 1]));
    if (zeros) c += f16Table[zeros[gi]] * info[io + 2];
    return c;
  }

  /** acc[ao + e] += w·x̂[first + e] for e < len (one group), rounded to f32 as dqAccumulate. */
  axpyF32(w: number, first: number, len: number, acc: Float32Array, ao: number): void {
    const { codes, bits, offset, zeros } = this;
    const gi = Math.floor(first / this.group);
    const ws = Math.fround(w * f16Table[this.scales[gi]]);
    const wz = zeros ? Math.fround(w * f16Table[zeros[gi]]) : 0;
    for (let e = 0; e < len; e++) {
      let term = Math.fround(ws * (getCode(codes, this.place(first + e), bits) - offset));
      if (zeros) term = Math.fround(term + wz);
      acc[ao + e] += term;
    }
  }

  /** Bytes of n codes with their scales (and zero points). */
  bytesFor(nCodes: number): number {
    return Math.ceil((nCodes * this.bits) / 8) + (nCodes / this.group) * 2 * (this.zeros ? 2 : 1);
  }
}

/**
 * The fp16 tail and block bookkeeping shared by both paths: rows wait in fp16 until L of them
 * form a block, which the subclass then encodes from those (fp16-rounded) rows.
 */
abstract class BlockCodec implements KvCodec {
  length = 0;
  protected blocks = 0;
  protected readonly width: number;
  protected readonly headDim: number;
  protected readonly L: number;
  private readonly tail: Uint16Array;
  /** Set when the arrays live in the WASM heap: attention runs on its kernels. */
  protected readonly wasm: Wasm | undefined;

  constructor(
    readonly spec: string,
    protected readonly ctx: CodecContext,
    L: number,
    storage: Storage,
  ) {
    this.width = ctx.nKvHeads * ctx.headDim;
    this.headDim = ctx.headDim;
    this.L = L;
    this.tail = storage.u16(Math.min(L, ctx.capacity) * this.width, this);
    this.wasm = storage.heap && { heap: storage.heap, k: storage.heap.kernels as unknown as Kernels };
  }

  protected get maxBlocks(): number {
    return Math.floor(this.ctx.capacity / this.L);
  }

  private get tailLength(): number {
    return this.length - this.blocks * this.L;
  }

  append(src: Float32Array, count: number): void {
    if (this.length + count > this.ctx.capacity) {
      throw new RangeError(`KV cache full: layer ${this.ctx.layer} ${this.ctx.role} holds ${this.length} of ${this.ctx.capacity} tokens, cannot append ${count}`);
    }
    const { width, tail, L } = this;
    const n = count * width;
    assertFinite(src, n, this.ctx, this.length);
    for (let i = 0; i < n; i++) {
      if (Math.abs(src[i]) > F16_MAX && !Number.isFinite(f16Table[f32ToF16(src[i])])) {
        throw new RangeError(`decoquant: value ${src[i]} in ${this.ctx.role} of layer ${this.ctx.layer} exceeds the fp16 range of the tail (largest finite ${F16_MAX})`);
      }
    }
    for (let t = 0; t < count; t++) {
      const to = this.tailLength * width;
      for (let i = 0; i < width; i++) tail[to + i] = f32ToF16(src[t * width + i]);
      this.length++;
      if (this.tailLength === L) {
        const x = new Float64Array(L * width);
        for (let i = 0; i < x.length; i++) x[i] = f16Table[tail[i]];
        this.encodeBlock(this.blocks, x);
        this.blocks++;
      }
    }
  }

  bytes(): number {
    return this.blockBytes(this.blocks) + this.tailLength * this.width * 2;
  }

  truncate(length: number): void {
    if (length < 0 || length > this.length) throw new RangeError(`cannot truncate ${this.length} tokens to ${length}`);
    if (length < this.blocks * this.L && length % this.L !== 0) {
      throw new RangeError(
        `${this.spec}: cannot truncate to ${length} tokens: tokens are encoded jointly in blocks of ${this.L}, so only a block boundary (multiple of ${this.L}) or a length of at least ${this.blocks * this.L} is possible`,
      );
    }
    this.blocks = Math.min(this.blocks, Math.floor(length / this.L));
    this.length = length;
  }

  protected checkRange(nTokens: number): void {
    if (nTokens > this.length) throw new RangeError(`asked for ${nTokens} tokens, ${this.length} stored`);
  }

  scores(head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number): void {
    this.checkRange(nTokens);
    const { L, headDim, width, tail, wasm } = this;
    const nb = Math.min(this.blocks, Math.ceil(nTokens / L));
    const t0 = this.blocks * L;
    const nTail = nTokens - t0;
    if (wasm && nq > 0 && nTokens > 0) {
      const blocksWasm = this.wasmBlocks;
      if (!blocksWasm) for (let b = 0; b < nb; b++) this.scoreBlock(b, Math.min(L, nTokens - b * L), head, q, qOffset, nq, out, outOffset + b * L, outStride);
      const span = (nq - 1) * outStride + nTokens;
      // Staged outputs keep what lies between the query rows, and the TS blocks' scores.
      const o = wasm.heap.output(out, outOffset, span, SLOT_OUT, !blocksWasm || (nq > 1 && outStride > nTokens));
      if (blocksWasm) this.scoreBlocksWasm(nb, head, q, qOffset, nq, nTokens, o, outStride);
      if (nTail > 0) {
        const qp = wasm.heap.input(q, qOffset, nq * headDim, SLOT_IN);
        wasm.k.dqF16Dots(o + t0 * 4, outStride, qp, headDim, nq, tail.byteOffset + head * headDim * 2, width, nTail, headDim);
      }
      wasm.heap.flush(out, outOffset, span, SLOT_OUT);
      return;
    }
    for (let b = 0; b < nb; b++) this.scoreBlock(b, Math.min(L, nTokens - b * L), head, q, qOffset, nq, out, outOffset + b * L, outStride);
    for (let i = 0; i < nq; i++) {
      for (let t = t0; t < nTokens; t++) out[outOffset + i * outStride + t] = laneDot(q, qOffset + i * headDim, tail, (t - t0) * width + head * headDim, headDim);
    }
  }

  accumulate(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    this.checkRange(nTokens);
    const { L, headDim, width, tail, wasm } = this;
    const nb = Math.min(this.blocks, Math.ceil(nTokens / L));
    const t0 = this.blocks * L;
    const nTail = nTokens - t0;
    if (wasm && nq > 0 && nTokens > 0) {
      const wp = wasm.heap.input(w, wOffset, (nq - 1) * wStride + nTokens, SLOT_IN);
      if (this.wasmBlocks) this.accumulateBlocksWasm(nb, head, wp, wStride, nq, nTokens, out, outOffset);
      else for (let b = 0; b < nb; b++) this.accumulateBlock(b, Math.min(L, nTokens - b * L), head, w, wOffset + b * L, wStride, nq, out, outOffset);
      if (nTail > 0) {
        const o = wasm.heap.output(out, outOffset, nq * headDim, SLOT_OUT, true);
        wasm.k.dqF16Axpy(o, headDim, wp + t0 * 4, wStride, nq, tail.byteOffset + head * headDim * 2, width, nTail, headDim);
        wasm.heap.flush(out, outOffset, nq * headDim, SLOT_OUT);
      }
      return;
    }
    for (let b = 0; b < nb; b++) this.accumulateBlock(b, Math.min(L, nTokens - b * L), head, w, wOffset + b * L, wStride, nq, out, outOffset);
    for (let i = 0; i < nq; i++) {
      for (let t = t0; t < nTokens; t++) f16Axpy(w[wOffset + i * wStride + t], tail, (t - t0) * width + head * headDim, headDim, out, outOffset + i * headDim);
    }
  }

  decode(t0: number, t1: number, out: Float32Array): void {
    this.checkRange(t1);
    const { L, width, tail } = this;
    const row = new Float64Array(width);
    for (let t = t0; t < t1; t++) {
      const b = Math.floor(t / L);
      if (b < this.blocks) {
        this.decodeRow(b, t - b * L, row);
        for (let i = 0; i < width; i++) out[(t - t0) * width + i] = row[i];
      } else {
        const to = (t - this.blocks * L) * width;
        for (let i = 0; i < width; i++) out[(t - t0) * width + i] = f16Table[tail[to + i]];
      }
    }
  }

  /** Encodes block b from its L rows (row-major, width values each). */
  protected abstract encodeBlock(b: number, x: Float64Array): void;
  protected abstract blockBytes(blocks: number): number;
  /** True when the blocks' attention runs on the kernels (else scoreBlock/accumulateBlock). */
  protected abstract readonly wasmBlocks: boolean;
  /**
   * Scores of blocks b < nb (tokens < nTokens) into the heap at byte offset o: token t of query i
   * at o + 4·(i·outStride + t).
   */
  protected abstract scoreBlocksWasm(nb: number, head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, o: number, outStride: number): void;
  /** accumulateBlock for blocks b < nb on the kernels; weights in the heap at byte offset wp. */
  protected abstract accumulateBlocksWasm(nb: number, head: number, wp: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void;
  /** Scores for tokens b·L … b·L + n − 1 into out[outOffset + i·outStride + t], t < n. */
  protected abstract scoreBlock(b: number, n: number, head: number, q: Float32Array, qOffset: number, nq: number, out: Float32Array, outOffset: number, outStride: number): void;
  /** Weighted sum of tokens b·L … b·L + n − 1, weights w[wOffset + i·wStride + t]. */
  protected abstract accumulateBlock(b: number, n: number, head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, out: Float32Array, outOffset: number): void;
  protected abstract decodeRow(b: number, t: number, out: Float64Array): void;
}

/** Path A geometry: how one decomposition (one basis) lays out its tensors. */
interface PathAShape {
  /** Chunks per token row. */
  readonly chunks: number;
  /** Rows of the decomposed chunk matrix: L × chunks per basis. */
  readonly m: number;
  readonly rowDims: readonly number[];
  readonly colDims: readonly number[];
  readonly bonds: readonly number[];
  /** Index of the central (quantized) tensor. */
  readonly k0: number;
  /** Bond dimensions left and right of the centre; central entries per chunk = dl·dr. */
  readonly dl: number;
  readonly dr: number;
  /** Chunk width split as cl (left auxiliaries) × cr (right auxiliaries). */
  readonly cl: number;
  readonly cr: number;
  /** fp16 entries of all auxiliary tensors of one basis. */
  readonly auxSize: number;
}

/** Prime factors of x, ascending, with multiplicity. */
function primeFactors(x: number): number[] {
  const primes: number[] = [];
  for (let p = 2; x > 1; p++) {
    while (x % p === 0) {
      primes.push(p);
      x /= p;
    }
  }
  return primes;
}

/** Splits c into `parts` factors ≥ 2 as evenly as its prime factors allow; undefined if impossible. */
export function factorC(c: number, parts: number): number[] | undefined {
  const primes = primeFactors(c);
  if (primes.length < parts) return undefined;
  const slots = new Array<number>(parts).fill(1);
  for (const p of primes.reverse()) {
    const k = slots.indexOf(Math.min(...slots));
    slots[k] *= p;
  }
  return slots;
}

function pathAShape(c: number, n: number, L: number, basisWidth: number): PathAShape {
  const k0 = Math.floor((n - 1) / 2);
  const factors = n === 2 ? [c] : (factorC(c, n - 1) as number[]);
  const m = (L * basisWidth) / c;
  const rowDims = new Array<number>(n).fill(1);
  rowDims[k0] = m;
  const colDims = [...factors.slice(0, k0), 1, ...factors.slice(k0)];
  const bonds = fullBondDims(rowDims, colDims);
  let auxSize = 0;
  for (let k = 0; k < n; k++) if (k !== k0) auxSize += bonds[k] * colDims[k] * bonds[k + 1];
  return {
    chunks: basisWidth / c,
    m,
    rowDims,
    colDims,
    bonds,
    k0,
    dl: bonds[k0],
    dr: bonds[k0 + 1],
    cl: factors.slice(0, k0).reduce((a, b) => a * b, 1),
    cr: factors.slice(k0).reduce((a, b) => a * b, 1),
    auxSize,
  };
}

/**
 * One block's chunk matrix A (m × c) decomposed, n = 2, by §1.8's recipe: eigen-decompose the
 * c×c Gram matrix (float64), T_S = Σ^{1/2}Vᵀ (r × c), T_L = A·V·Σ^{−1/2} (m × r) = U·Σ^{1/2}.
 * Returns the central tensor laid out [row, k] and T_S as [k, j].
 */
export function decomposeChunks(a: Float64Array, m: number, c: number): { central: Float64Array; ts: Float64Array; r: number } {
  const r = Math.min(m, c);
  const gram = new Float64Array(c * c);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < c; j++) {
      const x = a[i * c + j];
      if (x === 0) continue;
      for (let k = j; k < c; k++) gram[j * c + k] += x * a[i * c + k];
    }
  }
  for (let j = 0; j < c; j++) for (let k = 0; k < j; k++) gram[j * c + k] = gram[k * c + j];
  const { values, vectors } = symmetricEigen(gram, c);
  const sigma0 = Math.sqrt(Math.max(values[0], 0));
  const ts = new Float64Array(r * c);
  const central = new Float64Array(m * r);
  for (let k = 0; k < r; k++) {
    const sigma = Math.sqrt(Math.max(values[k], 0));
    if (!(sigma > RANK_TOL * sigma0)) continue;
    const root = Math.sqrt(sigma);
    for (let j = 0; j < c; j++) ts[k * c + j] = root * vectors[j * c + k];
    for (let i = 0; i < m; i++) {
      let s = 0;
      for (let j = 0; j < c; j++) s += a[i * c + j] * vectors[j * c + k];
      central[i * r + k] = s / root;
    }
  }
  return { central, ts, r };
}

/** Path A (and general MPO, n ≥ 2): see the module comment. */
class PathACodec extends BlockCodec {
  private readonly shape: PathAShape;
  private readonly c: number;
  private readonly bases: number;
  /** Central-tensor coefficients per token: chunks · dl · dr. */
  private readonly rowLen: number;
  private readonly quant: Quantizer;
  private readonly aux: Uint16Array;
  /** Per KV head: its slice of the central row (chunks g0 … g1), as pieces, and the kernels' layout. */
  private readonly heads: readonly { readonly first: number; readonly len: number; readonly pieces: readonly Piece[]; readonly layout: Int32Array }[];
  /** Reused per block: n = 2's decoded T_S, and a chunk's half-rotated query. */
  private readonly scratch: { readonly right: Float64Array; readonly tmp: Float64Array };
  /**
   * When no chunk straddles two heads (c divides head_dim), block b stores head h's slices of
   * its L rows together ([b][h][t][slice]), so a scores/accumulate call reads one contiguous run
   * instead of one slice per row (the MX formats measured 3–4× faster that way at 32k tokens).
   */
  private readonly headMajor: boolean;
  protected readonly wasmBlocks: boolean;

  constructor(
    spec: string,
    ctx: CodecContext,
    private readonly o: DecoQuantOptions,
    shape: PathAShape,
    storage: Storage,
  ) {
    super(spec, ctx, o.l, storage);
    this.shape = shape;
    this.c = o.c;
    this.bases = o.basis === 'head' ? ctx.nKvHeads : 1;
    const rowLen = (this.width / o.c) * shape.dl * shape.dr;
    this.rowLen = rowLen;
    this.scratch = { right: new Float64Array(shape.dr * shape.cr), tmp: new Float64Array(shape.dl * shape.cr) };
    this.headMajor = ctx.headDim % o.c === 0;
    const H = ctx.nKvHeads;
    const S = rowLen / H;
    const L = o.l;
    const place = (i: number): number => {
      const row = Math.floor(i / rowLen);
      const e = i - row * rowLen;
      const b = Math.floor(row / L);
      const h = Math.floor(e / S);
      return ((b * H + h) * L + row - b * L) * S + e - h * S;
    };
    this.quant = new Quantizer(o.bits, o.mode === 'asym', o.group ?? rowLen, this.maxBlocks * L * rowLen, storage, this, this.headMajor ? place : undefined);
    // The small factors are read once per block in TS: ordinary memory.
    this.aux = new Uint16Array(this.maxBlocks * this.bases * shape.auxSize);
    const E = shape.dl * shape.dr;
    this.heads = Array.from({ length: ctx.nKvHeads }, (_, h) => {
      const [g0, g1] = this.chunkRange(h);
      const len = (g1 - g0 + 1) * E;
      const pieces = splitPieces(g0 * E, len, this.quant.group);
      return { first: g0 * E, len, pieces, layout: kernelLayout(pieces, o.bits, len) };
    });
    // The kernels read whole bytes: every piece must start on one (always so for c = 16).
    const aligned = (this.runCodes * o.bits) % 8 === 0 && this.heads.every((h, k) => h.pieces.every((p) => ((p.start - this.runStart(k)) * o.bits) % 8 === 0));
    this.wasmBlocks = this.wasm !== undefined && o.dot === 'int' && aligned;
  }

  protected blockBytes(blocks: number): number {
    return this.quant.bytesFor(blocks * this.L * this.rowLen) + blocks * this.bases * this.shape.auxSize * 2;
  }

  protected encodeBlock(b: number, x: Float64Array): void {
    const { L, width, c, bases, shape, rowLen } = this;
    const basisWidth = width / bases;
    const E = shape.dl * shape.dr;
    const coeffs = new Float64Array(L * rowLen);
    for (let h = 0; h < bases; h++) {
      // Chunk matrix of this basis: rows (token, chunk) in order, c values each.
      const a = new Float64Array(shape.m * c);
      for (let t = 0; t < L; t++) for (let i = 0; i < basisWidth; i++) a[t * basisWidth + i] = x[t * width + h * basisWidth + i];
      const { central, aux } = this.decompose(a);
      for (let i = 0; i < aux.length; i++) this.aux[(b * bases + h) * shape.auxSize + i] = f16Checked(aux[i], 'auxiliary tensor entry');
      // Central tensor [dl, m, dr] → token-major rows, chunk g of basis h at chunk h·chunks + g.
      for (let row = 0; row < shape.m; row++) {
        const t = Math.floor(row / shape.chunks);
        const g = h * shape.chunks + (row % shape.chunks);
        for (let al = 0; al < shape.dl; al++) {
          for (let be = 0; be < shape.dr; be++) coeffs[t * rowLen + g * E + al * shape.dr + be] = central[(al * shape.m + row) * shape.dr + be];
        }
      }
    }
    for (let t = 0; t < L; t++) this.quant.encode(coeffs.subarray(t * rowLen, (t + 1) * rowLen), (b * L + t) * rowLen);
  }

  /** Central tensor [dl, m, dr] and the auxiliary tensors concatenated in order. */
  private decompose(a: Float64Array): { central: Float64Array; aux: Float64Array } {
    const { shape, c } = this;
    if (this.o.n === 2) {
      const { central, ts } = decomposeChunks(a, shape.m, c);
      return { central, aux: ts };
    }
    const mpo = mpoDecompose(a, shape.rowDims, shape.colDims, { rankTol: RANK_TOL });
    const aux = new Float64Array(shape.auxSize);
    let o = 0;
    mpo.cores.forEach((core, k) => {
      if (k === shape.k0) return;
      aux.set(core, o);
      o += core.length;
    });
    return { central: mpo.cores[shape.k0], aux };
  }

  /**
   * The auxiliaries of (block b, basis h) contracted: left (cl × dl) and right (dr × cr), so a
   * chunk is X[jl·cr + jr] = Σ left[jl, α]·Cent[α, β]·right[β, jr].
   */
  private basisMatrices(b: number, h: number): { left: Float64Array; right: Float64Array } {
    const { shape } = this;
    const { bonds, colDims, k0 } = shape;
    let o = (b * this.bases + h) * shape.auxSize;
    if (this.o.n === 2) {
      // left = [1], right = T_S itself: what the general contraction gives, without its products.
      const right = this.scratch.right;
      for (let i = 0; i < right.length; i++) right[i] = f16Table[this.aux[o + i]];
      return { left: ONE, right };
    }
    const core = (k: number): Float64Array => {
      const size = bonds[k] * colDims[k] * bonds[k + 1];
      const out = new Float64Array(size);
      for (let i = 0; i < size; i++) out[i] = f16Table[this.aux[o + i]];
      o += size;
      return out;
    };
    // left[(j_0 … j_{k0−1}), d_{k0}]: grow the prefix one core at a time.
    let left = Float64Array.of(1);
    let rows = 1;
    for (let k = 0; k < k0; k++) {
      const t = core(k);
      const dIn = bonds[k];
      const dOut = bonds[k + 1];
      const j = colDims[k];
      const next = new Float64Array(rows * j * dOut);
      for (let p = 0; p < rows; p++) for (let a = 0; a < dIn; a++) {
        const x = left[p * dIn + a];
        for (let jj = 0; jj < j; jj++) for (let d = 0; d < dOut; d++) next[(p * j + jj) * dOut + d] += x * t[(a * j + jj) * dOut + d];
      }
      left = next;
      rows *= j;
    }
    // right[d_{k0+1}, (j_{k0+1} … j_{n−1})]: acc[b0, prefix, b] from the identity.
    const dr = shape.dr;
    let right = new Float64Array(dr * dr);
    for (let i = 0; i < dr; i++) right[i * dr + i] = 1;
    let cols = 1;
    for (let k = k0 + 1; k < bonds.length - 1; k++) {
      const t = core(k);
      const dIn = bonds[k];
      const dOut = bonds[k + 1];
      const j = colDims[k];
      const next = new Float64Array(dr * cols * j * dOut);
      for (let b0 = 0; b0 < dr; b0++) for (let p = 0; p < cols; p++) for (let a = 0; a < dIn; a++) {
        const x = right[(b0 * cols + p) * dIn + a];
        if (x === 0) continue;
        for (let jj = 0; jj < j; jj++) for (let d = 0; d < dOut; d++) next[((b0 * cols + p) * j + jj) * dOut + d] += x * t[(a * j + jj) * dOut + d];
      }
      right = next;
      cols *= j;
    }
    return { left, right };
  }

  /** Chunks overlapping head h: [g0, g1]. */
  private chunkRange(head: number): [number, number] {
    const { headDim, c } = this;
    return [Math.floor((head * headDim) / c), Math.floor(((head + 1) * headDim - 1) / c)];
  }

  /** qrot ← q' = leftᵀ·q_chunk·rightᵀ per chunk of head h's slice, channels outside the head as 0. */
  private rotateQuery(basis: { left: Float64Array; right: Float64Array }, head: number, q: Float32Array, qo: number, qrot: Float64Array): void {
    const { shape, c, headDim } = this;
    const { dl, dr, cr } = shape;
    const E = dl * dr;
    const [g0, g1] = this.chunkRange(head);
    const { left, right } = basis;
    const tmp = this.scratch.tmp;
    qrot.fill(0);
    for (let g = g0; g <= g1; g++) {
      tmp.fill(0);
      for (let j = 0; j < c; j++) {
        const d = g * c + j - head * headDim;
        if (d < 0 || d >= headDim) continue;
        const x = q[qo + d];
        const jl = Math.floor(j / cr);
        const jr = j % cr;
        for (let a = 0; a < dl; a++) tmp[a * cr + jr] += left[jl * dl + a] * x;
      }
      const base = (g - g0) * E;
      for (let a = 0; a < dl; a++) {
        for (let be = 0; be < dr; be++) {
          let s = 0;
          for (let jr = 0; jr < cr; jr++) s += tmp[a * cr + jr] * right[be * cr + jr];
          qrot[base + a * dr + be] = s;
        }
      }
    }
  }

  /** out[oo + d] += (left·Z·right)[d] over head h's channels, Z = z[zo …]: back from the rotated domain. */
  private rotateBack(basis: { left: Float64Array; right: Float64Array }, head: number, z: Float32Array, zo: number, out: Float32Array, oo: number): void {
    const { shape, c, headDim } = this;
    const { dl, dr, cr } = shape;
    const E = dl * dr;
    const [g0, g1] = this.chunkRange(head);
    const { left, right } = basis;
    const tmp = this.scratch.tmp;
    for (let g = g0; g <= g1; g++) {
      const base = zo + (g - g0) * E;
      for (let a = 0; a < dl; a++) {
        for (let jr = 0; jr < cr; jr++) {
          let s = 0;
          for (let be = 0; be < dr; be++) s += z[base + a * dr + be] * right[be * cr + jr];
          tmp[a * cr + jr] = s;
        }
      }
      for (let j = 0; j < c; j++) {
        const d = g * c + j - head * headDim;
        if (d < 0 || d >= headDim) continue;
        const jl = Math.floor(j / cr);
        const jr = j % cr;
        let s = 0;
        for (let a = 0; a < dl; a++) s += left[jl * dl + a] * tmp[a * cr + jr];
        out[oo + d] += s;
      }
    }
  }

  private basisOf(b: number, head: number): { left: Float64Array; right: Float64Array } {
    return this.basisMatrices(b, this.bases === 1 ? 0 : head);
  }

  protected scoreBlock(b: number, n: number, head: number, q: Float32Array, qOffset: number, nq: number, out: Float32Array, outOffset: number, outStride: number): void {
    const { rowLen, L, quant, headDim } = this;
    const { first, len, pieces } = this.heads[head];
    const basis = this.basisOf(b, head);
    const qrot = new Float64Array(len);
    const qi = new Int32Array(len);
    const info = new Float64Array(pieces.length * 3);
    for (let i = 0; i < nq; i++) {
      this.rotateQuery(basis, head, q, qOffset + i * headDim, qrot);
      const oo = outOffset + i * outStride;
      if (this.o.dot === 'f32') {
        for (let t = 0; t < n; t++) out[oo + t] = quant.dot((b * L + t) * rowLen + first, len, qrot, 0);
        continue;
      }
      quantizeQuery(qrot, pieces, qi, info, 0);
      for (let t = 0; t < n; t++) {
        const row = (b * L + t) * rowLen;
        let total = 0;
        pieces.forEach((p, k) => (total += quant.pieceScore(row + p.start, p.len, qi, p.pos, info, 3 * k)));
        out[oo + t] = total;
      }
    }
  }

  protected accumulateBlock(b: number, n: number, head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, out: Float32Array, outOffset: number): void {
    const { rowLen, L, quant, headDim } = this;
    const { len, pieces } = this.heads[head];
    const z = new Float32Array(nq * len);
    for (let t = 0; t < n; t++) {
      const row = (b * L + t) * rowLen;
      for (const p of pieces) for (let i = 0; i < nq; i++) quant.axpyF32(w[wOffset + i * wStride + t], row + p.start, p.len, z, i * len + p.pos);
    }
    const basis = this.basisOf(b, head);
    for (let i = 0; i < nq; i++) this.rotateBack(basis, head, z, i * len, out, outOffset + i * headDim);
  }

  /** Codes per token in the run the kernels read: a head's slice (head-major) or the whole row. */
  private get runCodes(): number {
    return this.headMajor ? this.rowLen / this.ctx.nKvHeads : this.rowLen;
  }

  /** Where head h's run starts within a row's codes. */
  private runStart(head: number): number {
    return this.headMajor ? head * this.runCodes : 0;
  }

  /** Byte offset in the heap of head h's run for token 0 of block b. */
  private runAt(b: number, head: number): number {
    const { quant, L } = this;
    const first = this.headMajor ? (b * this.ctx.nKvHeads + head) * L * this.runCodes : b * L * this.rowLen;
    return quant.codes.byteOffset + (first * quant.bits) / 8;
  }

  /** The pieces of head h as dqScores/dqAccumulate read them, in the scratch at byte offset at. */
  private writePieces(heap: WasmHeap, at: number, head: number): void {
    const { pieces } = this.heads[head];
    const table = new Int32Array(heap.buffer(), at, pieces.length * 4);
    pieces.forEach((p, k) => table.set([((p.start - this.runStart(head)) * this.o.bits) / 8, p.len, p.group, p.pos], 4 * k));
  }

  protected scoreBlocksWasm(nb: number, head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, o: number, outStride: number): void {
    const { heap, k } = this.wasm as Wasm;
    const { rowLen, L, quant, headDim } = this;
    const { len, pieces, layout } = this.heads[head];
    const nP = pieces.length;
    const rowBytes = (this.runCodes * quant.bits) / 8;
    const groupsPerRow = rowLen / quant.group;
    // Per query: the hi plane, then the lo plane, each in the kernels' layout.
    const planeBytes = Math.ceil(len / 8) * 16;
    const qBytes = 2 * planeBytes;
    const [pPieces, pQ, pInfo] = scratchParts(heap, SLOT_SCRATCH, [nP * 16, nq * qBytes, nq * nP * 24]);
    this.writePieces(heap, pPieces, head);
    const q16 = new Int16Array(heap.buffer(), pQ, (nq * qBytes) / 2);
    const info = new Float64Array(heap.buffer(), pInfo, nq * nP * 3);
    const qrot = new Float64Array(len);
    const qi = new Int32Array(len);
    for (let b = 0; b < nb; b++) {
      const basis = this.basisOf(b, head);
      for (let i = 0; i < nq; i++) {
        this.rotateQuery(basis, head, q, qOffset + i * headDim, qrot);
        quantizeQuery(qrot, pieces, qi, info, i * nP * 3);
        const hi = (i * qBytes) / 2;
        const lo = hi + planeBytes / 2;
        for (let e = 0; e < len; e++) {
          const h = Math.floor(qi[e] / 32768);
          q16[hi + layout[e]] = h;
          q16[lo + layout[e]] = qi[e] - h * 32768;
        }
      }
      const row0 = b * L;
      const groups = row0 * groupsPerRow * 2;
      k.dqScores(
        this.runAt(b, head), rowBytes, quant.bits, Math.min(L, nTokens - row0), pPieces, nP, pQ, qBytes, planeBytes, pInfo, nq,
        quant.scales.byteOffset + groups, quant.zeros ? quant.zeros.byteOffset + groups : 0, groupsPerRow, quant.offset, o + row0 * 4, outStride,
      );
    }
  }

  protected accumulateBlocksWasm(nb: number, head: number, wp: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    const { heap, k } = this.wasm as Wasm;
    const { rowLen, L, quant, headDim } = this;
    const { len, pieces, layout } = this.heads[head];
    const rowBytes = (this.runCodes * quant.bits) / 8;
    const groupsPerRow = rowLen / quant.group;
    const [pPieces, pZ, pScratch] = scratchParts(heap, SLOT_SCRATCH, [pieces.length * 16, nq * len * 4, 2 * ACC_TILE * 4]);
    this.writePieces(heap, pPieces, head);
    const z = new Float32Array(heap.buffer(), pZ, nq * len);
    const zn = new Float32Array(len);
    for (let b = 0; b < nb; b++) {
      const row0 = b * L;
      const groups = row0 * groupsPerRow * 2;
      z.fill(0);
      k.dqAccumulate(
        this.runAt(b, head), rowBytes, quant.bits, Math.min(L, nTokens - row0), pPieces, pieces.length, wp + row0 * 4, wStride, nq,
        quant.scales.byteOffset + groups, quant.zeros ? quant.zeros.byteOffset + groups : 0, groupsPerRow, quant.offset, pZ, len, pScratch,
      );
      const basis = this.basisOf(b, head);
      for (let i = 0; i < nq; i++) {
        for (let e = 0; e < len; e++) zn[e] = z[i * len + layout[e]];
        this.rotateBack(basis, head, zn, 0, out, outOffset + i * headDim);
      }
    }
  }

  protected decodeRow(b: number, t: number, out: Float64Array): void {
    const { shape, c, rowLen, L, quant, bases, width } = this;
    const { dl, dr, cr } = shape;
    const E = dl * dr;
    const coeffs = new Float64Array(rowLen);
    quant.axpy(1, (b * L + t) * rowLen, rowLen, coeffs, 0);
    const chunksPerBasis = width / c / bases;
    for (let h = 0; h < bases; h++) {
      const { left, right } = this.basisMatrices(b, h);
      for (let g = h * chunksPerBasis; g < (h + 1) * chunksPerBasis; g++) {
        for (let j = 0; j < c; j++) {
          const jl = Math.floor(j / cr);
          const jr = j % cr;
          let s = 0;
          for (let a = 0; a < dl; a++) {
            let inner = 0;
            for (let be = 0; be < dr; be++) inner += coeffs[g * E + a * dr + be] * right[be * cr + jr];
            s += left[jl * dl + a] * inner;
          }
          out[g * c + j] = s;
        }
      }
    }
  }
}

/** Path B: SVD of the transposed block, T_L per-channel quantized; see the module comment. */
class PathBCodec extends BlockCodec {
  private readonly r: number;
  private readonly quant: Quantizer;
  private readonly ts: Uint16Array;
  protected readonly wasmBlocks: boolean;

  constructor(spec: string, ctx: CodecContext, o: DecoQuantOptions, storage: Storage) {
    super(spec, ctx, o.l, storage);
    this.r = Math.min(this.width, o.l);
    this.quant = new Quantizer(o.bits, o.mode === 'asym', o.group ?? this.r, this.maxBlocks * this.width * this.r, storage, this);
    this.ts = storage.u16(this.maxBlocks * this.r * o.l, this);
    this.wasmBlocks = this.wasm !== undefined;
  }

  protected blockBytes(blocks: number): number {
    return this.quant.bytesFor(blocks * this.width * this.r) + blocks * this.r * this.L * 2;
  }

  protected encodeBlock(b: number, x: Float64Array): void {
    const { L, width, r } = this;
    // Yᵀ: channels × tokens.
    const yt = new Float64Array(width * L);
    for (let t = 0; t < L; t++) for (let ch = 0; ch < width; ch++) yt[ch * L + t] = x[t * width + ch];
    const { u, s, v } = svd(yt, width, L);
    const keep = s.map((sk) => (sk > RANK_TOL * s[0] ? Math.sqrt(sk) : 0));
    for (let k = 0; k < r; k++) for (let t = 0; t < L; t++) this.ts[(b * r + k) * L + t] = f16Checked(keep[k] * v[t * r + k], 'T_S entry');
    const row = new Float64Array(r);
    for (let ch = 0; ch < width; ch++) {
      for (let k = 0; k < r; k++) row[k] = u[ch * r + k] * keep[k];
      this.quant.encode(row, (b * width + ch) * r);
    }
  }

  /**
   * a[ao + k] = f32(q'_k), q' = deq(T_L)ᵀ q over head h's channels: each code read once per query
   * and block. The T_S products that follow run in f32.
   */
  private rotateQuery(b: number, head: number, q: Float32Array, qo: number, qrot: Float64Array, a: Float32Array, ao: number): void {
    const { r, headDim, width, quant } = this;
    qrot.fill(0);
    for (let d = 0; d < headDim; d++) quant.axpy(q[qo + d], (b * width + head * headDim + d) * r, r, qrot, 0);
    a.set(qrot, ao);
  }

  /** out[outOffset + i·headDim + d] += deq(T_L)[d, :]·z_i for head h's channels, z_i = z[i·r …]. */
  private rotateBack(b: number, head: number, z: Float32Array, nq: number, out: Float32Array, outOffset: number): void {
    const { r, headDim, width, quant } = this;
    for (let i = 0; i < nq; i++) {
      for (let d = 0; d < headDim; d++) out[outOffset + i * headDim + d] += quant.dot((b * width + head * headDim + d) * r, r, z, i * r);
    }
  }

  protected scoreBlock(b: number, n: number, head: number, q: Float32Array, qOffset: number, nq: number, out: Float32Array, outOffset: number, outStride: number): void {
    const { r, L, headDim, ts } = this;
    const qrot = new Float64Array(r);
    const a = new Float32Array(r);
    for (let i = 0; i < nq; i++) {
      this.rotateQuery(b, head, q, qOffset + i * headDim, qrot, a, 0);
      const oo = outOffset + i * outStride;
      out.fill(0, oo, oo + n);
      for (let k = 0; k < r; k++) f16Axpy(a[k], ts, (b * r + k) * L, n, out, oo);
    }
  }

  protected accumulateBlock(b: number, n: number, head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, out: Float32Array, outOffset: number): void {
    const { r, L, ts } = this;
    const z = new Float32Array(nq * r);
    for (let i = 0; i < nq; i++) for (let k = 0; k < r; k++) z[i * r + k] = laneDot(w, wOffset + i * wStride, ts, (b * r + k) * L, n);
    this.rotateBack(b, head, z, nq, out, outOffset);
  }

  protected scoreBlocksWasm(nb: number, head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, o: number, outStride: number): void {
    const { heap, k } = this.wasm as Wasm;
    const { r, L, headDim, ts } = this;
    const [pA] = scratchParts(heap, SLOT_SCRATCH, [nq * r * 4]);
    const a = new Float32Array(heap.buffer(), pA, nq * r);
    const staged = new Float32Array(heap.buffer(), o, (nq - 1) * outStride + nTokens);
    const qrot = new Float64Array(r);
    for (let b = 0; b < nb; b++) {
      const n = Math.min(L, nTokens - b * L);
      for (let i = 0; i < nq; i++) {
        this.rotateQuery(b, head, q, qOffset + i * headDim, qrot, a, i * r);
        staged.fill(0, i * outStride + b * L, i * outStride + b * L + n);
      }
      k.dqF16Axpy(o + b * L * 4, outStride, pA, r, nq, ts.byteOffset + b * r * L * 2, L, r, n);
    }
  }

  protected accumulateBlocksWasm(nb: number, head: number, wp: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    const { heap, k } = this.wasm as Wasm;
    const { r, L, ts } = this;
    const [pZ] = scratchParts(heap, SLOT_SCRATCH, [nq * r * 4]);
    const z = new Float32Array(heap.buffer(), pZ, nq * r);
    for (let b = 0; b < nb; b++) {
      k.dqF16Dots(pZ, r, wp + b * L * 4, wStride, nq, ts.byteOffset + b * r * L * 2, L, r, Math.min(L, nTokens - b * L));
      this.rotateBack(b, head, z, nq, out, outOffset);
    }
  }

  protected decodeRow(b: number, t: number, out: Float64Array): void {
    const { r, L, width, quant, ts } = this;
    const col = new Float64Array(r);
    for (let k = 0; k < r; k++) col[k] = f16Table[ts[(b * r + k) * L + t]];
    for (let ch = 0; ch < width; ch++) out[ch] = quant.dot((b * width + ch) * r, r, col, 0);
  }
}

const PARAMS = ['c', 'l', 'path', 'n', 'group', 'basis', 'mode', 'dot', 'kernel'];

function intParam(spec: ParsedSpec, key: string, min: number): number | undefined {
  const v = spec.params.get(key);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min) throw new CodecSpecError(`decoquant: ${key} must be an integer ≥ ${min} (got "${v}")`);
  return Number(v);
}

function choice<T extends string>(spec: ParsedSpec, key: string, valid: readonly T[], dflt: T): T {
  const v = spec.params.get(key);
  if (v === undefined) return dflt;
  const found = valid.find((x) => x === v.toLowerCase());
  if (!found) throw new CodecSpecError(`decoquant: ${key} must be ${valid.join(' or ')} (got "${v}")`);
  return found;
}

function divisors(x: number): number[] {
  return Array.from({ length: x }, (_, i) => i + 1).filter((d) => x % d === 0);
}

function parseOptions(spec: ParsedSpec, ctx: CodecContext): DecoQuantOptions {
  for (const key of spec.params.keys()) {
    if (!PARAMS.includes(key)) throw new CodecSpecError(`decoquant: unknown parameter "${key}" (valid: ${PARAMS.join(', ')})`);
  }
  const bits = spec.arg === undefined || spec.arg === '' ? 4 : Number(spec.arg);
  if (![2, 4, 8].includes(bits) || !/^\d*$/.test(spec.arg ?? '')) throw new CodecSpecError(`decoquant: bits must be 2, 4 or 8 (got "${spec.arg}")`);
  const path = choice(spec, 'path', ['a', 'b'] as const, 'a');
  const basis = choice(spec, 'basis', ['layer', 'head'] as const, 'layer');
  const mode = choice(spec, 'mode', ['sym', 'asym'] as const, 'sym');
  const dot = choice(spec, 'dot', ['int', 'f32'] as const, 'int');
  const kernel = choice(spec, 'kernel', ['wasm', 'ts'] as const, 'wasm');
  const l = intParam(spec, 'l', 1) ?? 1024;
  const group = intParam(spec, 'group', 1);
  const width = ctx.nKvHeads * ctx.headDim;
  if (path === 'b') {
    for (const key of ['c', 'n', 'basis']) {
      if (spec.params.has(key)) throw new CodecSpecError(`decoquant: ${key} applies to path A only (path B decomposes the whole transposed block: one SVD, per-channel scales)`);
    }
    if (spec.params.has('dot')) throw new CodecSpecError('decoquant: dot applies to path A only (path B scores against its fp16 T_S, in float)');
    const r = Math.min(width, l);
    if (group !== undefined && r % group !== 0) {
      throw new CodecSpecError(`decoquant: group=${group} must divide the per-channel row of T_L, r = min(row width ${width}, l=${l}) = ${r}; valid: ${divisors(r).join(', ')}`);
    }
    return { bits, path, c: 0, l, n: 2, group, basis, mode, dot, kernel };
  }
  const c = intParam(spec, 'c', 1) ?? 16;
  if (basis === 'head' && ctx.headDim % c !== 0) {
    throw new CodecSpecError(`decoquant: with basis=head, c=${c} must divide head_dim ${ctx.headDim}; valid c: ${divisors(ctx.headDim).join(', ')}`);
  }
  if (width % c !== 0) {
    throw new CodecSpecError(`decoquant: c=${c} must divide the row width nKvHeads·headDim = ${ctx.nKvHeads}·${ctx.headDim} = ${width} of this model; valid c: ${divisors(width).join(', ')}`);
  }
  const n = intParam(spec, 'n', 2) ?? 2;
  if (n > 2 && !factorC(c, n - 1)) {
    const most = Math.max(2, 1 + primeFactors(c).length);
    throw new CodecSpecError(`decoquant: n=${n} needs c=${c} to split into ${n - 1} factors ≥ 2, one per auxiliary tensor; valid n for c=${c}: 2 … ${most}`);
  }
  const o: DecoQuantOptions = { bits, path, c, l, n, group, basis, mode, dot, kernel };
  const shape = pathAShape(c, n, l, basis === 'head' ? ctx.headDim : width);
  const rowLen = (width / c) * shape.dl * shape.dr;
  if (group !== undefined && rowLen % group !== 0) {
    throw new CodecSpecError(`decoquant: group=${group} must divide the quantized token row (${rowLen} central-tensor coefficients); valid: ${divisors(rowLen).join(', ')}`);
  }
  return o;
}

function canonical(o: DecoQuantOptions): string {
  let s = `decoquant:${o.bits}`;
  s += o.path === 'a' ? `,c=${o.c},l=${o.l}` : `,path=b,l=${o.l}`;
  if (o.n !== 2) s += `,n=${o.n}`;
  if (o.group !== undefined) s += `,group=${o.group}`;
  if (o.basis === 'head') s += ',basis=head';
  if (o.mode === 'asym') s += ',mode=asym';
  if (o.dot === 'f32') s += ',dot=f32';
  if (o.kernel === 'ts') s += ',kernel=ts';
  return s;
}

function createDecoQuant(spec: ParsedSpec, ctx: CodecContext): KvCodec {
  const o = parseOptions(spec, ctx);
  const build = (storage: Storage): KvCodec =>
    o.path === 'b'
      ? new PathBCodec(canonical(o), ctx, o, storage)
      : new PathACodec(canonical(o), ctx, o, pathAShape(o.c, o.n, o.l, o.basis === 'head' ? ctx.headDim : ctx.nKvHeads * ctx.headDim), storage);
  if (o.kernel === 'wasm' && heapStorageWanted()) {
    const storage = new Storage(wasmHeap());
    try {
      return build(storage);
    } catch (e) {
      // The heap refuses past wasm32's 4 GiB: this cache goes to ordinary memory and the TS paths.
      storage.release();
      if (!(e instanceof RangeError)) throw e;
    }
  }
  return build(new Storage(undefined));
}

export const decoquantCodecs: CodecFactory[] = [
  {
    name: 'decoquant',
    summary: 'DecoQuant: MPO/SVD of each L-token block, large factor at 2/4/8 bits, small factors fp16 (decoquant:4,c=16,l=1024) [,dot=int|f32][,kernel=wasm|ts]',
    create: (spec, ctx) => createDecoQuant(spec, ctx),
  },
];
