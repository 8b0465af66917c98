import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local stand-in for the Hugging Face hub's public layout, written from huggingface_hub's and
 * huggingface.js's view of it:
 *   GET /api/models/{owner}/{repo}/tree/{revision}?recursive=true → [{type, oid, size, path, lfs?}],
 *       paged with Link: <…>; rel="next"
 *   GET /{owner}/{repo}/resolve/{revision}/{path} → 302 to /cdn/{sha256} for LFS files (with
 *       X-Linked-Etag / X-Linked-Size / X-Repo-Commit), the bytes with ETag for git files
 *   errors as 401/403/404 with X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound / GatedRepo.
 * Checksums are computed here from the bytes: sha256 for LFS, git's blob id for the rest.
 */
export interface FakeRepo {
  /** Per revision ("main" unless given), path → content. */
  revisions: Record<string, Record<string, Buffer>>;
  /** Access needs this bearer token (401 GatedRepo without one, 403 with another). */
  gatedToken?: string;
}

export interface Behaviour {
  /** Next download of this path sends this many bytes and then waits (see dropStalled). */
  stallAfter?: Map<string, number>;
  /** Answer Range requests with the whole file (200), as some servers do. */
  ignoreRange?: boolean;
  /** Serve these paths with one byte flipped (the listing keeps the true checksum). */
  corrupt?: Set<string>;
  /** Serve these paths with bytes appended (more than the listed size). */
  padded?: Set<string>;
  /** Answer Range requests from this many bytes further on than asked (with a truthful Content-Range). */
  rangeSkew?: number;
  /** Send file bodies without Content-Length (chunked transfer encoding). */
  chunked?: boolean;
  /** Raw entries appended to every listing (to play a misbehaving server). */
  extraEntries?: unknown[];
  /** Listed but 404 EntryNotFound on download. */
  unservable?: Set<string>;
  /** Tree entries per listing page. */
  pageSize?: number;
}

export interface LoggedRequest {
  method: string;
  url: string;
  range?: string;
  authorization?: string;
  status: number;
}

const LFS = /\.(gguf|safetensors|bin)$/;

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
/** git hash-object: sha1 over "blob {length}\0" and the content. */
export const gitBlobId = (b: Buffer): string => createHash('sha1').update(Buffer.concat([Buffer.from(`blob ${b.length}\0`), b])).digest('hex');

export class FakeHub {
  readonly log: LoggedRequest[] = [];
  behaviour: Behaviour = {};
  private readonly servers: Server[] = [];
  private readonly blobs = new Map<string, Buffer>();
  endpoint = '';
  /** Where LFS downloads are redirected: the hub itself, or (separateCdn) another origin, as on huggingface.co. */
  cdn = '';

  constructor(
    readonly repos: Record<string, FakeRepo>,
    private readonly opts: { separateCdn?: boolean } = {},
  ) {}

  async start(): Promise<string> {
    this.endpoint = await this.listen();
    this.cdn = this.opts.separateCdn ? await this.listen() : this.endpoint;
    return this.endpoint;
  }

