// What the GGUF loader accepts and refuses per architecture: variants of the golden/arch models
// (rewritten with one key or tensor changed) either load and compute what an equivalent file
// computes, or fail with a ModelFormatError naming the field and the problem.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelFormatError } from '../src/formats/errors.js';
import { GgmlType } from '../src/formats/ggml-types.js';
import { readGguf, readTensor } from '../src/formats/gguf.js';
import { copyMetadataEntry, writeGguf, type GgufTensorToWrite, type GgufTypedValue } from '../src/formats/gguf-write.js';
import { llamaFromGguf } from '../src/model/from-gguf.js';
import { LlamaModel } from '../src/model/llama.js';
import { loadModelFile } from '../src/model/load.js';
import { writeModelGguf } from '../src/model/to-gguf.js';
import { SpmTokenizer } from '../src/tokenizer/spm.js';
import { dataPath, hasShared, readJson } from './helpers/shared-data.js';

type Meta = Array<[string, GgufTypedValue]>;

describe.skipIf(!hasShared)('loading architectures from GGUF', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowkv-arch-load-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const golden = (name: string): string => dataPath(`golden/arch/${name}/${name}.gguf`);
  let written = 0;

  /** A copy of a golden model with its metadata and tensors edited. */
  function variant(name: string, edit: { meta?: (m: Meta) => Meta; tensors?: (t: GgufTensorToWrite[]) => GgufTensorToWrite[] }): string {
    const f = readGguf(golden(name));
    const meta: Meta = [...f.metadata.keys()].map((k) => [k, copyMetadataEntry(f, k)]);
    const tensors = f.tensors.map((t): GgufTensorToWrite => ({ name: t.name, type: GgmlType.F32, ne: t.ne, data: readTensor(f, t.name) }));
    const path = join(dir, `${name}-${written++}.gguf`);
    writeGguf(path, { metadata: edit.meta ? edit.meta(meta) : meta, tensors: edit.tensors ? edit.tensors(tensors) : tensors });
    return path;
  }
  const setKey = (key: string, value: GgufTypedValue) => (m: Meta): Meta => [...m.filter(([k]) => k !== key), [key, value]];
  const dropKey = (key: string) => (m: Meta): Meta => m.filter(([k]) => k !== key);
  const f32 = (value: number): GgufTypedValue => ({ type: 'float32', value });
  const str = (value: string): GgufTypedValue => ({ type: 'string', value });

  function refusal(path: string): ModelFormatError {
    try {
      llamaFromGguf(readGguf(path));
    } catch (e) {
      expect(e).toBeInstanceOf(ModelFormatError);
      return e as ModelFormatError;
    }
    throw new Error(`${path} loaded`);
  }

  const ids = (name: string): number[] => readJson<{ models: Record<string, { token_ids: number[] }> }>('golden/arch/manifest.json').models[name].token_ids;
  function run(path: string, tokens: number[]): Float32Array {
    const { config, weights } = llamaFromGguf(readGguf(path));
    const m = new LlamaModel(config, weights, { threads: 1 });
    return Float32Array.from(m.forward(tokens, m.newCache(tokens.length), 0));
  }

  it('refuses an unknown architecture by name, listing the supported ones', () => {
    for (const arch of ['mamba', 'qwen2moe', 'gemma3']) {
      const e = refusal(variant('llama2-f32', { meta: setKey('general.architecture', str(arch)) }));
      expect(e.field).toBe('general.architecture');
      expect(e.problem).toBe(`unsupported architecture "${arch}"; supported: llama, qwen2, qwen3, phi3, gemma, gemma2`);
    }
  });

  it('reads each architecture’s traits into the config', () => {
    const config = (name: string) => llamaFromGguf(readGguf(golden(name))).config;
    expect(config('llama2-f32')).not.toHaveProperty('ropePairing');
    expect(config('llama3-f32').ropeFreqFactors?.slice(0, 4)).toEqual([1, 1, Math.fround(2.0250282), 4]);
    expect(config('qwen2-f32')).toMatchObject({ ropePairing: 'neox' });
    expect(config('phi3-f32')).toMatchObject({ ropePairing: 'neox', slidingWindow: [16, 16] });
    expect(config('gemma-f32')).toMatchObject({ ropePairing: 'neox', ffnActivation: 'gelu_tanh', embedScale: Math.fround(Math.sqrt(96)), headDim: 32, dim: 96 });
    const g2 = config('gemma2-f32');
    expect(g2).toMatchObject({ attnSoftcap: 5, finalSoftcap: 3, ffnActivation: 'gelu_tanh' });
    expect(g2.slidingWindow).toEqual(Array.from({ length: 26 }, (_, l) => (l % 2 === 0 ? 8 : 0)));
    expect(g2.attnScale).toBeUndefined(); // 26 layers: the 2B/9B rule, 1/√head_dim
  });

  it('Gemma 2 without the optional keys takes llama.cpp’s defaults (window 4096, caps 50 and 30)', () => {
    const path = variant('gemma2-f32', {
      meta: (m) => dropKey('gemma2.attention.sliding_window')(dropKey('gemma2.attn_logit_softcapping')(dropKey('gemma2.final_logit_softcapping')(m))),
    });
    const c = llamaFromGguf(readGguf(path)).config;
    expect(c).toMatchObject({ attnSoftcap: 50, finalSoftcap: 30 });
    expect(c.slidingWindow?.slice(0, 2)).toEqual([4096, 0]);
  });

  it('Phi-3 with separate q/k/v tensors computes what the fused attn_qkv does', () => {
    const c = llamaFromGguf(readGguf(golden('phi3-f32'))).config;
    const q = c.nHeads * c.headDim;
    const kv = c.nKvHeads * c.headDim;
    const split = variant('phi3-f32', {
      tensors: (ts) =>
        ts.flatMap((t) => {
          if (!t.name.endsWith('attn_qkv.weight')) return [t];
          const b = t.name.replace('attn_qkv.weight', '');
          const rows = (r0: number, n: number) => t.data.subarray(r0 * c.dim, (r0 + n) * c.dim);
          return [
            { ...t, name: `${b}attn_q.weight`, ne: [c.dim, q], data: rows(0, q) },
            { ...t, name: `${b}attn_k.weight`, ne: [c.dim, kv], data: rows(q, kv) },
            { ...t, name: `${b}attn_v.weight`, ne: [c.dim, kv], data: rows(q + kv, kv) },
          ];
        }),
    });
    expect(run(split, ids('phi3-f32'))).toEqual(run(golden('phi3-f32'), ids('phi3-f32')));
  });

  it('linear RoPE scaling divides every frequency, as a rope_freqs tensor of that factor does', () => {
    const tokens = ids('llama2-f32');
    const linear = run(variant('llama2-f32', { meta: setKey('llama.rope.scaling.factor', f32(4)) }), tokens);
    const typed = run(variant('llama2-f32', { meta: (m) => setKey('llama.rope.scaling.type', str('linear'))(setKey('llama.rope.scaling.factor', f32(4))(m)) }), tokens);
    const tensor = run(
      variant('llama2-f32', { tensors: (ts) => [...ts, { name: 'rope_freqs.weight', type: GgmlType.F32, ne: [16], data: new Float32Array(16).fill(4) }] }),
      tokens,
    );
    const plain = run(golden('llama2-f32'), tokens);
    expect(linear).toEqual(tensor);
    expect(typed).toEqual(tensor);
    expect(linear).not.toEqual(plain);
    // Type "none" turns scaling off whatever the factor says (llama.cpp).
    const none = run(variant('llama2-f32', { meta: (m) => setKey('llama.rope.scaling.type', str('none'))(setKey('llama.rope.scaling.factor', f32(4))(m)) }), tokens);
    expect(none).toEqual(plain);
  });

  it('a Mistral-style sliding_window key on a llama file is ignored, as llama.cpp ignores it', () => {
    const tokens = ids('llama2-f32');
    const path = variant('llama2-f32', { meta: setKey('llama.attention.sliding_window', { type: 'uint32', value: 4 }) });
    expect(run(path, tokens)).toEqual(run(golden('llama2-f32'), tokens));
  });

  it('convert refuses to write a non-Llama model as a llama GGUF', () => {
    const file = loadModelFile(golden('phi3-f32'));
    const vocab = (file.tokenizer as SpmTokenizer).vocab;
    expect(() => writeModelGguf(file, vocab, join(dir, 'phi3-as-llama.gguf'), 'f32')).toThrow(/convert writes plain Llama models only; .* is phi3/);
  });

  it('refuses what it would compute wrongly, naming the field', () => {
    const check = (path: string, field: string, problem: RegExp): void => {
      const e = refusal(path);
      expect(e.field).toBe(field);
      expect(e.problem).toMatch(problem);
    };
    check(variant('qwen2-f32', { meta: setKey('qwen2.rope.scaling.type', str('yarn')) }), 'metadata["qwen2.rope.scaling.type"]', /RoPE scaling "yarn" is not supported \(supported: none, linear\)/);
    check(variant('llama3-f32', { meta: setKey('llama.rope.scaling.type', str('llama3')) }), 'metadata["llama.rope.scaling.type"]', /RoPE scaling "llama3" is not supported/);
    check(variant('qwen2-f32', { meta: setKey('qwen2.rope.dimension_count', { type: 'uint32', value: 16 }) }), 'metadata["qwen2.rope.dimension_count"]', /partial RoPE \(16 of head_dim 32\)/);
    check(variant('llama2-f32', { meta: setKey('llama.expert_count', { type: 'uint32', value: 8 }) }), 'metadata["llama.expert_count"]', /mixture-of-experts/);
    const extra = (name: string, n: number) => (ts: GgufTensorToWrite[]): GgufTensorToWrite[] => [...ts, { name, type: GgmlType.F32, ne: [n], data: new Float32Array(n).fill(1) }];
    check(variant('phi3-f32', { tensors: extra('rope_factors_long.weight', 16) }), 'tensor "rope_factors_long.weight"', /LongRoPE/);
    check(variant('qwen2-f32', { tensors: extra('rope_freqs.weight', 16) }), 'tensor "rope_freqs.weight"', /not part of the qwen2 architecture/);
    check(variant('gemma-f32', { tensors: extra('blk.0.attn_q.bias', 128) }), 'tensor "blk.0.attn_q.bias"', /the gemma model has no such bias/);
    check(variant('llama2-f32', { tensors: extra('blk.0.ffn_gate_inp.weight', 128) }), 'tensor "blk.0.ffn_gate_inp.weight"', /mixture-of-experts/);
    check(variant('qwen2-f32', { tensors: (ts) => ts.filter((t) => t.name !== 'blk.1.attn_k.bias') }), 'tensor "blk.1.attn_k.bias"', /missing \(expected shape \[64\]\)/);
    check(variant('gemma2-f32', { tensors: (ts) => ts.filter((t) => t.name !== 'blk.3.post_ffw_norm.weight') }), 'tensor "blk.3.post_ffw_norm.weight"', /missing/);
    const badFreqs = variant('llama3-f32', { tensors: (ts) => ts.map((t) => (t.name === 'rope_freqs.weight' ? { ...t, data: new Float32Array(16).fill(-1) } : t)) });
    check(badFreqs, 'tensor "rope_freqs.weight"', /factor 0 is -1; factors must be positive/);
  });
});
