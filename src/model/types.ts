import type { WeightMatrix } from '../kernels/weights.js';

/** Hyperparameters of a Llama-architecture decoder, whatever file format they came from. */
export interface LlamaConfig {
  readonly arch: 'llama';
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
  /** Number of leading head dimensions RoPE rotates (= headDim for Llama). */
  readonly ropeDim: number;
  readonly rmsEps: number;
}

/**
 * Matrices are row-major [out][in] (rows = out), the layout llama2.c and GGUF both store
 * (GGUF ne = [in, out]), kept in their stored type (f32, f16 or q8_0); norms are float32.
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
}

export interface LlamaWeights {
  readonly tokenEmbedding: WeightMatrix; // [vocab][dim]
  readonly layers: readonly LayerWeights[];
  readonly outputNorm: Float32Array; // [dim]
  /** [vocab][dim]; the same matrix as tokenEmbedding when the classifier is tied. */
  readonly output: WeightMatrix;
}
