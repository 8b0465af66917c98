// Qwen3 has no llama.cpp golden file here, so the engine is checked against a slow float64 forward
// pass written below from the published definition (HF transformers modeling_qwen3.py): Qwen2's
// decoder without biases, plus an RMSNorm over every query and key head (q_norm, k_norm) between
// the projection and RoPE; RoPE by rotate_half (NEOX pairing). The model is a tiny random one,
// written as GGUF the way convert_hf_to_gguf.py writes Qwen3 (tensor names, no Q/K permutation).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GgmlType } from '../src/formats/ggml-types.js';
import { readGguf } from '../src/formats/gguf.js';
import { writeGguf, type GgufTensorToWrite, type GgufTypedValue } from '../src/formats/gguf-write.js';
import { refBackend } from '../src/model/backend.js';
import { llamaFromGguf } from '../src/model/from-gguf.js';
import { LlamaModel } from '../src/model/llama.js';
import { randn } from './helpers/codec-conformance.js';
import { maxAbsDiff } from './helpers/models.js';

const C = { dim: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 32, ff: 96, vocab: 80, theta: 1e6, eps: 1e-6 };
const TOKENS = Array.from({ length: 24 }, (_, i) => (i * 37 + 11) % C.vocab);

/** PyTorch-layout weights: Linear [out][in] row-major, as the checkpoint holds them. */
interface Qwen3Weights {
  embed: Float32Array; // [vocab][dim], tied with lm_head
  norm: Float32Array;
  layers: Array<{
    inputNorm: Float32Array;
    q: Float32Array; // [heads·hd][dim]
    k: Float32Array; // [kv·hd][dim]
    v: Float32Array;
    qNorm: Float32Array; // [hd]
    kNorm: Float32Array;
    o: Float32Array; // [dim][heads·hd]
    postNorm: Float32Array;
    gate: Float32Array; // [ff][dim]
    up: Float32Array;
    down: Float32Array; // [dim][ff]
  }>;
}

function randomWeights(): Qwen3Weights {
  let seed = 300;
  // Unit-variance activations (N(0, 1/fan_in) matrices) so attention is far from uniform and a
  // wrong rotation or a missing norm shows in the logits.
  const mat = (rows: number, cols: number): Float32Array => randn(rows * cols, seed++).map((x) => x / Math.sqrt(cols));
  const norm = (n: number): Float32Array => randn(n, seed++).map((x) => 1 + 0.1 * x);
  const q = C.heads * C.headDim;
  const kv = C.kvHeads * C.headDim;
  return {
    embed: mat(C.vocab, C.dim),
    norm: norm(C.dim),
    layers: Array.from({ length: C.layers }, () => ({
      inputNorm: norm(C.dim),
      q: mat(q, C.dim),
      k: mat(kv, C.dim),
      v: mat(kv, C.dim),
      qNorm: norm(C.headDim),
      kNorm: norm(C.headDim),
      o: mat(C.dim, q),
      postNorm: norm(C.dim),
      gate: mat(C.ff, C.dim),
      up: mat(C.ff, C.dim),
      down: mat(C.dim, C.ff),
    })),
  };
}

function writeQwen3(path: string, w: Qwen3Weights): void {
  const u32 = (value: number): GgufTypedValue => ({ type: 'uint32', value });
  const f32 = (value: number): GgufTypedValue => ({ type: 'float32', value });
  const metadata: Array<[string, GgufTypedValue]> = [
    ['general.architecture', { type: 'string', value: 'qwen3' }],
    ['qwen3.context_length', u32(256)],
    ['qwen3.embedding_length', u32(C.dim)],
    ['qwen3.block_count', u32(C.layers)],
    ['qwen3.feed_forward_length', u32(C.ff)],
    ['qwen3.attention.head_count', u32(C.heads)],
    ['qwen3.attention.head_count_kv', u32(C.kvHeads)],
    ['qwen3.attention.key_length', u32(C.headDim)],
    ['qwen3.attention.value_length', u32(C.headDim)],
    ['qwen3.rope.freq_base', f32(C.theta)],
    ['qwen3.attention.layer_norm_rms_epsilon', f32(C.eps)],
  ];
  const t = (name: string, data: Float32Array, rows?: number): GgufTensorToWrite => ({
    name,
    type: GgmlType.F32,
    ne: rows === undefined ? [data.length] : [data.length / rows, rows],
    data,
  });
  const q = C.heads * C.headDim;
  const kv = C.kvHeads * C.headDim;
  const tensors = [t('token_embd.weight', w.embed, C.vocab), t('output_norm.weight', w.norm)];
  w.layers.forEach((l, i) => {
    const b = `blk.${i}.`;
    tensors.push(
      t(`${b}attn_norm.weight`, l.inputNorm),
      t(`${b}attn_q.weight`, l.q, q),
      t(`${b}attn_k.weight`, l.k, kv),
      t(`${b}attn_v.weight`, l.v, kv),
      t(`${b}attn_q_norm.weight`, l.qNorm),
      t(`${b}attn_k_norm.weight`, l.kNorm),
      t(`${b}attn_output.weight`, l.o, C.dim),
      t(`${b}ffn_norm.weight`, l.postNorm),
      t(`${b}ffn_gate.weight`, l.gate, C.ff),
      t(`${b}ffn_up.weight`, l.up, C.ff),
      t(`${b}ffn_down.weight`, l.down, C.dim),
    );
  });
  writeGguf(path, { metadata, tensors });
}

interface RefOptions {
  /** Leave out q_norm/k_norm (to show the comparison would notice). */
  readonly noQkNorm?: boolean;
  /** Rotate interleaved pairs instead of rotate_half (likewise). */
  readonly interleaved?: boolean;
}

