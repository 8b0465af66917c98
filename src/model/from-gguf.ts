// Decoder config and weights from a parsed GGUF file, for the architectures in ARCHITECTURES.
// How each one differs from Llama is stated once, in ARCH below, and turned into LlamaConfig
// fields and optional weights here, so the forward pass needs no architecture switch. Everything
// the engine would silently get wrong (another architecture, partial or unknown RoPE scaling,
// mixture of experts, tensors it would not use) is refused.

import { ModelFormatError } from '../formats/errors.js';
import { GgmlType, isDequantizable } from '../formats/ggml-types.js';
import { type GgufFile, type GgufTensorInfo, getArray, getNumber, getString, readTensor, readTensorBytes } from '../formats/gguf.js';
import type { WeightMatrix } from '../kernels/weights.js';
import type { RopePairing } from '../kv/codec.js';
import { matrixFromTensor, heapFloat32 } from './weight-memory.js';
import { ARCHITECTURES, type Architecture, type LayerWeights, type LlamaConfig, type LlamaWeights } from './types.js';

/** What an architecture adds to or changes in the Llama decoder (llama.cpp's reading of it). */
interface ArchTraits {
  readonly rope: RopePairing;
  readonly fusedQkv?: boolean; // attn_qkv rows [Q | K | V] (phi3; separate q/k/v also accepted)
  readonly fusedGateUp?: boolean; // ffn_up rows [gate | up], no ffn_gate (phi3)
  readonly qkvBias?: boolean; // attn_q/k/v.bias (qwen2)
  readonly qkNorm?: boolean; // attn_q_norm, attn_k_norm over each head (qwen3)
  readonly postNorms?: boolean; // post_attention_norm, post_ffw_norm (gemma2)
  readonly ropeFreqs?: boolean; // rope_freqs.weight allowed (llama: Llama 3.1)
  readonly gelu?: boolean; // gelu_tanh FFN (gemma, gemma2)
  readonly embedScale?: boolean; // embeddings × √dim (gemma, gemma2)
  /** Which layers the `attention.sliding_window` key applies to; absent: the key is ignored. */
  readonly window?: 'every' | 'even';
  readonly softcap?: boolean; // attention and final logit soft-capping (gemma2)
}

const ARCH: Record<Architecture, ArchTraits> = {
  llama: { rope: 'norm', ropeFreqs: true },
  qwen2: { rope: 'neox', qkvBias: true },
  qwen3: { rope: 'neox', qkNorm: true },
  phi3: { rope: 'neox', fusedQkv: true, fusedGateUp: true, window: 'every' },
  gemma: { rope: 'neox', gelu: true, embedScale: true },
  gemma2: { rope: 'neox', gelu: true, embedScale: true, postNorms: true, window: 'even', softcap: true },
};

/** llama.cpp's defaults where Gemma 2 files leave the key out. */
const GEMMA2_DEFAULTS = { window: 4096, attnSoftcap: 50, finalSoftcap: 30 };

function isArchitecture(a: string): a is Architecture {
  return (ARCHITECTURES as readonly string[]).includes(a);
}

export function llamaFromGguf(file: GgufFile): { config: LlamaConfig; weights: LlamaWeights } {
  const arch = getString(file, 'general.architecture');
  if (!isArchitecture(arch)) {
    throw new ModelFormatError(file.path, 'general.architecture', `unsupported architecture "${arch}"; supported: ${ARCHITECTURES.join(', ')}`);
  }
  const traits = ARCH[arch];
  const config0 = configFromGguf(file, arch, traits);
  const layout = tensorLayout(file, config0, traits);
  checkTensors(file, arch, layout);
  const config: LlamaConfig = layout.has('rope_freqs.weight') ? { ...config0, ropeFreqFactors: ropeFreqs(file, config0) } : config0;
  return { config, weights: readWeights(file, config, traits, layout) };
}

