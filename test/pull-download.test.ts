import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cachedFilePath } from '../src/hub/cache-dir.js';
import { HubError } from '../src/hub/errors.js';
import { pull, type PullEvent } from '../src/hub/pull.js';
import { FakeHub, gitBlobId, pseudoRandomBytes, sha256 } from './helpers/fake-hub.js';

const GGUF = pseudoRandomBytes(300_000, 7);
const CONFIG = Buffer.from('{"architectures": ["LlamaForCausalLM"], "hidden_size": 64}\n');
const REPO = 'acme/tiny-GGUF';
const FILE = 'tiny-Q8_0.gguf';

let hub: FakeHub;
let cache: string;
const local = (file = FILE): string => cachedFilePath(cache, REPO, 'main', file);
const pullFile = (file = FILE, extra: { retries?: number; signal?: AbortSignal; onEvent?: (e: PullEvent) => void } = {}) =>
  pull({ repo: REPO, file }, { hub: { endpoint: hub.endpoint }, cacheDir: cache, retryDelayMs: 1, ...extra });
/** Drops the stalled download once the client has `n` bytes: a network failure at a known point. */
const dropAt =
  (n: number) =>
  (ev: PullEvent): void => {
    if (ev.type === 'progress' && ev.done === n) hub.dropStalled();
  };
const rejection = async (p: Promise<unknown>): Promise<HubError> => {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(HubError);
  return e as HubError;
};

beforeEach(async () => {
  hub = new FakeHub({ [REPO]: { revisions: { main: { [FILE]: GGUF, 'config.json': CONFIG, 'README.md': Buffer.from('# tiny\n') } } } });
  await hub.start();
  cache = mkdtempSync(join(tmpdir(), 'lowkv-pull-'));
});
afterEach(async () => {
  await hub.close();
  rmSync(cache, { recursive: true, force: true });
});

describe('pull: one file', () => {
  it('the fake hub hashes git files as git does', () => {
    // `echo "hello world" | git hash-object --stdin` and the empty blob.
    expect(gitBlobId(Buffer.from('hello world\n'))).toBe('3b18e512dba79e4c8300dd08aeb37f8e728b8dad');
    expect(gitBlobId(Buffer.alloc(0))).toBe('e69de29bb2d1d6434b8b29ae775ad8c2e48c5391');
  });

  it('downloads through the resolve URL and its redirect, verifies sha256 and renames into place', async () => {
    const r = await pullFile();
    expect(r.path).toBe(local());
    expect(r.path).toBe(join(cache, 'models', 'acme', 'tiny-GGUF', 'main', FILE));
    expect(sha256(readFileSync(r.path))).toBe(sha256(GGUF));
    expect(readFileSync(r.path).equals(GGUF)).toBe(true);
    expect(existsSync(`${r.path}.part`)).toBe(false);
    expect(hub.log.map((q) => `${q.status} ${q.url}`)).toEqual([
      `200 /api/models/${REPO}/tree/main?recursive=true`,
      `302 /${REPO}/resolve/main/${FILE}`,
      `200 /cdn/${sha256(GGUF)}`,
    ]);
    expect(hub.log.every((q) => q.authorization === undefined)).toBe(true);
  });

  it('verifies a git-stored file against its blob id', async () => {
    const r = await pullFile('config.json');
    expect(readFileSync(r.path).equals(CONFIG)).toBe(true);
    hub.behaviour.corrupt = new Set(['README.md']);
    const e = await rejection(pullFile('README.md'));
    expect(e.kind).toBe('checksum');
    expect(e.message).toContain(`git blob ${gitBlobId(Buffer.from('# tiny\n'))}`);
  });

  it('a second pull finds the file and downloads nothing; a changed file on the hub is fetched again', async () => {
    await pullFile();
    const events: string[] = [];
    await pullFile(FILE, { onEvent: (e) => events.push(e.type) });
    expect(events).toEqual(['listing', 'cached']);
    expect(hub.requests(`/${REPO}/resolve`)).toHaveLength(1);

    const v2 = pseudoRandomBytes(GGUF.length, 8);
    hub.repos[REPO].revisions.main[FILE] = v2;
    await pullFile();
    expect(readFileSync(local()).equals(v2)).toBe(true);
  });

  it('a checksum mismatch deletes the download and says what was expected', async () => {
    hub.behaviour.corrupt = new Set([FILE]);
    const e = await rejection(pullFile());
    expect(e.kind).toBe('checksum');
    expect(e.message).toContain(`sha256 ${sha256(GGUF)}`);
    expect(e.message).toContain('deleted');
    expect(existsSync(local())).toBe(false);
    expect(existsSync(`${local()}.part`)).toBe(false);
  });
});

describe('pull: a server not to be trusted', () => {
  it('a body longer than the listing says: refused by its Content-Length, or cut at the listed size when chunked', async () => {
    hub.behaviour.padded = new Set([FILE]);
    const e = await rejection(pullFile());
    expect(e.kind).toBe('bad-response');
    expect(e.message).toContain(`the server sends ${GGUF.length + 1000} bytes from offset 0, but the hub lists the file at ${GGUF.length} bytes`);
    expect(existsSync(`${local()}.part`)).toBe(false);

    hub.behaviour.chunked = true;
    const c = await rejection(pullFile());
    expect(c.kind).toBe('bad-response');
    expect(c.message).toContain(`the server sent more than the ${GGUF.length} bytes the hub lists`);
    expect(existsSync(local())).toBe(false);
    expect(existsSync(`${local()}.part`)).toBe(false);

    hub.behaviour.padded = undefined;
    await pullFile();
    expect(readFileSync(local()).equals(GGUF)).toBe(true);
  });

  it('a listed path that leaves the repository, or a malformed entry, is refused before any download', async () => {
    for (const entry of [
      { type: 'file', oid: '0'.repeat(40), size: 1, path: '../../escape.gguf' },
      { type: 'file', oid: 'xyz', size: 1, path: 'a.gguf' },
      { type: 'file', oid: '0'.repeat(40), size: -1, path: 'a.gguf' },
      { type: 'file', oid: '0'.repeat(40), size: 1, path: 'a.gguf', lfs: { oid: 'short', size: 1 } },
      'not an object',
    ]) {
      hub.behaviour.extraEntries = [entry];
      const e = await rejection(pullFile());
      expect(e.kind).toBe('bad-response');
      expect(e.message).toContain('listing entry');
    }
    expect(hub.requests(`/${REPO}/resolve`)).toHaveLength(0);
  });
});

