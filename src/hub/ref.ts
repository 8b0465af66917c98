import { HubError } from './errors.js';

/** A model on the hub: `owner/repo[@revision][:file]`. */
export interface HubRef {
  readonly repo: string;
  readonly revision?: string;
  readonly file?: string;
}

// The hub's repo ids: owner and name of letters, digits, '-', '_', '.', not starting with '.' or '-'.
const REPO_ID = /^[A-Za-z0-9_][\w.-]*\/[A-Za-z0-9_][\w.-]*$/;

/** True when `spec` has the shape of a hub reference (it may still name a local path). */
export function looksLikeHubRef(spec: string): boolean {
  return REPO_ID.test(splitSpec(spec).repo);
}

export function parseHubRef(spec: string): HubRef {
  const { repo, revision, file } = splitSpec(spec);
  if (!REPO_ID.test(repo)) {
    throw new HubError('bad-ref', `"${spec}" is not a hub model: expected owner/repo[@revision][:file], e.g. Qwen/Qwen2.5-0.5B-Instruct-GGUF:qwen2.5-0.5b-instruct-q4_k_m.gguf`);
  }
  if (revision !== undefined) checkRevision(revision);
  if (file !== undefined) checkRepoPath(file, `file "${file}" in "${spec}"`);
  return { repo, revision, file };
}

export function formatHubRef(ref: HubRef): string {
  return ref.repo + (ref.revision !== undefined ? `@${ref.revision}` : '') + (ref.file !== undefined ? `:${ref.file}` : '');
}

function splitSpec(spec: string): { repo: string; revision?: string; file?: string } {
  const colon = spec.indexOf(':');
  const head = colon < 0 ? spec : spec.slice(0, colon);
  const file = colon < 0 ? undefined : spec.slice(colon + 1);
  const at = head.indexOf('@');
  return at < 0 ? { repo: head, file } : { repo: head.slice(0, at), revision: head.slice(at + 1), file };
}

/** A branch, tag or commit; it becomes one directory name in the cache, so no path tricks. */
export function checkRevision(revision: string): string {
  if (revision === '' || revision.split('/').some((s) => s === '' || s === '.' || s === '..') || /[\\\0]/.test(revision)) {
    throw new HubError('bad-ref', `bad revision "${revision}": expected a branch, tag or commit hash`);
  }
  return revision;
}

/**
 * A file path inside a repository, from the user or from the hub's listing: relative, '/'-separated,
 * no '.', '..' or empty segments, so joining it under the cache directory stays inside it.
 */
export function checkRepoPath(path: string, what: string): string {
  if (path === '' || path.startsWith('/') || /[\\\0]/.test(path) || path.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new HubError('bad-ref', `${what}: not a relative path inside the repository`);
  }
  return path;
}
