import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cachedFilePath, revisionDir } from './cache-dir.js';
import { HubError } from './errors.js';
import { readManifest } from './manifest.js';
import { formatHubRef, type HubRef } from './ref.js';
import { isGguf } from './select.js';

/**
 * The local path of a pulled model: `owner/repo:file` is that file; `owner/repo` is the HF folder
 * (config.json present) or the one GGUF pulled from that repo. Never downloads: a model that is
 * not in the cache is an error telling the user the pull command to run.
 */
export function cachedModelPath(ref: HubRef, cacheDir: string): string {
  const revision = ref.revision ?? 'main';
  const spec = formatHubRef(ref);
  if (ref.file !== undefined) {
    const p = cachedFilePath(cacheDir, ref.repo, revision, ref.file);
    if (existsSync(p)) return p;
    if (existsSync(`${p}.part`)) throw new HubError('not-found', `${spec}: its download was interrupted; run \`lowkv pull ${spec}\` to finish it`);
    throw notCached(spec, cacheDir);
  }
  const dir = revisionDir(cacheDir, ref.repo, revision);
  if (existsSync(join(dir, 'config.json'))) return dir;
  const ggufs = Object.keys(readManifest(dir))
    .filter((p) => isGguf(p) && existsSync(join(dir, p)))
    .sort();
  if (ggufs.length === 1) return cachedFilePath(cacheDir, ref.repo, revision, ggufs[0]);
  if (ggufs.length > 1) {
    throw new HubError('choice', `${spec}: several GGUF files are pulled from it; name one:\n${ggufs.map((p) => `  --model ${formatHubRef({ ...ref, file: p })}`).join('\n')}`);
  }
  throw notCached(spec, cacheDir);
}

function notCached(spec: string, cacheDir: string): HubError {
  return new HubError('not-found', `${spec} is neither a local file nor a model in the cache (${cacheDir}); download it with \`lowkv pull ${spec}\``);
}
