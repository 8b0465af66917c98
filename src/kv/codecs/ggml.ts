// llama.cpp's block-quantized KV cache types (methods.md §10.2): q8_0, q4_0, q4_1, q5_0, q5_1,
// iq4_nl, bit-exact with ggml (numeric/ggml-blocks.ts).
//
// Layout: as in llama.cpp, blocks of 32 run along each head's vector: token t, head h holds
// ceil(headDim/32) blocks, the full ones in ggml's own struct layout (byte-identical to
// llama.cpp's cache: its x86 CPU write path, which for q8_0 is the AVX2 quantizer, not
// quantize_row_q8_0_ref; see Q8Path). Heads are stored one after another (head h's tokens in
// order), so attention over one KV head reads one contiguous run of blocks.
//
// Head dims that are not a multiple of 32 (stories260K: 8): each head's vector is quantized as if
// zero-padded to the next multiple of 32, which is exactly what llama.cpp computes on a model
// whose heads are zero-padded (how golden/llamacpp-ppl.md's stories260K table was made). Only the
// real values' codes are stored: the last, partial block keeps its fp16 scale (and minimum) and
// the codes of its r real values packed densely at the type's bits per code (the 5-bit types'
// qh bit travels with its code), ceil(r·bits/8) bytes. The padding codes are never needed: the
// query is zero-padded as well, so they multiply zeros in scores(), and accumulate()/decode()
// return real values only. So bytes() per head = full blocks × sizeof(block) + (scale bytes +
// ceil(r·bits/8)) for a partial block; for head dims that are multiples of 32 that is exactly
// llama.cpp's 34/18/20/22/24/18 bytes per 32 values (8.5/4.5/5/5.5/6/4.5 bits per value).
//
// scores(): like llama.cpp's CPU attention, each query vector is converted once per call to the
// type's vec_dot_type (q8_0, or q8_1 for q4_1/q5_1, zero-padded per head, with the x86 from_float
// quantizer), and q·k is ggml's
// integer vec_dot (integer sums per block, then the scale products) in its x86 AVX2 float
// order, so a score equals llama.cpp's bit for bit. The spec parameter dot=f32 instead takes the
// float32 query times the dequantized key (no query rounding), which the conformance battery's
// decode-then-multiply check needs. accumulate(): out += Σ p_t·dequant(v_t) in float32, as
// llama.cpp's flash-attention CPU path dequantizes V rows to float32 and multiply-adds them
// (product and sum each rounded to float32, token by token: WASM SIMD has no fused multiply-add).
//
// Storage sits in the WASM heap when it fits, and scores()/accumulate() then run
// assembly/attn-ggml.ts: q8 scores and accumulate() equal the plain-TS path bit for bit; dot=f32
// scores sum in float32 lanes where the plain-TS path sums in double, so they agree within float
// rounding. Storage that does not fit stays in ordinary arrays on the plain-TS path.
//
// Reconstruction bound (tested): with A the largest |x| of a block of n real values, ε = 2^-11
// the fp16 rounding of a scale, L = 127 / 8 / 16 the level of A for q8_0 / q4_0 / q5_0
// (d = A/L): the element holding A is exact up to L·d·ε, every other one is within
// d·(1/2 + L·ε) (nearest level; q4_0/q5_0 clamp x/d > L − 1/2 to L − 1, up to one step off, but
// such a value adds ≥ (L − 1/2)²·d² to ‖x‖², which for n ≥ 5 only lowers the ratio), and
// ‖x‖ ≥ A = L·d, so
//   ‖x̂ − x‖/‖x‖ ≤ (√(n−1)·(1/2 + L·ε) + L·ε)/L     (q8_0 0.0251, q5_0 0.177, q4_0 0.351 at n = 32).
// q4_1/q5_1 (T = 15/31 steps over [min, max]): each error ≤ d·(1/2 + T·ε) + |min|·ε with
// ‖x‖ ≥ (max − min)/√2 = T·d/√2 and ‖x‖ ≥ |min|, so ≤ √n·((1/2 + T·ε)·√2/T + ε)
// (q4_1 0.273, q5_1 0.136). iq4_nl maps x/d₀ (d₀ = A/127) to the nearest of its 16 values (widest
// gap 24, so within 12·d₀, 14·d₀ past the top value 113 where the same argument as for q4_0's
// clamp applies) and then refits d by least squares weighted by x², with the codes kept. The refit
// has no useful worst-case bound; the test uses the pre-refit one, the symmetric formula with
// L = 127 and a half step of 12 (0.529 at n = 32; 0.121 measured), which the refit, minimising
// the x²-weighted error, stays far inside.
// Over many blocks the Frobenius ratio is at most the worst block's.
import {
  BLOCK_FORMATS,
  blockCodes,
  blockLevels,
  dequantizeBlock,
  laneDot,
  q8Levels,
  Q8_BYTES,
  QK,
  quantizeBlock,
  quantizeQ8Block,
  readF16,
  type BlockFormat,
  type GgmlBlockType,
} from '../../numeric/ggml-blocks.js';
import type { WasmHeap } from '../../kernels/wasm/runtime.js';
import { assertFinite, CodecSpecError, type CodecContext, type CodecFactory, type KvCodec, type ParsedSpec } from '../codec.js';
import {
  accumulateOut,
  allocateStorage,
  attnKernels,
  attnTile,
  flushAccumulated,
  flushScores,
  queryIn,
  queryScratch,
  scoresOut,
  scratch,
  weightsIn,
} from './attn-wasm.js';

