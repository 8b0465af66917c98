import { ropeInvFreq } from '../kernels/ref/ops.js';
import type { WeightMatrix } from '../kernels/weights.js';
import { KvCache, type KvPolicy } from '../kv/cache.js';
import { defaultBackend, type Backend } from './backend.js';
import { ropeParams, type LlamaConfig, type LlamaWeights } from './types.js';
import { readRow, heapFloat32 } from './weight-memory.js';

/** Bound on the score rows of one attention call (floats), for long caches. */
const ATT_FLOATS = 4 << 20;

/**
 * Scratch for one micro-batch of up to maxBatch tokens; sized once, reused by every call. In the
 * WASM heap (when it fits), so the kernels work on it in place.
 */
class Scratch {
  readonly x: Float32Array; // residual stream [n][dim]
  readonly xb: Float32Array; // normed input [n][dim]
  readonly q: Float32Array; // [n][nHeads·headDim]
  readonly k: Float32Array; // [n][kvDim]
  readonly v: Float32Array; // [n][kvDim]
  readonly attnOut: Float32Array; // [n][nHeads·headDim]
  readonly proj: Float32Array; // [n][dim]
  readonly gate: Float32Array; // [n][hiddenDim]
  readonly up: Float32Array; // [n][hiddenDim]
  readonly cos: Float32Array;
  readonly sin: Float32Array;
  att: Float32Array = new Float32Array(0); // [tile·group][capacity], grown to the largest cache seen
  qTile: Float32Array = new Float32Array(0); // [tile][group·headDim]: one KV head's queries
  outTile: Float32Array = new Float32Array(0); // [tile][group·headDim]

  constructor(c: LlamaConfig, n: number) {
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    this.x = heapFloat32(n * c.dim);
    this.xb = heapFloat32(n * c.dim);
    this.q = heapFloat32(n * qDim);
    this.k = heapFloat32(n * kvDim);
    this.v = heapFloat32(n * kvDim);
    this.attnOut = heapFloat32(n * qDim);
    this.proj = heapFloat32(n * c.dim);
    this.gate = heapFloat32(n * c.hiddenDim);
    this.up = heapFloat32(n * c.hiddenDim);
    this.cos = new Float32Array(c.ropeDim / 2);
    this.sin = new Float32Array(c.ropeDim / 2);
  }
}

/**
 * Sees each layer's K (before RoPE, as pre-RoPE codecs receive it), V and post-RoPE Q rows as
 * they are computed: what calibration and the per-layer sensitivity profile collect. rows holds n
 * rows (nKvHeads·headDim values for K and V, nHeads·headDim for Q), valid during the call only.
 */
export type KvObserver = (layer: number, role: 'k' | 'v' | 'q', rows: Float32Array, n: number) => void;

export interface ModelOptions {
  /** Tokens per micro-batch when a prompt is processed (default 512). */
  readonly maxBatch?: number;
  /** Kernels to run on (default: WASM, LOWKV_KERNELS=ref for the plain-TS twins). */
  readonly backend?: Backend;
  /** Kernel threads for the WASM backend (default LOWKV_THREADS, else 1). */
  readonly threads?: number;
  /**
   * Query tokens per attention call in a prefill (default 32; 1 attends token by token). Results
   * are the same for any value: each score and weighted sum is computed alike.
   */
  readonly attentionTile?: number;
}

/**
 * The Llama-family decoder. forward() runs a batch of consecutive tokens through every layer,
 * appending their K and V to the cache through its codecs, and returns logits for the rows asked
 * for. The other architectures differ only through the config's optional fields (RoPE pairing
 * and factors, embedding scale, FFN activation, soft-caps, sliding windows) and the layers'
 * optional weights (biases, q/k norms, post-norms), each applied at one place below.
 */
