// Llama config and weights from a parsed GGUF file. Everything the engine would silently get
// wrong (another architecture, partial or scaled RoPE, extra tensors such as biases) is refused.

import { ModelFormatError } from '../formats/errors.js';
import { isDequantizable } from '../formats/ggml-types.js';
import { type GgufFile, getArray, getNumber, getString, readTensor, readTensorBytes } from '../formats/gguf.js';
import type { WeightMatrix } from '../kernels/weights.js';
import { matrixFromTensor, heapFloat32 } from './weight-memory.js';
import type { LayerWeights, LlamaConfig, LlamaWeights } from './types.js';

const ARCH = 'llama';

export function llamaFromGguf(file: GgufFile): { config: LlamaConfig; weights: LlamaWeights } {
  const arch = getString(file, 'general.architecture');
  if (arch !== ARCH) {
    throw new ModelFormatError(file.path, 'general.architecture', `unsupported architecture "${arch}"; supported: ${ARCH}`);
  }
  const config = configFromGguf(file);
  const expected = expectedTensors(config);
  const tied = file.tensor('output.weight') === undefined;
  checkTensors(file, expected, tied);

  const vector = (name: string): Float32Array => {
    const v = readTensor(file, name);
    const out = heapFloat32(v.length);
    out.set(v);
    return out;
  };
  // Matrices keep their stored type (the kernels run on all of them), read straight into place.
  const matrix = (name: string): WeightMatrix => {
    const info = file.tensor(name)!;
    if (!isDequantizable(info.type)) readTensor(file, name); // throws the "not supported" error
    return matrixFromTensor(info.type, info.ne[1], info.ne[0], (dst) => readTensorBytes(file, info, dst));
  };
  const layers = Array.from({ length: config.nLayers }, (_, l): LayerWeights => {
    const blk = (t: string): string => `blk.${l}.${t}.weight`;
    return {
      attnNorm: vector(blk('attn_norm')),
      wq: matrix(blk('attn_q')),
      wk: matrix(blk('attn_k')),
      wv: matrix(blk('attn_v')),
      wo: matrix(blk('attn_output')),
      ffnNorm: vector(blk('ffn_norm')),
      wGate: matrix(blk('ffn_gate')),
      wDown: matrix(blk('ffn_down')),
      wUp: matrix(blk('ffn_up')),
    };
  });
  const tokenEmbedding = matrix('token_embd.weight');
  return {
    config,
    weights: {
      tokenEmbedding,
      layers,
      outputNorm: vector('output_norm.weight'),
      output: tied ? tokenEmbedding : matrix('output.weight'),
    },
  };
}

function configFromGguf(file: GgufFile): LlamaConfig {
  const key = (k: string): string => `${ARCH}.${k}`;
  const fail = (k: string, problem: string): never => {
    throw new ModelFormatError(file.path, `metadata["${k}"]`, problem);
  };
  const count = (k: string, fallback?: number): number => {
    const v = fallback === undefined ? getNumber(file, k) : getNumber(file, k, false) ?? fallback;
    if (!Number.isSafeInteger(v) || v < 1) fail(k, `must be a positive integer, is ${v}`);
    return v;
  };
  const real = (k: string, fallback: number): number => {
    const v = getNumber(file, k, false);
    if (v === undefined) return fallback;
    if (!Number.isFinite(v) || v <= 0) fail(k, `must be a positive number, is ${v}`);
    return file.metadataTypes.get(k) === 'float32' ? shortestFloat32(v) : v;
  };

  const dim = count(key('embedding_length'));
  const nLayers = count(key('block_count'));
  const hiddenDim = count(key('feed_forward_length'));
  const nHeads = count(key('attention.head_count'));
  const nKvHeads = count(key('attention.head_count_kv'), nHeads);
  if (nHeads % nKvHeads !== 0) {
    fail(key('attention.head_count_kv'), `head_count ${nHeads} is not a multiple of head_count_kv ${nKvHeads}`);
  }
  const keyLength = getNumber(file, key('attention.key_length'), false);
  if (keyLength === undefined && dim % nHeads !== 0) {
    fail(key('attention.head_count'), `embedding_length ${dim} is not divisible by head_count ${nHeads}`);
  }
  const headDim = count(key('attention.key_length'), dim / nHeads);
  if (headDim % 2 !== 0) fail(key('attention.key_length'), `head_dim ${headDim} is odd; RoPE needs pairs`);
  const valueLength = count(key('attention.value_length'), headDim);
  if (valueLength !== headDim) {
    fail(key('attention.value_length'), `value_length ${valueLength} differs from key_length ${headDim}; not supported`);
  }
  const ropeDim = count(key('rope.dimension_count'), headDim);
  if (ropeDim !== headDim) {
    fail(key('rope.dimension_count'), `partial RoPE (${ropeDim} of head_dim ${headDim}) is not supported yet`);
  }
  const scaling = getString(file, key('rope.scaling.type'), false);
  if (scaling !== undefined && scaling !== 'none') fail(key('rope.scaling.type'), `RoPE scaling "${scaling}" is not supported yet`);
  const experts = getNumber(file, key('expert_count'), false);
  if (experts !== undefined && experts > 0) fail(key('expert_count'), `mixture-of-experts models are not supported`);

  return {
    arch: ARCH,
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    headDim,
    vocabSize: vocabSize(file, key('vocab_size'), count),
    contextLength: count(key('context_length')),
    ropeTheta: real(key('rope.freq_base'), 10000),
    ropeDim,
    rmsEps: real(key('attention.layer_norm_rms_epsilon'), 1e-5),
  };
}

