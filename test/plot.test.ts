import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { paretoFrontier, writeTradeoffPlots, type PlotRow } from '../src/eval/plot.js';

const row = (label: string, bitsPerValue: number, dPplPct: number, kld = 0.01): PlotRow => ({
  label,
  bitsPerValue,
  dPplPct,
  kld,
});

const labels = (rows: PlotRow[]) => rows.map((r) => r.label);

describe('paretoFrontier', () => {
  it('drops dominated points and sorts by bits', () => {
    const rows = [
      row('f16', 16, 0.001),
      row('worse8', 8, 0.5), // dominated by q4 (fewer bits, less error)
      row('q4', 4, 0.2),
      row('kivi2', 2, 3),
      row('big', 20, 0.001), // same error as f16 with more bits
      row('q8', 8.5, 0.01),
    ];
    expect(labels(paretoFrontier(rows, 'dPplPct'))).toEqual(['kivi2', 'q4', 'q8', 'f16']);
  });

  it('keeps exact ties, drops points tied on one axis and worse on the other', () => {
    const rows = [
      row('a', 4, 0.1),
      row('b', 4, 0.1), // identical to a: neither dominates
      row('c', 4, 0.3), // same bits, more error
      row('d', 3, 0.1), // same error as a/b, fewer bits: dominates a, b, c
      row('e', 2, 1),
    ];
    expect(labels(paretoFrontier(rows, 'dPplPct'))).toEqual(['e', 'd']);
    const rows2 = [row('a', 4, 0.1), row('b', 4, 0.1), row('c', 4, 0.3), row('e', 2, 1)];
    expect(labels(paretoFrontier(rows2, 'dPplPct'))).toEqual(['e', 'a', 'b']);
  });

  it('uses the requested key, handles ≤ 0 errors and ignores non-finite rows', () => {
    const rows = [
      row('x', 4, 0.5, 1e-3),
      row('y', 8, 0.1, 1e-2), // better ΔPPL, worse KLD than x
      row('neg', 16, -0.01, 0),
      row('nan', 1, Number.NaN, Number.NaN),
    ];
    expect(labels(paretoFrontier(rows, 'dPplPct'))).toEqual(['x', 'y', 'neg']);
    expect(labels(paretoFrontier(rows, 'kld'))).toEqual(['x', 'neg']);
    expect(paretoFrontier([], 'kld')).toEqual([]);
  });

  it('is pure (does not reorder its input)', () => {
    const rows = [row('b', 8, 0.1), row('a', 4, 0.5)];
    paretoFrontier(rows, 'dPplPct');
    expect(labels(rows)).toEqual(['b', 'a']);
  });
});

describe('writeTradeoffPlots', () => {
  let dir = '';
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('writes SVG and 1200-px PNG for ΔPPL and KLD', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lowkv-plot-'));
    const rows: PlotRow[] = [
      { label: 'f16', bitsPerValue: 16, dPplPct: 0.001, kld: 1e-6 },
      { label: 'q8_0', bitsPerValue: 8.5, dPplPct: 0.01, kld: 3e-5 },
      { label: 'q4_0', bitsPerValue: 4.5, dPplPct: 0.2, kld: 6e-3 },
      { label: 'kivi:2', bitsPerValue: 3, dPplPct: 2.5, kld: 0.02 },
      { label: 'decoquant:4', bitsPerValue: 4.6, dPplPct: 0.15, kld: 4e-3 },
      { label: 'f32', bitsPerValue: 32, dPplPct: 0, kld: 0 },
      { label: 'mx:fp4', bitsPerValue: 4.25, dPplPct: -0.02, kld: 5e-3 },
    ];
    const files = await writeTradeoffPlots(rows, dir, { title: 'test model' });
    expect(files.map((f) => basename(f)).sort()).toEqual([
      'tradeoff-kld.png',
      'tradeoff-kld.svg',
      'tradeoff-ppl.png',
      'tradeoff-ppl.svg',
    ]);
    for (const f of files) {
      const buf = await readFile(f);
      if (f.endsWith('.svg')) {
        const svg = buf.toString('utf8');
        expect(svg).toContain('<svg');
        expect(svg).toContain('test model');
        for (const r of rows) expect(svg).toContain(r.label);
        expect(svg).toContain('≤'); // f32 / mx:fp4 clamped to the floor
      } else {
        expect([...buf.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
        expect(buf.subarray(12, 16).toString('latin1')).toBe('IHDR');
        expect(buf.readUInt32BE(16)).toBe(1200);
        expect(buf.readUInt32BE(20)).toBeGreaterThan(300);
      }
    }
  }, 60_000);
});