export class LlamaModel {
  readonly maxBatch: number;
  readonly attentionTile: number;
  readonly kernels: Backend;
  private readonly s: Scratch;
  private readonly invFreq: Float64Array;
  private readonly neox: boolean;
  private readonly attnScale: number;
  /** Per layer; 0: no window. */
  private readonly window: readonly number[];
  private readonly glu: Backend['swiglu'];
  private logits: Float32Array = new Float32Array(0);
  private logitsView: Float32Array = new Float32Array(0);
  /** Set to watch K/V activations (calibration); undefined on the normal path. */
  observer: KvObserver | undefined;

  constructor(
    readonly config: LlamaConfig,
    readonly weights: LlamaWeights,
    opts: ModelOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 512;
    this.attentionTile = opts.attentionTile ?? 32;
    if (!Number.isInteger(this.attentionTile) || this.attentionTile < 1) throw new RangeError(`attentionTile ${opts.attentionTile} is not a positive integer`);
    this.kernels = opts.backend ?? defaultBackend(opts.threads);
    if (config.nHeads % config.nKvHeads !== 0) {
      throw new RangeError(`n_heads ${config.nHeads} is not a multiple of n_kv_heads ${config.nKvHeads}`);
    }
    if (config.slidingWindow && config.slidingWindow.length !== config.nLayers) {
      throw new RangeError(`slidingWindow has ${config.slidingWindow.length} entries for ${config.nLayers} layers`);
    }
    this.s = new Scratch(config, this.maxBatch);
    this.invFreq = ropeInvFreq(config.ropeTheta, config.ropeDim, config.ropeFreqFactors);
    this.neox = config.ropePairing === 'neox';
    this.attnScale = config.attnScale ?? 1 / Math.sqrt(config.headDim);
    this.window = config.slidingWindow ?? new Array<number>(config.nLayers).fill(0);
    this.glu = config.ffnActivation === 'gelu_tanh' ? this.kernels.geglu : this.kernels.swiglu;
  }

  /** A cache for this model holding up to `capacity` tokens with the given K/V codecs. */
  newCache(capacity: number, policy?: KvPolicy): KvCache {
    const { nLayers, nKvHeads, headDim } = this.config;
    return new KvCache({ nLayers, nKvHeads, headDim, capacity, rope: ropeParams(this.config) }, policy);
  }

  /**
   * Runs tokens at positions cache.length … cache.length + n − 1 and returns the logits of rows
   * logitsFrom … n − 1 as one [rows][vocab] array (valid until the next call).
   */
  forward(tokens: ArrayLike<number>, cache: KvCache, logitsFrom = tokens.length - 1): Float32Array {
    const { vocabSize } = this.config;
    const n = tokens.length;
    if (n === 0) throw new RangeError('forward() needs at least one token');
    if (logitsFrom < 0 || logitsFrom > n) throw new RangeError(`logitsFrom ${logitsFrom} outside 0..${n}`);
    if (cache.length + n > cache.shape.capacity) {
      throw new RangeError(`context full: ${cache.length} + ${n} tokens exceed the cache capacity of ${cache.shape.capacity}`);
    }
    for (let i = 0; i < n; i++) {
      const t = tokens[i];
      if (!Number.isInteger(t) || t < 0 || t >= vocabSize) throw new RangeError(`token id ${t} at index ${i} outside the vocabulary 0..${vocabSize - 1}`);
    }
    const rows = n - logitsFrom;
    this.ensureLogits(rows);

    for (let b0 = 0; b0 < n; b0 += this.maxBatch) {
      const b1 = Math.min(n, b0 + this.maxBatch);
      this.embed(tokens, b0, b1);
      for (let l = 0; l < this.config.nLayers; l++) {
        this.attention(l, b1 - b0, cache);
        this.feedForward(l, b1 - b0);
      }
      const from = Math.max(b0, logitsFrom);
      if (from < b1) this.classify(from - b0, b1 - from, (from - logitsFrom) * vocabSize);
    }
    return this.logitsView;
  }

