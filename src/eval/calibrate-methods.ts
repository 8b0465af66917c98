import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { calibrate, collectSamples } from '../kv/calibration.js';
import type { KvPolicy } from '../kv/cache.js';
import { parseSpec } from '../kv/codec.js';
import { codecFactory } from '../kv/registry.js';
import type { Model } from '../engine/model.js';
import type { EvalMethod } from './evaluate.js';

export interface CalibrateMethodsOptions {
  /** Calibration text (keep it apart from the evaluation text). */
  readonly file: string;
  readonly text: string;
  /** Folder the calibration files go to (one per distinct spec). */
  readonly dir: string;
  readonly ctx: number;
  /** Calibration tokens to collect (default 16384, as `lowkv calibrate`). */
  readonly tokens?: number;
  /** Seeds the methods' k-means, so the same seed gives the same codebooks. */
  readonly seed: number;
  readonly signal?: AbortSignal;
  readonly onChunk?: (done: number, total: number) => void;
}

/** A spec of a method that learns from data and was given no calib=FILE. */
export function needsCalibration(spec: string): boolean {
  const p = parseSpec(spec);
  return p.inner === undefined && codecFactory(p.name).calibrate !== undefined && !p.params.has('calib');
}

/**
 * Calibrates every calibrated method in `methods` that names no calib=FILE on one text (samples
 * collected once for all of them) and returns the methods with calib=FILE filled in; labels keep
 * what the user wrote. Per-layer policies are passed through as they are.
 */
export async function calibrateMethods(model: Model, methods: readonly EvalMethod[], opts: CalibrateMethodsOptions): Promise<EvalMethod[]> {
  const specs = [...new Set(methods.flatMap((m) => (m.policy.layers ? [] : [m.policy.k, m.policy.v])).filter(needsCalibration))];
  if (specs.length === 0) return [...methods];
  const tokens = model.tokenizer.encode(opts.text).slice(0, opts.tokens ?? 16384);
  const c = model.config;
  const samples = await collectSamples(model.llama, tokens, {
    ctx: opts.ctx,
    maxRows: tokens.length,
    bos: model.tokenizer.addBos ? model.tokenizer.bos : undefined,
    signal: opts.signal,
    onChunk: opts.onChunk,
  });
  mkdirSync(opts.dir, { recursive: true });
  const files = new Map<string, string>();
  for (const spec of specs) {
    const file = calibrate(spec, samples, { name: model.name, nLayers: c.nLayers, nKvHeads: c.nKvHeads, headDim: c.headDim }, { file: opts.file, tokens: samples[0].nRows, seed: opts.seed });
    const path = join(opts.dir, `calib-${spec.replace(/[^a-z0-9_.=-]+/gi, '_')}-seed${opts.seed}.json`);
    writeFileSync(path, JSON.stringify(file));
    files.set(spec, `${spec},calib=${path}`);
  }
  const filled = (s: string): string => files.get(s) ?? s;
  return methods.map((m) => (m.policy.layers ? m : { ...m, policy: { k: filled(m.policy.k), v: filled(m.policy.v) } satisfies KvPolicy }));
}
