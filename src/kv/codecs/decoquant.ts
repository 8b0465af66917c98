/**
 * DecoQuant (methods.md §1; Liu et al., ACL 2024): decompose each block of cached K or V with a
 * Matrix Product Operator, quantize the large ("central") tensor to B bits, keep the small
 * tensors in fp16. No calibration.
 *
 * Spec: `decoquant[:B][,c=C][,l=L][,path=a|b][,n=N][,group=G][,basis=layer|head][,mode=sym|asym]`
 * B ∈ {2, 4, 8} (default 4), C = 16, L = 1024, path a, n = 2. Canonical form
 * `decoquant:4,c=16,l=1024` (path A), `decoquant:4,path=b,l=1024` (path B).
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

const F16_MAX = 65504;
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
}

/** fp16 bits of x, refusing values the format would turn into ±Inf. */
function f16Checked(x: number, what: string): number {
  const h = f32ToF16(x);
  if (!Number.isFinite(f16Table[h])) throw new RangeError(`decoquant: ${what} ${x} exceeds the fp16 range (largest finite ${F16_MAX})`);
  return h;
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

  constructor(
    readonly bits: number,
    readonly asym: boolean,
    readonly group: number,
    nCodes: number,
  ) {
    this.codes = new Uint32Array(packedWords(nCodes, bits));
    this.scales = new Uint16Array(Math.ceil(nCodes / group));
    this.zeros = asym ? new Uint16Array(this.scales.length) : undefined;
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
        setCode(codes, first + i, bits, Math.min(top, Math.max(-offset, q)) + offset);
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
        acc += (getCode(codes, first + e, bits) - offset) * v[vo + e];
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
      for (; e < end; e++) out[oo + e] += ws * (getCode(codes, first + e, bits) - offset) + wz;
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

  constructor(
    readonly spec: string,
    protected readonly ctx: CodecContext,
    L: number,
  ) {
    this.width = ctx.nKvHeads * ctx.headDim;
    this.headDim = ctx.headDim;
    this.L = L;
    this.tail = new Uint16Array(Math.min(L, ctx.capacity) * this.width);
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
    const { L, headDim, width, tail } = this;
    for (let b = 0; b * L < nTokens && b < this.blocks; b++) this.scoreBlock(b, Math.min(L, nTokens - b * L), head, q, qOffset, nq, out, outOffset + b * L, outStride);
    const t0 = this.blocks * L;
    for (let i = 0; i < nq; i++) {
      const qo = qOffset + i * headDim;
      const oo = outOffset + i * outStride;
      for (let t = t0; t < nTokens; t++) {
        const ko = (t - t0) * width + head * headDim;
        let s = 0;
        for (let d = 0; d < headDim; d++) s += q[qo + d] * f16Table[tail[ko + d]];
        out[oo + t] = s;
      }
    }
  }

  accumulate(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    this.checkRange(nTokens);
    const { L, headDim, width, tail } = this;
    for (let b = 0; b * L < nTokens && b < this.blocks; b++) this.accumulateBlock(b, Math.min(L, nTokens - b * L), head, w, wOffset + b * L, wStride, nq, out, outOffset);
    const t0 = this.blocks * L;
    for (let i = 0; i < nq; i++) {
      const wo = wOffset + i * wStride;
      const oo = outOffset + i * headDim;
      for (let t = t0; t < nTokens; t++) {
        const p = w[wo + t];
        const vo = (t - t0) * width + head * headDim;
        for (let d = 0; d < headDim; d++) out[oo + d] += p * f16Table[tail[vo + d]];
      }
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

  constructor(
    spec: string,
    ctx: CodecContext,
    private readonly o: DecoQuantOptions,
    shape: PathAShape,
  ) {
    super(spec, ctx, o.l);
    this.shape = shape;
    this.c = o.c;
    this.bases = o.basis === 'head' ? ctx.nKvHeads : 1;
    this.rowLen = (this.width / o.c) * shape.dl * shape.dr;
    this.quant = new Quantizer(o.bits, o.mode === 'asym', o.group ?? this.rowLen, this.maxBlocks * o.l * this.rowLen);
    this.aux = new Uint16Array(this.maxBlocks * this.bases * shape.auxSize);
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

  protected scoreBlock(b: number, n: number, head: number, q: Float32Array, qOffset: number, nq: number, out: Float32Array, outOffset: number, outStride: number): void {
    const { shape, c, headDim, rowLen, L, quant } = this;
    const { dl, dr, cr } = shape;
    const E = dl * dr;
    const [g0, g1] = this.chunkRange(head);
    const { left, right } = this.basisMatrices(b, this.bases === 1 ? 0 : head);
    const qrot = new Float64Array((g1 - g0 + 1) * E);
    const tmp = new Float64Array(dl * cr);
    for (let i = 0; i < nq; i++) {
      const qo = qOffset + i * headDim;
      // q' = leftᵀ · q_chunk · rightᵀ per chunk, channels outside head h taken as 0.
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
      const oo = outOffset + i * outStride;
      for (let t = 0; t < n; t++) out[oo + t] = quant.dot((b * L + t) * rowLen + g0 * E, qrot.length, qrot, 0);
    }
  }

  protected accumulateBlock(b: number, n: number, head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, out: Float32Array, outOffset: number): void {
    const { shape, c, headDim, rowLen, L, quant } = this;
    const { dl, dr, cr } = shape;
    const E = dl * dr;
    const [g0, g1] = this.chunkRange(head);
    const { left, right } = this.basisMatrices(b, this.bases === 1 ? 0 : head);
    const z = new Float64Array((g1 - g0 + 1) * E);
    const tmp = new Float64Array(dl * cr);
    for (let i = 0; i < nq; i++) {
      z.fill(0);
      const wo = wOffset + i * wStride;
      for (let t = 0; t < n; t++) {
        const p = w[wo + t];
        if (p !== 0) quant.axpy(p, (b * L + t) * rowLen + g0 * E, z.length, z, 0);
      }
      // Back from the rotated domain once: chunk = left · Z · right, head h's channels only.
      const oo = outOffset + i * headDim;
      for (let g = g0; g <= g1; g++) {
        const base = (g - g0) * E;
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

  constructor(spec: string, ctx: CodecContext, o: DecoQuantOptions) {
    super(spec, ctx, o.l);
    this.r = Math.min(this.width, o.l);
    this.quant = new Quantizer(o.bits, o.mode === 'asym', o.group ?? this.r, this.maxBlocks * this.width * this.r);
    this.ts = new Uint16Array(this.maxBlocks * this.r * o.l);
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

  protected scoreBlock(b: number, n: number, head: number, q: Float32Array, qOffset: number, nq: number, out: Float32Array, outOffset: number, outStride: number): void {
    const { r, L, headDim, width, quant, ts } = this;
    const qrot = new Float64Array(r);
    for (let i = 0; i < nq; i++) {
      // q' = deq(T_L)ᵀ q over head h's channels: read each code once per query and block.
      qrot.fill(0);
      for (let d = 0; d < headDim; d++) quant.axpy(q[qOffset + i * headDim + d], (b * width + head * headDim + d) * r, r, qrot, 0);
      const oo = outOffset + i * outStride;
      for (let t = 0; t < n; t++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += qrot[k] * f16Table[ts[(b * r + k) * L + t]];
        out[oo + t] = s;
      }
    }
  }

  protected accumulateBlock(b: number, n: number, head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, out: Float32Array, outOffset: number): void {
    const { r, L, headDim, width, quant, ts } = this;
    const z = new Float64Array(r);
    for (let i = 0; i < nq; i++) {
      const wo = wOffset + i * wStride;
      for (let k = 0; k < r; k++) {
        let s = 0;
        for (let t = 0; t < n; t++) s += w[wo + t] * f16Table[ts[(b * r + k) * L + t]];
        z[k] = s;
      }
      for (let d = 0; d < headDim; d++) out[outOffset + i * headDim + d] += quant.dot((b * width + head * headDim + d) * r, r, z, 0);
    }
  }

  protected decodeRow(b: number, t: number, out: Float64Array): void {
    const { r, L, width, quant, ts } = this;
    const col = new Float64Array(r);
    for (let k = 0; k < r; k++) col[k] = f16Table[ts[(b * r + k) * L + t]];
    for (let ch = 0; ch < width; ch++) out[ch] = quant.dot((b * width + ch) * r, r, col, 0);
  }
}

const PARAMS = ['c', 'l', 'path', 'n', 'group', 'basis', 'mode'];

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
  const l = intParam(spec, 'l', 1) ?? 1024;
  const group = intParam(spec, 'group', 1);
  const width = ctx.nKvHeads * ctx.headDim;
  if (path === 'b') {
    for (const key of ['c', 'n', 'basis']) {
      if (spec.params.has(key)) throw new CodecSpecError(`decoquant: ${key} applies to path A only (path B decomposes the whole transposed block: one SVD, per-channel scales)`);
    }
    const r = Math.min(width, l);
    if (group !== undefined && r % group !== 0) {
      throw new CodecSpecError(`decoquant: group=${group} must divide the per-channel row of T_L, r = min(row width ${width}, l=${l}) = ${r}; valid: ${divisors(r).join(', ')}`);
    }
    return { bits, path, c: 0, l, n: 2, group, basis, mode };
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
  const o: DecoQuantOptions = { bits, path, c, l, n, group, basis, mode };
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
  return s;
}

function createDecoQuant(spec: ParsedSpec, ctx: CodecContext): KvCodec {
  const o = parseOptions(spec, ctx);
  if (o.path === 'b') return new PathBCodec(canonical(o), ctx, o);
  return new PathACodec(canonical(o), ctx, o, pathAShape(o.c, o.n, o.l, o.basis === 'head' ? ctx.headDim : ctx.nKvHeads * ctx.headDim));
}

export const decoquantCodecs: CodecFactory[] = [
  {
    name: 'decoquant',
    summary: 'DecoQuant: MPO/SVD of each L-token block, large factor at 2/4/8 bits, small factors fp16 (decoquant:4,c=16,l=1024)',
    create: (spec, ctx) => createDecoQuant(spec, ctx),
  },
];