function readWeights(file: GgufFile, c: LlamaConfig, traits: ArchTraits, layout: Layout): LlamaWeights {
  const vector = (name: string): Float32Array => {
    const v = readTensor(file, name);
    const out = heapFloat32(v.length);
    out.set(v);
    return out;
  };
  // Checked by checkTensors: a layout entry is a tensor the file holds.
  const optional = (name: string): Float32Array | undefined => (layout.has(name) ? vector(name) : undefined);
  // Matrices keep their stored type (the kernels run on all of them), read straight into place.
  const matrix = (name: string): WeightMatrix => {
    const info = file.tensor(name)!;
    if (!isDequantizable(info.type)) readTensor(file, name); // throws the "not supported" error
    return matrixFromTensor(info.type, info.ne[1], info.ne[0], (dst) => readTensorBytes(file, info, dst));
  };
  // A fused tensor is read once and cut into row ranges: GGUF stores each row's blocks
  // contiguously, so rows slice at whole bytes.
  const matrices = (name: string, rows: readonly number[]): WeightMatrix[] => {
    const info = file.tensor(name)!;
    if (!isDequantizable(info.type)) readTensor(file, name);
    const bytes = readTensorBytes(file, info);
    const rowBytes = info.nbytes / info.ne[1];
    let r0 = 0;
    return rows.map((n) => {
      const m = matrixFromTensor(info.type, n, info.ne[0], bytes.subarray(r0 * rowBytes, (r0 + n) * rowBytes));
      r0 += n;
      return m;
    });
  };
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;

  const layers = Array.from({ length: c.nLayers }, (_, l): LayerWeights => {
    const blk = (t: string, kind = 'weight'): string => `blk.${l}.${t}.${kind}`;
    const [wq, wk, wv] = layout.has(blk('attn_qkv')) ? matrices(blk('attn_qkv'), [qDim, kvDim, kvDim]) : [matrix(blk('attn_q')), matrix(blk('attn_k')), matrix(blk('attn_v'))];
    const [wGate, wUp] = traits.fusedGateUp ? matrices(blk('ffn_up'), [c.hiddenDim, c.hiddenDim]) : [matrix(blk('ffn_gate')), matrix(blk('ffn_up'))];
    return {
      attnNorm: vector(blk('attn_norm')),
      wq,
      wk,
      wv,
      wo: matrix(blk('attn_output')),
      ffnNorm: vector(blk('ffn_norm')),
      wGate,
      wDown: matrix(blk('ffn_down')),
      wUp,
      bq: optional(blk('attn_q', 'bias')),
      bk: optional(blk('attn_k', 'bias')),
      bv: optional(blk('attn_v', 'bias')),
      qNorm: optional(blk('attn_q_norm')),
      kNorm: optional(blk('attn_k_norm')),
      postAttnNorm: optional(blk('post_attention_norm')),
      postFfnNorm: optional(blk('post_ffw_norm')),
    };
  });
  const tokenEmbedding = matrix('token_embd.weight');
  return {
    tokenEmbedding,
    layers,
    outputNorm: vector('output_norm.weight'),
    output: layout.has('output.weight') ? matrix('output.weight') : tokenEmbedding,
  };
}

function configFromGguf(file: GgufFile, arch: Architecture, traits: ArchTraits): LlamaConfig {
  const key = (k: string): string => `${arch}.${k}`;
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
  const experts = getNumber(file, key('expert_count'), false);
  if (experts !== undefined && experts > 0) fail(key('expert_count'), `mixture-of-experts models are not supported`);

  const linearScale = ropeLinearScale(file, arch, fail);
  const windowKey = key('attention.sliding_window');
  const window = !traits.window ? 0 : file.metadata.has(windowKey) ? count(windowKey) : arch === 'gemma2' ? GEMMA2_DEFAULTS.window : 0;
  return {
    arch,
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
    ...(traits.rope === 'neox' && { ropePairing: 'neox' as const }),
    ...(linearScale !== 1 && { ropeFreqFactors: new Array<number>(ropeDim / 2).fill(linearScale) }),
    ...(traits.gelu && { ffnActivation: 'gelu_tanh' as const }),
    ...(traits.embedScale && { embedScale: Math.fround(Math.sqrt(dim)) }),
    // llama.cpp picks Gemma 2's query scale by model size, which it reads off the layer count:
    // 27B (46 layers) scales by 1/√(dim/nHeads) (its query_pre_attn_scalar), the others by 1/√headDim.
    ...(arch === 'gemma2' && nLayers === 46 && { attnScale: 1 / Math.sqrt(dim / nHeads) }),
    ...(traits.softcap && {
      attnSoftcap: real(key('attn_logit_softcapping'), GEMMA2_DEFAULTS.attnSoftcap),
      finalSoftcap: real(key('final_logit_softcapping'), GEMMA2_DEFAULTS.finalSoftcap),
    }),
    ...(window && { slidingWindow: Array.from({ length: nLayers }, (_, l) => (traits.window === 'every' || l % 2 === 0 ? window : 0)) }),
  };
}

/**
 * Linear RoPE scaling as llama.cpp reads it: `rope.scaling.factor` (or the older
 * `rope.scale_linear`) divides every frequency unless `rope.scaling.type` is "none"; "linear" is
 * the default type. Other types (yarn, longrope, …) change the angles in ways not implemented here.
 */
function ropeLinearScale(file: GgufFile, arch: string, fail: (k: string, problem: string) => never): number {
  const typeKey = `${arch}.rope.scaling.type`;
  const type = getString(file, typeKey, false) ?? 'linear';
  if (type !== 'none' && type !== 'linear') fail(typeKey, `RoPE scaling "${type}" is not supported (supported: none, linear)`);
  const factorKey = file.metadata.has(`${arch}.rope.scaling.factor`) ? `${arch}.rope.scaling.factor` : `${arch}.rope.scale_linear`;
  const factor = getNumber(file, factorKey, false) ?? 0;
  if (!Number.isFinite(factor) || factor < 0) fail(factorKey, `must be a non-negative number, is ${factor}`);
  return type === 'none' || factor === 0 ? 1 : Math.fround(factor);
}

