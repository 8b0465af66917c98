// A Hugging Face model folder (config.json + safetensors) seen as a GGUF file: the tensor names,
// shapes and metadata keys are the ones llama.cpp's convert_hf_to_gguf.py writes, so the GGUF
// loader runs the folder unchanged. Tensors are read from the shards at their offsets; the few
// the converter transforms (llama's Q/K row permutation, gemma's norm + 1, vectors kept as F32)
// are transformed when the loader reads them.

import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ModelFormatError } from '../formats/errors.js';
import { GgmlType, dequantizeToF32 } from '../formats/ggml-types.js';
import { readJsonFile } from '../formats/json-file.js';
import type { GgufFile, GgufTensorInfo, GgufTypeDescriptor, GgufValue } from '../formats/gguf.js';
import {
  INDEX_FILE,
  readSafetensors,
  readSafetensorsData,
  readShardedSafetensors,
  type SafetensorsCheckpoint,
  type SafetensorsDtype,
  type SafetensorsTensor,
} from '../formats/safetensors.js';
import { roundF16 } from '../numeric/f16.js';

/** config.json `architectures` lowkv runs, and the GGUF architecture each becomes. */
export const HF_ARCHITECTURES: Readonly<Record<string, string>> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  Phi3ForCausalLM: 'phi3',
  GemmaForCausalLM: 'gemma',
  Gemma2ForCausalLM: 'gemma2',
  Qwen3ForCausalLM: 'qwen3',
};

// config.json `model_type`, for folders whose config lacks `architectures`.
const MODEL_TYPES: Readonly<Record<string, string>> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  phi3: 'Phi3ForCausalLM',
  gemma: 'GemmaForCausalLM',
  gemma2: 'Gemma2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
};

const GGML_TYPES: Record<SafetensorsDtype, GgmlType> = { F32: GgmlType.F32, F16: GgmlType.F16, BF16: GgmlType.BF16 };
// llama.cpp's general.file_type (LLAMA_FTYPE_ALL_F32, MOSTLY_F16, MOSTLY_BF16).
const FILE_TYPES: Record<SafetensorsDtype, number> = { F32: 0, F16: 1, BF16: 32 };

/** A config.json value, or a ModelFormatError naming the key. */
class HfConfig {
  constructor(
    readonly path: string,
    private readonly raw: Record<string, unknown>,
  ) {}

  fail(key: string, problem: string): never {
    throw new ModelFormatError(this.path, key, problem);
  }

  value(key: string): unknown {
    const v = this.raw[key];
    return v === null ? undefined : v;
  }

  /** A positive integer; undefined when absent and not required. */
  int(key: string, required: true): number;
  int(key: string, required?: false): number | undefined;
  int(key: string, required = false): number | undefined {
    const v = this.value(key);
    if (v === undefined) return required ? this.fail(key, 'missing (required)') : undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) this.fail(key, `must be a positive integer, is ${JSON.stringify(v)}`);
    return v as number;
  }

  /** A finite number; undefined when absent and not required. */
  num(key: string, required: true): number;
  num(key: string, required?: false): number | undefined;
  num(key: string, required = false): number | undefined {
    const v = this.value(key);
    if (v === undefined) return required ? this.fail(key, 'missing (required)') : undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, `must be a number, is ${JSON.stringify(v)}`);
    return v as number;
  }

  /** The first of several synonyms that is present. */
  firstInt(keys: string[], required: true): number;
  firstInt(keys: string[], required?: false): number | undefined;
  firstInt(keys: string[], required = false): number | undefined {
    for (const k of keys) if (this.value(k) !== undefined) return this.int(k, true);
    return required ? this.fail(keys[0], 'missing (required)') : undefined;
  }

  /** rope_scaling as [type, its fields]; undefined when absent or "default". */
  ropeScaling(): [string, Record<string, unknown>] | undefined {
    const rs = this.value('rope_scaling');
    if (rs === undefined) return undefined;
    if (typeof rs !== 'object' || Array.isArray(rs)) this.fail('rope_scaling', 'must be an object');
    const fields = rs as Record<string, unknown>;
    const type = fields.rope_type ?? fields.type;
    if (typeof type !== 'string') this.fail('rope_scaling', 'has no rope_type');
    return type === 'default' ? undefined : [type as string, fields];
  }
}

