// Writes a Hugging Face model folder from one of the golden GGUFs (golden/arch): config.json in
// transformers' terms, safetensors in PyTorch layout (llama's Q/K rows un-permuted, gemma's norms
// stored as w - 1) in F32, F16 or BF16, optionally sharded, and a tokenizer.json built from the
// GGUF's own vocabulary. This is the inverse of what llama.cpp's convert_hf_to_gguf.py does, so
// loading the folder must give back the golden model.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type GgufFile, getArray, getNumber, getString, readGguf, readTensor } from '../../src/formats/gguf.js';
import { dataPath } from './shared-data.js';
import { type Dtype, type TensorToWrite, writeSafetensors } from './safetensors-write.js';

export const goldenGguf = (model: string): string => dataPath(`golden/arch/${model}/${model}.gguf`);

interface ArchInfo {
  readonly hfArch: string;
  readonly modelType: string;
  /** GGUF layer tensor → HF layer tensor. */
  readonly layer: Readonly<Record<string, string>>;
}

const LAYER = {
  attn_norm: 'input_layernorm',
  attn_q: 'self_attn.q_proj',
  attn_k: 'self_attn.k_proj',
  attn_v: 'self_attn.v_proj',
  attn_output: 'self_attn.o_proj',
  ffn_norm: 'post_attention_layernorm',
  ffn_gate: 'mlp.gate_proj',
  ffn_up: 'mlp.up_proj',
  ffn_down: 'mlp.down_proj',
};

const ARCHS: Record<string, ArchInfo> = {
  llama: { hfArch: 'LlamaForCausalLM', modelType: 'llama', layer: LAYER },
  qwen2: { hfArch: 'Qwen2ForCausalLM', modelType: 'qwen2', layer: LAYER },
  phi3: { hfArch: 'Phi3ForCausalLM', modelType: 'phi3', layer: { ...LAYER, attn_qkv: 'self_attn.qkv_proj', ffn_up: 'mlp.gate_up_proj' } },
  gemma: { hfArch: 'GemmaForCausalLM', modelType: 'gemma', layer: LAYER },
  gemma2: {
    hfArch: 'Gemma2ForCausalLM',
    modelType: 'gemma2',
    layer: { ...LAYER, post_attention_norm: 'post_attention_layernorm', ffn_norm: 'pre_feedforward_layernorm', post_ffw_norm: 'post_feedforward_layernorm' },
  },
};

export interface HfFolderOptions {
  readonly dtype?: Dtype;
  /** Split the tensors over this many shards with a model.safetensors.index.json (default 1). */
  readonly shards?: number;
}

/** Writes the folder for a golden model into dir (created); returns dir. */
export function writeHfFolder(model: string, dir: string, opts: HfFolderOptions = {}): string {
  const g = readGguf(goldenGguf(model));
  const arch = getString(g, 'general.architecture');
  const info = ARCHS[arch];
  if (!info) throw new Error(`no HF layout for ${arch}`);
  mkdirSync(dir, { recursive: true });
  const dtype = opts.dtype ?? 'F32';

  const tensors: TensorToWrite[] = [];
  for (const t of g.tensors) {
    if (t.name === 'rope_freqs.weight') continue; // config.json's rope_scaling stands for it
    tensors.push({ name: hfName(t.name, info), dtype, shape: [...t.ne].reverse(), values: hfValues(g, t.name, arch) });
  }
  writeJson(join(dir, 'config.json'), hfConfig(g, arch, info, dtype));
  writeWeights(dir, tensors, opts.shards ?? 1);
  writeTokenizer(g, dir, model);
  return dir;
}

function hfName(gguf: string, info: ArchInfo): string {
  const top: Record<string, string> = { 'token_embd.weight': 'model.embed_tokens.weight', 'output_norm.weight': 'model.norm.weight', 'output.weight': 'lm_head.weight' };
  if (top[gguf]) return top[gguf];
  const m = /^blk\.(\d+)\.(\w+)\.(weight|bias)$/.exec(gguf);
  const layer = m && info.layer[m[2]];
  if (!m || !layer) throw new Error(`no HF name for ${gguf}`);
  return `model.layers.${m[1]}.${layer}.${m[3]}`;
}