const fr = Math.fround;

/** Type ids of assembly/attn-ggml.ts. */
const KERNEL_TYPE: Readonly<Record<GgmlBlockType, number>> = { q8_0: 0, q4_0: 1, q4_1: 2, q5_0: 3, q5_1: 4, iq4_nl: 5 };

/** How scores() multiplies: llama.cpp's quantized query and integer vec_dot, or float32. */
type DotMode = 'q8' | 'f32';

/** Bytes one head's vector takes: full ggml blocks, then the packed partial block if any. */
export function ggmlHeadBytes(type: GgmlBlockType, headDim: number): number {
  const f = BLOCK_FORMATS[type];
  const tail = headDim % QK;
  return Math.floor(headDim / QK) * f.bytes + (tail ? f.headerBytes + Math.ceil((tail * f.bits) / 8) : 0);
}

/** Packs codes[0 … n) at `bits` bits each, LSB first, into dst from byte off. */
function packCodes(codes: Int32Array, n: number, bits: number, dst: Uint8Array, off: number): void {
  dst.fill(0, off, off + Math.ceil((n * bits) / 8));
  for (let j = 0, bit = 0; j < n; j++, bit += bits) {
    // A code of ≤ 8 bits spans at most two bytes.
    const v = codes[j] << (bit & 7);
    dst[off + (bit >>> 3)] |= v & 0xff;
    if ((bit & 7) + bits > 8) dst[off + (bit >>> 3) + 1] |= v >>> 8;
  }
}

function unpackCode(src: Uint8Array, off: number, j: number, bits: number): number {
  const bit = j * bits;
  const p = off + (bit >>> 3);
  const v = (bit & 7) + bits > 8 ? src[p] | (src[p + 1] << 8) : src[p];
  return (v >>> (bit & 7)) & ((1 << bits) - 1);
}

class GgmlCodec implements KvCodec {
  length = 0;
  private readonly f: BlockFormat;
  private readonly headDim: number;
  private readonly width: number;
  /** Full blocks per head, real values in the partial block (0: none), blocks per head. */
  private readonly nFull: number;
  private readonly tail: number;
  private readonly nb: number;
  private readonly headBytes: number;
  private readonly rowBytes: number;
  private readonly data: Uint8Array;
  private readonly heap?: WasmHeap;
  // Scratch, allocated once: one padded block in and out, and one head unpacked.
  private readonly pad = new Float32Array(QK);
  private readonly block: Uint8Array;
  private readonly codes = new Int32Array(QK);
  private readonly kLevels: Int32Array;
  private readonly kd: Float32Array;
  private readonly km: Float32Array;
  private readonly values: Float32Array;
  // The quantized queries of one scores() call; grown to the largest query group seen.
  private qLevels = new Int32Array(0);
  private qd = new Float32Array(0);
  private qs = new Float32Array(0);
  private readonly qBlock = new Uint8Array(Q8_BYTES.q8_1);

