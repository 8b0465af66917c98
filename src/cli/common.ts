import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, Option } from 'commander';
import type { KvPolicy } from '../kv/cache.js';
import { readPolicyFile } from '../kv/policy.js';
import { checkSpec } from '../kv/registry.js';
import { loadModel, type Model } from '../engine/model.js';
import { defaultThreads } from '../kernels/wasm/pool.js';
import { cacheDir } from '../hub/cache-dir.js';
import { looksLikeHubRef, parseHubRef } from '../hub/ref.js';
import { cachedModelPath } from '../hub/resolve.js';

/** The model that ships with the package (models/README.md). */
export const DEFAULT_MODEL = resolve(dirname(fileURLToPath(import.meta.url)), '../../models/lowkv-tiny-hd64-f16.gguf');

export function intArg(name: string, min = 0): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min} (got "${v}")`);
    return n;
  };
}

export function floatArg(name: string, min = -Infinity): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${name} must be a number ≥ ${min} (got "${v}")`);
    return n;
  };
}

function specArg(v: string): string {
  try {
    checkSpec(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return v;
}

export const cacheOptions = (def = 'f32'): Option[] => [
  new Option('--cache-type-k <type>', 'KV cache type for keys (see `lowkv codecs`)').default(def).argParser(specArg),
  new Option('--cache-type-v <type>', 'KV cache type for values').default(def).argParser(specArg),
  new Option('--kv-policy <file>', 'per-layer K/V types (JSON: layer → {k, v}); layers it omits use the flags above'),
];

export interface CacheFlags {
  cacheTypeK: string;
  cacheTypeV: string;
  kvPolicy?: string;
}

export function policyFromFlags(flags: CacheFlags): KvPolicy {
  const defaults = { k: flags.cacheTypeK, v: flags.cacheTypeV };
  return flags.kvPolicy ? readPolicyFile(flags.kvPolicy, defaults) : defaults;
}

/** "K q4_0 / V q4_0", or the per-layer overrides after the defaults. */
export function policyLabel(p: KvPolicy): string {
  const layers = Object.entries(p.layers ?? {}).map(([l, e]) => `L${l} ${e.k ?? p.k}/${e.v ?? p.v}`);
  return `K ${p.k} / V ${p.v}` + (layers.length ? ` (${layers.join(', ')})` : '');
}

export interface ModelFlags {
  model?: string;
  tokenizer?: string;
  threads?: number;
}

/** --threads: kernel threads; without it $LOWKV_THREADS, else every core. */
export const threadsOption = (): Option => new Option('--threads <n>', 'kernel threads (default: $LOWKV_THREADS, else every core)').argParser(intArg('--threads', 1));

function threadsFor(flags: ModelFlags): number {
  if (flags.threads !== undefined) return flags.threads;
  const env = process.env.LOWKV_THREADS;
  if (env !== undefined) {
    const n = Number(env);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`LOWKV_THREADS must be a positive integer (got "${env}")`);
    return n;
  }
  return defaultThreads();
}

/** Help text of --model: what it accepts and what it falls back to. */
export function modelHelp(fallback?: string): string {
  return `GGUF file, llama2.c checkpoint, Hugging Face folder, or owner/repo[:file] fetched by \`lowkv pull\` (default: $LOWKV_MODEL${fallback ? `, else ${fallback}` : ''})`;
}

/** --model, else $LOWKV_MODEL, else the bundled default (when allowed); hub names through the cache. */
export function resolveModelPath(flags: ModelFlags, allowDefault: boolean): string {
  const p = flags.model ?? process.env.LOWKV_MODEL;
  if (p) return resolveModelSpec(p);
  if (allowDefault && existsSync(DEFAULT_MODEL)) return DEFAULT_MODEL;
  throw new Error('no model given: pass --model FILE or set LOWKV_MODEL');
}

/**
 * A model as the user names it: a path that exists is itself; `owner/repo[@revision][:file]` is
 * what `lowkv pull` put in the cache ($LOWKV_CACHE or the default); anything else is passed on for
 * the loader to report. Nothing is downloaded here.
 */
export function resolveModelSpec(spec: string, cache: string = cacheDir()): string {
  if (existsSync(spec) || !looksLikeHubRef(spec)) return spec;
  return cachedModelPath(parseHubRef(spec), cache);
}

export function openModel(flags: ModelFlags, allowDefault = false): Promise<Model> {
  return loadModel(resolveModelPath(flags, allowDefault), { tokenizer: flags.tokenizer, threads: threadsFor(flags) });
}

/** A text file's contents, or an error naming the file and why it cannot be read. */
export function readTextFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read text file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(2)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** An AbortSignal fired by the first Ctrl-C; a second Ctrl-C exits at once. */
export function interruptSignal(): AbortSignal {
  const ctl = new AbortController();
  process.once('SIGINT', () => {
    ctl.abort();
    process.once('SIGINT', () => process.exit(130));
  });
  return ctl.signal;
}