describe('pull: resume', () => {
  it('a connection dropped mid-file keeps .part; the next pull asks for the rest with Range', async () => {
    hub.behaviour.stallAfter = new Map([[FILE, 120_000]]);
    const e = await rejection(pullFile(FILE, { onEvent: dropAt(120_000) }));
    expect(e.kind).toBe('network');
    expect(e.message).toContain('.part');
    expect(existsSync(local())).toBe(false);
    const kept = statSync(`${local()}.part`).size;
    expect(kept).toBe(120_000);
    expect(readFileSync(`${local()}.part`).equals(GGUF.subarray(0, kept))).toBe(true);

    const events: PullEvent[] = [];
    await pullFile(FILE, { onEvent: (ev) => events.push(ev) });
    const cdn = hub.requests('/cdn/');
    expect(cdn.map((q) => [q.range, q.status])).toEqual([
      [undefined, 200],
      [`bytes=${kept}-`, 206],
    ]);
    expect(events.find((ev) => ev.type === 'resume')).toMatchObject({ from: kept });
    expect(readFileSync(local()).equals(GGUF)).toBe(true);
    expect(existsSync(`${local()}.part`)).toBe(false);
  });

  it('retries a dropped connection by itself, resuming', async () => {
    hub.behaviour.stallAfter = new Map([[FILE, 50_000]]);
    await pullFile(FILE, { retries: 2, onEvent: dropAt(50_000) });
    expect(hub.requests('/cdn/').map((q) => q.range)).toEqual([undefined, 'bytes=50000-']);
    expect(readFileSync(local()).equals(GGUF)).toBe(true);
  });

  it('a server that ignores Range sends the whole file again, and the file is rebuilt from zero', async () => {
    hub.behaviour.stallAfter = new Map([[FILE, 100_000]]);
    await rejection(pullFile(FILE, { onEvent: dropAt(100_000) }));
    hub.behaviour.ignoreRange = true;
    await pullFile();
    expect(hub.requests('/cdn/').map((q) => [q.range, q.status])).toEqual([
      [undefined, 200],
      ['bytes=100000-', 200],
    ]);
    expect(readFileSync(local()).equals(GGUF)).toBe(true);
  });

  it('a server that answers Range from another offset than asked: the partial file is dropped, the download starts over', async () => {
    hub.behaviour.stallAfter = new Map([[FILE, 100_000]]);
    await rejection(pullFile(FILE, { onEvent: dropAt(100_000) }));
    hub.behaviour.rangeSkew = 10;
    await pullFile();
    expect(hub.requests('/cdn/').map((q) => [q.range, q.status])).toEqual([
      [undefined, 200],
      ['bytes=100000-', 206],
      [undefined, 200],
    ]);
    expect(readFileSync(local()).equals(GGUF)).toBe(true);
  });

  it('a partial file longer than the file is dropped and the download starts over', async () => {
    mkdirSync(join(cache, 'models', 'acme', 'tiny-GGUF', 'main'), { recursive: true });
    writeFileSync(`${local()}.part`, Buffer.concat([GGUF, Buffer.alloc(10)]));
    await pullFile();
    expect(hub.requests('/cdn/').map((q) => q.range)).toEqual([undefined]);
    expect(readFileSync(local()).equals(GGUF)).toBe(true);
  });

  it('a partial file that is not a prefix of the file fails its checksum once, then is fetched anew', async () => {
    mkdirSync(join(cache, 'models', 'acme', 'tiny-GGUF', 'main'), { recursive: true });
    writeFileSync(`${local()}.part`, pseudoRandomBytes(1000, 99));
    await pullFile();
    expect(hub.requests('/cdn/').map((q) => q.range)).toEqual(['bytes=1000-', undefined]);
    expect(readFileSync(local()).equals(GGUF)).toBe(true);
  });

  it('an abort (Ctrl-C) stops the download and keeps .part for the next run', { timeout: 60_000 }, async () => {
    const ctl = new AbortController();
    hub.behaviour.stallAfter = new Map([[FILE, 64_000]]);
    const onEvent = (ev: PullEvent): void => {
      if (ev.type === 'progress' && ev.done === 64_000) ctl.abort();
    };
    const e = await rejection(pullFile(FILE, { signal: ctl.signal, onEvent }));
    expect(e.kind).toBe('interrupted');
    expect(e.message).toContain('interrupted after 64000 of 300000 bytes');
    expect(readFileSync(`${local()}.part`).equals(GGUF.subarray(0, 64_000))).toBe(true);
    await pullFile();
    expect(hub.requests('/cdn/').at(-1)?.range).toBe('bytes=64000-');
    expect(readFileSync(local()).equals(GGUF)).toBe(true);
  });
});
