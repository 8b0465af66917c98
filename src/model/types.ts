import type { WeightMatrix } from '../kernels/weights.js';
import type { RopeParams, RopePairing } from '../kv/codec.js';

/** The decoder architectures the engine runs, by their GGUF `general.architecture` names. */
export const ARCHITECTURES = ['llama', 'qwen2', 'qwen3', 'phi3', 'gemma', 'gemma2'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

/**
 * Hyperparameters of a Llama-family decoder, whatever file format they came from. The optional
 * fields are where the other architectures differ from Llama; absent means Llama's behaviour.
 */
export interface LlamaConfig {
  readonly arch: Architecture;
  readonly dim: number;
  readonly hiddenDim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  /** Training context the file states; longer contexts run, with a warning. */
  readonly contextLength: number;
  readonly ropeTheta: number;
  /** Number of leading head dimensions RoPE rotates (= headDim for every supported model). */
  readonly ropeDim: number;
  readonly rmsEps: number;
  /** Which elements RoPE rotates together (default 'norm', Llama's interleaved pairs). */
  readonly ropePairing?: RopePairing;
  /** Per-pair divisors of the RoPE frequencies (Llama 3.1's rope_freqs tensor); absent: all 1. */
  readonly ropeFreqFactors?: readonly number[];
  /** Token embeddings are multiplied by this float32 value (Gemma: √dim); absent: 1. */
  readonly embedScale?: number;
  /** Activation of the gated FFN: silu (default) or the tanh approximation of GELU (Gemma). */
  readonly ffnActivation?: 'silu' | 'gelu_tanh';
  /** Factor on q·k before softmax; absent: 1/√headDim. */
  readonly attnScale?: number;
  /** Attention scores become cap·tanh(score/cap) before the mask and softmax (Gemma 2). */
  readonly attnSoftcap?: number;
  /** Logits become cap·tanh(logit/cap) (Gemma 2). */
  readonly finalSoftcap?: number;
  /**
   * Per layer, the positions a query sees: key j is visible from query i when i − j < window;
   * 0 means no window (every earlier position). Absent: no window anywhere.
   */
  readonly slidingWindow?: readonly number[];
}

/**
 * Matrices are row-major [out][in] (rows = out), the layout llama2.c and GGUF both store
 * (GGUF ne = [in, out]), kept in their stored type; norms and biases are float32. The optional
 * tensors exist only in the architectures that have them.
 */
export interface LayerWeights {
  readonly attnNorm: Float32Array; // [dim]
  readonly wq: WeightMatrix; // [nHeads*headDim][dim]
  readonly wk: WeightMatrix; // [nKvHeads*headDim][dim]
  readonly wv: WeightMatrix; // [nKvHeads*headDim][dim]
  readonly wo: WeightMatrix; // [dim][nHeads*headDim]
  readonly ffnNorm: Float32Array; // [dim]
  readonly wGate: WeightMatrix; // [hiddenDim][dim]  (llama2.c w1)
  readonly wDown: WeightMatrix; // [dim][hiddenDim]  (llama2.c w2)
  readonly wUp: WeightMatrix; // [hiddenDim][dim]    (llama2.c w3)
  /** Projection biases (Qwen2): [nHeads*headDim], [nKvHeads*headDim], [nKvHeads*headDim]. */
  readonly bq?: Float32Array;
  readonly bk?: Float32Array;
  readonly bv?: Float32Array;
  /** RMSNorm of every query and key head before RoPE (Qwen3): [headDim] each. */
  readonly qNorm?: Float32Array;
  readonly kNorm?: Float32Array;
  /** RMSNorm of the attention and FFN outputs before their residual adds (Gemma 2): [dim]. */
  readonly postAttnNorm?: Float32Array;
  readonly postFfnNorm?: Float32Array;
}

export interface LlamaWeights {
  readonly tokenEmbedding: WeightMatrix; // [vocab][dim]
  readonly layers: readonly LayerWeights[];
  readonly outputNorm: Float32Array; // [dim]
  /** [vocab][dim]; the same matrix as tokenEmbedding when the classifier is tied. */
  readonly output: WeightMatrix;
}

/** The model's RoPE as the KV codecs that rotate keys themselves need it. */
export function ropeParams(c: LlamaConfig): RopeParams {
  return { theta: c.ropeTheta, dim: c.ropeDim, pairing: c.ropePairing ?? 'norm', freqFactors: c.ropeFreqFactors };
}
