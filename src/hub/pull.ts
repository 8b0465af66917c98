import { existsSync, readFileSync, statSync } from 'node:fs';
import { authHeaders, httpError, listRepoFiles, resolveUrl, type Hub, type RepoFile } from './api.js';
import { cachedFilePath, revisionDir } from './cache-dir.js';
import { downloadFile } from './download.js';
import { HubError } from './errors.js';
import { readManifest, recordFile } from './manifest.js';
import { formatHubRef, type HubRef } from './ref.js';
import { defaultGguf, FOLDER_OPTIONAL, FOLDER_REQUIRED, isGguf, SAFETENSORS_INDEX, shardsFromIndex, unshardedWeights } from './select.js';

export type PullEvent =
  | { readonly type: 'listing'; readonly repo: string; readonly revision: string }
  | { readonly type: 'cached'; readonly file: RepoFile; readonly local: string }
  | { readonly type: 'start'; readonly file: RepoFile; readonly local: string }
  | { readonly type: 'resume'; readonly file: RepoFile; readonly from: number }
  | { readonly type: 'progress'; readonly file: RepoFile; readonly done: number }
  | { readonly type: 'done'; readonly file: RepoFile; readonly local: string };

export interface PullOptions {
  readonly hub: Hub;
  readonly cacheDir: string;
  readonly signal?: AbortSignal;
  /** Network failures retried per file, each resuming the partial download. */
  readonly retries?: number;
  readonly retryDelayMs?: number;
  readonly onEvent?: (e: PullEvent) => void;
}

export interface PullResult {
  /** What --model should open: the file, or the revision directory for an HF folder. */
  readonly path: string;
  readonly kind: 'file' | 'folder';
  readonly files: readonly RepoFile[];
  readonly revision: string;
}

/**
 * Fetches `ref` into the cache: the named file; without one, a GGUF repo's default quantization
 * or an HF folder's config, weights and tokenizer. Files already pulled with the checksum the hub
 * lists now are kept; the rest are downloaded with resume and verification.
 */
export async function pull(ref: HubRef, opts: PullOptions): Promise<PullResult> {
  const revision = ref.revision ?? 'main';
  opts.onEvent?.({ type: 'listing', repo: ref.repo, revision });
  const files = await listRepoFiles(opts.hub, { repo: ref.repo, revision }, opts.signal);
  const dir = revisionDir(opts.cacheDir, ref.repo, revision);
  const fetchOne = (f: RepoFile): Promise<string> => fetchFile(ref.repo, revision, f, opts);

  if (ref.file !== undefined) {
    const f = files.find((x) => x.path === ref.file);
    if (!f) throw notListed(ref, files);
    return { path: await fetchOne(f), kind: 'file', files: [f], revision };
  }
  if (files.some((f) => isGguf(f.path))) {
    const f = defaultGguf(ref.repo, files);
    return { path: await fetchOne(f), kind: 'file', files: [f], revision };
  }
  const byPath = new Map(files.map((f) => [f.path, f]));
  const missing = FOLDER_REQUIRED.filter((p) => !byPath.has(p));
  if (missing.length > 0) {
    throw new HubError('not-found', `${ref.repo} at "${revision}" has no GGUF files and no ${missing.join(', ')}, so it is not a model lowkv can load`);
  }
  const fetched: RepoFile[] = [];
  const index = byPath.get(SAFETENSORS_INDEX);
  let weights: RepoFile[];
  if (index) {
    const local = await fetchOne(index);
    fetched.push(index);
    weights = shardsFromIndex(ref.repo, readFileSync(local, 'utf8'), files);
  } else {
    weights = [unshardedWeights(ref.repo, files)];
  }
  const optional = FOLDER_OPTIONAL.flatMap((p) => byPath.get(p) ?? []);
  const required = FOLDER_REQUIRED.map((p) => byPath.get(p)!);
  // config.json comes last: its presence is what makes the resolver take the directory as a
  // model, so an interrupted pull leaves a directory the resolver still reports as not pulled.
  for (const f of [...weights, ...optional, ...required]) {
    await fetchOne(f);
    fetched.push(f);
  }
  return { path: dir, kind: 'folder', files: fetched, revision };
}

async function fetchFile(repo: string, revision: string, f: RepoFile, opts: PullOptions): Promise<string> {
  const dir = revisionDir(opts.cacheDir, repo, revision);
  const local = cachedFilePath(opts.cacheDir, repo, revision, f.path);
  if (readManifest(dir)[f.path] === f.checksum.hex && existsSync(local) && statSync(local).size === f.size) {
    opts.onEvent?.({ type: 'cached', file: f, local });
    return local;
  }
  opts.onEvent?.({ type: 'start', file: f, local });
  const ctx = { repo, revision, file: f.path };
  await downloadFile(
    {
      url: resolveUrl(opts.hub, repo, revision, f.path),
      dest: local,
      size: f.size,
      checksum: f.checksum,
      label: formatHubRef({ repo, revision: revision === 'main' ? undefined : revision, file: f.path }),
      headers: authHeaders(opts.hub),
      httpError: (res) => httpError(opts.hub, res, ctx),
    },
    {
      signal: opts.signal,
      retries: opts.retries,
      retryDelayMs: opts.retryDelayMs,
      onResume: (from) => opts.onEvent?.({ type: 'resume', file: f, from }),
      onProgress: (done) => opts.onEvent?.({ type: 'progress', file: f, done }),
    },
  );
  await recordFile(dir, f.path, f.checksum.hex);
  opts.onEvent?.({ type: 'done', file: f, local });
  return local;
}

function notListed(ref: HubRef, files: readonly RepoFile[]): HubError {
  const ggufs = files.filter((f) => isGguf(f.path)).map((f) => `  ${f.path}`);
  const hint = ggufs.length > 0 ? `; its GGUF files:\n${ggufs.join('\n')}` : '';
  return new HubError('not-found', `${ref.file} not found in ${ref.repo} at revision "${ref.revision ?? 'main'}"${hint}`);
}
