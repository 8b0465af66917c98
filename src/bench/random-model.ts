// Random-weight Llama models with the shapes of real ones, for benchmarks only: speed depends on
// shapes and types, not on what the weights learned, and no download is needed.

import { Rng } from '../engine/rng.js';
import { weightMatrix, type WeightMatrix } from '../kernels/weights.js';
import { writeModelGguf, type WeightTypeName } from '../model/to-gguf.js';
import type { LayerWeights, LlamaConfig, LlamaWeights } from '../model/types.js';
import { SpmTokenizer } from '../tokenizer/spm.js';
import { TokenType, type SpmVocab } from '../tokenizer/types.js';

export interface ModelPreset {
  readonly description: string;
  readonly dim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly hiddenDim: number;
  readonly vocabSize: number;
  readonly contextLength: number;
}

// The large presets state a 32k training context so that benchmarks at 16k depth run without
// llama.cpp's or lowkv's "longer than trained" warnings. Every head_dim is a multiple of 32 so
// that llama.cpp's q8_0/q4_0 caches (32-value blocks per head) accept the model.
export const PRESETS = {
  '42m': {
    description: "llama2.c stories42M's shape",
    dim: 512, nLayers: 8, nHeads: 8, nKvHeads: 8, headDim: 64, hiddenDim: 1376, vocabSize: 32000, contextLength: 32768,
  },
  '1b': {
    description: 'a Llama-3.2-1B-like shape (GQA 4:1) with a 32k vocabulary',
    dim: 2048, nLayers: 16, nHeads: 32, nKvHeads: 8, headDim: 64, hiddenDim: 8192, vocabSize: 32000, contextLength: 32768,
  },
  hd128: {
    description: 'head_dim 128, as most 7B-class models have',
    dim: 1024, nLayers: 8, nHeads: 8, nKvHeads: 8, headDim: 128, hiddenDim: 2816, vocabSize: 32000, contextLength: 32768,
  },
  tiny: {
    description: 'a very small model for tests (GQA 2:1)',
    dim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 32, hiddenDim: 384, vocabSize: 512, contextLength: 4096,
  },
} as const satisfies Record<string, ModelPreset>;

export type PresetName = keyof typeof PRESETS;

export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name);
}

export function presetConfig(name: PresetName): LlamaConfig {
  const p: ModelPreset = PRESETS[name];
  return {
    arch: 'llama',
    dim: p.dim,
    hiddenDim: p.hiddenDim,
    nLayers: p.nLayers,
    nHeads: p.nHeads,
    nKvHeads: p.nKvHeads,
    headDim: p.headDim,
    vocabSize: p.vocabSize,
    contextLength: p.contextLength,
    ropeTheta: 10000,
    ropeDim: p.headDim,
    rmsEps: 1e-5,
  };
}

/** Parameters of the model as written (the classifier is tied to the embedding). */
export function parameterCount(c: LlamaConfig): number {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const layer = 2 * c.dim + 2 * c.dim * q + 2 * c.dim * kv + 3 * c.dim * c.hiddenDim;
  return c.vocabSize * c.dim + c.nLayers * layer + c.dim;
}

const SPECIAL = ['<unk>', '<s>', '</s>'] as const;
const BYTE_TOKENS = 256;

/**
 * A SentencePiece vocabulary of `size` pieces laid out like Llama 2's: <unk>, <s>, </s>, the 256
 * byte-fallback pieces, "▁" (a space that starts no known word), then distinct filler words with
 * decreasing scores. Any text encodes (through the byte pieces) and decodes back, so both lowkv
 * and llama.cpp accept it.
 */
export function syntheticVocab(size: number): SpmVocab {
  const first = SPECIAL.length + BYTE_TOKENS;
  if (!Number.isInteger(size) || size <= first) throw new RangeError(`vocabulary size must be an integer > ${first} (got ${size})`);
  const tokens: string[] = [...SPECIAL];
  const types = new Int32Array(size);
  types.set([TokenType.Unknown, TokenType.Control, TokenType.Control]);
  for (let b = 0; b < BYTE_TOKENS; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types[tokens.length - 1] = TokenType.Byte;
  }
  const scores = new Float32Array(size);
  for (let i = first; i < size; i++) {
    tokens.push(`▁${i === first ? '' : fillerWord(i - first - 1)}`);
    types[i] = TokenType.Normal;
    scores[i] = -(i - first);
  }
  return { tokens, scores, types, bos: 1, eos: 2, unk: 0, addBos: true, addEos: false, addSpacePrefix: true };
}

