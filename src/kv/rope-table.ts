import { ropeInvFreq } from '../kernels/ref/ops.js';
import { CodecSpecError, type CodecContext, type RopeParams } from './codec.js';

/**
 * cos/sin of pos·θ^(−2i/dim)/f_i for positions 0 … positions − 1, computed as the forward pass
 * does (float64 angle, float32 values), so a rotated exact key equals the forward pass's bit for
 * bit, in either pairing. One table per RoPE serves every layer; it grows on demand.
 */
export class RopeTable {
  cos = new Float32Array(0);
  sin = new Float32Array(0);
  positions = 0;
  readonly half: number;
  private readonly invFreq: Float64Array;
  /** Pair i is (x[step·i], x[step·i + span]). */
  private readonly step: number;
  private readonly span: number;

  constructor(rope: RopeParams) {
    this.half = rope.dim / 2;
    this.invFreq = ropeInvFreq(rope.theta, rope.dim, rope.freqFactors);
    const neox = rope.pairing === 'neox';
    this.step = neox ? 1 : 2;
    this.span = neox ? this.half : 1;
  }

  ensure(positions: number): void {
    if (positions <= this.positions) return;
    const n = Math.max(positions, 2 * this.positions, 64);
    const { half, invFreq } = this;
    const cos = new Float32Array(n * half);
    const sin = new Float32Array(n * half);
    cos.set(this.cos);
    sin.set(this.sin);
    for (let p = this.positions; p < n; p++) {
      for (let i = 0; i < half; i++) {
        const a = p * invFreq[i];
        cos[p * half + i] = Math.cos(a);
        sin[p * half + i] = Math.sin(a);
      }
    }
    this.cos = cos;
    this.sin = sin;
    this.positions = n;
  }

  /** Rotates the head vector x[off …] to position pos (ensure() must cover pos). */
  rotate(x: Float32Array, off: number, pos: number): void {
    const { half, cos, sin, step, span } = this;
    const base = pos * half;
    for (let i = 0; i < half; i++) {
      const p = off + step * i;
      const x0 = x[p];
      const x1 = x[p + span];
      x[p] = x0 * cos[base + i] - x1 * sin[base + i];
      x[p + span] = x0 * sin[base + i] + x1 * cos[base + i];
    }
  }
}

const ropeTables = new Map<string, RopeTable>();

/** The RoPE table of a pre-RoPE key store; throws when the context lacks usable RoPE parameters. */
export function ropeTableFor(method: string, ctx: CodecContext): RopeTable {
  const rope = checkedRope(method, ctx);
  const key = `${rope.theta}/${rope.dim}/${rope.pairing ?? 'norm'}/${rope.freqFactors?.join(',') ?? ''}`;
  let t = ropeTables.get(key);
  if (!t) ropeTables.set(key, (t = new RopeTable(rope)));
  return t;
}

/** ctx.rope, validated: what a codec that rotates keys itself needs. */
export function checkedRope(method: string, ctx: CodecContext): RopeParams {
  const rope = ctx.rope;
  if (!rope) throw new CodecSpecError(`${method} stores keys before RoPE and needs the model's RoPE parameters (theta, dim)`);
  if (!(rope.theta > 0) || !Number.isInteger(rope.dim) || rope.dim <= 0 || rope.dim % 2 !== 0 || rope.dim > ctx.headDim) {
    throw new CodecSpecError(`${method}: unusable RoPE parameters theta=${rope.theta}, dim=${rope.dim} for head_dim ${ctx.headDim}`);
  }
  if (rope.pairing !== undefined && rope.pairing !== 'norm' && rope.pairing !== 'neox') {
    throw new CodecSpecError(`${method}: unknown RoPE pairing "${String(rope.pairing)}" (known: norm, neox)`);
  }
  const f = rope.freqFactors;
  if (f !== undefined && (f.length !== rope.dim / 2 || f.some((v) => !(v > 0) || !Number.isFinite(v)))) {
    throw new CodecSpecError(`${method}: RoPE frequency factors must be ${rope.dim / 2} positive numbers`);
  }
  return rope;
}
