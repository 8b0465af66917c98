// KV codecs on every architecture: the cache sees post-RoPE keys (or pre-RoPE keys that the
// codec rotates with the model's RoPE: pairing and frequency factors), sliding windows mask by
// position whatever the codec, and tiled prefill stays bit-identical to token-by-token attention.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ALL_METHODS } from '../src/eval/methods.js';
import { readGguf } from '../src/formats/gguf.js';
import * as ref from '../src/kernels/ref/ops.js';
import { calibrate, collectSamples } from '../src/kv/calibration.js';
import { KvCache, type KvPolicy } from '../src/kv/cache.js';
import type { RopeParams } from '../src/kv/codec.js';
import { createCodec } from '../src/kv/registry.js';
import { llamaFromGguf } from '../src/model/from-gguf.js';
import { LlamaModel } from '../src/model/llama.js';
import { ropeParams } from '../src/model/types.js';
import { calibrationDir, ctxFor, N_KV } from './helpers/calibrated.js';
import { kvRows, randn } from './helpers/codec-conformance.js';
import { maxAbsDiff } from './helpers/models.js';
import { dataPath, hasShared, readJson } from './helpers/shared-data.js';

const MODELS = ['llama2-f32', 'llama3-f32', 'qwen2-f32', 'phi3-f32', 'gemma-f32', 'gemma2-f32'];

function rmsDiff(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s / a.length);
}

function load(name: string, attentionTile?: number): LlamaModel {
  const { config, weights } = llamaFromGguf(readGguf(dataPath(`golden/arch/${name}/${name}.gguf`)));
  return new LlamaModel(config, weights, { threads: 1, attentionTile });
}

const tokensOf = (name: string): number[] => readJson<{ models: Record<string, { token_ids: number[] }> }>('golden/arch/manifest.json').models[name].token_ids;

/** Logits of every position: the first 12 tokens as one prefill, the rest as a second. */
function logits(m: LlamaModel, tokens: number[], policy: KvPolicy, cache = m.newCache(tokens.length, policy)): Float32Array {
  const out = new Float32Array(tokens.length * m.config.vocabSize);
  out.set(m.forward(tokens.slice(0, 12), cache, 0));
  out.set(m.forward(tokens.slice(12), cache, 0), 12 * m.config.vocabSize);
  return out;
}

describe('pre-RoPE codecs rotate keys with the RoPE they are given (NEOX pairing, frequency factors)', () => {
  const dir = calibrationDir('lowkv-arch-rope-');
  const files = new Map<string, string>();
  const calibFile = (method: string, headDim: number): string => {
    if (!files.has(method)) files.set(method, dir.calibFile(method, headDim));
    return files.get(method)!;
  };
  const headDim = 32;
  const ropes: RopeParams[] = [
    { theta: 1e6, dim: headDim, pairing: 'neox' },
    { theta: 5e5, dim: headDim, pairing: 'norm', freqFactors: Array.from({ length: 16 }, (_, i) => 1 + i / 4) },
    { theta: 1e4, dim: headDim, pairing: 'neox', freqFactors: Array.from({ length: 16 }, (_, i) => 2 + (i % 3)) },
  ];

  it.each(ropes.map((r) => [`${r.pairing}${r.freqFactors ? ' + factors' : ''}`, r] as const))('scores() = q · RoPE(decode(k)) (%s)', (_label, rope) => {
    const T = 40;
    for (const method of ['kvquant:4', 'cq:2c8b']) {
      const spec = `${method},calib=${calibFile(method, headDim)}`;
      for (const full of [spec, `window(sink=3,recent=5):${spec}`]) {
        const codec = createCodec(full, ctxFor('k', headDim, T, { rope }));
        expect(codec.preRope).toBe(true);
        codec.append(kvRows(T, N_KV, headDim, 7), T);
        // The reference rotates the codec's own reconstruction with the forward pass's rope().
        const keys = new Float32Array(T * N_KV * headDim);
        codec.decode(0, T, keys);
        const inv = ref.ropeInvFreq(rope.theta, rope.dim, rope.freqFactors);
        ref.rope(keys, T, N_KV, headDim, 0, inv, new Float32Array(16), new Float32Array(16), rope.pairing === 'neox');
        const q = randn(3 * headDim, 11);
        for (let h = 0; h < N_KV; h++) {
          const got = new Float32Array(3 * T);
          codec.scores(h, q, 0, 3, T, got, 0, T);
          for (let i = 0; i < 3; i++) {
            for (let t = 0; t < T; t++) {
              const want = ref.dot(q, i * headDim, keys, (t * N_KV + h) * headDim, headDim);
              expect(Math.abs(got[i * T + t] - want), `${full} head ${h} query ${i} token ${t}`).toBeLessThan(1e-4 * (1 + Math.abs(want)));
            }
          }
        }
      }
    }
  });

  it('refuses RoPE parameters it cannot reproduce', () => {
    const spec = `kvquant:4,calib=${calibFile('kvquant:4', headDim)}`;
    const bad = (rope: RopeParams): (() => unknown) => () => createCodec(spec, ctxFor('k', headDim, 8, { rope }));
    expect(bad({ theta: 1e4, dim: headDim, freqFactors: [1, 2] })).toThrow(/frequency factors must be 16 positive numbers/);
    expect(bad({ theta: 1e4, dim: headDim, pairing: 'gptj' as RopeParams['pairing'] })).toThrow(/unknown RoPE pairing "gptj"/);
  });
});

