import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelFormatError } from '../src/formats/errors.js';
import { loadModelFile } from '../src/model/load.js';
import { writeHfFolder } from './helpers/hf-folder.js';
import { writeSafetensors } from './helpers/safetensors-write.js';
import { hasShared } from './helpers/shared-data.js';

const root = mkdtempSync(join(tmpdir(), 'lowkv-hf-bad-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let good = '';
let n = 0;
/** A copy of a good llama2-f32 folder, changed by `edit`. */
function broken(edit: (dir: string) => void): string {
  const dir = join(root, `bad${n++}`);
  cpSync(good, dir, { recursive: true });
  edit(dir);
  return dir;
}

function expectError(dir: string, file: string, field: string, problem: RegExp, opts = {}): void {
  try {
    loadModelFile(dir, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(ModelFormatError);
    expect([(e as ModelFormatError).file, (e as ModelFormatError).field]).toEqual([file, field]);
    expect((e as ModelFormatError).problem).toMatch(problem);
    return;
  }
  throw new Error('loaded');
}

const editJson = (path: string, edit: (v: Record<string, unknown>) => void): void => {
  const v = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  edit(v);
  writeFileSync(path, JSON.stringify(v));
};

describe.skipIf(!hasShared)('a bad Hugging Face folder fails with an error naming the problem', () => {
  beforeAll(() => {
    good = writeHfFolder('llama2-f32', join(root, 'good'));
  });

  it('the good folder loads, with its chat template', () => {
    const f = loadModelFile(good);
    expect(f.format).toBe('hf');
    expect(f.chatTemplate).toContain('{% for m in messages %}');
  });

  it('no config.json', () => {
    const dir = join(root, 'empty');
    mkdirSync(dir);
    expectError(dir, dir, 'config.json', /missing: a Hugging Face model folder needs config.json/);
  });

  it('config.json that is not JSON, or has a bad value', () => {
    const a = broken((d) => writeFileSync(join(d, 'config.json'), '{ "hidden_size": '));
    expectError(a, join(a, 'config.json'), 'json', /not valid JSON/);
    const b = broken((d) => editJson(join(d, 'config.json'), (c) => (c.num_attention_heads = '4')));
    expectError(b, join(b, 'config.json'), 'num_attention_heads', /must be a positive integer, is "4"/);
  });

  it('an unsupported architecture, listing the supported ones', () => {
    const dir = broken((d) => editJson(join(d, 'config.json'), (c) => (c.architectures = ['MambaForCausalLM'])));
    expectError(dir, join(dir, 'config.json'), 'architectures', /unsupported architecture "MambaForCausalLM"; supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Phi3ForCausalLM, GemmaForCausalLM, Gemma2ForCausalLM, Qwen3ForCausalLM/);
  });

  it('unsupported RoPE scaling', () => {
    const dir = broken((d) => editJson(join(d, 'config.json'), (c) => (c.rope_scaling = { rope_type: 'dynamic', factor: 2 })));
    expectError(dir, join(dir, 'config.json'), 'rope_scaling', /RoPE scaling "dynamic" is not supported/);
  });

  it('no weights (and PyTorch pickles named as such)', () => {
    const dir = broken((d) => rmSync(join(d, 'model.safetensors')));
    expectError(dir, dir, 'weights', /no model.safetensors or model.safetensors.index.json$/);
    writeFileSync(join(dir, 'pytorch_model.bin'), 'x');
    expectError(dir, dir, 'weights', /found pytorch_model.bin: PyTorch pickles are not supported/);
  });

  it('an unsupported dtype, naming the tensor', () => {
    const dir = broken((d) => {
      const p = join(d, 'model.safetensors');
      writeSafetensors(p, [{ name: 'model.norm.weight', dtype: 'F32', shape: [128], values: new Float32Array(128) }]);
      const buf = readFileSync(p);
      writeFileSync(p, Buffer.from(buf.toString('latin1').replace('"F32"', '"F64"'), 'latin1'));
    });
    expectError(dir, join(dir, 'model.safetensors'), 'tensor "model.norm.weight" dtype', /dtype F64 is not supported/);
  });

  it('a tensor the architecture does not have', () => {
    const dir = broken((d) => writeSafetensors(join(d, 'model.safetensors'), [{ name: 'model.layers.0.self_attn.q_norm.weight', dtype: 'F32', shape: [32], values: new Float32Array(32) }]));
    expectError(dir, join(dir, 'model.safetensors'), 'tensor "model.layers.0.self_attn.q_norm.weight"', /cannot be mapped to a tensor of the GGUF llama architecture/);
  });

  it('a missing tensor, by its GGUF name (the GGUF loader checks the set)', () => {
    const dir = broken((d) => writeSafetensors(join(d, 'model.safetensors'), [{ name: 'model.norm.weight', dtype: 'F32', shape: [128], values: new Float32Array(128) }]));
    expectError(dir, dir, 'tensor "token_embd.weight"', /missing/);
  });

  it('no tokenizer.json, or one the library cannot use', () => {
    const a = broken((d) => rmSync(join(d, 'tokenizer.json')));
    expectError(a, join(a, 'tokenizer.json'), 'path', /missing: the folder has no tokenizer.json/);
    const b = broken((d) => editJson(join(d, 'tokenizer.json'), (t) => (t.model = { type: 'Nonsense' })));
    expectError(b, join(b, 'tokenizer.json'), 'tokenizer', /not usable by @huggingface\/tokenizers/);
  });

  it('special tokens of tokenizer_config.json that are not in the vocabulary', () => {
    const dir = broken((d) => editJson(join(d, 'tokenizer_config.json'), (c) => (c.eos_token = '<|nope|>')));
    expectError(dir, join(dir, 'tokenizer_config.json'), 'eos_token', /"<\|nope\|>" is not in the vocabulary/);
  });

  it('a file of the folder stands for the folder; a lone safetensors file is refused', () => {
    expect(loadModelFile(join(good, 'model.safetensors')).path).toBe(good);
    expect(loadModelFile(join(good, 'config.json')).path).toBe(good);
    const lone = join(root, 'lone');
    mkdirSync(lone);
    cpSync(join(good, 'model.safetensors'), join(lone, 'model.safetensors'));
    expectError(join(lone, 'model.safetensors'), join(lone, 'model.safetensors'), 'path', /need their Hugging Face folder/);
  });

  it('--tokenizer with a folder', () => {
    expectError(good, good, 'tokenizer', /carries its own tokenizer.json/, { tokenizerPath: 'x.bin' });
  });
});
