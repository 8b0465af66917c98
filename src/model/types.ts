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
 * Matrices are row-major [out][in] float32, the layout llama2.c and GGUF both store
 * (GGUF ne = [in, out]).
 */
export interface LayerWeights {
  readonly attnNorm: Float32Array; // [dim]
  readonly wq: Float32Array; // [nHeads*headDim][dim]
  readonly wk: Float32Array; // [nKvHeads*headDim][dim]
  readonly wv: Float32Array; // [nKvHeads*headDim][dim]
  readonly wo: Float32Array; // [dim][nHeads*headDim]
  readonly ffnNorm: Float32Array; // [dim]
  readonly wGate: Float32Array; // [hiddenDim][dim]  (llama2.c w1)
  readonly wDown: Float32Array; // [dim][hiddenDim]  (llama2.c w2)
  readonly wUp: Float32Array; // [hiddenDim][dim]    (llama2.c w3)
}

export interface LlamaWeights {
  readonly tokenEmbedding: Float32Array; // [vocab][dim]
  readonly layers: readonly LayerWeights[];
  readonly outputNorm: Float32Array; // [dim]
  /** [vocab][dim]; the same array as tokenEmbedding when the classifier is tied. */
  readonly output: Float32Array;
}
