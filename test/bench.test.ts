// The bench scripts as a user runs them: flags, the JSON they print, and bytes that follow each
// codec's formula. Timings are not checked (benchmarks, not tests).
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { splitCodecs } from '../src/bench/args.js';
import { presetConfig, writeRandomModel } from '../src/bench/random-model.js';
import { repoRoot } from './helpers/shared-data.js';

function bench(script: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [resolve(repoRoot, 'dist/bench', script), ...args], { encoding: 'utf8', env: { ...process.env, LOWKV_THREADS: '1' }, timeout: 300_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('codec lists', () => {
  it('keep the commas inside a spec', () => {
    expect(splitCodecs('f16,q8_0,decoquant:4,l=64,nvfp4,hadamard,rtn:4,axis=channel,g=32')).toEqual(['f16', 'q8_0', 'decoquant:4,l=64', 'nvfp4,hadamard', 'rtn:4,axis=channel,g=32']);
    expect(splitCodecs('f16;kivi:2,g=32 q4_0')).toEqual(['f16', 'kivi:2,g=32', 'q4_0']);
  });
});

describe('bench:attention', () => {
  it('--json prints one array, one object per (codec, ctx), bytes from each codec', () => {
    const r = bench('attention.js', ['--ctx', '64,96', '--codecs', 'f16,q4_0', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as Array<Record<string, number | string>>;
    expect(rows.map((x) => [x.codec, x.ctx])).toEqual([
      ['f16', 64],
      ['q4_0', 64],
      ['f16', 96],
      ['q4_0', 96],
    ]);
    for (const x of rows) {
      expect(Object.keys(x).sort()).toEqual(['bytesRead', 'codec', 'ctx', 'gbPerS', 'msPerToken', 'ratioVsFp16']);
      // K and V of 8 KV heads × head_dim 64: f16 is 2 bytes a value, q4_0 4.5 bits.
      const values = 2 * 8 * 64 * (x.ctx as number);
      expect(x.bytesRead).toBe(x.codec === 'f16' ? values * 2 : (values * 4.5) / 8);
      expect(x.msPerToken as number).toBeGreaterThan(0);
      if (x.codec === 'f16') expect(x.ratioVsFp16).toBe(1);
    }
  });

  it('refuses bad flags with the usage', () => {
    const r = bench('attention.js', ['--ctx', 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--ctx/);
    expect(bench('attention.js', ['--nope']).stderr).toMatch(/Unknown option '--nope'[\s\S]*usage: npm run bench:attention/);
  });
});

describe('bench:decode', () => {
  it('reports prefill and decode per codec and depth, KV bytes from the cache', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lowkv-bench-'));
    const model = join(dir, 'tiny.gguf');
    writeRandomModel(model, { preset: 'tiny', type: 'f32', seed: 1 });
    const r = bench('decode.js', ['--model', model, '--codecs', 'f16,q8_0', '--depths', '0,40', '--decode-tokens', '2', '--prefill', '8', '--json', '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as Array<Record<string, number | string>>;
    expect(rows.map((x) => [x.codec, x.depth])).toEqual([['f16', 0], ['f16', 40], ['q8_0', 0], ['q8_0', 40]]);
    const c = presetConfig('tiny');
    const kvValues = 2 * c.nLayers * c.nKvHeads * c.headDim; // per token, K and V
    for (const x of rows) {
      expect(x.kvBytesPerToken).toBe(x.codec === 'f16' ? kvValues * 2 : (kvValues * 8.5) / 8);
      expect(x.decodeTokPerS as number).toBeGreaterThan(0);
      expect(x.prefillTokPerS as number).toBeGreaterThan(0);
      expect(x.peakRss as number).toBeGreaterThan(0);
    }
    expect(bench('decode.js', ['--codecs', 'f16']).stderr).toMatch(/--model is required/);
  });
});
