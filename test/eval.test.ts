import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluate } from '../src/eval/evaluate.js';
import { calibrateMethods, needsCalibration } from '../src/eval/calibrate-methods.js';
import { ALL_METHODS, CALIBRATED_METHODS, parseMethods } from '../src/eval/methods.js';
import { lowkv } from './helpers/cli.js';
import { HD64_GGUF, model, STORIES_GGUF, TINYSTORIES } from './helpers/models.js';
import { dataPath, hasShared } from './helpers/shared-data.js';

describe('method lists', () => {
  it('parses SPEC, K|V and all; refuses unknown methods by name', () => {
    expect(parseMethods('q8_0 kivi:2,g=32;q8_0|q4_0').map((m) => [m.label, m.policy])).toEqual([
      ['q8_0', { k: 'q8_0', v: 'q8_0' }],
      ['kivi:2,g=32', { k: 'kivi:2,g=32', v: 'kivi:2,g=32' }],
      ['q8_0 / q4_0', { k: 'q8_0', v: 'q4_0' }],
    ]);
    expect(parseMethods('all')).toHaveLength(ALL_METHODS.length);
    // Methods from `all` are skipped where a model does not allow them; named ones are errors.
    expect(parseMethods('q4_0 all').map((m) => m.fromAll ?? false)).toEqual([false, ...ALL_METHODS.map(() => true)]);
    const withCalibrated = parseMethods('all', { calibrated: true });
    expect(withCalibrated).toHaveLength(ALL_METHODS.length + CALIBRATED_METHODS.length);
    expect(withCalibrated.slice(ALL_METHODS.length).map((m) => m.label)).toEqual(CALIBRATED_METHODS);
    expect(parseMethods('all').some((m) => needsCalibration(m.policy.k))).toBe(false);
    expect(CALIBRATED_METHODS.every(needsCalibration)).toBe(true);
    expect(needsCalibration('kvquant:3,calib=x.json')).toBe(false);
    expect(() => parseMethods('q3_foo')).toThrow(/unknown KV cache type "q3_foo"/);
    expect(() => parseMethods('a|b|c')).toThrow(/expected SPEC or K\|V/);
  });
});

