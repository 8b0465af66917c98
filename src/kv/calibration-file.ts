import { readFileSync, statSync } from 'node:fs';
import { CodecSpecError, parseSpec, type CodecContext, type ParsedSpec } from './codec.js';

/** What `lowkv calibrate` writes: one artifact per (layer, role), made by the method itself. */
export interface CalibrationFile {
  readonly format: 'lowkv-calibration';
  readonly version: 1;
  /** The method spec calibrated for, e.g. "kvquant:3". */
  readonly method: string;
  readonly model: { readonly name: string; readonly nLayers: number; readonly nKvHeads: number; readonly headDim: number };
  /** Where the samples came from; `seed` (default 1) seeded the method's k-means. */
  readonly source: { readonly file: string; readonly tokens: number; readonly seed?: number };
  readonly layers: ReadonlyArray<{ readonly k: unknown; readonly v: unknown }>;
}

// Keyed by path and modification time: a file rewritten in the same process is read again.
const loaded = new Map<string, CalibrationFile>();

function load(path: string): CalibrationFile {
  let key = path;
  try {
    key = `${path}@${statSync(path).mtimeMs}`;
  } catch {
    // Unreadable: readFileSync below reports it.
  }
  let f = loaded.get(key);
  if (f) return f;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CodecSpecError(`cannot read calibration file ${path}: ${(e as Error).message}`);
  }
  const o = json as Partial<CalibrationFile>;
  if (o?.format !== 'lowkv-calibration' || o.version !== 1 || !Array.isArray(o.layers) || typeof o.method !== 'string' || !o.model) {
    throw new CodecSpecError(`${path} is not a lowkv calibration file (made by \`lowkv calibrate\`)`);
  }
  f = o as CalibrationFile;
  loaded.set(key, f);
  return f;
}

/**
 * The artifact a calibrated codec needs for its layer and role, from the spec's calib=FILE.
 * Missing or mismatched calibration is an error that says how to make the right file.
 */
export function calibrationFor(spec: ParsedSpec, ctx: CodecContext): unknown {
  const path = spec.params.get('calib');
  const method = `${spec.name}${spec.arg ? `:${spec.arg}` : ''}`;
  const rest = [...spec.params].filter(([k]) => k !== 'calib').map(([k, v]) => `,${k}=${v}`).join('');
  const howTo = `run \`lowkv calibrate --model MODEL --file TEXT --method ${method} -o calib.json\` and use "${method}${rest},calib=calib.json"`;
  if (!path) throw new CodecSpecError(`${spec.name} needs calibration data: ${howTo}`);
  const f = load(path);
  if (parseSpec(f.method).name !== spec.name) throw new CodecSpecError(`${path} was calibrated for ${f.method}, not ${spec.name}: ${howTo}`);
  if (f.model.nKvHeads !== ctx.nKvHeads || f.model.headDim !== ctx.headDim || ctx.layer >= f.layers.length) {
    throw new CodecSpecError(
      `${path} was calibrated on ${f.model.name} (${f.model.nLayers} layers, ${f.model.nKvHeads} KV heads × ${f.model.headDim}), ` +
        `which does not match this model (layer ${ctx.layer}, ${ctx.nKvHeads} KV heads × ${ctx.headDim}): ${howTo}`,
    );
  }
  return f.layers[ctx.layer][ctx.role];
}
