import { CodecSpecError, type CodecContext, type RopeParams } from './codec.js';

/**
 * cos/sin of pos·θ^(−2i/dim) for positions 0 … positions − 1, computed as the forward pass does
 * (float64 angle, float32 values), so a rotated exact key equals the forward pass's bit for bit.
 * One table per (θ, dim) serves every layer; it grows on demand.
 */
export class RopeTable {
  cos = new Float32Array(0);
  sin = new Float32Array(0);
  positions = 0;
  readonly half: number;
  private readonly invFreq: Float64Array;

  constructor(rope: RopeParams) {
    this.half = rope.dim / 2;
    this.invFreq = new Float64Array(this.half);
    for (let i = 0; i < this.half; i++) this.invFreq[i] = Math.pow(rope.theta, (-2 * i) / rope.dim);
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

  /** Rotates the head vector x[off …] (pairs (x[2i], x[2i+1]), i < dim/2) to position pos. */
  rotate(x: Float32Array, off: number, pos: number): void {
    const { half, cos, sin } = this;
    const base = pos * half;
    for (let i = 0; i < half; i++) {
      const x0 = x[off + 2 * i];
      const x1 = x[off + 2 * i + 1];
      x[off + 2 * i] = x0 * cos[base + i] - x1 * sin[base + i];
      x[off + 2 * i + 1] = x0 * sin[base + i] + x1 * cos[base + i];
    }
  }
}

const ropeTables = new Map<string, RopeTable>();

/** The RoPE table of a pre-RoPE key store; throws when the context lacks usable RoPE parameters. */
export function ropeTableFor(method: string, ctx: CodecContext): RopeTable {
  const rope = ctx.rope;
  if (!rope) throw new CodecSpecError(`${method} stores keys before RoPE and needs the model's RoPE parameters (theta, dim)`);
  if (!(rope.theta > 0) || !Number.isInteger(rope.dim) || rope.dim <= 0 || rope.dim % 2 !== 0 || rope.dim > ctx.headDim) {
    throw new CodecSpecError(`${method}: unusable RoPE parameters theta=${rope.theta}, dim=${rope.dim} for head_dim ${ctx.headDim}`);
  }
  const key = `${rope.theta}/${rope.dim}`;
  let t = ropeTables.get(key);
  if (!t) ropeTables.set(key, (t = new RopeTable(rope)));
  return t;
}