/** The Qwen3 forward pass in float64, logits [T][vocab]. */
function reference(w: Qwen3Weights, tokens: number[], o: RefOptions = {}): Float64Array {
  const { dim, heads, kvHeads, headDim: hd, ff, vocab, theta, eps } = C;
  const T = tokens.length;
  const linear = (W: Float32Array, x: Float64Array, out: number, inp: number): Float64Array => {
    const y = new Float64Array(out);
    for (let r = 0; r < out; r++) for (let j = 0; j < inp; j++) y[r] += W[r * inp + j] * x[j];
    return y;
  };
  const rms = (x: Float64Array, g: Float32Array): Float64Array => {
    const ms = x.reduce((s, v) => s + v * v, 0) / x.length;
    return x.map((v, i) => (v / Math.sqrt(ms + eps)) * g[i]);
  };
  const headsOf = (x: Float64Array, n: number): Float64Array[] => Array.from({ length: n }, (_, h) => x.slice(h * hd, (h + 1) * hd));
  const rope = (x: Float64Array, pos: number): Float64Array => {
    const half = hd / 2;
    const y = new Float64Array(hd);
    for (let i = 0; i < half; i++) {
      const a = pos * theta ** ((-2 * i) / hd);
      const [p, q] = o.interleaved ? [2 * i, 2 * i + 1] : [i, i + half];
      y[p] = x[p] * Math.cos(a) - x[q] * Math.sin(a);
      y[q] = x[q] * Math.cos(a) + x[p] * Math.sin(a);
    }
    return y;
  };
  let h = tokens.map((t) => Float64Array.from(w.embed.subarray(t * dim, (t + 1) * dim)));
  for (const l of w.layers) {
    const keys: Float64Array[][] = [];
    const values: Float64Array[][] = [];
    const queries: Float64Array[][] = [];
    for (let t = 0; t < T; t++) {
      const x = rms(h[t], l.inputNorm);
      const norm = (v: Float64Array, g: Float32Array): Float64Array => (o.noQkNorm ? v : rms(v, g));
      queries.push(headsOf(linear(l.q, x, heads * hd, dim), heads).map((v) => rope(norm(v, l.qNorm), t)));
      keys.push(headsOf(linear(l.k, x, kvHeads * hd, dim), kvHeads).map((v) => rope(norm(v, l.kNorm), t)));
      values.push(headsOf(linear(l.v, x, kvHeads * hd, dim), kvHeads));
    }
    h = h.map((ht, t) => {
      const attn = new Float64Array(heads * hd);
      for (let q = 0; q < heads; q++) {
        const kvh = Math.floor(q / (heads / kvHeads));
        const s = Array.from({ length: t + 1 }, (_, j) => queries[t][q].reduce((acc, v, d) => acc + v * keys[j][kvh][d], 0) / Math.sqrt(hd));
        const m = Math.max(...s);
        const e = s.map((v) => Math.exp(v - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= t; j++) for (let d = 0; d < hd; d++) attn[q * hd + d] += (e[j] / z) * values[j][kvh][d];
      }
      const h1 = ht.map((v, i) => v + linear(l.o, attn, dim, heads * hd)[i]);
      const x = rms(h1, l.postNorm);
      const g = linear(l.gate, x, ff, dim);
      const u = linear(l.up, x, ff, dim);
      const act = g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]);
      const down = linear(l.down, act, dim, ff);
      return h1.map((v, i) => v + down[i]);
    });
  }
  const logits = new Float64Array(T * vocab);
  h.forEach((ht, t) => logits.set(linear(w.embed, rms(ht, w.norm), vocab, dim), t * vocab));
  return logits;
}

describe('qwen3 (per-head q/k RMSNorm before NEOX RoPE) against a float64 reference', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowkv-qwen3-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'qwen3-tiny.gguf');
  const w = randomWeights();
  writeQwen3(path, w);
  const want = reference(w, TOKENS);

  const load = (opts: ConstructorParameters<typeof LlamaModel>[2] = {}): LlamaModel => {
    const { config, weights } = llamaFromGguf(readGguf(path));
    return new LlamaModel(config, weights, opts);
  };

  it('loads as qwen3: NEOX RoPE, q/k norms per layer, tied output', () => {
    const m = load();
    expect(m.config).toMatchObject({ arch: 'qwen3', ropePairing: 'neox', headDim: 32, nHeads: 4, dim: 64 });
    expect(m.weights.layers.every((l) => l.qNorm?.length === C.headDim && l.kNorm?.length === C.headDim)).toBe(true);
    expect(m.weights.output).toBe(m.weights.tokenEmbedding);
  });

  it.each([
    ['WASM kernels', {}],
    ['plain-TS kernels', { backend: refBackend }],
  ])('batched logits match at every position (1e-4, %s)', (_name, opts) => {
    const m = load({ threads: 1, ...opts });
    const got = m.forward(TOKENS, m.newCache(TOKENS.length), 0);
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-4);
  });

  it('one token at a time matches too', () => {
    const m = load({ threads: 1 });
    const cache = m.newCache(TOKENS.length);
    const got = new Float32Array(TOKENS.length * C.vocab);
    TOKENS.forEach((t, i) => got.set(m.forward([t], cache), i * C.vocab));
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-4);
  });

  it('the comparison notices a missing q/k norm or the wrong RoPE pairing', () => {
    expect(maxAbsDiff(reference(w, TOKENS, { noQkNorm: true }), want)).toBeGreaterThan(0.1);
    expect(maxAbsDiff(reference(w, TOKENS, { interleaved: true }), want)).toBeGreaterThan(0.1);
  });
});
