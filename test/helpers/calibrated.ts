// Calibration files for codec tests, made from synthetic rows shaped like the conformance data
// (gaussian with a 10× channel per head), through the same calibrate() the CLI uses.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { calibrate } from '../../src/kv/calibration.js';
import type { CalibrationSamples, CodecContext, KvRole } from '../../src/kv/codec.js';
import { kvRows } from './codec-conformance.js';

export const N_KV = 2;
export const CAL_ROWS = 2048;

export function syntheticSamples(role: KvRole, headDim: number, nRows = CAL_ROWS): CalibrationSamples {
  return { layer: 0, role, nKvHeads: N_KV, headDim, rows: kvRows(nRows, N_KV, headDim, 1000 + headDim), nRows, rope: { theta: 10000, dim: headDim }, chunkLength: 512 };
}

export function ctxFor(role: KvRole, headDim: number, capacity: number, extra: Partial<CodecContext> = {}): CodecContext {
  return { role, layer: 0, nKvHeads: N_KV, headDim, capacity, rope: { theta: 10000, dim: headDim }, ...extra };
}

/** A temporary folder for this test file's calibration files, removed afterwards. */
export function calibrationDir(prefix: string): { dir: string; calibFile: (method: string, headDim: number) => string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const calibFile = (method: string, headDim: number): string => {
    const file = calibrate(method, [syntheticSamples('k', headDim), syntheticSamples('v', headDim)], { name: 'synthetic', nLayers: 1, nKvHeads: N_KV, headDim }, { file: 'kvRows', tokens: CAL_ROWS });
    const path = join(dir, `${method.replace(/[^a-z0-9]+/gi, '_')}-${headDim}.json`);
    writeFileSync(path, JSON.stringify(file));
    return path;
  };
  return { dir, calibFile };
}