/** The model's vocabulary is its embedding's row count; the tokenizer is checked against it later. */
function vocabSize(file: GgufFile, k: string, count: (k: string) => number): number {
  if (file.metadata.has(k)) return count(k);
  const emb = file.tensor('token_embd.weight');
  if (emb !== undefined && emb.ne.length === 2) return emb.ne[1];
  const tokens = getArray(file, 'tokenizer.ggml.tokens', false);
  if (tokens !== undefined) return tokens.length;
  throw new ModelFormatError(file.path, k, 'missing, and neither token_embd.weight nor tokenizer.ggml.tokens gives it');
}

/**
 * The shortest decimal that rounds to the same float32, so a stored 1e-5f reads as 1e-5 (the
 * value llama2.c files imply) rather than 9.99999974738e-6; float32 arithmetic sees no difference.
 */
function shortestFloat32(v: number): number {
  for (let p = 1; p < 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === v) return d;
  }
  return v;
}

/** Expected GGUF shapes (ne, fastest-varying first), by tensor name. */
function expectedTensors(c: LlamaConfig): Map<string, number[]> {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const m = new Map<string, number[]>([
    ['token_embd.weight', [c.dim, c.vocabSize]],
    ['output_norm.weight', [c.dim]],
    ['output.weight', [c.dim, c.vocabSize]],
  ]);
  for (let l = 0; l < c.nLayers; l++) {
    const b = `blk.${l}.`;
    m.set(`${b}attn_norm.weight`, [c.dim]);
    m.set(`${b}attn_q.weight`, [c.dim, q]);
    m.set(`${b}attn_k.weight`, [c.dim, kv]);
    m.set(`${b}attn_v.weight`, [c.dim, kv]);
    m.set(`${b}attn_output.weight`, [q, c.dim]);
    m.set(`${b}ffn_norm.weight`, [c.dim]);
    m.set(`${b}ffn_gate.weight`, [c.dim, c.hiddenDim]);
    m.set(`${b}ffn_down.weight`, [c.hiddenDim, c.dim]);
    m.set(`${b}ffn_up.weight`, [c.dim, c.hiddenDim]);
  }
  return m;
}

/** Checks every shape before any data is read, so a bad file fails at once. */
function checkTensors(file: GgufFile, expected: Map<string, number[]>, tied: boolean): void {
  const shape = (ne: readonly number[]): string => `[${ne.join(', ')}]`;
  for (const [name, ne] of expected) {
    const t = file.tensor(name);
    if (!t) {
      if (name === 'output.weight' && tied) continue;
      throw new ModelFormatError(file.path, `tensor "${name}"`, `missing (expected shape ${shape(ne)})`);
    }
    if (t.ne.length !== ne.length || t.ne.some((n, i) => n !== ne[i])) {
      throw new ModelFormatError(file.path, `tensor "${name}"`, `shape ${shape(t.ne)} does not match the expected ${shape(ne)}`);
    }
  }
  for (const t of file.tensors) {
    if (expected.has(t.name)) continue;
    const why = t.name === 'rope_freqs.weight' ? 'RoPE frequency scaling (Llama 3.1) is not supported yet' : 'not used by the llama model (biases and extra tensors are not supported)';
    throw new ModelFormatError(file.path, `tensor "${t.name}"`, `unexpected tensor: ${why}`);
  }
}
