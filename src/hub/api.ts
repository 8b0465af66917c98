import { HubError } from './errors.js';
import type { Checksum } from './checksum.js';
import { checkRepoPath } from './ref.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** Which hub to talk to and as whom. */
export interface Hub {
  readonly endpoint: string;
  readonly token?: string;
}

/** $HF_ENDPOINT (a mirror, as huggingface_hub reads it) and $HF_TOKEN, like the Python client. */
export function hubFromEnv(env: NodeJS.ProcessEnv = process.env): Hub {
  return { endpoint: (env.HF_ENDPOINT || DEFAULT_ENDPOINT).replace(/\/+$/, ''), token: env.HF_TOKEN || undefined };
}

export function authHeaders(hub: Hub): Record<string, string> {
  return hub.token ? { Authorization: `Bearer ${hub.token}` } : {};
}

/** The hub's download URL for one file: {endpoint}/{repo}/resolve/{revision}/{path}. */
export function resolveUrl(hub: Hub, repo: string, revision: string, path: string): string {
  return `${hub.endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${path.split('/').map(encodeURIComponent).join('/')}`;
}

export interface RepoFile {
  readonly path: string;
  readonly size: number;
  readonly checksum: Checksum;
}

/** What a request was for, so an HTTP status becomes a sentence about the user's repo or file. */
export interface RequestContext {
  readonly repo: string;
  readonly revision: string;
  readonly file?: string;
}