  constructor(
    readonly spec: string,
    private readonly type: GgmlBlockType,
    private readonly dot: DotMode,
    private readonly ctx: CodecContext,
  ) {
    this.f = BLOCK_FORMATS[type];
    this.headDim = ctx.headDim;
    this.width = ctx.nKvHeads * ctx.headDim;
    this.nFull = Math.floor(ctx.headDim / QK);
    this.tail = ctx.headDim % QK;
    this.nb = Math.ceil(ctx.headDim / QK);
    this.headBytes = ggmlHeadBytes(type, ctx.headDim);
    this.rowBytes = ctx.nKvHeads * this.headBytes;
    const { arrays, heap } = allocateStorage(this, (a) => a.u8(ctx.capacity * this.rowBytes));
    this.data = arrays;
    this.heap = heap;
    this.block = new Uint8Array(this.f.bytes);
    // Padding levels stay 0: they only ever meet the query's zero padding.
    this.kLevels = new Int32Array(this.nb * QK);
    this.kd = new Float32Array(this.nb);
    this.km = new Float32Array(this.nb);
    this.values = new Float32Array(ctx.headDim);
  }

  append(src: Float32Array, count: number): void {
    const { ctx, width, headDim } = this;
    if (this.length + count > ctx.capacity) {
      throw new RangeError(`KV cache full: layer ${ctx.layer} ${ctx.role} holds ${this.length} of ${ctx.capacity} tokens, cannot append ${count}`);
    }
    assertFinite(src, count * width, ctx, this.length);
    for (let r = 0; r < count; r++) {
      for (let h = 0; h < ctx.nKvHeads; h++) {
        const ok = this.encodeHead(src, r * width + h * headDim, this.at(this.length + r, h));
        if (!ok) {
          throw new RangeError(
            `${this.spec}: ${ctx.role} of layer ${ctx.layer} (token ${this.length + r}, head ${h}) exceeds the range of the format's fp16 scale`,
          );
        }
      }
    }
    this.length += count;
  }

  /** Quantizes one head's vector; false when a scale or minimum overflows fp16. */
  private encodeHead(src: Float32Array, so: number, dst: number): boolean {
    const { f, type, data } = this;
    let ok = true;
    for (let b = 0; b < this.nFull; b++) ok = quantizeBlock(type, src, so + b * QK, data, dst + b * f.bytes, 'x86') && ok;
    if (this.tail) {
      const { pad, block, codes, tail } = this;
      const so2 = so + this.nFull * QK;
      for (let j = 0; j < QK; j++) pad[j] = j < tail ? src[so2 + j] : 0;
      ok = quantizeBlock(type, pad, 0, block, 0, 'x86') && ok;
      const at = dst + this.nFull * f.bytes;
      for (let i = 0; i < f.headerBytes; i++) data[at + i] = block[i];
      blockCodes(type, block, 0, codes);
      packCodes(codes, tail, f.bits, data, at + f.headerBytes);
    }
    return ok;
  }

  /** Levels, d and m of token t's head h into kLevels/kd/km. */
  private unpackHead(at: number): void {
    const { f, type, data, kLevels, kd, km } = this;
    for (let b = 0; b < this.nFull; b++) {
      const o = at + b * f.bytes;
      blockLevels(type, data, o, kLevels, b * QK);
      kd[b] = readF16(data, o);
      km[b] = f.hasMin ? readF16(data, o + 2) : 0;
    }
    if (this.tail) {
      const b = this.nFull;
      const o = at + b * f.bytes;
      kd[b] = readF16(data, o);
      km[b] = f.hasMin ? readF16(data, o + 2) : 0;
      for (let j = 0; j < this.tail; j++) kLevels[b * QK + j] = f.levels[unpackCode(data, o + f.headerBytes, j, f.bits)];
    }
  }

  /** dequantize_row of token t's head h into out[oOff …], real values only. */
  private dequantHead(at: number, out: Float32Array, oOff: number): void {
    const { f, type, data } = this;
    for (let b = 0; b < this.nFull; b++) dequantizeBlock(type, data, at + b * f.bytes, out, oOff + b * QK);
    if (this.tail) {
      const o = at + this.nFull * f.bytes;
      const d = readF16(data, o);
      const base = oOff + this.nFull * QK;
      const levels = f.levels;
      if (f.hasMin) {
        const m = readF16(data, o + 2);
        for (let j = 0; j < this.tail; j++) out[base + j] = fr(levels[unpackCode(data, o + f.headerBytes, j, f.bits)] * d) + m;
      } else {
        for (let j = 0; j < this.tail; j++) out[base + j] = levels[unpackCode(data, o + f.headerBytes, j, f.bits)] * d;
      }
    }
  }

