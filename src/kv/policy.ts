import { readFileSync } from 'node:fs';
import type { KvPolicy } from './cache.js';
import { CodecSpecError } from './codec.js';
import { checkSpec } from './registry.js';

type LayerEntry = { k?: string; v?: string };

/**
 * Reads a per-layer K/V policy. Two JSON shapes are accepted:
 *   { "0": { "k": "q8_0", "v": "q4_0" }, "3": { "k": "f16" } }                 (layer → {k, v})
 *   { "k": "kivi:2", "v": "kivi:2", "layers": { "0": { "k": "f16", "v": "f16" } } }
 * Layers and roles a file leaves out take `defaults` (the --cache-type-k/-v flags).
 */
export function readPolicyFile(path: string, defaults: { k: string; v: string }): KvPolicy {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CodecSpecError(`cannot read KV policy ${path}: ${(e as Error).message}`);
  }
  return parsePolicy(json, path, defaults);
}

export function parsePolicy(json: unknown, source: string, defaults: { k: string; v: string }): KvPolicy {
  const fail = (what: string): never => {
    throw new CodecSpecError(`KV policy ${source}: ${what}`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('expected a JSON object');
  const o = json as Record<string, unknown>;
  const nested = 'layers' in o || 'k' in o || 'v' in o;
  const layerMap = nested ? (o.layers ?? {}) : o;
  if (nested) for (const key of Object.keys(o)) if (!['k', 'v', 'layers'].includes(key)) fail(`unknown key "${key}" (expected k, v, layers)`);
  if (typeof layerMap !== 'object' || layerMap === null || Array.isArray(layerMap)) fail('"layers" must be an object of layer → {k, v}');
  const spec = (v: unknown, where: string): string => {
    if (typeof v !== 'string') return fail(`${where} must be a spec string such as "q4_0"`);
    try {
      checkSpec(v);
    } catch (e) {
      fail(`${where}: ${(e as Error).message}`);
    }
    return v;
  };
  const layers: Record<number, LayerEntry> = {};
  for (const [key, entry] of Object.entries(layerMap as Record<string, unknown>)) {
    if (!/^\d+$/.test(key)) fail(`layer "${key}" is not a layer index`);
    if (typeof entry !== 'object' || entry === null) fail(`layer ${key} must be an object {k, v}`);
    const e = entry as Record<string, unknown>;
    for (const role of Object.keys(e)) if (role !== 'k' && role !== 'v') fail(`layer ${key}: unknown key "${role}" (expected k, v)`);
    layers[Number(key)] = {
      ...(e.k !== undefined ? { k: spec(e.k, `layer ${key} k`) } : {}),
      ...(e.v !== undefined ? { v: spec(e.v, `layer ${key} v`) } : {}),
    };
  }
  return {
    k: nested && o.k !== undefined ? spec(o.k, 'k') : defaults.k,
    v: nested && o.v !== undefined ? spec(o.v, 'v') : defaults.v,
    layers,
  };
}
