import type { WasmHeap } from '../../kernels/wasm/runtime.js';
import { bf16ToF32, f16Table, f32ToBf16, f32ToF16 } from '../../numeric/f16.js';
import { assertFinite, CodecSpecError, type CodecContext, type CodecFactory, type KvCodec, type ParsedSpec } from '../codec.js';
import {
  accumulateOut,
  allocateStorage,
  attnKernels,
  attnTile,
  flushAccumulated,
  flushScores,
  queryIn,
  scoresOut,
  scratch,
  weightsIn,
  type Allocator,
} from './attn-wasm.js';

const fr = Math.fround;

/** Kernel ids of assembly/attn-fp.ts. */
type FpKind = 0 | 1 | 2;

/**
 * Shared bookkeeping: capacity, the layout and the checks every append needs. Values are stored
 * head-major (head h's tokens contiguous: value d of token t at (h·capacity + t)·headDim + d), so
 * attention over one KV head streams one contiguous run. Storage lives in the WASM heap when it
 * fits, and scores()/accumulate() then run the SIMD kernels; otherwise (and as the reference in
 * parity tests) the plain-TS twins below.
 */
abstract class DenseCodec<A extends Float32Array | Uint16Array> implements KvCodec {
  length = 0;
  protected readonly rowWidth: number;
  protected readonly headDim: number;
  protected readonly data: A;
  private readonly heap?: WasmHeap;

  constructor(
    readonly spec: string,
    protected readonly ctx: CodecContext,
    private readonly bytesPerValue: number,
    private readonly kind: FpKind,
    make: (a: Allocator, n: number) => A,
  ) {
    this.rowWidth = ctx.nKvHeads * ctx.headDim;
    this.headDim = ctx.headDim;
    const { arrays, heap } = allocateStorage(this, (a) => make(a, ctx.capacity * this.rowWidth));
    this.data = arrays;
    this.heap = heap;
  }

  /** Index in data of token t's values of head h. */
  protected at(t: number, h: number): number {
    return (h * this.ctx.capacity + t) * this.headDim;
  }

  scores(head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number): void {
    this.checkRange(nTokens);
    const heap = this.heap;
    if (!heap) return this.scoresRef(head, q, qOffset, nq, nTokens, out, outOffset, outStride);
    const { headDim, bytesPerValue: size } = this;
    const qp = queryIn(heap, q, qOffset, nq * headDim);
    const o = scoresOut(heap, out, outOffset, outStride, nq, nTokens);
    const k = this.data.byteOffset + this.at(0, head) * size;
    attnKernels(heap).attnScoresFp(this.kind, k, headDim * size, nTokens, qp, nq, headDim, o.ptr, o.stride, scratch(heap, attnTile(heap) * headDim * 4));
    flushScores(heap, out, outOffset, outStride, nq, nTokens);
  }

  accumulate(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    this.checkRange(nTokens);
    const heap = this.heap;
    if (!heap) return this.accumulateRef(head, w, wOffset, wStride, nq, nTokens, out, outOffset);
    const { headDim, bytesPerValue: size } = this;
    const wp = weightsIn(heap, w, wOffset, wStride, nq, nTokens);
    const op = accumulateOut(heap, out, outOffset, nq * headDim);
    const v = this.data.byteOffset + this.at(0, head) * size;
    attnKernels(heap).attnAccumulateFp(this.kind, v, headDim * size, nTokens, wp.ptr, wp.stride, nq, headDim, op, scratch(heap, attnTile(heap) * headDim * 4));
    flushAccumulated(heap, out, outOffset, nq * headDim);
  }

  append(src: Float32Array, count: number): void {
    const { ctx, rowWidth, headDim } = this;
    if (this.length + count > ctx.capacity) {
      throw new RangeError(`KV cache full: layer ${ctx.layer} ${ctx.role} holds ${this.length} of ${ctx.capacity} tokens, cannot append ${count}`);
    }
    const n = count * rowWidth;
    assertFinite(src, n, ctx, this.length);
    this.checkRangeOf(src, n);
    for (let r = 0; r < count; r++) {
      for (let h = 0; h < ctx.nKvHeads; h++) this.store(src, r * rowWidth + h * headDim, this.at(this.length + r, h), headDim);
    }
    this.length += count;
  }

  bytes(): number {
    return this.length * this.rowWidth * this.bytesPerValue;
  }

  truncate(length: number): void {
    if (length < 0 || length > this.length) throw new RangeError(`cannot truncate ${this.length} tokens to ${length}`);
    this.length = length;
  }

  decode(t0: number, t1: number, out: Float32Array): void {
    this.checkRange(t1);
    const { rowWidth, headDim } = this;
    for (let t = t0; t < t1; t++) {
      for (let h = 0; h < this.ctx.nKvHeads; h++) this.load(this.at(t, h), out, (t - t0) * rowWidth + h * headDim, headDim);
    }
  }

