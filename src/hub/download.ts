import { createReadStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Hash } from 'node:crypto';
import { fetchFailure, hubFetch } from './api.js';
import { checksumHash, describeChecksum, type Checksum } from './checksum.js';
import { HubError } from './errors.js';

export interface DownloadRequest {
  readonly url: string;
  /** Final path; bytes accumulate in `${dest}.part` until they are verified. */
  readonly dest: string;
  /** Size and checksum as the hub's listing gives them. */
  readonly size: number;
  readonly checksum: Checksum;
  /** Names the file in messages (owner/repo:path). */
  readonly label: string;
  readonly headers?: Record<string, string>;
  /** Turns an error status into a sentence about the repo (see api.ts httpError). */
  readonly httpError?: (res: Response) => HubError;
}

export interface DownloadOptions {
  readonly signal?: AbortSignal;
  /** Called as bytes arrive, with the bytes on disk so far (including a resumed partial file). */
  readonly onProgress?: (done: number, total: number) => void;
  /** Called once per attempt when a partial file is being continued. */
  readonly onResume?: (from: number) => void;
  /** Network failures are retried this many times, each resuming where the last stopped. */
  readonly retries?: number;
  readonly retryDelayMs?: number;
}

/**
 * Downloads one file with resume and verification: bytes go to `dest.part`; a partial file left
 * by an earlier run is continued with an HTTP Range request (or dropped when the server ignores
 * Range, refuses it, or the partial is longer than the file); the complete file must hash to the
 * listed checksum and only then is renamed into place, so `dest` is either absent or verified.
 * An interruption (signal) or network failure keeps `.part` for the next run.
 */
export async function downloadFile(req: DownloadRequest, opts: DownloadOptions = {}): Promise<void> {
  const retries = opts.retries ?? 0;
  for (let attempt = 0; ; attempt++) {
    try {
      return await attemptDownload(req, opts);
    } catch (e) {
      if (!(e instanceof HubError) || e.kind !== 'network' || attempt >= retries) throw e;
      await sleep((opts.retryDelayMs ?? 1000) * 2 ** attempt, opts.signal);
    }
  }
}

async function attemptDownload(req: DownloadRequest, opts: DownloadOptions): Promise<void> {
  const part = `${req.dest}.part`;
  await mkdir(dirname(req.dest), { recursive: true });
  let have = await fileSize(part);
  if (have > req.size) {
    await unlink(part);
    have = 0;
  }
  if (have === req.size && have > 0) return finishResumed(req, opts, part, await hashFile(part, checksumHash(req.checksum, req.size)));

  const headers: Record<string, string> = {
    ...req.headers,
    // Range offsets count stored bytes; a compressed transfer would count something else.
    'Accept-Encoding': 'identity',
    ...(have > 0 ? { Range: `bytes=${have}-` } : {}),
  };
  const res = await hubFetch(req.url, { headers, signal: opts.signal });
  if (have > 0 && res.status === 416) {
    // The server will not serve from there: the partial file is not a prefix of this file.
    void res.body?.cancel().catch(() => {});
    await unlink(part);
    return attemptDownload(req, opts);
  }
  if (res.status !== 200 && res.status !== 206) throw req.httpError?.(res) ?? new HubError('bad-response', `${req.url}: HTTP ${res.status} ${res.statusText}`);
  const append = res.status === 206;
  if (append && (have === 0 || contentRangeStart(res.headers.get('content-range')) !== have)) {
    // Not the bytes asked for: start over without Range rather than guess what was sent.
    void res.body?.cancel().catch(() => {});
    await unlink(part);
    return attemptDownload(req, opts);
  }
  // 200 answers a Range request with the whole file: the server ignores Range, start over.
  const resumedFrom = append ? have : 0;
  const length = res.headers.get('content-length');
  if (length !== null && Number(length) !== req.size - resumedFrom) {
    void res.body?.cancel().catch(() => {});
    throw new HubError('bad-response', `${req.label}: the server sends ${length} bytes from offset ${resumedFrom}, but the hub lists the file at ${req.size} bytes`);
  }
  if (append) opts.onResume?.(have);
  const hash = checksumHash(req.checksum, req.size);
  if (append) await hashFile(part, hash);
  const done = await writeBody(req, res, part, append ? have : 0, hash, opts);
  if (done < req.size) {
    throw new HubError('network', `${req.label}: the connection closed after ${done} of ${req.size} bytes; ${done} bytes kept in ${part}, run again to resume`);
  }
  return resumedFrom > 0 ? finishResumed(req, opts, part, hash) : finish(req, part, hash);
}

/**
 * A resumed file that fails its checksum may owe it to the old partial (left by another version of
 * the file, or damaged): the partial is gone by then, so one fresh download settles which.
 */
async function finishResumed(req: DownloadRequest, opts: DownloadOptions, part: string, hash: Hash): Promise<void> {
  try {
    return await finish(req, part, hash);
  } catch (e) {
    if (e instanceof HubError && e.kind === 'checksum') return attemptDownload(req, opts);
    throw e;
  }
}

// Chunks arrive at ~64 KiB; writing them in batches keeps the disk writes from being the bottleneck.
const WRITE_BATCH = 4 << 20;

async function writeBody(req: DownloadRequest, res: Response, part: string, start: number, hash: Hash, opts: DownloadOptions): Promise<number> {
  const fh = await open(part, start > 0 ? 'a' : 'w');
  let done = start;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const flush = async (): Promise<void> => {
    const batch = pending;
    pending = [];
    pendingBytes = 0;
    if (batch.length > 0) await fh.writev(batch);
  };
  try {
    opts.onProgress?.(done, req.size);
    if (res.body) {
      for await (const chunk of res.body) {
        if (done + chunk.length > req.size) {
          throw new HubError('bad-response', `${req.label}: the server sent more than the ${req.size} bytes the hub lists for it`);
        }
        hash.update(chunk);
        pending.push(chunk);
        pendingBytes += chunk.length;
        done += chunk.length;
        if (pendingBytes >= WRITE_BATCH) await flush();
        opts.onProgress?.(done, req.size);
      }
    }
    await flush();
  } catch (e) {
    if (e instanceof HubError) {
      await fh.close();
      await unlink(part).catch(() => {});
      throw e;
    }
    // What arrived is good data: keep it for the resume (the next run rehashes the file anyway).
    await flush().catch(() => {});
    await fh.close();
    const f = fetchFailure(e, req.url, opts.signal);
    throw new HubError(f.kind, `${req.label}: ${f.kind === 'interrupted' ? 'interrupted' : f.message} after ${done} of ${req.size} bytes; they are kept in ${part}, run again to resume`);
  }
  await fh.close();
  return done;
}

async function finish(req: DownloadRequest, part: string, hash: Hash): Promise<void> {
  const got = hash.digest('hex');
  if (got !== req.checksum.hex) {
    await unlink(part);
    throw new HubError(
      'checksum',
      `${req.label}: checksum mismatch: the hub lists ${describeChecksum(req.checksum)}, the ${req.size} downloaded bytes hash to ${got}; the download was deleted, run again to fetch it anew`,
    );
  }
  await rename(part, req.dest);
}

function contentRangeStart(header: string | null): number | undefined {
  const m = header && /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header.trim());
  return m ? Number(m[1]) : undefined;
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
}

async function hashFile(path: string, hash: Hash): Promise<Hash> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new HubError('interrupted', 'interrupted'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(new HubError('interrupted', 'interrupted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