describe.skipIf(!hasShared)('lowkv eval', () => {
  const text = hasShared ? readFileSync(TINYSTORIES, 'utf8') : '';
  const dir = mkdtempSync(join(tmpdir(), 'lowkv-eval-'));

  it('f32 vs itself: KLD 0, 100% top-1; f16: KLD < 1e-4; PPL equals `lowkv ppl` for the same settings', async () => {
    const m = await model(STORIES_GGUF);
    const tokens = m.tokenizer.encode(text);
    const methods = parseMethods('f32 f16 q4_0|f16');
    const ref = join(dir, 'ref.bin');
    const { reference, rows } = await evaluate(m.llama, tokens, methods, { ctx: 512, chunks: 3, bos: m.tokenizer.bos, saveReference: ref });
    expect(rows[0].kld).toBe(0);
    expect(rows[0].top1).toBe(100);
    expect(rows[0].ppl).toBe(reference.ppl);
    expect(rows[1].kld).toBeGreaterThan(0);
    expect(rows[1].kld).toBeLessThan(1e-4);
    for (const [i, spec] of [[1, ['f16', 'f16']], [2, ['q4_0', 'f16']]] as const) {
      const p = await m.perplexity(text, { ctx: 512, chunks: 3, cacheTypeK: spec[0], cacheTypeV: spec[1] });
      expect(rows[i].ppl).toBe(p.ppl);
      expect(rows[i].uncertainty).toBe(p.uncertainty);
    }
    // A saved reference gives the same rows without recomputing the f32 cache.
    const again = await evaluate(m.llama, tokens, methods, { ctx: 512, chunks: 3, bos: m.tokenizer.bos, reference: ref });
    expect(again.rows.map((r) => [r.ppl, r.kld, r.top1])).toEqual(rows.map((r) => [r.ppl, r.kld, r.top1]));
    await expect(evaluate(m.llama, tokens.slice(1), methods, { ctx: 512, chunks: 3, reference: ref })).rejects.toThrow(/made for other settings \(tokensHash/);
    await expect(evaluate(m.llama, tokens, methods, { ctx: 512, chunks: 5, reference: ref })).rejects.toThrow(/holds 3 chunks, 5 are needed/);
  });

  it('reports bits/value from bytes(): q4_0 exactly 4.5, q8_0 exactly 8.5 (head_dim 64)', async () => {
    const m = await model(HD64_GGUF);
    const { rows } = await evaluate(m.llama, m.tokenizer.encode(text), parseMethods('q4_0 q8_0'), { ctx: 128, chunks: 1, bos: m.tokenizer.bos });
    expect(rows.map((r) => [r.bitsK, r.bitsV, r.bits])).toEqual([
      [4.5, 4.5, 4.5],
      [8.5, 8.5, 8.5],
    ]);
    expect(rows[0].bytesPerToken).toBe((4 * 2 * 128 * 4.5) / 8);
  });

  it('the command prints the table and writes CSV, JSON and plots', () => {
    const out = join(dir, 'out');
    const r = lowkv(['eval', '-m', STORIES_GGUF, '-f', TINYSTORIES, '--chunks', '1', '--methods', 'f16 q4_0', '--out', out, '--plot']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\| f32 \(reference\) \| 32\.000 \| 32\.000 \|/);
    expect(r.stdout).toMatch(/\| q4_0 \| 6\.000 \| 6\.000 \|/);
    for (const f of ['results.csv', 'results.json', 'tradeoff-ppl.png', 'tradeoff-kld.svg']) expect(existsSync(join(out, f)), f).toBe(true);
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(json.rows.map((x: { label: string }) => x.label)).toEqual(['f32 (reference)', 'f16', 'q4_0']);
    writeFileSync(join(dir, 'bad.bin'), 'nope');
    const bad = lowkv(['eval', '-m', STORIES_GGUF, '-f', TINYSTORIES, '--chunks', '1', '--methods', 'f16', '--reference', join(dir, 'bad.bin')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/bad\.bin is not a usable lowkv reference: wrong magic/);
  });
});

describe.skipIf(!hasShared)('calibration inside eval', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowkv-eval-calib-'));
  const calib = hasShared ? readFileSync(dataPath('text/tinyshakespeare/input.txt'), 'utf8') : '';

  it('fills in calib=FILE per spec, the same file for the same seed and a different one for another', async () => {
    const m = await model(STORIES_GGUF);
    const methods = parseMethods('kvquant:3 cq:4c8b|f16 q4_0');
    const run = (seed: number, sub: string) => calibrateMethods(m, methods, { file: 'shakespeare', text: calib, dir: join(dir, sub), ctx: 256, tokens: 1024, seed });
    const a = await run(5, 'a');
    const b = await run(5, 'b');
    const c = await run(6, 'c');
    expect(a.map((x) => x.label)).toEqual(['kvquant:3', 'cq:4c8b / f16', 'q4_0']);
    expect(a[0].policy.k).toBe(`kvquant:3,calib=${join(dir, 'a', 'calib-kvquant_3-seed5.json')}`);
    expect(a[1].policy).toEqual({ k: `cq:4c8b,calib=${join(dir, 'a', 'calib-cq_4c8b-seed5.json')}`, v: 'f16' });
    expect(a[2].policy).toEqual({ k: 'q4_0', v: 'q4_0' });
    const codebooks = (ms: typeof a, i: number): unknown => JSON.parse(readFileSync(ms[i].policy.k.split('calib=')[1], 'utf8')).layers;
    for (const i of [0, 1]) {
      expect(codebooks(b, i)).toEqual(codebooks(a, i));
      expect(codebooks(c, i)).not.toEqual(codebooks(a, i));
    }
    expect(JSON.parse(readFileSync(a[0].policy.k.split('calib=')[1], 'utf8')).source).toEqual({ file: 'shakespeare', tokens: 1024, seed: 5 });
    // The filled-in specs build caches (the calibration matches the model).
    for (const x of a) expect(() => m.llama.newCache(8, x.policy)).not.toThrow();
  });

  it('the command asks for --calibrate when a method needs it, and records the seed', () => {
    const bare = lowkv(['eval', '-m', STORIES_GGUF, '-f', TINYSTORIES, '--chunks', '1', '--methods', 'f16 kvquant:3']);
    expect(bare.code).toBe(1);
    expect(bare.stderr).toMatch(/kvquant:3 learns from data: give --calibrate TEXT/);
    const out = join(dir, 'cli');
    const args = ['eval', '-m', STORIES_GGUF, '-f', TINYSTORIES, '--chunks', '1', '--methods', 'kvquant:2', '--calibrate', dataPath('text/tinyshakespeare/input.txt'), '--calib-tokens', '512', '--seed', '3', '--out', out];
    const r = lowkv(args);
    expect(r.code).toBe(0);
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(json.seed).toBe(3);
    expect(json.rows.map((x: { label: string }) => x.label)).toEqual(['f32 (reference)', 'kvquant:2']);
    expect(existsSync(join(out, 'calib-kvquant_2-seed3.json'))).toBe(true);
    // Same seed, same numbers.
    const again = lowkv(args);
    expect(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).rows[1].kld).toBe(json.rows[1].kld);
    expect(again.code).toBe(0);
  });
});

describe.skipIf(!hasShared)('lowkv eval passkey', () => {
  it('runs on any model and prints accuracy per method and depth', () => {
    const r = lowkv(['eval', 'passkey', '-m', STORIES_GGUF, '--ctx', '128', '--methods', 'f32 q8_0', '--trials', '1']);
    expect(r.code).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => /^\| (f32|q8_0) \|/.test(l));
    // 5 depths + the overall row, per method.
    expect(rows).toHaveLength(12);
    expect(rows.at(-1)).toMatch(/^\| q8_0 \| all \| 5 \| \d \| \d+% \|$/);
  });
});
