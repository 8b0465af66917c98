import { yieldToEventLoop } from '../engine/event-loop.js';
import { chunkCount, loadChunk } from './chunks.js';
import { rope, ropeInvFreq, softmax } from '../kernels/ref/ops.js';
import type { KvPolicy } from '../kv/cache.js';
import type { CodecContext, KvCodec, KvRole } from '../kv/codec.js';
import { createCodec } from '../kv/registry.js';
import type { LlamaModel } from '../model/llama.js';
import { ropeParams } from '../model/types.js';

/** One method's reconstruction and attention error on one layer, averaged over chunks. */
export interface PerLayerRow {
  readonly label: string;
  readonly layer: number;
  /** ‖decode(K) − K‖_F / ‖K‖_F, K as appended (pre-RoPE for preRope codecs, else post-RoPE). */
  readonly kRelError: number;
  /** ‖decode(V) − V‖_F / ‖V‖_F. */
  readonly vRelError: number;
  /**
   * Relative Frobenius error of the layer's causal attention outputs (all positions and query
   * heads) computed through the codecs' scores/accumulate against the f32 cache, with the
   * model's own post-RoPE queries. NaN when the model exposes no queries to its observer.
   */
  readonly attnRelError: number;
}

export interface PerLayerPolicy {
  readonly label: string;
  readonly policy: KvPolicy;
}

export interface PerLayerOptions {
  /** Tokens per chunk; each chunk starts from position 0 (and with bos, when given). */
  readonly ctx: number;
  /** Evaluate at most this many chunks (default: all whole chunks). */
  readonly chunks?: number;
  /** Token that replaces each chunk's first token. */
  readonly bos?: number;
  readonly onProgress?: (done: number, total: number) => void;
  /** Stops after the current chunk; the rows cover the chunks done. */
  readonly signal?: AbortSignal;
}

/**
 * Per-layer sensitivity: runs the model over chunks with an f32 cache, captures each layer's
 * K, V and post-RoPE Q rows through `model.observer`, and replays them, layer by layer and
 * policy by policy, through freshly built codecs. Errors are isolated per layer: every layer
 * sees the f32 model's activations, not those perturbed by earlier layers' compression.
 *
 * The attention reference runs the same scores/softmax/accumulate loop through f32 codecs, so an
 * f32 policy reports exactly 0.
 */