  /** Plain-TS twin of scores(): products in double, rounded to float32 once. */
  private scoresRef(head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number): void {
    const { headDim } = this;
    const row = new Float32Array(headDim);
    for (let t = 0; t < nTokens; t++) {
      this.load(this.at(t, head), row, 0, headDim);
      for (let i = 0; i < nq; i++) {
        const qo = qOffset + i * headDim;
        let s = 0;
        for (let d = 0; d < headDim; d++) s += q[qo + d] * row[d];
        out[outOffset + i * outStride + t] = s;
      }
    }
  }

  /**
   * Plain-TS twin of accumulate(): out += p·v token by token, the product and the sum each
   * rounded to float32, exactly as the SIMD kernel does.
   */
  private accumulateRef(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    const { headDim } = this;
    const row = new Float32Array(headDim);
    for (let t = 0; t < nTokens; t++) {
      this.load(this.at(t, head), row, 0, headDim);
      for (let i = 0; i < nq; i++) {
        const p = w[wOffset + i * wStride + t];
        const oo = outOffset + i * headDim;
        for (let d = 0; d < headDim; d++) out[oo + d] += fr(p * row[d]);
      }
    }
  }

  protected checkRange(nTokens: number): void {
    if (nTokens > this.length) throw new RangeError(`asked for ${nTokens} tokens, ${this.length} stored`);
  }

  /** Formats with a narrower range than float32 refuse values they would turn into ±Inf. */
  protected checkRangeOf(_src: Float32Array, _n: number): void {}

  /** Encodes src[so … so + n) into data[at …]. */
  protected abstract store(src: Float32Array, so: number, at: number, n: number): void;
  /** The stored values data[at … at + n) as float32 into out[oo …]. */
  protected abstract load(at: number, out: Float32Array, oo: number, n: number): void;
}

class F32Codec extends DenseCodec<Float32Array> {
  constructor(spec: string, ctx: CodecContext) {
    super(spec, ctx, 4, 0, (a, n) => a.f32(n));
  }

  protected store(src: Float32Array, so: number, at: number, n: number): void {
    this.data.set(src.subarray(so, so + n), at);
  }

  protected load(at: number, out: Float32Array, oo: number, n: number): void {
    out.set(this.data.subarray(at, at + n), oo);
  }
}

/** 16-bit floats (IEEE half or bfloat16): one code per value, decoded through a 64K table. */
class Half16Codec extends DenseCodec<Uint16Array> {
  constructor(
    spec: string,
    ctx: CodecContext,
    kind: FpKind,
    private readonly encode: (x: number) => number,
    private readonly table: Readonly<Float32Array>,
  ) {
    super(spec, ctx, 2, kind, (a, n) => a.u16(n));
  }

  protected override checkRangeOf(src: Float32Array, n: number): void {
    const { encode, table } = this;
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(table[encode(src[i])])) {
        throw new RangeError(`value ${src[i]} in ${this.ctx.role} of layer ${this.ctx.layer} overflows ${this.spec} (largest finite ${this.spec === 'f16' ? 65504 : 3.3895e38})`);
      }
    }
  }

  protected store(src: Float32Array, so: number, at: number, n: number): void {
    const { data, encode } = this;
    for (let i = 0; i < n; i++) data[at + i] = encode(src[so + i]);
  }

  protected load(at: number, out: Float32Array, oo: number, n: number): void {
    const { data, table } = this;
    for (let i = 0; i < n; i++) out[oo + i] = table[data[at + i]];
  }
}

const bf16Table: Float32Array = (() => {
  const t = new Float32Array(65536);
  for (let b = 0; b < 65536; b++) t[b] = bf16ToF32(b);
  return t;
})();

function noParams(spec: ParsedSpec): void {
  if (spec.arg !== undefined || spec.params.size > 0) {
    throw new CodecSpecError(`KV cache type "${spec.name}" takes no parameters (got "${spec.text}")`);
  }
}

function factory(name: string, aliases: string[], summary: string, make: (ctx: CodecContext) => KvCodec): CodecFactory[] {
  return [name, ...aliases].map((alias) => ({
    name: alias,
    summary: alias === name ? summary : `alias of ${name}`,
    create(spec: ParsedSpec, ctx: CodecContext): KvCodec {
      noParams(spec);
      return make(ctx);
    },
  }));
}

export const fpCodecs: CodecFactory[] = [
  ...factory('f32', ['fp32'], 'float32, 32 bits/value (the reference)', (ctx) => new F32Codec('f32', ctx)),
  ...factory('f16', ['fp16'], 'IEEE half, 16 bits/value (llama.cpp default)', (ctx) => new Half16Codec('f16', ctx, 1, f32ToF16, f16Table)),
  ...factory('bf16', [], 'bfloat16, 16 bits/value', (ctx) => new Half16Codec('bf16', ctx, 2, f32ToBf16, bf16Table)),
];
