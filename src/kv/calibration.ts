import { yieldToEventLoop } from '../engine/event-loop.js';
import type { LlamaModel } from '../model/llama.js';
import { ropeParams } from '../model/types.js';
import type { CalibrationFile } from './calibration-file.js';
import { CodecSpecError, parseSpec, type CalibrationSamples, type KvRole } from './codec.js';
import { codecFactory, codecNames } from './registry.js';

export interface CollectOptions {
  /** Tokens per forward chunk (each chunk starts from an empty cache, BOS first). */
  readonly ctx?: number;
  /** Most rows kept per layer and role. */
  readonly maxRows?: number;
  readonly bos?: number;
  readonly onChunk?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
}

/**
 * Runs the model over tokens and keeps each layer's K (before RoPE, as the projection gives it)
 * and V rows: the activations calibration-based methods learn from.
 */
export async function collectSamples(model: LlamaModel, tokens: ArrayLike<number>, opts: CollectOptions = {}): Promise<CalibrationSamples[]> {
  const c = model.config;
  const ctx = opts.ctx ?? Math.min(512, c.contextLength);
  const width = c.nKvHeads * c.headDim;
  const maxRows = Math.max(1, Math.min(opts.maxRows ?? 16384, tokens.length));
  const rows = Array.from({ length: c.nLayers }, () => ({ k: new Float32Array(maxRows * width), v: new Float32Array(maxRows * width) }));
  let kept = 0;
  let taken = 0;
  model.observer = (layer, role, data, n) => {
    if (role === 'q') return;
    const dst = rows[layer][role];
    const room = Math.min(n, maxRows - kept);
    dst.set(data.subarray(0, room * width), kept * width);
    if (layer === c.nLayers - 1 && role === 'v') taken = room;
  };
  const nChunks = Math.ceil(Math.min(tokens.length, maxRows) / ctx);
  const cache = model.newCache(ctx);
  const batch: number[] = [];
  try {
    for (let chunk = 0; chunk < nChunks && kept < maxRows; chunk++) {
      await yieldToEventLoop();
      if (opts.signal?.aborted) break;
      batch.length = 0;
      for (let i = chunk * ctx; i < Math.min(tokens.length, (chunk + 1) * ctx); i++) batch.push(tokens[i]);
      if (opts.bos !== undefined) batch[0] = opts.bos;
      cache.reset();
      model.forward(batch, cache);
      kept += taken;
      opts.onChunk?.(chunk + 1, nChunks);
    }
  } finally {
    model.observer = undefined;
  }
  if (kept === 0) throw new Error('calibration: no tokens were processed');
  const rope = ropeParams(c);
  return rows.flatMap((r, layer) =>
    (['k', 'v'] as const).map((role) => ({ layer, role, nKvHeads: c.nKvHeads, headDim: c.headDim, rows: r[role].subarray(0, kept * width), nRows: kept, rope, chunkLength: ctx })),
  );
}

export type { CalibrationFile };

/** Builds the calibration file for `method` from collected samples. */
export function calibrate(method: string, samples: CalibrationSamples[], model: CalibrationFile['model'], source: CalibrationFile['source']): CalibrationFile {
  const spec = parseSpec(method);
  const factory = codecFactory(spec.name);
  if (!factory.calibrate) throw new CodecSpecError(`"${spec.name}" needs no calibration (methods that do: ${calibratedMethods().join(', ')})`);
  const layers = Array.from({ length: model.nLayers }, (_, layer) => {
    const of = (role: KvRole): unknown => factory.calibrate!(spec, samples.find((s) => s.layer === layer && s.role === role)!, { seed: source.seed ?? 1 });
    return { k: of('k'), v: of('v') };
  });
  return { format: 'lowkv-calibration', version: 1, method: spec.text, model, source, layers };
}

export function calibratedMethods(): string[] {
  return codecNames().filter((n) => codecFactory(n).calibrate !== undefined);
}