/** Bijective base-26 ("a" … "z", "aa", …): distinct for distinct n. */
function fillerWord(n: number): string {
  let s = '';
  for (let k = n + 1; k > 0; k = Math.floor((k - 1) / 26)) s = String.fromCharCode(97 + ((k - 1) % 26)) + s;
  return s;
}

/**
 * Seeded random weights. Each matrix is uniform with variance 1/in_dim, so every projection of
 * an RMS-normalised vector has entries of about unit size: attention scores q·k/√head_dim have a
 * spread near 1 (neither uniform nor one-hot) and logits stay finite through any depth. The
 * classifier is tied to the embedding (as in stories42M and Llama 3.2 1B), whose in_dim as a
 * classifier is dim. Norm weights are 1. Each tensor draws from its own stream, seeded by the
 * seed and the tensor's name, so no tensor's values depend on the order they are made in.
 */
export function randomWeights(c: LlamaConfig, seed: number, onTensor?: (done: number, total: number) => void): LlamaWeights {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const total = 1 + c.nLayers;
  const matrix = (name: string, rows: number, cols: number): WeightMatrix => weightMatrix('f32', rows, cols, uniform(name, rows * cols, 1 / Math.sqrt(cols), seed));
  const ones = (n: number): Float32Array => new Float32Array(n).fill(1);

  const tokenEmbedding = matrix('token_embd', c.vocabSize, c.dim);
  onTensor?.(1, total);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const m = (t: string, rows: number, cols: number): WeightMatrix => matrix(`blk.${l}.${t}`, rows, cols);
    layers.push({
      attnNorm: ones(c.dim),
      wq: m('attn_q', q, c.dim),
      wk: m('attn_k', kv, c.dim),
      wv: m('attn_v', kv, c.dim),
      wo: m('attn_output', c.dim, q),
      ffnNorm: ones(c.dim),
      wGate: m('ffn_gate', c.hiddenDim, c.dim),
      wDown: m('ffn_down', c.dim, c.hiddenDim),
      wUp: m('ffn_up', c.hiddenDim, c.dim),
    });
    onTensor?.(2 + l, total);
  }
  return { tokenEmbedding, layers, outputNorm: ones(c.dim), output: tokenEmbedding };
}

function uniform(name: string, n: number, std: number, seed: number): Float32Array {
  const rng = new Rng(fnv1a(`${seed >>> 0}:${name}`));
  // Uniform on [-√3·std, √3·std) has standard deviation std.
  const half = Math.sqrt(3) * std;
  const scale = (2 * half) / 2 ** 32;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.nextU32() * scale - half;
  return out;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export interface RandomModelOptions {
  readonly preset: PresetName;
  readonly type: Extract<WeightTypeName, 'f32' | 'f16' | 'q8_0'>;
  readonly seed: number;
  /** Called as the weights are generated (one step per layer, plus the embedding). */
  readonly onProgress?: (done: number, total: number) => void;
}

/**
 * Writes a random model as a GGUF llama file through the same writer as `lowkv convert`, so its
 * tensor names, shapes and metadata keys are the ones lowkv and llama.cpp read.
 */
export function writeRandomModel(path: string, o: RandomModelOptions): { parameters: number; tensors: number } {
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff) throw new RangeError(`seed must be an integer in [0, 2^32) (got ${o.seed})`);
  const config = presetConfig(o.preset);
  // writeModelGguf writes no attention.key_length, so readers derive head_dim as dim / heads.
  if (config.dim !== config.nHeads * config.headDim) throw new Error(`preset ${o.preset}: dim must be heads × head_dim`);
  const vocab = syntheticVocab(config.vocabSize);
  const weights = randomWeights(config, o.seed, o.onProgress);
  const name = `lowkv-random-${o.preset}-seed${o.seed}`;
  // 'llama2c' as the source format: there is no source GGUF whose metadata would be carried over.
  const source = { path, format: 'llama2c', name, config, weights, tokenizer: new SpmTokenizer(vocab), tokenizerPath: path } as const;
  const summary = writeModelGguf(source, vocab, path, o.type);
  return { parameters: parameterCount(config), tensors: summary.tensors };
}