describe.skipIf(!hasShared)('KV codecs on every architecture (golden/arch models)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowkv-arch-codecs-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(MODELS)('%s: tiled prefill equals one query token per call, bit for bit, for every method', (name) => {
    const tokens = tokensOf(name);
    const tiled = load(name, 8);
    const single = load(name, 1);
    let compared = 0;
    for (const item of ALL_METHODS) {
      const [k, v = k] = item.split('|');
      if (/l=64|basis=head/.test(item)) continue; // blocks larger than these heads (32)
      const a = logits(tiled, tokens, { k, v });
      const b = logits(single, tokens, { k, v });
      expect(a.every(Number.isFinite), `${item}: finite logits`).toBe(true);
      expect(a.findIndex((x, i) => x !== b[i]), `${item}: first differing logit`).toBe(-1);
      compared++;
    }
    expect(compared).toBeGreaterThan(25);
  });

  it.each(MODELS)('%s: pre-RoPE codecs get the model’s RoPE (far closer to f32 than with a wrong one)', async (name) => {
    const m = load(name);
    const c = m.config;
    const tokens = tokensOf(name);
    // Calibrate on the model's own keys: 4 chunks of 32 varied tokens.
    const calTokens = Array.from({ length: 128 }, (_, i) => (i * 131 + 7) % c.vocabSize);
    const samples = await collectSamples(m, calTokens, { ctx: 32 });
    const calib = (method: string): string => {
      const file = join(dir, `${name}-${method.replace(/\W+/g, '_')}.json`);
      const model = { name, nLayers: c.nLayers, nKvHeads: c.nKvHeads, headDim: c.headDim };
      writeFileSync(file, JSON.stringify(calibrate(method, samples, model, { file: 'synthetic', tokens: calTokens.length })));
      return file;
    };
    const exact = logits(m, tokens, { k: 'f32', v: 'f32' });
    const right = ropeParams(c);
    // What a codec would do if the model did not hand its RoPE over: the other pairing, and (Llama 3)
    // no frequency factors.
    const wrongs: RopeParams[] = [{ ...right, pairing: right.pairing === 'neox' ? 'norm' : 'neox' }];
    if (right.freqFactors) wrongs.push({ ...right, freqFactors: undefined });
    const cacheWith = (rope: RopeParams, policy: KvPolicy): KvCache =>
      new KvCache({ nLayers: c.nLayers, nKvHeads: c.nKvHeads, headDim: c.headDim, capacity: tokens.length, rope }, policy);
    // [method, largest RMS error with the right RoPE as a fraction of the smallest with a wrong one]
    const cases: Array<[string, number]> = [
      // All 32 tokens stay in the window's fp16 sink, rotated by the window wrapper itself: the
      // only error is fp16 rounding (measured RMS ≤ 3e-4; wrong RoPE ≥ 0.3).
      ['window(sink=32,recent=8):kvquant:4', 0.01],
      // 4-bit codes rotated by the shared RoPE table (measured ratios 0.13–0.25, 0.07–0.17 for the
      // window, 0.24–0.35 for cq:2c8b at 4 bits/value).
      ['kvquant:4', 0.4],
      ['window(sink=2,recent=8):kvquant:4', 0.4],
      ['cq:2c8b', 0.4],
    ];
    for (const [method, ratio] of cases) {
      const inner = method.replace(/^window\([^)]*\):/, '');
      const policy = { k: method.replace(inner, `${inner},calib=${calib(inner)}`), v: 'f32' };
      const good = rmsDiff(logits(m, tokens, policy), exact);
      // Missing Llama 3 factors change only the slow pairs, by less than 4-bit noise at 32
      // positions: the fp16 case alone tells them apart.
      for (const wrong of ratio < 0.1 ? wrongs : wrongs.slice(0, 1)) {
        const bad = rmsDiff(logits(m, tokens, policy, cacheWith(wrong, policy)), exact);
        expect(good, `${method}: RMS error with the model's RoPE; with ${JSON.stringify(wrong).slice(0, 60)}: ${bad}`).toBeLessThan(ratio * bad);
      }
    }
  });

  it('phi3 (window 16, 2 layers): the last position cannot see token 0, whatever per-token codec holds the cache', () => {
    // Position 31 attends to 16 … 31 in layer 1, which attended to 1 … 31 in layer 0.
    const m = load('phi3-f32');
    const tokens = tokensOf('phi3-f32');
    const changed = [(tokens[0] + 1) % m.config.vocabSize, ...tokens.slice(1)];
    const last = (t: number[], policy: KvPolicy): Float32Array => Float32Array.from(m.forward(t, m.newCache(t.length, policy)));
    for (const codec of ['f32', 'f16', 'q8_0', 'q4_0', 'rtn:4', 'mxfp4', 'mxfp4,hadamard']) {
      const policy = { k: codec, v: codec };
      expect(last(changed, policy), codec).toEqual(last(tokens, policy));
    }
    // …while position 30 can (layer 1 sees 15, which saw 0): the window is what hides it.
    const at30 = (t: number[]): Float32Array => Float32Array.from(m.forward(t.slice(0, 31), m.newCache(31)));
    expect(maxAbsDiff(at30(changed), at30(tokens))).toBeGreaterThan(1e-3);
  });
});
