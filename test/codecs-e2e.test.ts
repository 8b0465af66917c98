// Every registered KV method runs end to end through each real model we hold: calibrated ones
// are calibrated first through the same path `lowkv calibrate` takes.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { calibrate, collectSamples } from '../src/kv/calibration.js';
import { codecNames } from '../src/kv/registry.js';
import { parseSpec } from '../src/kv/codec.js';
import { HD64_GGUF, model, STORIES_GGUF, TINYSTORIES } from './helpers/models.js';
import { dataPath, hasShared } from './helpers/shared-data.js';

const SPECS = [
  'f32', 'fp32', 'f16', 'fp16', 'bf16',
  'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl',
  'rtn:4', 'rtn:2,axis=channel,g=16',
  'kivi:2,g=16,r=32', 'kivi:4',
  'decoquant:4,l=32', 'decoquant:2,l=32,path=b', 'decoquant:4,l=32,n=3',
  'kvquant:3,calib=CALIB', 'cq:2c4b,calib=CALIB',
  'mxint8', 'mxfp8', 'mxfp4,hadamard', 'nvfp4', 'nvint4',
  'window(sink=4,recent=16):q4_0',
]; // prettier-ignore

describe('the spec list covers the registry', () => {
  it('names every registered method', () => {
    const used = new Set(SPECS.map((s) => parseSpec(s).name));
    expect(codecNames().filter((n) => !used.has(n))).toEqual([]);
  });
});

describe.skipIf(!hasShared)('every KV method runs through the real models', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowkv-e2e-'));
  const text = hasShared ? readFileSync(TINYSTORIES, 'utf8') : '';
  const calibText = hasShared ? readFileSync(dataPath('text/tinyshakespeare/input.txt'), 'utf8').slice(0, 20000) : '';

  it.each([
    ['stories260K (head_dim 8)', STORIES_GGUF],
    ['lowkv-tiny-hd64 (head_dim 64)', HD64_GGUF],
  ])('%s', async (_name, path) => {
    const m = await model(path);
    const c = m.config;
    const samples = await collectSamples(m.llama, m.tokenizer.encode(calibText), { ctx: 128, maxRows: 1024, bos: m.tokenizer.bos });
    const calibFor = (method: string): string => {
      const file = join(dir, `${c.dim}-${method.replace(/[:,]/g, '_')}.json`);
      writeFileSync(file, JSON.stringify(calibrate(method, samples, { name: m.name, nLayers: c.nLayers, nKvHeads: c.nKvHeads, headDim: c.headDim }, { file: 'shakespeare', tokens: 1024 })));
      return file;
    };
    const base = await m.perplexity(text, { ctx: 128, chunks: 1 });
    for (const raw of SPECS) {
      const spec = raw.includes('CALIB') ? raw.replace('CALIB', calibFor(raw.split(',')[0])) : raw;
      const r = await m.perplexity(text, { ctx: 128, chunks: 1, cacheTypeK: spec, cacheTypeV: spec });
      expect(Number.isFinite(r.ppl), spec).toBe(true);
      // Nothing here is more than 16× worse than the f32 cache on one short chunk.
      expect(r.ppl / base.ppl, spec).toBeLessThan(16);
      expect(r.bitsPerValue.k, spec).toBeGreaterThan(1);
      expect(r.bitsPerValue.k, spec).toBeLessThanOrEqual(32);
    }
  });
});