/** Every file at a revision, from {endpoint}/api/models/{repo}/tree/{revision}?recursive=true (paged by Link headers). */
export async function listRepoFiles(hub: Hub, ctx: RequestContext, signal?: AbortSignal): Promise<RepoFile[]> {
  const files: RepoFile[] = [];
  let url: string | undefined = `${hub.endpoint}/api/models/${ctx.repo}/tree/${encodeURIComponent(ctx.revision)}?recursive=true`;
  // A listing that keeps paging past any real repository's size is a misbehaving server.
  for (let page = 0; url !== undefined; page++) {
    if (page === 1000) throw new HubError('bad-response', `${url}: the file listing did not end after 1000 pages`);
    const res = await hubFetch(url, { headers: { Accept: 'application/json', ...authHeaders(hub) }, signal });
    if (!res.ok) throw httpError(hub, res, ctx);
    let body: unknown;
    try {
      body = await res.json();
    } catch (e) {
      throw new HubError('bad-response', `${url}: the file listing is not JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(body)) throw new HubError('bad-response', `${url}: the file listing is not a JSON array`);
    for (const entry of body) {
      const f = repoFileFrom(entry, url);
      if (f) files.push(f);
    }
    url = nextLink(res.headers.get('link'), url);
  }
  return files;
}

/** One tree entry, checked field by field: directories are skipped, anything malformed refused. */
function repoFileFrom(entry: unknown, url: string): RepoFile | undefined {
  const e = entry as { type?: unknown; path?: unknown; size?: unknown; oid?: unknown; lfs?: { oid?: unknown; size?: unknown } | null };
  const bad = (what: string): never => {
    throw new HubError('bad-response', `${url}: listing entry ${JSON.stringify(entry)?.slice(0, 200)}: ${what}`);
  };
  if (typeof e !== 'object' || e === null) return bad('not an object');
  if (e.type === 'directory') return undefined;
  if (e.type !== 'file') return bad('type is neither "file" nor "directory"');
  if (typeof e.path !== 'string') return bad('no path');
  if (!isRepoPath(e.path)) return bad('the path leaves the repository');
  if (e.lfs !== undefined && e.lfs !== null) {
    if (typeof e.lfs.oid !== 'string' || !/^[0-9a-f]{64}$/.test(e.lfs.oid)) return bad('lfs.oid is not a sha256');
    if (!isSize(e.lfs.size)) return bad('lfs.size is not a byte count');
    return { path: e.path, size: e.lfs.size, checksum: { kind: 'sha256', hex: e.lfs.oid } };
  }
  if (typeof e.oid !== 'string' || !/^[0-9a-f]{40}$/.test(e.oid)) return bad('oid is not a git blob id');
  if (!isSize(e.size)) return bad('size is not a byte count');
  return { path: e.path, size: e.size, checksum: { kind: 'git-blob-sha1', hex: e.oid } };
}

function isRepoPath(p: string): boolean {
  try {
    checkRepoPath(p, p);
    return true;
  } catch {
    return false;
  }
}

function isSize(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** The rel="next" target of a Link header (RFC 8288), resolved against the page's URL. */
function nextLink(header: string | null, base: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(',')) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (m && /(^|;)\s*rel\s*=\s*"?next"?\s*(;|$)/i.test(m[2])) return new URL(m[1], base).toString();
  }
  return undefined;
}

/** fetch, with failures to reach the server turned into one line naming the URL and the cause. */
export async function hubFetch(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    throw fetchFailure(e, url, init.signal ?? undefined);
  }
}

/** A thrown fetch or body-read error as a HubError: interrupted if our signal fired, else network. */
export function fetchFailure(e: unknown, url: string, signal?: AbortSignal): HubError {
  if (e instanceof HubError) return e;
  if (signal?.aborted) return new HubError('interrupted', `${url}: interrupted`);
  const err = e as Error & { cause?: { code?: string; message?: string } };
  const why = err.cause?.message ?? err.cause?.code ?? err.message;
  return new HubError('network', `network error on ${url}: ${why}`);
}

/**
 * An error status as the hub means it. The hub names the problem in X-Error-Code (RepoNotFound,
 * RevisionNotFound, EntryNotFound, GatedRepo) and answers 401 for private and missing repos alike
 * when no token is sent, the way huggingface_hub's hf_raise_for_status reads it.
 */
export function httpError(hub: Hub, res: Response, ctx: RequestContext): HubError {
  const code = res.headers.get('x-error-code');
  const serverMsg = res.headers.get('x-error-message');
  const page = `${hub.endpoint}/${ctx.repo}`;
  const status = `HTTP ${res.status}${serverMsg ? `: ${serverMsg}` : ''}`;
  // The body is not needed and would keep the connection busy.
  void res.body?.cancel().catch(() => {});
  if (code === 'GatedRepo') {
    const next = hub.token ? 'and make sure HF_TOKEN is a token of the account that accepted them' : 'then set HF_TOKEN to an access token of that account (https://huggingface.co/settings/tokens)';
    return new HubError('gated', `${ctx.repo} is a gated repository: accept its conditions at ${page}, ${next} (${status})`);
  }
  if (code === 'RevisionNotFound') return new HubError('not-found', `revision "${ctx.revision}" not found in ${ctx.repo} (${status})`);
  if (code === 'EntryNotFound') return new HubError('not-found', `${ctx.file ?? 'file'} not found in ${ctx.repo} at revision "${ctx.revision}" (${status})`);
  if (res.status === 401 || res.status === 403 || code === 'RepoNotFound') {
    const tokenHint = hub.token
      ? 'HF_TOKEN was sent; check that it is valid and has access to this repository'
      : 'if it is private or gated, set HF_TOKEN to an access token (https://huggingface.co/settings/tokens)';
    const kind = res.status === 401 || res.status === 403 ? 'auth' : 'not-found';
    const what = res.status === 403 ? `access to ${ctx.repo} denied` : `repository ${ctx.repo} not found or not accessible at ${hub.endpoint}`;
    return new HubError(kind, `${what}: ${tokenHint} (${status})`);
  }
  if (res.status === 404) return new HubError('not-found', `${ctx.file ? `${ctx.file} in ` : ''}${ctx.repo} not found at ${res.url || page} (${status})`);
  return new HubError(res.status >= 500 ? 'network' : 'bad-response', `${res.url || page}: the server answered ${status} ${res.statusText}`.trim());
}