  /** Converts the nq query vectors to vec_dot_type blocks (zero-padded per head), once per call. */
  private quantizeQueries(q: Float32Array, qOffset: number, nq: number): void {
    const { nb, headDim, pad, qBlock, tail } = this;
    const kind = this.f.vecDotType;
    if (this.qd.length < nq * nb) {
      this.qLevels = new Int32Array(nq * nb * QK);
      this.qd = new Float32Array(nq * nb);
      this.qs = new Float32Array(nq * nb);
    }
    for (let i = 0; i < nq; i++) {
      for (let b = 0; b < nb; b++) {
        const qo = qOffset + i * headDim + b * QK;
        let ok: boolean;
        if (b < this.nFull) ok = quantizeQ8Block(kind, q, qo, qBlock, 0, 'x86');
        else {
          for (let j = 0; j < QK; j++) pad[j] = j < tail ? q[qo + j] : 0;
          ok = quantizeQ8Block(kind, pad, 0, qBlock, 0, 'x86');
        }
        if (!ok) throw new RangeError(`${this.spec}: query exceeds the range of ${kind}'s fp16 scale`);
        const k = i * nb + b;
        q8Levels(kind, qBlock, 0, this.qLevels, k * QK);
        this.qd[k] = readF16(qBlock, 0);
        this.qs[k] = kind === 'q8_1' ? readF16(qBlock, 2) : 0;
      }
    }
  }

  scores(head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number): void {
    this.checkRange(nTokens);
    if (this.heap) return this.scoresWasm(this.heap, head, q, qOffset, nq, nTokens, out, outOffset, outStride);
    const { headBytes, headDim } = this;
    const at0 = this.at(0, head);
    if (this.dot === 'f32') {
      const v = this.values;
      for (let t = 0; t < nTokens; t++) {
        this.dequantHead(at0 + t * headBytes, v, 0);
        for (let i = 0; i < nq; i++) {
          const qo = qOffset + i * headDim;
          let s = 0;
          for (let d = 0; d < headDim; d++) s += q[qo + d] * v[d];
          out[outOffset + i * outStride + t] = s;
        }
      }
      return;
    }
    this.quantizeQueries(q, qOffset, nq);
    const { type, nb, kLevels, kd, km, qLevels, qd, qs } = this;
    for (let t = 0; t < nTokens; t++) {
      this.unpackHead(at0 + t * headBytes);
      for (let i = 0; i < nq; i++) out[outOffset + i * outStride + t] = laneDot(type, nb, headDim, kLevels, kd, km, 0, qLevels, qd, qs, i * nb);
    }
  }

  accumulate(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    this.checkRange(nTokens);
    if (this.heap) return this.accumulateWasm(this.heap, head, w, wOffset, wStride, nq, nTokens, out, outOffset);
    const { headBytes, headDim, values: v } = this;
    const at0 = this.at(0, head);
    for (let t = 0; t < nTokens; t++) {
      this.dequantHead(at0 + t * headBytes, v, 0);
      for (let i = 0; i < nq; i++) {
        const p = w[wOffset + i * wStride + t];
        const oo = outOffset + i * headDim;
        for (let d = 0; d < headDim; d++) out[oo + d] += fr(p * v[d]);
      }
    }
  }

  private scoresWasm(heap: WasmHeap, head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number): void {
    const { nb, nFull, tail, headDim, headBytes } = this;
    const kernels = attnKernels(heap);
    const type = KERNEL_TYPE[this.type];
    const k = this.data.byteOffset + this.at(0, head);
    const qp = queryIn(heap, q, qOffset, nq * headDim);
    const o = scoresOut(heap, out, outOffset, outStride, nq, nTokens);
    if (this.dot === 'f32') {
      const s = scratch(heap, (attnTile(heap) * headDim + nb * 10) * 4);
      kernels.ggmlScoresF32(type, k, headBytes, nTokens, nFull, tail, headDim, qp, nq, o.ptr, o.stride, s);
    } else {
      // Converted queries: nq·nb blocks of 32 int8 levels, then their d and s.
      const ql = queryScratch(heap, nq * nb * (QK + 8));
      const qd = ql + nq * nb * QK;
      const qs = qd + nq * nb * 4;
      if (kernels.ggmlQuantizeQuery(this.f.vecDotType === 'q8_1' ? 1 : 0, qp, nq, headDim, nb, ql, qd, qs) !== 0) {
        throw new RangeError(`${this.spec}: query exceeds the range of ${this.f.vecDotType}'s fp16 scale`);
      }
      kernels.ggmlScores(type, k, headBytes, nTokens, nFull, tail, ql, qd, qs, nq, o.ptr, o.stride, scratch(heap, nb * (QK + 8)));
    }
    flushScores(heap, out, outOffset, outStride, nq, nTokens);
  }