/** GGUF metadata under construction, with the value types the converter's writer uses. */
class Metadata {
  readonly values = new Map<string, GgufValue>();
  readonly types = new Map<string, GgufTypeDescriptor>();

  constructor(readonly arch: string) {}

  u32(key: string, v: number | undefined): void {
    if (v !== undefined) this.set(`${this.arch}.${key}`, v, 'uint32');
  }
  f32(key: string, v: number | undefined): void {
    if (v !== undefined) this.set(`${this.arch}.${key}`, Math.fround(v), 'float32');
  }
  str(key: string, v: string): void {
    this.set(key, v, 'string');
  }
  set(key: string, v: GgufValue, type: GgufTypeDescriptor): void {
    this.values.set(key, v);
    this.types.set(key, type);
  }
}

/** A tensor that is not in any file: computed from config.json (rope frequency factors). */
interface ExtraTensor {
  readonly name: string;
  readonly values: Float32Array;
}

interface ArchSpec {
  /** HF layer tensor (after "model.layers.N.") → GGUF name (after "blk.N."). */
  readonly layer: Readonly<Record<string, string>>;
  readonly params: (c: HfConfig, m: Metadata) => ExtraTensor[];
  /** Tensors the converter drops. */
  readonly skip?: (hfName: string) => boolean;
  /** Whether the converter changes this tensor's values. */
  readonly transform?: 'llama-qk' | 'norm-plus-one';
}