/** Llama 3.1's per-pair frequency divisors, combined with any linear scaling. */
function ropeFreqs(file: GgufFile, c: LlamaConfig): number[] {
  const name = 'rope_freqs.weight';
  const info = file.tensor(name)!;
  if (info.type !== GgmlType.F32) throw new ModelFormatError(file.path, `tensor "${name}"`, `must be F32, is ${GgmlType[info.type]}`);
  const f = Array.from(readTensor(file, name));
  const bad = f.findIndex((v) => !(v > 0) || !Number.isFinite(v));
  if (bad >= 0) throw new ModelFormatError(file.path, `tensor "${name}"`, `factor ${bad} is ${f[bad]}; factors must be positive`);
  return f.map((v, i) => v * (c.ropeFreqFactors?.[i] ?? 1));
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

/** Expected tensors: GGUF shape (ne, fastest-varying first) by name. */
type Layout = Map<string, readonly number[]>;

/**
 * The tensors this file must hold, the optional ones (untied output, Llama 3.1's rope_freqs)
 * included when the file has them, Phi-3's q/k/v fused or not as the file has them.
 */
function tensorLayout(file: GgufFile, c: LlamaConfig, t: ArchTraits): Layout {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const m: Layout = new Map();
  const want = (name: string, ne: number[], required = true): void => {
    if (required || file.tensor(name) !== undefined) m.set(name, ne);
  };
  want('token_embd.weight', [c.dim, c.vocabSize]);
  want('output_norm.weight', [c.dim]);
  want('output.weight', [c.dim, c.vocabSize], false);
  if (t.ropeFreqs) want('rope_freqs.weight', [c.ropeDim / 2], false);
  const fusedQkv = t.fusedQkv === true && file.tensor('blk.0.attn_qkv.weight') !== undefined;
  for (let l = 0; l < c.nLayers; l++) {
    const b = `blk.${l}.`;
    want(`${b}attn_norm.weight`, [c.dim]);
    if (fusedQkv) want(`${b}attn_qkv.weight`, [c.dim, q + 2 * kv]);
    else {
      want(`${b}attn_q.weight`, [c.dim, q]);
      want(`${b}attn_k.weight`, [c.dim, kv]);
      want(`${b}attn_v.weight`, [c.dim, kv]);
    }
    if (t.qkvBias) {
      want(`${b}attn_q.bias`, [q]);
      want(`${b}attn_k.bias`, [kv]);
      want(`${b}attn_v.bias`, [kv]);
    }
    if (t.qkNorm) {
      want(`${b}attn_q_norm.weight`, [c.headDim]);
      want(`${b}attn_k_norm.weight`, [c.headDim]);
    }
    want(`${b}attn_output.weight`, [q, c.dim]);
    want(`${b}ffn_norm.weight`, [c.dim]);
    if (t.fusedGateUp) want(`${b}ffn_up.weight`, [c.dim, 2 * c.hiddenDim]);
    else {
      want(`${b}ffn_gate.weight`, [c.dim, c.hiddenDim]);
      want(`${b}ffn_up.weight`, [c.dim, c.hiddenDim]);
    }
    want(`${b}ffn_down.weight`, [c.hiddenDim, c.dim]);
    if (t.postNorms) {
      want(`${b}post_attention_norm.weight`, [c.dim]);
      want(`${b}post_ffw_norm.weight`, [c.dim]);
    }
  }
  return m;
}

/** Checks every shape before any data is read, so a bad file fails at once. */
function checkTensors(file: GgufFile, arch: Architecture, layout: Layout): void {
  const shape = (ne: readonly number[]): string => `[${ne.join(', ')}]`;
  for (const [name, ne] of layout) {
    const t = file.tensor(name);
    if (!t) throw new ModelFormatError(file.path, `tensor "${name}"`, `missing (expected shape ${shape(ne)})`);
    if (t.ne.length !== ne.length || t.ne.some((n, i) => n !== ne[i])) {
      throw new ModelFormatError(file.path, `tensor "${name}"`, `shape ${shape(t.ne)} does not match the expected ${shape(ne)}`);
    }
  }
  for (const t of file.tensors) {
    if (!layout.has(t.name)) throw new ModelFormatError(file.path, `tensor "${t.name}"`, `unexpected tensor: ${whyUnexpected(t, arch)}`);
  }
}

function whyUnexpected(t: GgufTensorInfo, arch: Architecture): string {
  if (t.name === 'rope_freqs.weight') return `RoPE frequency factors are not part of the ${arch} architecture`;
  if (/^rope_factors_(long|short)\./.test(t.name)) return 'LongRoPE scaling (Phi-3 128k/Phi-3.5) is not supported';
  if (/_(exps|inp|shexp)\./.test(t.name)) return 'mixture-of-experts tensors are not supported';
  if (t.name.endsWith('.bias')) return `the ${arch} model has no such bias`;
  return `not used by the ${arch} model`;
}
