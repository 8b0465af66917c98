import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { perLayerProfile, type PerLayerRow } from '../src/eval/per-layer.js';
import { calibrate, collectSamples } from '../src/kv/calibration.js';
import { randomModel, randomTokens } from './helpers/calibrated.js';

const CTX = 64;

function rowsOf(rows: PerLayerRow[], label: string): PerLayerRow[] {
  return rows.filter((r) => r.label === label).sort((a, b) => a.layer - b.layer);
}

describe('perLayerProfile', () => {
  const model = randomModel();
  const tokens = randomTokens(2 * CTX + 5, 7);

  it('reports one row per policy and layer, with exact zeros for f32', async () => {
    const progress: [number, number][] = [];
    const rows = await perLayerProfile(model, tokens, [{ label: 'f32', policy: { k: 'f32', v: 'f32' } }], {
      ctx: CTX,
      bos: 1,
      onProgress: (d, t) => progress.push([d, t]),
    });
    expect(rows).toHaveLength(model.config.nLayers);
    expect(progress).toEqual([
      [1, 2],
      [2, 2],
    ]);
    for (const [i, r] of rows.entries()) {
      expect(r).toEqual({ label: 'f32', layer: i, kRelError: 0, vRelError: 0, attnRelError: 0 });
    }
    expect(model.observer).toBeUndefined();
  });

  it('f16 errors are within half an ulp of f16', async () => {
    const rows = await perLayerProfile(model, tokens, [{ label: 'f16', policy: { k: 'f16', v: 'f16' } }], { ctx: CTX, chunks: 1 });
    for (const r of rows) {
      expect(r.kRelError).toBeGreaterThan(0);
      expect(r.kRelError).toBeLessThanOrEqual(2 ** -11);
      expect(r.vRelError).toBeGreaterThan(0);
      expect(r.vRelError).toBeLessThanOrEqual(2 ** -11);
      expect(r.attnRelError).toBeGreaterThan(0);
      expect(r.attnRelError).toBeLessThan(2e-3);
    }
  });

  it('q4_0 is worse than q8_0 on every layer and measure', async () => {
    const rows = await perLayerProfile(
      model,
      tokens,
      [
        { label: 'q8', policy: { k: 'q8_0', v: 'q8_0' } },
        { label: 'q4', policy: { k: 'q4_0', v: 'q4_0' } },
      ],
      { ctx: CTX, bos: 1 },
    );
    const q8 = rowsOf(rows, 'q8');
    const q4 = rowsOf(rows, 'q4');
    expect(q8).toHaveLength(2);
    for (let l = 0; l < 2; l++) {
      expect(q4[l].kRelError).toBeGreaterThan(q8[l].kRelError);
      expect(q4[l].vRelError).toBeGreaterThan(q8[l].vRelError);
      expect(q4[l].attnRelError).toBeGreaterThan(q8[l].attnRelError);
      expect(q8[l].kRelError).toBeGreaterThan(0);
      expect(q4[l].kRelError).toBeLessThan(0.5);
    }
  });

  it('a per-layer policy leaves the untouched layer exact', async () => {
    const rows = await perLayerProfile(model, tokens, [{ label: 'l1', policy: { k: 'f32', v: 'f32', layers: { 1: { k: 'q4_0', v: 'q4_0' } } } }], { ctx: CTX, chunks: 1 });
    const [l0, l1] = rowsOf(rows, 'l1');
    expect(l0).toMatchObject({ kRelError: 0, vRelError: 0, attnRelError: 0 });
    expect(l1.kRelError).toBeGreaterThan(0);
    expect(l1.vRelError).toBeGreaterThan(0);
    expect(l1.attnRelError).toBeGreaterThan(0);
  });

  it('pre-RoPE codecs are compared with the pre-RoPE rows they were given', async () => {
    // kvquant stores keys before RoPE: calibrate it on this model, then its key error must be a
    // quantization error, not the size of the rotation.
    const c = model.config;
    const samples = await collectSamples(model, randomTokens(1024, 11), { ctx: CTX, bos: 1 });
    const file = calibrate('kvquant:4', samples, { name: 'random', nLayers: c.nLayers, nKvHeads: c.nKvHeads, headDim: c.headDim }, { file: 'random', tokens: 1024 });
    const dir = mkdtempSync(join(tmpdir(), 'lowkv-per-layer-'));
    try {
      const path = join(dir, 'kvq.json');
      writeFileSync(path, JSON.stringify(file));
      const rows = await perLayerProfile(model, tokens, [{ label: 'kvq', policy: { k: `kvquant:4,calib=${path}`, v: 'f32' } }], { ctx: CTX, chunks: 1, bos: 1 });
      for (const r of rows) {
        expect(r.kRelError).toBeGreaterThan(0);
        expect(r.kRelError).toBeLessThan(0.3);
        expect(r.vRelError).toBe(0);
        expect(r.attnRelError).toBeGreaterThan(0);
        expect(r.attnRelError).toBeLessThan(0.5);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects bad arguments', async () => {
    await expect(perLayerProfile(model, tokens.slice(0, 10), [{ label: 'f32', policy: { k: 'f32', v: 'f32' } }], { ctx: CTX })).rejects.toThrow(/need at least/);
    await expect(perLayerProfile(model, tokens, [{ label: 'x', policy: { k: 'f32', v: 'f32', layers: { 5: { k: 'f16' } } } }], { ctx: CTX })).rejects.toThrow(/layer "5"/);
  });
});
