import type { KvPolicy } from '../kv/cache.js';
import { CodecSpecError } from '../kv/codec.js';
import { readPolicyFile } from '../kv/policy.js';
import { checkSpec } from '../kv/registry.js';
import type { EvalMethod } from './evaluate.js';

/**
 * `lowkv eval --methods all`: every uncalibrated method at the bit widths it supports, in
 * settings that compress at ctx 512 (DecoQuant with 64-token blocks). With `--calibrate TEXT`,
 * `all` adds CALIBRATED_METHODS.
 */
export const ALL_METHODS: readonly string[] = [
  'f16', 'bf16',
  'q8_0', 'q5_1', 'q5_0', 'q4_1', 'iq4_nl', 'q4_0', 'q8_0|q4_0', 'q4_0|f16',
  'rtn:8', 'rtn:4', 'rtn:4,axis=channel', 'rtn:3,axis=channel', 'rtn:2,axis=channel', 'rtn:4,g=row,mode=sym',
  'kivi:4', 'kivi:2', 'window(sink=4,recent=64):kivi:2',
  'decoquant:8,l=64', 'decoquant:4,l=64', 'decoquant:2,l=64', 'decoquant:4,l=64,basis=head', 'decoquant:4,l=64,n=3',
  'mxint8', 'mxfp8', 'mxfp4', 'mxfp4,hadamard', 'nvfp4', 'nvfp4,hadamard', 'nvint4', 'nvint4,hadamard',
]; // prettier-ignore

/** Methods that learn codebooks from data, at their bit widths (cq: 4, 2 and 1 bits/value). */
export const CALIBRATED_METHODS: readonly string[] = ['kvquant:4', 'kvquant:3', 'kvquant:2', 'cq:2c8b', 'cq:4c8b', 'cq:8c8b'];

/**
 * Parses a method list: items separated by spaces or ';', each `SPEC` (K and V alike), `K|V`, or
 * `policy=FILE` (a --kv-policy file); `all` expands to ALL_METHODS, plus CALIBRATED_METHODS when
 * `calibrated` (the caller can calibrate them).
 */
export function parseMethods(list: string, opts: { readonly calibrated?: boolean } = {}): EvalMethod[] {
  const items = list.split(/[\s;]+/).filter(Boolean);
  if (items.length === 0) throw new CodecSpecError('no methods given (e.g. --methods "q8_0 q4_0 kivi:2 K|V policy=file.json", or all)');
  const all = opts.calibrated ? [...ALL_METHODS, ...CALIBRATED_METHODS] : ALL_METHODS;
  return items.flatMap((item) => (item === 'all' ? all.map((m) => ({ ...method(m), fromAll: true })) : [method(item)]));
}

function method(item: string): EvalMethod {
  if (item.startsWith('policy=')) {
    const file = item.slice('policy='.length);
    return { label: `policy ${file}`, policy: readPolicyFile(file, { k: 'f32', v: 'f32' }) };
  }
  const [k, v = k, ...rest] = item.split('|');
  if (rest.length) throw new CodecSpecError(`method "${item}": expected SPEC or K|V`);
  checkSpec(k);
  checkSpec(v);
  const policy: KvPolicy = { k, v };
  return { label: k === v ? k : `${k} / ${v}`, policy };
}
