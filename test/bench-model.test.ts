import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PRESETS, parameterCount, presetConfig, syntheticVocab, writeRandomModel } from '../src/bench/random-model.js';
import { GgmlType } from '../src/formats/ggml-types.js';
import { readGguf } from '../src/formats/gguf.js';
import { loadModel, type Model } from '../src/engine/model.js';
import { roundF16 } from '../src/numeric/f16.js';
import { encodeWeights } from '../src/kernels/weights.js';
import { allLogits } from './helpers/models.js';
import { repoRoot } from './helpers/shared-data.js';
import { matrixValues } from '../src/model/weight-memory.js';

const dir = mkdtempSync(join(tmpdir(), 'lowkv-bench-model-'));
const write = (name: string, type: 'f32' | 'f16' | 'q8_0', seed: number): string => {
  const path = join(dir, name);
  writeRandomModel(path, { preset: 'tiny', type, seed });
  return path;
};

function stats(a: Float32Array): { mean: number; std: number } {
  let s = 0;
  let s2 = 0;
  for (const x of a) {
    s += x;
    s2 += x * x;
  }
  const mean = s / a.length;
  return { mean, std: Math.sqrt(s2 / a.length - mean * mean) };
}

describe('random benchmark models', () => {
  let f32Path: string;
  let m: Model;
  beforeAll(async () => {
    f32Path = write('tiny-f32.gguf', 'f32', 1);
    m = await loadModel(f32Path);
  });

  it('loads in lowkv with exactly the preset shapes, a tied classifier and unit norms', () => {
    const p = PRESETS.tiny;
    expect(m.config).toMatchObject({
      dim: p.dim,
      nLayers: p.nLayers,
      nHeads: p.nHeads,
      nKvHeads: p.nKvHeads,
      headDim: p.headDim,
      hiddenDim: p.hiddenDim,
      vocabSize: p.vocabSize,
      contextLength: p.contextLength,
    });
    const w = m.file.weights;
    expect(w.output).toBe(w.tokenEmbedding);
    expect(w.layers).toHaveLength(p.nLayers);
    expect(w.layers[0].wk.data.length).toBe(p.nKvHeads * p.headDim * p.dim);
    expect(w.layers[1].wDown.data.length).toBe(p.dim * p.hiddenDim);
    for (const v of [w.outputNorm, w.layers[0].attnNorm, w.layers[1].ffnNorm]) expect(v.every((x) => x === 1)).toBe(true);
    // Every tensor in the file counts toward the stated size.
    const file = readGguf(f32Path);
    expect(file.tensors.reduce((n, t) => n + t.ne.reduce((a, b) => a * b, 1), 0)).toBe(parameterCount(presetConfig('tiny')));
  });

  it('scales each matrix to variance 1/in_dim around zero', () => {
    const c = m.config;
    const l = m.file.weights.layers[1];
    for (const [w, inDim] of [
      [m.file.weights.tokenEmbedding, c.dim],
      [l.wq, c.dim],
      [l.wo, c.nHeads * c.headDim],
      [l.wDown, c.hiddenDim],
    ] as const) {
      const { mean, std } = stats(matrixValues(w));
      expect(Math.abs(std * Math.sqrt(inDim) - 1)).toBeLessThan(0.05);
      expect(Math.abs(mean)).toBeLessThan(5 / Math.sqrt(inDim * w.data.length));
    }
  });

  it('runs a forward pass with finite logits of about unit spread', () => {
    const tokens = [1, 300, 17, 400, 511, 259, 42, 42];
    const logits = allLogits(m, tokens);
    expect(logits.length).toBe(tokens.length * m.config.vocabSize);
    expect(logits.every(Number.isFinite)).toBe(true);
    const last = logits.subarray((tokens.length - 1) * m.config.vocabSize);
    const { std } = stats(last);
    expect(std).toBeGreaterThan(0.3);
    expect(std).toBeLessThan(3);
  });

  it('has a vocabulary that encodes any text through its byte pieces', () => {
    const text = 'héllo wörld\n∑ 😀';
    const t = m.tokenizer;
    const ids = t.encode(text);
    expect(ids[0]).toBe(t.bos);
    expect(t.decode(ids)).toBe(text);
    expect(t.piece(3)).toBe('<0x00>');
  });

  it('writes the same bytes for a seed and different bytes for another', () => {
    const again = readFileSync(write('tiny-f32-again.gguf', 'f32', 1));
    const other = readFileSync(write('tiny-f32-seed2.gguf', 'f32', 2));
    const first = readFileSync(f32Path);
    expect(again.equals(first)).toBe(true);
    expect(other.length).toBe(first.length);
    expect(other.equals(first)).toBe(false);
  });

  it('writes f16 matrices that are the f32 model rounded to f16, norms kept f32', async () => {
    const path = write('tiny-f16.gguf', 'f16', 1);
    const file = readGguf(path);
    expect(file.tensor('blk.0.attn_q.weight')?.type).toBe(GgmlType.F16);
    expect(file.tensor('token_embd.weight')?.type).toBe(GgmlType.F16);
    expect(file.tensor('blk.0.attn_norm.weight')?.type).toBe(GgmlType.F32);
    const h = await loadModel(path);
    const a = matrixValues(m.file.weights.layers[0].wGate);
    const b = h.file.weights.layers[0].wGate;
    expect(b.type).toBe('f16');
    expect(matrixValues(b).every((x, i) => x === roundF16(a[i]))).toBe(true);
  });

  it('writes q8_0 matrices that are the f32 model quantized as llama-quantize does, norms kept f32', async () => {
    const path = write('tiny-q8_0.gguf', 'q8_0', 1);
    const file = readGguf(path);
    expect(file.tensor('blk.1.ffn_down.weight')?.type).toBe(GgmlType.Q8_0);
    expect(file.tensor('blk.1.ffn_norm.weight')?.type).toBe(GgmlType.F32);
    const q = await loadModel(path);
    const b = q.file.weights.layers[1].wDown;
    expect(b.type).toBe('q8_0');
    const want = encodeWeights('q8_0', matrixValues(m.file.weights.layers[1].wDown), b.rows, b.cols);
    expect(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength).equals(Buffer.from(want.data.buffer, want.data.byteOffset, want.data.byteLength))).toBe(true);
  });

  it('refuses a bad seed or a vocabulary too small for its special and byte pieces', () => {
    expect(() => writeRandomModel(join(dir, 'x.gguf'), { preset: 'tiny', type: 'f32', seed: -1 })).toThrow(/seed must be an integer in \[0, 2\^32\) \(got -1\)/);
    expect(() => syntheticVocab(259)).toThrow(/vocabulary size must be an integer > 259 \(got 259\)/);
    expect(existsSync(join(dir, 'x.gguf'))).toBe(false);
  });
});