  private embed(tokens: ArrayLike<number>, b0: number, b1: number): void {
    const { dim, embedScale } = this.config;
    const x = this.s.x;
    for (let i = b0; i < b1; i++) readRow(this.weights.tokenEmbedding, tokens[i], x, (i - b0) * dim);
    // A float32 product: both factors are float32, so rounding the exact product once is fp32 ×.
    if (embedScale !== undefined) for (let j = 0; j < (b1 - b0) * dim; j++) x[j] *= embedScale;
  }

  /** out = xb·Wᵀ (+ bias) for n rows. */
  private project(out: Float32Array, w: WeightMatrix, bias: Float32Array | undefined, n: number): void {
    this.kernels.matmul(out, this.s.xb, w, n);
    if (bias) this.kernels.addRows(out, bias, n, w.rows);
  }

  /** x += y for n rows, through the post-norm first when the layer has one (Gemma 2). */
  private residual(y: Float32Array, postNorm: Float32Array | undefined, n: number): void {
    const { dim, rmsEps } = this.config;
    if (postNorm) this.kernels.rmsnorm(this.s.xb, y, postNorm, n, dim, rmsEps);
    this.kernels.addInPlace(this.s.x, postNorm ? this.s.xb : y, n * dim);
  }

  /**
   * Turns one row of raw scores q·k into attention weights: keys [from, to) are visible (causal
   * mask, and the sliding window where the layer has one), the rest of the row up to `end` gets
   * weight 0. Soft-capping (Gemma 2) bends the scaled scores before the softmax.
   */
  private weigh(att: Float32Array, row: number, from: number, to: number, end: number): void {
    const cap = this.config.attnSoftcap;
    if (cap !== undefined) this.kernels.softcap(att, row + from, to - from, this.attnScale / cap, cap);
    this.kernels.softmax(att, row + from, to - from, cap !== undefined ? 1 : this.attnScale);
    att.fill(0, row, row + from);
    att.fill(0, row + to, row + end);
  }

  private attention(l: number, n: number, cache: KvCache): void {
    const c = this.config;
    const w = this.weights.layers[l];
    const s = this.s;
    const { matmul, rmsnorm, rope } = this.kernels;
    const { k: kStore, v: vStore } = cache.layers[l];
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    const group = c.nHeads / c.nKvHeads;
    const pos0 = kStore.length;

    rmsnorm(s.xb, s.x, w.attnNorm, n, c.dim, c.rmsEps);
    this.project(s.q, w.wq, w.bq, n);
    this.project(s.k, w.wk, w.bk, n);
    this.project(s.v, w.wv, w.bv, n);
    // Qwen3 normalises every query and key head (rows of headDim) before RoPE.
    if (w.qNorm) rmsnorm(s.q, s.q, w.qNorm, n * c.nHeads, c.headDim, c.rmsEps);
    if (w.kNorm) rmsnorm(s.k, s.k, w.kNorm, n * c.nKvHeads, c.headDim, c.rmsEps);
    this.observer?.(l, 'k', s.k, n);
    this.observer?.(l, 'v', s.v, n);
    rope(s.q, n, c.nHeads, c.headDim, pos0, this.invFreq, s.cos, s.sin, this.neox);
    this.observer?.(l, 'q', s.q, n);
    // Pre-RoPE codecs (KVQuant) store keys unrotated and rotate them inside scores().
    if (kStore.preRope) kStore.append(s.k, n);
    rope(s.k, n, c.nKvHeads, c.headDim, pos0, this.invFreq, s.cos, s.sin, this.neox);
    if (!kStore.preRope) kStore.append(s.k, n);
    vStore.append(s.v, n);

    // Causal attention, in tiles of query tokens: one scores/accumulate call per KV head covers
    // the tile's tokens times the head's query group, so a prefill reads the stored codes once per
    // tile rather than once per token. Token i sees positions 0 … pos0 + i (the last `window` of
    // them in a sliding-window layer); the others that the tile's last token sees are scored but
    // weighted 0, so the result does not depend on the codec or the tiling.
    const window = this.window[l];
    const stride = cache.shape.capacity;
    const rowWidth = group * c.headDim;
    const tile = this.ensureAtt(stride, n);
    for (let i0 = 0; i0 < n; i0 += tile) {
      const nt = Math.min(tile, n - i0);
      const last = pos0 + i0 + nt;
      for (let h = 0; h < c.nKvHeads; h++) {
        for (let i = 0; i < nt; i++) {
          const src = (i0 + i) * qDim + h * rowWidth;
          s.qTile.set(s.q.subarray(src, src + rowWidth), i * rowWidth);
        }
        kStore.scores(h, s.qTile, 0, nt * group, last, s.att, 0, stride);
        for (let i = 0; i < nt; i++) {
          const seen = pos0 + i0 + i + 1;
          const from = window > 0 ? Math.max(0, seen - window) : 0;
          for (let g = 0; g < group; g++) this.weigh(s.att, (i * group + g) * stride, from, seen, last);
        }
        s.outTile.fill(0, 0, nt * rowWidth);
        vStore.accumulate(h, s.att, 0, stride, nt * group, last, s.outTile, 0);
        for (let i = 0; i < nt; i++) {
          s.attnOut.set(s.outTile.subarray(i * rowWidth, (i + 1) * rowWidth), (i0 + i) * qDim + h * rowWidth);
        }
      }
    }
    matmul(s.proj, s.attnOut, w.wo, n);
    this.residual(s.proj, w.postAttnNorm, n);
  }

