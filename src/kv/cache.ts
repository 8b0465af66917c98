import type { KvCodec, RopeParams } from './codec.js';
import { createCodec } from './registry.js';

/** Which codec each layer's K and V use: a default pair plus per-layer overrides. */
export interface KvPolicy {
  readonly k: string;
  readonly v: string;
  readonly layers?: Readonly<Record<number, { readonly k?: string; readonly v?: string }>>;
}

export interface KvShape {
  readonly nLayers: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly capacity: number;
  readonly rope?: RopeParams;
}

export interface KvBytes {
  readonly k: number;
  readonly v: number;
  readonly total: number;
}

/** One sequence's cache: a K codec and a V codec per layer. */
export class KvCache {
  readonly layers: ReadonlyArray<{ readonly k: KvCodec; readonly v: KvCodec }>;

  constructor(
    readonly shape: KvShape,
    readonly policy: KvPolicy = { k: 'f32', v: 'f32' },
  ) {
    const { nLayers, nKvHeads, headDim, capacity, rope } = shape;
    for (const key of Object.keys(policy.layers ?? {})) {
      const l = Number(key);
      if (!Number.isInteger(l) || l < 0 || l >= nLayers) {
        throw new RangeError(`KV policy names layer "${key}", but the model has layers 0..${nLayers - 1}`);
      }
    }
    this.layers = Array.from({ length: nLayers }, (_, layer) => {
      const o = policy.layers?.[layer];
      const base = { layer, nKvHeads, headDim, capacity, rope };
      return {
        k: createCodec(o?.k ?? policy.k, { ...base, role: 'k' }),
        v: createCodec(o?.v ?? policy.v, { ...base, role: 'v' }),
      };
    });
  }

  /** Tokens held (every layer holds the same count between forward passes). */
  get length(): number {
    return this.layers[0]?.k.length ?? 0;
  }

  bytes(): KvBytes {
    let k = 0;
    let v = 0;
    for (const l of this.layers) {
      k += l.k.bytes();
      v += l.v.bytes();
    }
    return { k, v, total: k + v };
  }

  /** Bits per stored value for K and V (0 when empty). */
  bitsPerValue(): { k: number; v: number } {
    const values = this.length * this.shape.nLayers * this.shape.nKvHeads * this.shape.headDim;
    const b = this.bytes();
    return values === 0 ? { k: 0, v: 0 } : { k: (8 * b.k) / values, v: (8 * b.v) / values };
  }

  truncate(length: number): void {
    for (const l of this.layers) {
      l.k.truncate(length);
      l.v.truncate(length);
    }
  }

  reset(): void {
    this.truncate(0);
  }
}