export async function perLayerProfile(model: LlamaModel, tokens: ArrayLike<number>, policies: readonly PerLayerPolicy[], opts: PerLayerOptions): Promise<PerLayerRow[]> {
  const c = model.config;
  const ctx = opts.ctx;
  const nChunks = chunkCount(tokens.length, ctx, opts.chunks);
  if (policies.length === 0) throw new RangeError('per-layer profile needs at least one policy');
  for (const { label, policy } of policies) {
    for (const key of Object.keys(policy.layers ?? {})) {
      const l = Number(key);
      if (!Number.isInteger(l) || l < 0 || l >= c.nLayers) {
        throw new RangeError(`KV policy "${label}" names layer "${key}", but the model has layers 0..${c.nLayers - 1}`);
      }
    }
  }
  const { nLayers, nHeads, nKvHeads, headDim } = c;
  const kvDim = nKvHeads * headDim;
  const qDim = nHeads * headDim;
  const rotation = ropeParams(c);
  const invFreq = ropeInvFreq(c.ropeTheta, c.ropeDim, c.ropeFreqFactors);
  const cosS = new Float32Array(c.ropeDim / 2);
  const sinS = new Float32Array(c.ropeDim / 2);

  // Captured activations of one chunk, per layer (the forward pass may split a chunk into
  // micro-batches, so rows are appended at a running count per layer and role).
  const cap = Array.from({ length: nLayers }, () => ({
    k: new Float32Array(ctx * kvDim),
    v: new Float32Array(ctx * kvDim),
    q: new Float32Array(ctx * qDim),
    n: { k: 0, v: 0, q: 0 },
  }));
  const kPost = new Float32Array(ctx * kvDim);

  // Sums over chunks of (relative error × tokens), per policy and layer.
  const sums = policies.map(() => Array.from({ length: nLayers }, () => ({ k: 0, v: 0, attn: 0 })));
  let weight = 0;

  const cache = model.newCache(ctx);
  const batch = new Int32Array(ctx);
  const previous = model.observer;
  model.observer = (layer, role, rows, n) => {
    const dst = cap[layer];
    const width = role === 'q' ? qDim : kvDim;
    const at = dst.n[role];
    const room = Math.min(n, ctx - at);
    dst[role].set(rows.subarray(0, room * width), at * width);
    dst.n[role] = at + room;
  };
  let done = 0;
  try {
    for (let chunk = 0; chunk < nChunks; chunk++) {
      await yieldToEventLoop();
      if (opts.signal?.aborted) break;
      loadChunk(batch, tokens, chunk, opts.bos);
      for (const l of cap) l.n = { k: 0, v: 0, q: 0 };
      cache.reset();
      model.forward(batch, cache);
      const n = ctx;

      for (let layer = 0; layer < nLayers; layer++) {
        const { k: kPre, v, q } = cap[layer];
        const haveQ = cap[layer].n.q === n;
        kPost.set(kPre);
        rope(kPost, n, nKvHeads, headDim, 0, invFreq, cosS, sinS, rotation.pairing === 'neox');
        const base = { layer, nKvHeads, headDim, capacity: ctx, rope: rotation };
        const make = (spec: string, role: KvRole): KvCodec => createCodec(spec, { ...base, role } satisfies CodecContext);

        let ref: Float32Array | undefined;
        if (haveQ) {
          const refK = make('f32', 'k');
          const refV = make('f32', 'v');
          refK.append(kPost, n);
          refV.append(v, n);
          ref = attend(refK, refV, q, n, nHeads, nKvHeads, headDim);
        }

        for (let p = 0; p < policies.length; p++) {
          const { policy } = policies[p];
          const o = policy.layers?.[layer];
          const kc = make(o?.k ?? policy.k, 'k');
          const vc = make(o?.v ?? policy.v, 'v');
          // Copies: the captured rows must stay intact for the next policy whatever a codec does.
          const kIn = (kc.preRope ? kPre : kPost).slice(0, n * kvDim);
          const vIn = v.slice(0, n * kvDim);
          kc.append(kIn.slice(), n);
          vc.append(vIn.slice(), n);
          const s = sums[p][layer];
          s.k += n * relError(kc, kIn, n);
          s.v += n * relError(vc, vIn, n);
          s.attn += ref ? n * frobRel(attend(kc, vc, q, n, nHeads, nKvHeads, headDim), ref) : NaN;
        }
      }
      weight += n;
      done++;
      opts.onProgress?.(done, nChunks);
    }
  } finally {
    model.observer = previous;
  }
  if (weight === 0) throw new Error('per-layer profile: no chunks were processed');
  return policies.flatMap(({ label }, p) =>
    sums[p].map((s, layer) => ({ label, layer, kRelError: s.k / weight, vRelError: s.v / weight, attnRelError: s.attn / weight })),
  );
}

/** ‖decode − src‖_F / ‖src‖_F over n rows (0 when both are zero). */
function relError(codec: KvCodec, src: Float32Array, n: number): number {
  const out = new Float32Array(src.length);
  codec.decode(0, n, out);
  return frobRel(out, src);
}

function frobRel(a: Float32Array, ref: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = a[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  if (den === 0) return num === 0 ? 0 : Infinity;
  return Math.sqrt(num / den);
}

/**
 * Causal attention outputs [n][nHeads·headDim] exactly as LlamaModel.attention computes them:
 * query i sees tokens 0 … i; the query heads sharing KV head h are contiguous.
 */
function attend(k: KvCodec, v: KvCodec, q: Float32Array, n: number, nHeads: number, nKvHeads: number, headDim: number): Float32Array {
  const qDim = nHeads * headDim;
  const group = nHeads / nKvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const att = new Float32Array(group * n);
  const out = new Float32Array(n * qDim);
  for (let i = 0; i < n; i++) {
    const seen = i + 1;
    for (let h = 0; h < nKvHeads; h++) {
      const qOff = i * qDim + h * group * headDim;
      k.scores(h, q, qOff, group, seen, att, 0, n);
      for (let g = 0; g < group; g++) softmax(att, g * n, seen, scale);
      v.accumulate(h, att, 0, n, group, seen, out, qOff);
    }
  }
  return out;
}
