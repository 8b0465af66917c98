import { GgmlType } from '../formats/ggml-types.js';
import { readGguf } from '../formats/gguf.js';
import { copyMetadataEntry, writeGguf, type GgufTensorToWrite, type GgufTypedValue, type WritableTensorType } from '../formats/gguf-write.js';
import type { SpmVocab } from '../tokenizer/types.js';
import type { WeightMatrix } from '../kernels/weights.js';
import type { LoadedModelFile } from './load.js';
import { matrixValues } from './weight-memory.js';

export const WEIGHT_TYPES = { f32: GgmlType.F32, f16: GgmlType.F16, bf16: GgmlType.BF16, q8_0: GgmlType.Q8_0 } as const;
export type WeightTypeName = keyof typeof WEIGHT_TYPES;

// llama.cpp's general.file_type (LLAMA_FTYPE_*) for each weight type.
const FILE_TYPE: Record<WeightTypeName, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };

export interface ConvertSummary {
  readonly tensors: number;
  /** Matrices kept at F16 because their rows are not whole Q8_0 blocks. */
  readonly keptF16: string[];
}

/**
 * Writes a loaded model as a GGUF v3 llama file with its tokenizer embedded. Matrices take the
 * requested type; norm vectors stay F32 as llama.cpp keeps them. Metadata of a GGUF source is
 * carried over with its original types.
 */
export function writeModelGguf(src: LoadedModelFile, vocab: SpmVocab, out: string, type: WeightTypeName): ConvertSummary {
  const c = src.config;
  // Only the plain Llama layout is written; anything else would lose tensors or keys silently.
  if (c.arch !== 'llama' || c.ropeFreqFactors !== undefined) {
    throw new Error(`convert writes plain Llama models only; ${src.path} is ${c.arch}${c.ropeFreqFactors ? ' with RoPE frequency factors' : ''}`);
  }
  const matrixType = WEIGHT_TYPES[type];
  const keptF16: string[] = [];
  const tensors: GgufTensorToWrite[] = [];
  const add = (name: string, ne: number[], weights: Float32Array | WeightMatrix): void => {
    const data = weights instanceof Float32Array ? weights : matrixValues(weights);
    let t: WritableTensorType = ne.length === 1 ? GgmlType.F32 : matrixType;
    if (t === GgmlType.Q8_0 && ne[0] % 32 !== 0) {
      t = GgmlType.F16;
      keptF16.push(name);
    }
    tensors.push({ name, type: t, ne, data });
  };
  const w = src.weights;
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  add('token_embd.weight', [c.dim, c.vocabSize], w.tokenEmbedding);
  w.layers.forEach((l, i) => {
    add(`blk.${i}.attn_norm.weight`, [c.dim], l.attnNorm);
    add(`blk.${i}.attn_q.weight`, [c.dim, qDim], l.wq);
    add(`blk.${i}.attn_k.weight`, [c.dim, kvDim], l.wk);
    add(`blk.${i}.attn_v.weight`, [c.dim, kvDim], l.wv);
    add(`blk.${i}.attn_output.weight`, [qDim, c.dim], l.wo);
    add(`blk.${i}.ffn_norm.weight`, [c.dim], l.ffnNorm);
    add(`blk.${i}.ffn_gate.weight`, [c.dim, c.hiddenDim], l.wGate);
    add(`blk.${i}.ffn_down.weight`, [c.hiddenDim, c.dim], l.wDown);
    add(`blk.${i}.ffn_up.weight`, [c.dim, c.hiddenDim], l.wUp);
  });
  add('output_norm.weight', [c.dim], w.outputNorm);
  if (w.output !== w.tokenEmbedding) add('output.weight', [c.dim, c.vocabSize], w.output);

  writeGguf(out, { metadata: metadataFor(src, vocab, type), tensors });
  return { tensors: tensors.length, keptF16 };
}

function metadataFor(src: LoadedModelFile, vocab: SpmVocab, type: WeightTypeName): Array<[string, GgufTypedValue]> {
  const c = src.config;
  const u32 = (value: number): GgufTypedValue => ({ type: 'uint32', value });
  const f32 = (value: number): GgufTypedValue => ({ type: 'float32', value });
  const fresh = new Map<string, GgufTypedValue>([
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: src.name }],
    ['general.file_type', u32(FILE_TYPE[type])],
    ['llama.context_length', u32(c.contextLength)],
    ['llama.embedding_length', u32(c.dim)],
    ['llama.block_count', u32(c.nLayers)],
    ['llama.feed_forward_length', u32(c.hiddenDim)],
    ['llama.rope.dimension_count', u32(c.ropeDim)],
    ['llama.rope.freq_base', f32(c.ropeTheta)],
    ['llama.attention.head_count', u32(c.nHeads)],
    ['llama.attention.head_count_kv', u32(c.nKvHeads)],
    ['llama.attention.layer_norm_rms_epsilon', f32(c.rmsEps)],
    ['llama.vocab_size', u32(c.vocabSize)],
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: [...vocab.tokens] }],
    ['tokenizer.ggml.scores', { type: 'array', itemType: 'float32', value: vocab.scores }],
    ['tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: vocab.types }],
    ['tokenizer.ggml.bos_token_id', u32(vocab.bos)],
    ['tokenizer.ggml.eos_token_id', u32(vocab.eos)],
    ['tokenizer.ggml.unknown_token_id', u32(vocab.unk)],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: vocab.addBos }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: vocab.addEos }],
    ['tokenizer.ggml.add_space_prefix', { type: 'bool', value: vocab.addSpacePrefix }],
  ]);
  if (src.format !== 'gguf') return [...fresh];
  // Keep everything the source said (license, description, extra keys) with its own types;
  // what lowkv derived itself wins for the keys it writes, and the layout keys are new.
  const file = readGguf(src.path);
  const carried: Array<[string, GgufTypedValue]> = [];
  for (const key of file.metadata.keys()) {
    if (fresh.has(key) || key === 'general.alignment') continue;
    carried.push([key, copyMetadataEntry(file, key)]);
  }
  return [...fresh, ...carried];
}