/** The tensor as transformers stores it. */
function hfValues(g: GgufFile, name: string, arch: string): Float32Array {
  const v = readTensor(g, name).slice();
  const info = g.tensor(name)!;
  if (arch === 'llama' && /\.attn_[qk]\.weight$/.test(name)) {
    const heads = getNumber(g, name.includes('attn_q') ? 'llama.attention.head_count' : 'llama.attention.head_count_kv');
    return unpermuteRows(v, info.ne[1], info.ne[0], heads);
  }
  // Gemma's RMSNorm multiplies by (1 + w); GGUF stores the sum. Exact for w in [0.5, 2] (Sterbenz).
  if ((arch === 'gemma' || arch === 'gemma2') && name.endsWith('norm.weight')) return v.map((x) => x - 1);
  return v;
}

/** GGUF rows (h, 2i + j) back to HF rows (h, j·half + i). */
function unpermuteRows(v: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const out = new Float32Array(v.length);
  const perHead = rows / heads;
  const half = perHead / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const gg = (h * perHead + 2 * i + j) * cols;
        out.set(v.subarray(gg, gg + cols), (h * perHead + j * half + i) * cols);
      }
    }
  }
  return out;
}

/** The shortest decimal that is the same float32 (transformers configs say 1e-5, not 9.99e-6). */
function shortest(v: number): number {
  for (let p = 1; p < 10; p++) if (Math.fround(Number(v.toPrecision(p))) === v) return Number(v.toPrecision(p));
  return v;
}

function hfConfig(g: GgufFile, arch: string, info: ArchInfo, dtype: Dtype): Record<string, unknown> {
  const n = (k: string): number => getNumber(g, `${arch}.${k}`);
  const emb = g.tensor('token_embd.weight')!;
  const c: Record<string, unknown> = {
    architectures: [info.hfArch],
    model_type: info.modelType,
    hidden_size: n('embedding_length'),
    intermediate_size: n('feed_forward_length'),
    num_hidden_layers: n('block_count'),
    num_attention_heads: n('attention.head_count'),
    num_key_value_heads: n('attention.head_count_kv'),
    max_position_embeddings: n('context_length'),
    rms_norm_eps: shortest(n('attention.layer_norm_rms_epsilon')),
    rope_theta: n('rope.freq_base'),
    vocab_size: emb.ne[1],
    tie_word_embeddings: g.tensor('output.weight') === undefined,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
    hidden_act: arch.startsWith('gemma') ? 'gelu_pytorch_tanh' : 'silu',
  };
  if (g.tensor('rope_freqs.weight')) {
    // golden/arch/README.md: a small-scale copy of Llama 3.1's rope scaling.
    c.rope_scaling = { rope_type: 'llama3', factor: 4.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64 };
  }
  if (arch === 'phi3') {
    c.sliding_window = n('attention.sliding_window');
    c.original_max_position_embeddings = n('context_length');
  }
  if (arch === 'gemma' || arch === 'gemma2') c.head_dim = n('attention.key_length');
  if (arch === 'gemma2') {
    c.sliding_window = n('attention.sliding_window');
    c.attn_logit_softcapping = n('attn_logit_softcapping');
    c.final_logit_softcapping = n('final_logit_softcapping');
    c.query_pre_attn_scalar = n('attention.key_length');
  }
  return c;
}

function writeWeights(dir: string, tensors: TensorToWrite[], shards: number): void {
  if (shards === 1) {
    writeSafetensors(join(dir, 'model.safetensors'), tensors);
    return;
  }
  const weightMap: Record<string, string> = {};
  const per = Math.ceil(tensors.length / shards);
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = tensors.slice(s * per, (s + 1) * per);
    writeSafetensors(join(dir, file), part);
    for (const t of part) weightMap[t.name] = file;
  }
  writeJson(join(dir, 'model.safetensors.index.json'), { metadata: {}, weight_map: weightMap });
}

function writeJson(path: string, v: unknown): void {
  writeFileSync(path, JSON.stringify(v, null, 2));
}

