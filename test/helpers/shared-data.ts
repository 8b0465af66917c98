import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** ../shared/data beside the checkout (override: LOWKV_SHARED_DATA). */
export const sharedData = process.env.LOWKV_SHARED_DATA ?? resolve(repoRoot, '../shared/data');
export const hasShared = existsSync(sharedData);

if (!hasShared) console.warn(`skipping tests that need reference data: ${sharedData} not found`);

export function dataPath(...parts: string[]): string {
  return resolve(sharedData, ...parts);
}

export function readF32(...parts: string[]): Float32Array {
  const b = readFileSync(dataPath(...parts));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function readJson<T = unknown>(...parts: string[]): T {
  return JSON.parse(readFileSync(dataPath(...parts), 'utf8')) as T;
}