  private async listen(): Promise<string> {
    const server = createServer((req, res) => this.handle(req, res));
    this.servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const server of this.servers.splice(0)) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }

  /** Requests whose path starts with `prefix` (e.g. '/cdn/' for file bodies). */
  requests(prefix: string): LoggedRequest[] {
    return this.log.filter((r) => r.url.startsWith(prefix));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.endpoint);
    const entry: LoggedRequest = { method: req.method ?? '', url: url.pathname + url.search, range: req.headers.range, authorization: req.headers.authorization, status: 0 };
    this.log.push(entry);
    const send = (status: number, headers: Record<string, string>, body?: Buffer | string): void => {
      entry.status = status;
      res.writeHead(status, headers).end(body);
    };
    const fail = (status: number, code: string | undefined, message: string): void =>
      send(status, { 'Content-Type': 'application/json', ...(code ? { 'X-Error-Code': code } : {}), 'X-Error-Message': message }, JSON.stringify({ error: message }));

    const tree = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) return this.serveBytes(req, res, entry, cdn[1], this.blobs.get(cdn[1]));
    const m = tree ?? resolve;
    if (!m) return fail(404, undefined, 'Not Found');
    const repo = this.repos[m[1]];
    // The hub answers 401 for a repo it will not admit exists to an anonymous caller.
    if (!repo) return fail(req.headers.authorization ? 404 : 401, 'RepoNotFound', 'Repository not found');
    const files = repo.revisions[decodeURIComponent(m[2])];
    if (!files) return fail(404, 'RevisionNotFound', 'Invalid rev id');

    if (tree) return this.listTree(url, files, send);
    if (repo.gatedToken !== undefined && req.headers.authorization !== `Bearer ${repo.gatedToken}`) {
      const msg = 'Access to model is restricted. You must have access to it and be authenticated to access it. Please log in.';
      return fail(req.headers.authorization ? 403 : 401, 'GatedRepo', msg);
    }
    const path = resolve![3].split('/').map(decodeURIComponent).join('/');
    const content = files[path];
    if (!content || this.behaviour.unservable?.has(path)) return fail(404, 'EntryNotFound', 'Entry not found');
    const served = this.behaviour.corrupt?.has(path) ? flipByte(content) : this.behaviour.padded?.has(path) ? Buffer.concat([content, Buffer.alloc(1000)]) : content;
    if (LFS.test(path)) {
      const oid = sha256(content);
      this.blobs.set(oid, served);
      const stall = this.behaviour.stallAfter?.get(path);
      if (stall !== undefined) this.stallPlan.set(oid, stall);
      this.behaviour.stallAfter?.delete(path);
      return send(302, { Location: `${this.cdn}/cdn/${oid}`, 'X-Linked-Etag': `"${oid}"`, 'X-Linked-Size': String(content.length), 'X-Repo-Commit': 'f'.repeat(40) });
    }
    this.serveBytes(req, res, entry, gitBlobId(content), served);
  }

  private readonly stallPlan = new Map<string, number>();
  private readonly stalled: ServerResponse[] = [];

  /**
   * Drops the connections of stalled downloads, as a network failure would. Tests call it once the
   * client reports the bytes received, so what the client holds is known exactly.
   */
  dropStalled(): void {
    for (const res of this.stalled.splice(0)) res.socket?.destroy();
  }

  private listTree(url: URL, files: Record<string, Buffer>, send: (s: number, h: Record<string, string>, b?: string) => void): void {
    const dirs = new Set<string>();
    for (const p of Object.keys(files)) {
      const parts = p.split('/');
      for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
    }
    const entries = [
      ...[...dirs].map((path) => ({ type: 'directory', oid: '0'.repeat(40), size: 0, path })),
      ...Object.entries(files).map(([path, b]) => ({
        type: 'file',
        oid: gitBlobId(LFS.test(path) ? Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(b)}\nsize ${b.length}\n`) : b),
        size: b.length,
        path,
        ...(LFS.test(path) ? { lfs: { oid: sha256(b), size: b.length, pointerSize: 134 } } : {}),
      })),
      ...(this.behaviour.extraEntries ?? []),
    ];
    const size = this.behaviour.pageSize ?? entries.length;
    const cursor = Number(url.searchParams.get('cursor') ?? 0);
    const page = entries.slice(cursor, cursor + size);
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (cursor + size < entries.length) {
      const next = new URL(url);
      next.searchParams.set('cursor', String(cursor + size));
      headers.Link = `<${next.toString()}>; rel="next"`;
    }
    send(200, headers, JSON.stringify(page));
  }

  private serveBytes(req: IncomingMessage, res: ServerResponse, entry: LoggedRequest, etag: string, body: Buffer | undefined): void {
    if (!body) {
      entry.status = 404;
      res.writeHead(404).end();
      return;
    }
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !this.behaviour.ignoreRange) {
      start = Number(range[1]) + (this.behaviour.rangeSkew ?? 0);
      if (start >= body.length) {
        entry.status = 416;
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
    }
    const status = range && !this.behaviour.ignoreRange ? 206 : 200;
    entry.status = status;
    res.writeHead(status, {
      ...(this.behaviour.chunked ? {} : { 'Content-Length': String(body.length - start) }),
      ETag: `"${etag}"`,
      'Accept-Ranges': 'bytes',
      ...(status === 206 ? { 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    const stall = this.stallPlan.get(etag);
    this.stallPlan.delete(etag);
    if (stall !== undefined) {
      res.write(body.subarray(start, start + stall));
      this.stalled.push(res);
    } else {
      res.end(body.subarray(start));
    }
  }
}

function flipByte(b: Buffer): Buffer {
  const c = Buffer.from(b);
  c[c.length >> 1] ^= 0xff;
  return c;
}

/** Deterministic bytes that are not all alike, so a misplaced range would change the hash. */
export function pseudoRandomBytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