  private feedForward(l: number, n: number): void {
    const c = this.config;
    const w = this.weights.layers[l];
    const s = this.s;
    const { matmul, rmsnorm } = this.kernels;
    rmsnorm(s.xb, s.x, w.ffnNorm, n, c.dim, c.rmsEps);
    matmul(s.gate, s.xb, w.wGate, n);
    matmul(s.up, s.xb, w.wUp, n);
    this.glu(s.gate, s.up, n * c.hiddenDim);
    matmul(s.proj, s.gate, w.wDown, n);
    this.residual(s.proj, w.postFfnNorm, n);
  }

  /** Final norm and classifier for scratch rows r0 … r0+count−1, written at logits[outOffset]. */
  private classify(r0: number, count: number, outOffset: number): void {
    const c = this.config;
    const s = this.s;
    this.kernels.rmsnorm(s.xb, s.x, this.weights.outputNorm, count, c.dim, c.rmsEps, r0 * c.dim);
    this.kernels.matmul(this.logits, s.xb, this.weights.output, count, 0, outOffset);
    const cap = c.finalSoftcap;
    if (cap !== undefined) this.kernels.softcap(this.logits, outOffset, count * c.vocabSize, 1 / cap, cap);
  }

  private ensureLogits(rows: number): void {
    const size = rows * this.config.vocabSize;
    if (this.logits.length < size) this.logits = heapFloat32(size);
    if (this.logitsView.length !== size) this.logitsView = this.logits.subarray(0, size);
  }

  /**
   * Sizes the attention scratch for a cache of `capacity` tokens and returns the query tile: up to
   * attentionTile tokens, fewer where the score rows would pass ATT_FLOATS.
   */
  private ensureAtt(capacity: number, n: number): number {
    const group = this.config.nHeads / this.config.nKvHeads;
    const tile = Math.max(1, Math.min(n, this.attentionTile, Math.floor(ATT_FLOATS / (group * capacity))));
    const s = this.s;
    if (s.att.length < tile * group * capacity) s.att = heapFloat32(tile * group * capacity);
    const rowsLength = tile * group * this.config.headDim;
    if (s.qTile.length < rowsLength) {
      s.qTile = heapFloat32(rowsLength);
      s.outTile = heapFloat32(rowsLength);
    }
    return tile;
  }
}
