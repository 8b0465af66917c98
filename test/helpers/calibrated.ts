// Calibration files for codec tests, made from synthetic rows shaped like the conformance data
// (gaussian with a 10× channel per head), through the same calibrate() the CLI uses.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { calibrate } from '../../src/kv/calibration.js';
import type { CalibrationSamples, CodecContext, KvRole } from '../../src/kv/codec.js';
import { Rng } from '../../src/engine/rng.js';
import { LlamaModel } from '../../src/model/llama.js';
import type { LlamaConfig } from '../../src/model/types.js';
import { kvRows, randn } from './codec-conformance.js';
import { weightMatrix, type WeightMatrix } from '../../src/kernels/weights.js';

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

/** A small Llama with random weights: 2 layers, 2 KV heads of 8 (GQA 2), 512-token context. */
export function randomModel(): LlamaModel {
  const c: LlamaConfig = { arch: 'llama', dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 8, vocabSize: 64, contextLength: 512, ropeTheta: 10000, ropeDim: 8, rmsEps: 1e-5 };
  let seed = 100;
  const w = (n: number, scale: number): Float32Array => randn(n, seed++).map((x) => x * scale);
  const ones = (n: number): Float32Array => new Float32Array(n).fill(1);
  const m = (rows: number, cols: number, scale: number): WeightMatrix => weightMatrix('f32', rows, cols, w(rows * cols, scale));
  const layers = Array.from({ length: c.nLayers }, () => ({
    attnNorm: ones(c.dim),
    wq: m(32, 32, 0.2),
    wk: m(16, 32, 0.2),
    wv: m(16, 32, 0.3),
    wo: m(32, 32, 0.2),
    ffnNorm: ones(c.dim),
    wGate: m(64, 32, 0.2),
    wDown: m(32, 64, 0.2),
    wUp: m(64, 32, 0.2),
  }));
  const emb = m(c.vocabSize, c.dim, 1);
  return new LlamaModel(c, { tokenEmbedding: emb, layers, outputNorm: ones(c.dim), output: emb });
}

export function randomTokens(n: number, seed: number): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => rng.nextU32() % 64);
}