describe('npm run bench:model', () => {
  const script = resolve(repoRoot, 'dist/bench/make-model.js');
  const run = (args: string[]): { code: number | null; stderr: string } => {
    const r = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8' });
    return { code: r.status, stderr: r.stderr };
  };
  beforeAll(() => {
    if (!existsSync(script)) throw new Error(`${script} not found: run \`npm run build\` first (npm test does)`);
  });

  it('writes a model and reports it on stderr', () => {
    const out = join(dir, 'cli-tiny.gguf');
    const r = run(['--preset', 'tiny', '--type', 'f16', '-o', out, '--seed', '1']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/wrote .*cli-tiny\.gguf: 20 tensors/);
    expect(readFileSync(out).equals(readFileSync(write('api-tiny.gguf', 'f16', 1)))).toBe(true);
  });

  it.each([
    [['--preset', 'huge', '--type', 'f32', '-o', 'x.gguf'], /argument 'huge' is invalid\. Allowed choices are 42m, 1b, hd128, tiny/],
    [['--preset', 'tiny', '--type', 'q4_0', '-o', 'x.gguf'], /argument 'q4_0' is invalid\. Allowed choices are f32, f16, q8_0/],
    [['--preset', 'tiny', '--type', 'f32'], /required option '-o, --out <file>' not specified/],
    [['--type', 'f32', '-o', 'x.gguf'], /required option '--preset <name>' not specified/],
    [['--preset', 'tiny', '--type', 'f32', '-o', 'x.gguf', '--seed', 'abc'], /--seed must be an integer ≥ 0 \(got "abc"\)/],
    [['--preset', 'tiny', '--type', 'f32', '-o', 'x.gguf', '--seed', '4294967296'], /--seed must be below 2\^32/],
  ])('rejects %j with a clear error', (args, message) => {
    const r = run(args.map((a) => (a === 'x.gguf' ? join(dir, a) : a)));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
    expect(existsSync(join(dir, 'x.gguf'))).toBe(false);
  });
});
