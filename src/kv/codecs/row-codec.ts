import type { CodecContext } from '../codec.js';
import type { RopeTable } from '../rope-table.js';

/**
 * Attention for codecs whose reference path decodes one head row of one token at a time:
 * scores() and accumulate() decode into a scratch row (rotating it to its position when keys are
 * stored before RoPE) and take the dot product or multiply-add. Subclasses say how to decode.
 */
export abstract class RowDecodingCodec {
  abstract length: number;
  private readonly scratch: Float32Array;

  constructor(
    protected readonly ctx: CodecContext,
    private readonly ropeTable?: RopeTable,
  ) {
    this.scratch = new Float32Array(ctx.headDim);
  }

  /** Stored values of token t, KV head h, into dst[dOff …] (unrotated for pre-RoPE keys). */
  protected abstract decodeHeadRow(t: number, h: number, dst: Float32Array, dOff: number): void;

  protected checkRange(nTokens: number): void {
    if (nTokens > this.length) throw new RangeError(`asked for ${nTokens} tokens, ${this.length} stored`);
  }

  scores(head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number): void {
    this.checkRange(nTokens);
    this.scoresRange(head, q, qOffset, nq, 0, nTokens, out, outOffset, outStride);
  }

  accumulate(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
    this.checkRange(nTokens);
    this.accumulateRange(head, w, wOffset, wStride, nq, 0, nTokens, out, outOffset);
  }

  /** scores() for tokens [t0, t1) only (out still indexed by t). */
  protected scoresRange(head: number, q: Float32Array, qOffset: number, nq: number, t0: number, t1: number, out: Float32Array, outOffset: number, outStride: number): void {
    const { scratch: row, ropeTable: rope } = this;
    const hd = this.ctx.headDim;
    const pos0 = this.ctx.firstPosition ?? 0;
    rope?.ensure(pos0 + t1);
    for (let t = t0; t < t1; t++) {
      this.decodeHeadRow(t, head, row, 0);
      rope?.rotate(row, 0, pos0 + t);
      for (let i = 0; i < nq; i++) {
        const qo = qOffset + i * hd;
        let s = 0;
        for (let d = 0; d < hd; d++) s += q[qo + d] * row[d];
        out[outOffset + i * outStride + t] = s;
      }
    }
  }

  /** accumulate() over tokens [t0, t1) only (w still indexed by t). */
  protected accumulateRange(head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, t0: number, t1: number, out: Float32Array, outOffset: number): void {
    const row = this.scratch;
    const hd = this.ctx.headDim;
    for (let t = t0; t < t1; t++) {
      this.decodeHeadRow(t, head, row, 0);
      for (let i = 0; i < nq; i++) {
        const p = w[wOffset + i * wStride + t];
        const oo = outOffset + i * hd;
        for (let d = 0; d < hd; d++) out[oo + d] += p * row[d];
      }
    }
  }
}