const LAYER: Readonly<Record<string, string>> = {
  input_layernorm: 'attn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  post_attention_layernorm: 'ffn_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

const TOP: Readonly<Record<string, string>> = {
  'model.embed_tokens': 'token_embd',
  'model.norm': 'output_norm',
  lm_head: 'output',
};

const ARCHS: Readonly<Record<string, ArchSpec>> = {
  llama: { layer: LAYER, params: llamaParams, transform: 'llama-qk' },
  qwen2: { layer: LAYER, params: qwen2Params },
  qwen3: {
    layer: { ...LAYER, 'self_attn.q_norm': 'attn_q_norm', 'self_attn.k_norm': 'attn_k_norm' },
    params: qwen2Params,
  },
  phi3: { layer: { ...LAYER, 'self_attn.qkv_proj': 'attn_qkv', 'mlp.gate_up_proj': 'ffn_up' }, params: phi3Params },
  // lm_head is dropped: gemma ties the output to the embedding.
  gemma: { layer: LAYER, params: gemmaParams, skip: (n) => n === 'lm_head.weight', transform: 'norm-plus-one' },
  gemma2: {
    layer: {
      ...LAYER,
      post_attention_layernorm: 'post_attention_norm',
      pre_feedforward_layernorm: 'ffn_norm',
      post_feedforward_layernorm: 'post_ffw_norm',
    },
    params: gemma2Params,
    skip: (n) => n === 'lm_head.weight',
    transform: 'norm-plus-one',
  },
};

/** TextModel.set_gguf_parameters: the keys every architecture starts from. */
function baseParams(c: HfConfig, m: Metadata): void {
  m.u32('block_count', c.firstInt(['n_layers', 'num_hidden_layers', 'n_layer', 'num_layers'], true));
  m.u32('context_length', c.firstInt(['max_position_embeddings', 'n_ctx']));
  m.u32('embedding_length', c.firstInt(['hidden_size', 'n_embd']));
  m.u32('feed_forward_length', c.firstInt(['intermediate_size', 'n_inner']));
  m.u32('attention.head_count', c.firstInt(['num_attention_heads', 'n_head']));
  m.u32('attention.head_count_kv', c.int('num_key_value_heads'));
  m.f32('rope.freq_base', c.num('rope_theta'));
  m.f32('attention.layer_norm_rms_epsilon', c.num('rms_norm_eps'));
  m.u32('attention.key_length', c.int('head_dim'));
  m.u32('attention.value_length', c.int('head_dim'));
}

function llamaParams(c: HfConfig, m: Metadata): ExtraTensor[] {
  baseParams(c, m);
  m.u32('vocab_size', c.int('vocab_size'));
  const headDim = c.int('head_dim') ?? Math.floor(c.int('hidden_size', true) / c.int('num_attention_heads', true));
  m.u32('rope.dimension_count', headDim);
  const scaling = c.ropeScaling();
  if (!scaling) return [];
  const [type, rs] = scaling;
  if (type === 'linear') {
    m.set('llama.rope.scaling.type', 'linear', 'string');
    m.f32('rope.scaling.factor', ropeNumber(c, rs, 'factor'));
    return [];
  }
  if (type === 'llama3') {
    const original = rs.original_max_position_embeddings ?? c.value('original_max_position_embeddings') ?? 8192;
    const factors = llama3RopeFactors(
      c.num('rope_theta') ?? 10000,
      headDim,
      ropeNumber(c, rs, 'factor', 8),
      ropeNumber(c, rs, 'low_freq_factor', 1),
      ropeNumber(c, rs, 'high_freq_factor', 4),
      typeof original === 'number' ? original : c.fail('rope_scaling', 'original_max_position_embeddings must be a number'),
    );
    if (!factors) c.fail('rope_scaling', 'low_freq_factor and high_freq_factor give the same wavelength');
    return [{ name: 'rope_freqs.weight', values: factors }];
  }
  return unsupportedScaling(c, type, ['linear', 'llama3']);
}

function qwen2Params(c: HfConfig, m: Metadata): ExtraTensor[] {
  baseParams(c, m);
  const scaling = c.ropeScaling();
  if (!scaling) return [];
  const [type, rs] = scaling;
  if (type !== 'yarn') return unsupportedScaling(c, type, ['yarn']);
  m.set(`${m.arch}.rope.scaling.type`, 'yarn', 'string');
  m.f32('rope.scaling.factor', ropeNumber(c, rs, 'factor'));
  m.u32('rope.scaling.original_context_length', ropeNumber(c, rs, 'original_max_position_embeddings'));
  return [];
}

function phi3Params(c: HfConfig, m: Metadata): ExtraTensor[] {
  const nEmbd = c.firstInt(['hidden_size', 'n_embd'], true);
  const nHead = c.firstInt(['num_attention_heads', 'n_head'], true);
  const maxPos = c.firstInt(['n_positions', 'max_position_embeddings'], true);
  const origMaxPos = c.int('original_max_position_embeddings');
  m.u32('context_length', maxPos);
  m.u32('rope.scaling.original_context_length', origMaxPos);
  m.u32('embedding_length', nEmbd);
  m.u32('feed_forward_length', c.int('intermediate_size', true));
  m.u32('block_count', c.firstInt(['num_hidden_layers', 'n_layer'], true));
  m.u32('attention.head_count', nHead);
  m.u32('attention.head_count_kv', c.firstInt(['num_key_value_heads', 'n_head_kv'], true));
  m.f32('attention.layer_norm_rms_epsilon', c.num('rms_norm_eps', true));
  m.u32('rope.dimension_count', Math.floor(nEmbd / nHead));
  m.f32('rope.freq_base', c.num('rope_theta', true));
  // 0 is how the converter marks "no sliding window" (Phi-4).
  const window = c.value('sliding_window') === undefined ? 0 : c.int('sliding_window', true);
  m.set('phi3.attention.sliding_window', window, 'uint32');

  const scaling = c.ropeScaling();
  if (!scaling) return [];
  const [type, rs] = scaling;
  if (origMaxPos === undefined) c.fail('original_max_position_embeddings', 'missing (required with rope_scaling)');
  const scale = maxPos / origMaxPos;
  let attnFactor: number;
  if (type === 'su' || type === 'longrope') attnFactor = scale > 1 ? Math.sqrt(1 + Math.log(scale) / Math.log(origMaxPos)) : 1;
  else if (type === 'yarn') attnFactor = scale > 1 ? 0.1 * Math.log(scale) + 1 : 1;
  else return unsupportedScaling(c, type, ['longrope', 'su', 'yarn']);
  m.f32('rope.scaling.attn_factor', attnFactor);
  const half = Math.floor(nEmbd / nHead) / 2;
  const factors = (key: string): Float32Array => {
    const v = rs[key];
    if (!Array.isArray(v) || v.length !== half || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      c.fail(`rope_scaling.${key}`, `must be ${half} numbers (head_dim / 2)`);
    }
    return Float32Array.from(v as number[]);
  };
  return [
    { name: 'rope_factors_long.weight', values: factors('long_factor') },
    { name: 'rope_factors_short.weight', values: factors('short_factor') },
  ];
}

function gemmaParams(c: HfConfig, m: Metadata): ExtraTensor[] {
  const nHead = c.int('num_attention_heads', true);
  m.u32('context_length', c.int('max_position_embeddings', true));
  m.u32('embedding_length', c.int('hidden_size', true));
  m.u32('block_count', c.int('num_hidden_layers', true));
  m.u32('feed_forward_length', c.int('intermediate_size', true));
  m.u32('attention.head_count', nHead);
  m.u32('attention.head_count_kv', c.int('num_key_value_heads') ?? nHead);
  m.f32('attention.layer_norm_rms_epsilon', c.num('rms_norm_eps', true));
  m.u32('attention.key_length', c.int('head_dim', true));
  m.u32('attention.value_length', c.int('head_dim', true));
  const scaling = c.ropeScaling();
  if (scaling) unsupportedScaling(c, scaling[0], []);
  return [];
}

function gemma2Params(c: HfConfig, m: Metadata): ExtraTensor[] {
  gemmaParams(c, m);
  m.f32('attn_logit_softcapping', c.num('attn_logit_softcapping', true));
  m.f32('final_logit_softcapping', c.num('final_logit_softcapping', true));
  m.u32('attention.sliding_window', c.int('sliding_window', true));
  return [];
}

function ropeNumber(c: HfConfig, rs: Record<string, unknown>, key: string, fallback?: number): number {
  const v = rs[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) c.fail(`rope_scaling.${key}`, `must be a positive number, is ${JSON.stringify(v)}`);
  return v as number;
}

function unsupportedScaling(c: HfConfig, type: string, supported: string[]): never {
  const list = supported.length ? ` (supported here: ${supported.join(', ')})` : '';
  return c.fail('rope_scaling', `RoPE scaling "${type}" is not supported for this architecture${list}`);
}

/**
 * Llama 3.1's per-frequency RoPE divisors, as convert_hf_to_gguf.py computes them: in float32,
 * with torch's `scalar / tensor` evaluated as reciprocal(tensor) * scalar. Undefined when the
 * two wavelength bounds coincide (the converter asserts they differ).
 */
function llama3RopeFactors(
  base: number,
  headDim: number,
  factor: number,
  lowFreqFactor: number,
  highFreqFactor: number,
  originalContext: number,
): Float32Array | undefined {
  const f = Math.fround;
  const lowWavelen = originalContext / lowFreqFactor;
  const highWavelen = originalContext / highFreqFactor;
  if (lowWavelen === highWavelen) return undefined;
  const out = new Float32Array(headDim / 2);
  for (let i = 0; i < out.length; i++) {
    const freq = f(1 / f(Math.pow(base, f((2 * i) / headDim))));
    const wavelen = f(f(1 / freq) * f(2 * Math.PI));
    if (wavelen < f(highWavelen)) out[i] = 1;
    else if (wavelen > f(lowWavelen)) out[i] = factor;
    else {
      const smooth = f(f(f(f(1 / wavelen) * originalContext) - f(lowFreqFactor)) / f(highFreqFactor - lowFreqFactor));
      out[i] = f(1 / f(f(f(1 - smooth) / f(factor)) + smooth));
    }
  }
  return out;
}

/** The safetensors checkpoint of a folder: a sharded index, else model.safetensors. */
function openCheckpoint(dir: string): SafetensorsCheckpoint {
  const index = join(dir, INDEX_FILE);
  if (existsSync(index)) return readShardedSafetensors(index);
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return readSafetensors(single);
  const other = ['pytorch_model.bin', 'pytorch_model.bin.index.json', 'consolidated.00.pth'].find((f) => existsSync(join(dir, f)));
  const hint = other ? ` (found ${other}: PyTorch pickles are not supported, only safetensors)` : '';
  throw new ModelFormatError(dir, 'weights', `no model.safetensors or ${INDEX_FILE}${hint}`);
}

/** The GGUF architecture of a folder's config.json, refusing those lowkv does not run. */
function architectureOf(c: HfConfig, raw: Record<string, unknown>): string {
  const supported = Object.keys(HF_ARCHITECTURES).join(', ');
  const listed = raw.architectures;
  if (Array.isArray(listed) && listed.length > 0) {
    const known = listed.find((a): a is string => typeof a === 'string' && a in HF_ARCHITECTURES);
    if (known) return HF_ARCHITECTURES[known];
    c.fail('architectures', `unsupported architecture ${JSON.stringify(listed[0])}; supported: ${supported}`);
  }
  const type = raw.model_type;
  if (typeof type === 'string') {
    if (type in MODEL_TYPES) return HF_ARCHITECTURES[MODEL_TYPES[type]];
    c.fail('model_type', `unsupported model type "${type}"; supported: ${Object.keys(MODEL_TYPES).join(', ')}`);
  }
  return c.fail('architectures', `missing (and no model_type); supported: ${supported}`);
}

/**
 * A Hugging Face folder as a GGUF file: `path` is the folder, `tensors` point into its
 * safetensors shards (GgufTensorInfo.file) or compute their data (GgufTensorInfo.data).
 * version/alignment/dataOffset describe no single file and are nominal.
 */
export function ggufFromHf(dir: string): GgufFile {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ModelFormatError(dir, 'path', 'not a directory');
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) {
    throw new ModelFormatError(dir, 'config.json', 'missing: a Hugging Face model folder needs config.json');
  }
  const raw = readJsonFile(configPath, 'config.json');
  const c = new HfConfig(configPath, raw);
  const arch = architectureOf(c, raw);
  const spec = ARCHS[arch];
  const meta = new Metadata(arch);
  meta.str('general.architecture', arch);
  meta.str('general.name', basename(dir));
  const extras = spec.params(c, meta);

  const checkpoint = openCheckpoint(dir);
  const nLayers = meta.values.get(`${arch}.block_count`) as number;
  const tensors: GgufTensorInfo[] = extras.map(extraTensor);
  let fileType: number | undefined;
  for (const t of checkpoint.tensors) {
    if (t.name.endsWith('.rotary_emb.inv_freq') || t.name.endsWith('.attention.masked_bias') || t.name.endsWith('.attention.bias')) continue;
    if (spec.skip?.(t.name)) continue;
    const fail = (problem: string): never => {
      throw new ModelFormatError(t.file, `tensor "${t.name}"`, problem);
    };
    const name = ggufName(t.name, spec, nLayers) ?? fail(`cannot be mapped to a tensor of the GGUF ${arch} architecture`);
    if (t.shape.length < 1 || t.shape.length > 4 || t.nElements === 0) {
      fail(`shape ${JSON.stringify(t.shape)} is not a 1- to 4-dimensional non-empty tensor`);
    }
    if (t.shape.length >= 2) fileType ??= FILE_TYPES[t.dtype];
    tensors.push(tensorInfo(t, name, c, spec, fail));
  }
  meta.set('general.file_type', fileType ?? FILE_TYPES.F32, 'uint32');

  const byName = new Map<string, GgufTensorInfo>();
  for (const t of tensors) {
    if (byName.has(t.name)) throw new ModelFormatError(checkpoint.path, `tensor "${t.name}"`, 'two checkpoint tensors map to this GGUF tensor');
    byName.set(t.name, t);
  }
  return {
    path: dir,
    version: 3,
    fileSize: checkpoint.files.reduce((sum, f) => sum + statSync(f).size, 0),
    alignment: 1,
    dataOffset: 0,
    metadata: meta.values,
    metadataTypes: meta.types,
    tensors,
    tensor: (n) => byName.get(n),
  };
}