// The pre-tokenizer patterns of the real Llama 3 and Qwen2 tokenizer.json files.
const LLAMA3_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

const CONTROL = 3;

/** tokenizer.json / tokenizer_config.json from the GGUF vocabulary, laid out like the model family's real ones. */
function writeTokenizer(g: GgufFile, dir: string, model: string): void {
  const tokens = getArray(g, 'tokenizer.ggml.tokens') as string[];
  const types = getArray(g, 'tokenizer.ggml.token_type') as Int32Array;
  const added = tokens.flatMap((content, id) =>
    types[id] === CONTROL ? [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }] : [],
  );
  const id = (k: string): string => tokens[getNumber(g, `tokenizer.ggml.${k}`)];
  if (getString(g, 'tokenizer.ggml.model') === 'gpt2') {
    const vocab = Object.fromEntries(tokens.flatMap((t, i) => (types[i] === CONTROL ? [] : [[t, i]])));
    const merges = getArray(g, 'tokenizer.ggml.merges') as string[];
    const llama3 = getString(g, 'tokenizer.ggml.pre') === 'llama-bpe';
    const split = { type: 'Split', pattern: { Regex: llama3 ? LLAMA3_SPLIT : QWEN2_SPLIT }, behavior: 'Isolated', invert: false };
    const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false };
    const bos = id('bos_token_id');
    writeJson(join(dir, 'tokenizer.json'), {
      version: '1.0',
      added_tokens: added,
      normalizer: llama3 ? null : { type: 'NFC' },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [split, byteLevel] },
      post_processor: llama3
        ? {
            type: 'Sequence',
            processors: [
              { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
              {
                type: 'TemplateProcessing',
                single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
                pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
                special_tokens: { [bos]: { id: bos, ids: [getNumber(g, 'tokenizer.ggml.bos_token_id')], tokens: [bos] } },
              },
            ],
          }
        : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: llama3, vocab, merges },
    });
    // Llama 3 states no add_bos_token (its template adds BOS); Qwen2 has no BOS at all.
    writeJson(join(dir, 'tokenizer_config.json'), {
      bos_token: llama3 ? bos : null,
      eos_token: id('eos_token_id'),
      chat_template: `{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}`,
      model_max_length: 1024,
      tokenizer_class: 'PreTrainedTokenizerFast',
    });
    return;
  }
  // SentencePiece BPE as transformers' LlamaConverter writes it: byte fallback, merges ranked by
  // the score of the piece they make (SentencePieceExtractor).
  const scores = getArray(g, 'tokenizer.ggml.scores') as Float32Array;
  const vocab = Object.fromEntries(tokens.map((t, i) => [t, i]));
  const merges: Array<[string, string, number]> = [];
  tokens.forEach((piece, i) => {
    const chars = Array.from(piece);
    const local: Array<[string, string, number]> = [];
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join('');
      const r = chars.slice(k).join('');
      if (l in vocab && r in vocab) local.push([l, r, scores[i]]);
    }
    local.sort((a, b) => vocab[a[0]] - vocab[b[0]] || vocab[a[1]] - vocab[b[1]]);
    merges.push(...local);
  });
  merges.sort((a, b) => b[2] - a[2]); // stable, like Python's sorted
  writeJson(join(dir, 'tokenizer.json'), {
    version: '1.0',
    added_tokens: added,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: merges.map(([l, r]) => [l, r]) },
  });
  writeJson(join(dir, 'tokenizer_config.json'), {
    add_bos_token: getBoolOr(g, 'tokenizer.ggml.add_bos_token', true),
    add_eos_token: false,
    bos_token: id('bos_token_id'),
    eos_token: id('eos_token_id'),
    unk_token: id('unknown_token_id'),
    legacy: true,
    model_max_length: 1024,
    tokenizer_class: 'LlamaTokenizer',
    chat_template: `{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}`,
    name: model,
  });
}

function getBoolOr(g: GgufFile, key: string, fallback: boolean): boolean {
  const v = g.metadata.get(key);
  return typeof v === 'boolean' ? v : fallback;
}