  private accumulateWasm(heap: WasmHeap, head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    const { nb, nFull, tail, headDim, headBytes } = this;
    const wp = weightsIn(heap, w, wOffset, wStride, nq, nTokens);
    const op = accumulateOut(heap, out, outOffset, nq * headDim);
    const s = scratch(heap, (attnTile(heap) * headDim + nb * 10) * 4);
    const v = this.data.byteOffset + this.at(0, head);
    attnKernels(heap).ggmlAccumulate(KERNEL_TYPE[this.type], v, headBytes, nTokens, nFull, tail, headDim, wp.ptr, wp.stride, nq, op, s);
    flushAccumulated(heap, out, outOffset, nq * headDim);
  }

  bytes(): number {
    return this.length * this.rowBytes;
  }

  /** Byte offset of token t's head h: heads are stored one after another, each its tokens in order. */
  private at(t: number, h: number): number {
    return (h * this.ctx.capacity + t) * this.headBytes;
  }

  decode(t0: number, t1: number, out: Float32Array): void {
    this.checkRange(t1);
    const { ctx, headDim, width } = this;
    for (let t = t0; t < t1; t++) {
      for (let h = 0; h < ctx.nKvHeads; h++) this.dequantHead(this.at(t, h), out, (t - t0) * width + h * headDim);
    }
  }

  truncate(length: number): void {
    if (length < 0 || length > this.length) throw new RangeError(`cannot truncate ${this.length} tokens to ${length}`);
    this.length = length;
  }

  private checkRange(nTokens: number): void {
    if (nTokens > this.length) throw new RangeError(`asked for ${nTokens} tokens, ${this.length} stored`);
  }
}

const SUMMARIES: Readonly<Record<GgmlBlockType, string>> = {
  q8_0: 'llama.cpp q8_0: blocks of 32, fp16 scale + int8, 8.5 bits/value',
  q4_0: 'llama.cpp q4_0: blocks of 32, fp16 scale + 4-bit, 4.5 bits/value',
  q4_1: 'llama.cpp q4_1: blocks of 32, fp16 scale and min + 4-bit, 5 bits/value',
  q5_0: 'llama.cpp q5_0: blocks of 32, fp16 scale + 5-bit, 5.5 bits/value',
  q5_1: 'llama.cpp q5_1: blocks of 32, fp16 scale and min + 5-bit, 6 bits/value',
  iq4_nl: 'llama.cpp iq4_nl: blocks of 32, fp16 scale + 4-bit non-uniform codebook, 4.5 bits/value',
};

function parseDot(spec: ParsedSpec): DotMode {
  if (spec.arg !== undefined) throw new CodecSpecError(`${spec.name}: takes no ":" argument (got "${spec.text}"); the only parameter is dot=q8|f32`);
  for (const key of spec.params.keys()) {
    if (key !== 'dot') throw new CodecSpecError(`${spec.name}: unknown parameter "${key}" (valid: dot=q8|f32)`);
  }
  const dot = spec.params.get('dot') ?? 'q8';
  if (dot !== 'q8' && dot !== 'f32') throw new CodecSpecError(`${spec.name}: dot must be q8 (llama.cpp's quantized query) or f32 (got "${dot}")`);
  return dot;
}

export const ggmlCodecs: CodecFactory[] = (Object.keys(SUMMARIES) as GgmlBlockType[]).map((type) => ({
  name: type,
  summary: `${SUMMARIES[type]} (dot=f32: float query)`,
  create(spec: ParsedSpec, ctx: CodecContext): KvCodec {
    const dot = parseDot(spec);
    return new GgmlCodec(dot === 'q8' ? type : `${type},dot=f32`, type, dot, ctx);
  },
}));
