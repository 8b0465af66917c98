// lowkv's public API.
export { loadModel, Model, cachePolicy, type LoadModelOptions, type CacheOptions } from './engine/model.js';
export { Session } from './engine/session.js';
export { generate, type GenerateOptions, type GenerateChunk, type GenerateResult, type FinishReason } from './engine/generate.js';
export { Sampler, SAMPLER_DEFAULTS, argmax, type SamplerOptions } from './engine/sampler.js';
export { perplexity, type PerplexityOptions, type PerplexityResult } from './eval/perplexity.js';
export { LlamaModel, type ModelOptions } from './model/llama.js';
export { loadModelFile, type LoadedModelFile, type ModelFormat } from './model/load.js';
export type { LlamaConfig, LlamaWeights, LayerWeights } from './model/types.js';
export { KvCache, type KvPolicy, type KvShape, type KvBytes } from './kv/cache.js';
export { CodecSpecError, parseSpec, type KvCodec, type CodecContext, type CodecFactory, type ParsedSpec, type KvRole } from './kv/codec.js';
export { createCodec, codecNames, describeCodecs } from './kv/registry.js';
export { SpmTokenizer } from './tokenizer/spm.js';
export type { Tokenizer, SpmVocab, StreamDecoder, EncodeOptions } from './tokenizer/types.js';
export { ModelFormatError } from './formats/errors.js';
export { readGguf, type GgufFile, type GgufTensorInfo, type GgufValue } from './formats/gguf.js';
export { writeGguf } from './formats/gguf-write.js';
export { readLlama2c } from './formats/llama2c.js';