function ggufName(hf: string, spec: ArchSpec, nLayers: number): string | undefined {
  const m = /^(.+)\.(weight|bias)$/.exec(hf);
  if (!m) return undefined;
  const [, stem, suffix] = m;
  const top = TOP[stem];
  if (top !== undefined) return `${top}.${suffix}`;
  const layer = /^model\.layers\.(\d+)\.(.+)$/.exec(stem);
  if (!layer || Number(layer[1]) >= nLayers) return undefined;
  const blk = spec.layer[layer[2]];
  return blk === undefined ? undefined : `blk.${Number(layer[1])}.${blk}.${suffix}`;
}

function extraTensor(e: ExtraTensor): GgufTensorInfo {
  return {
    name: e.name,
    type: GgmlType.F32,
    ne: [e.values.length],
    nElements: e.values.length,
    nbytes: e.values.byteLength,
    offset: 0,
    data: () => new Uint8Array(e.values.slice().buffer),
  };
}

/**
 * Where the loader finds a tensor's data: in the shard when the converter keeps it as is;
 * otherwise computed on read, as the converter writes it: llama Q/K rows permuted, gemma norm
 * weights + 1, and every vector (norms, biases) as F32.
 */
function tensorInfo(t: SafetensorsTensor, name: string, c: HfConfig, spec: ArchSpec, fail: (p: string) => never): GgufTensorInfo {
  const ne = [...t.shape].reverse();
  const base = { name, ne, nElements: t.nElements, offset: t.offset, file: t.file };
  const toF32 = ne.length === 1 || name.endsWith('_norm.weight');
  const plusOne = spec.transform === 'norm-plus-one' && t.name.endsWith('norm.weight');
  let heads: number | undefined;
  if (spec.transform === 'llama-qk') {
    const nHead = c.int('num_attention_heads', true);
    if (/\.q_proj\.(weight|bias)$/.test(t.name)) heads = nHead;
    else if (/\.k_proj\.(weight|bias)$/.test(t.name)) heads = c.int('num_key_value_heads') ?? nHead;
  }
  if (heads !== undefined && t.shape[0] % (2 * heads) !== 0) {
    fail(`${t.shape[0]} rows cannot be split into ${heads} heads of rotary pairs`);
  }
  if (!toF32 && heads === undefined && !plusOne) return { ...base, type: GGML_TYPES[t.dtype], nbytes: t.nbytes };

  const rowBytes = t.nbytes / t.shape[0];
  const load = (): Uint8Array => {
    const raw = readSafetensorsData(t);
    return heads === undefined ? raw : permuteRotaryRows(raw, t.shape[0], rowBytes, heads);
  };
  if (!toF32) return { ...base, type: GGML_TYPES[t.dtype], nbytes: t.nbytes, data: load };
  return {
    ...base,
    type: GgmlType.F32,
    nbytes: t.nElements * 4,
    data: () => {
      const v = dequantizeToF32(GGML_TYPES[t.dtype], load(), t.nElements);
      if (plusOne) {
        // The converter adds 1 in the tensor's own precision: f16 stays f16, bf16 was widened to f32.
        for (let i = 0; i < v.length; i++) v[i] = t.dtype === 'F16' ? roundF16(v[i] + 1) : Math.fround(v[i] + 1);
      }
      return new Uint8Array(v.buffer);
    },
  };
}

/**
 * LlamaModel.permute: within each head, HF keeps the two halves of the rotary pairs apart
 * (rows [x0..x_{h/2-1}, y0..]); GGUF interleaves them (rows x0, y0, x1, y1, ...).
 */
function permuteRotaryRows(src: Uint8Array, rows: number, rowBytes: number, heads: number): Uint8Array {
  const out = new Uint8Array(src.length);
  const perHead = rows / heads;
  const half = perHead / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (h * perHead + j * half + i) * rowBytes;
        out.set(src.subarray(from, from + rowBytes), (h * perHead + 2 * i + j) * rowBytes);
      }
    }
  }
  return out;
}
