import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * `.lowkv-pull.json` in each revision directory records the checksum of every file pulled there,
 * so a later pull skips files that still match the hub and refetches ones a branch has since
 * changed, without rehashing gigabytes; the resolver reads it to see which GGUFs a repo holds.
 */
export const MANIFEST = '.lowkv-pull.json';

export type Manifest = Record<string, string>;

export function readManifest(dir: string): Manifest {
  let text: string;
  try {
    text = readFileSync(join(dir, MANIFEST), 'utf8');
  } catch {
    return {};
  }
  try {
    const files = (JSON.parse(text) as { files?: unknown }).files;
    if (typeof files !== 'object' || files === null) return {};
    return Object.fromEntries(Object.entries(files).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    // A damaged manifest only costs a re-check: the files are fetched again as if new.
    return {};
  }
}

export async function recordFile(dir: string, path: string, checksumHex: string): Promise<void> {
  const files = { ...readManifest(dir), [path]: checksumHex };
  const tmp = join(dir, `${MANIFEST}.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify({ files }, null, 1) + '\n');
  await rename(tmp, join(dir, MANIFEST));
}
