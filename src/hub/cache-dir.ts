import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where pulled models live:
 *   {cache}/models/{owner}/{repo}/{revision}/{path in the repo}
 * with the revision URI-encoded into one directory name (refs/pr/1 → refs%2Fpr%2F1). The cache is
 * --cache-dir, else $LOWKV_CACHE, else lowkv under the user's cache directory.
 */
export function cacheDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? (env.LOWKV_CACHE || defaultCacheDir(env));
}

/** $XDG_CACHE_HOME/lowkv if set; else ~/Library/Caches/lowkv (macOS), %LOCALAPPDATA%\lowkv (Windows), ~/.cache/lowkv. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform, home: string = homedir()): string {
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'lowkv');
  if (platform === 'darwin') return join(home, 'Library', 'Caches', 'lowkv');
  if (platform === 'win32') return join(env.LOCALAPPDATA || join(home, 'AppData', 'Local'), 'lowkv');
  return join(home, '.cache', 'lowkv');
}

export function revisionDir(cache: string, repo: string, revision: string): string {
  const [owner, name] = repo.split('/');
  return join(cache, 'models', owner, name, encodeURIComponent(revision));
}

export function cachedFilePath(cache: string, repo: string, revision: string, file: string): string {
  return join(revisionDir(cache, repo, revision), ...file.split('/'));
}
