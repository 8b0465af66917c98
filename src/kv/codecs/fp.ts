import { bf16ToF32, f16Table, f32ToBf16, f32ToF16 } from '../../numeric/f16.js';
import { assertFinite, CodecSpecError, type CodecContext, type CodecFactory, type KvCodec, type ParsedSpec } from '../codec.js';

/** Shared bookkeeping: capacity, the row layout and the checks every append needs. */
abstract class DenseCodec implements KvCodec {
  length = 0;
  protected readonly rowWidth: number;
  protected readonly headDim: number;

  constructor(
    readonly spec: string,
    protected readonly ctx: CodecContext,
    private readonly bytesPerValue: number,
  ) {
    this.rowWidth = ctx.nKvHeads * ctx.headDim;
    this.headDim = ctx.headDim;
  }

  append(src: Float32Array, count: number): void {
    if (this.length + count > this.ctx.capacity) {
      throw new RangeError(
        `KV cache full: layer ${this.ctx.layer} ${this.ctx.role} holds ${this.length} of ${this.ctx.capacity} tokens, cannot append ${count}`,
      );
    }
    const n = count * this.rowWidth;
    assertFinite(src, n, this.ctx, this.length);
    this.checkRangeOf(src, n);
    this.store(src, this.length * this.rowWidth, n);
    this.length += count;
  }

  bytes(): number {
    return this.length * this.rowWidth * this.bytesPerValue;
  }

  truncate(length: number): void {
    if (length < 0 || length > this.length) throw new RangeError(`cannot truncate ${this.length} tokens to ${length}`);
    this.length = length;
  }

  protected checkRange(nTokens: number): void {
    if (nTokens > this.length) throw new RangeError(`asked for ${nTokens} tokens, ${this.length} stored`);
  }

  /** Formats with a narrower range than float32 refuse values they would turn into ±Inf. */
  protected checkRangeOf(_src: Float32Array, _n: number): void {}

  protected abstract store(src: Float32Array, dstOffset: number, n: number): void;
  abstract scores(head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number): void;
  abstract accumulate(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void;
  abstract decode(t0: number, t1: number, out: Float32Array): void;
}

class F32Codec extends DenseCodec {
  private readonly data: Float32Array;

  constructor(spec: string, ctx: CodecContext) {
    super(spec, ctx, 4);
    this.data = new Float32Array(ctx.capacity * this.rowWidth);
  }

  protected store(src: Float32Array, dstOffset: number, n: number): void {
    const data = this.data;
    for (let i = 0; i < n; i++) data[dstOffset + i] = src[i];
  }

  scores(head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number): void {
    this.checkRange(nTokens);
    const { data, rowWidth, headDim } = this;
    for (let i = 0; i < nq; i++) {
      const qo = qOffset + i * headDim;
      const oo = outOffset + i * outStride;
      for (let t = 0, ko = head * headDim; t < nTokens; t++, ko += rowWidth) {
        let s = 0;
        for (let d = 0; d < headDim; d++) s += q[qo + d] * data[ko + d];
        out[oo + t] = s;
      }
    }
  }

  accumulate(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    this.checkRange(nTokens);
    const { data, rowWidth, headDim } = this;
    for (let i = 0; i < nq; i++) {
      const wo = wOffset + i * wStride;
      const oo = outOffset + i * headDim;
      for (let t = 0, vo = head * headDim; t < nTokens; t++, vo += rowWidth) {
        const p = w[wo + t];
        for (let d = 0; d < headDim; d++) out[oo + d] += p * data[vo + d];
      }
    }
  }

  decode(t0: number, t1: number, out: Float32Array): void {
    this.checkRange(t1);
    out.set(this.data.subarray(t0 * this.rowWidth, t1 * this.rowWidth));
  }
}

/** 16-bit floats (IEEE half or bfloat16): one code per value, decoded through a 64K table. */
class Half16Codec extends DenseCodec {
  private readonly data: Uint16Array;

  constructor(
    spec: string,
    ctx: CodecContext,
    private readonly encode: (x: number) => number,
    private readonly table: Readonly<Float32Array>,
  ) {
    super(spec, ctx, 2);
    this.data = new Uint16Array(ctx.capacity * this.rowWidth);
  }

  protected override checkRangeOf(src: Float32Array, n: number): void {
    const { encode, table } = this;
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(table[encode(src[i])])) {
        throw new RangeError(`value ${src[i]} in ${this.ctx.role} of layer ${this.ctx.layer} overflows ${this.spec} (largest finite ${this.spec === 'f16' ? 65504 : 3.3895e38})`);
      }
    }
  }

  protected store(src: Float32Array, dstOffset: number, n: number): void {
    const { data, encode } = this;
    for (let i = 0; i < n; i++) data[dstOffset + i] = encode(src[i]);
  }

  scores(head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number): void {
    this.checkRange(nTokens);
    const { data, rowWidth, headDim, table } = this;
    for (let i = 0; i < nq; i++) {
      const qo = qOffset + i * headDim;
      const oo = outOffset + i * outStride;
      for (let t = 0, ko = head * headDim; t < nTokens; t++, ko += rowWidth) {
        let s = 0;
        for (let d = 0; d < headDim; d++) s += q[qo + d] * table[data[ko + d]];
        out[oo + t] = s;
      }
    }
  }

  accumulate(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    this.checkRange(nTokens);
    const { data, rowWidth, headDim, table } = this;
    for (let i = 0; i < nq; i++) {
      const wo = wOffset + i * wStride;
      const oo = outOffset + i * headDim;
      for (let t = 0, vo = head * headDim; t < nTokens; t++, vo += rowWidth) {
        const p = w[wo + t];
        for (let d = 0; d < headDim; d++) out[oo + d] += p * table[data[vo + d]];
      }
    }
  }

  decode(t0: number, t1: number, out: Float32Array): void {
    this.checkRange(t1);
    const { data, table } = this;
    const base = t0 * this.rowWidth;
    const n = (t1 - t0) * this.rowWidth;
    for (let i = 0; i < n; i++) out[i] = table[data[base + i]];
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
  ...factory('f16', ['fp16'], 'IEEE half, 16 bits/value (llama.cpp default)', (ctx) => new Half16Codec('f16', ctx, f32ToF16, f16Table)),
  ...factory('bf16', [], 'bfloat16, 16 bits/value', (ctx) => new Half16Codec('bf16', ctx, f32ToBf16, bf16Table)),
];
