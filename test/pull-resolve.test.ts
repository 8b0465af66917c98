import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveModelSpec } from '../src/cli/common.js';
import { cacheDir, defaultCacheDir } from '../src/hub/cache-dir.js';
import { pull } from '../src/hub/pull.js';
import { parseHubRef } from '../src/hub/ref.js';
import { FakeHub, pseudoRandomBytes } from './helpers/fake-hub.js';

// The cache is filled by real pulls from the fake hub, so the resolver is tested against the
// layout pull writes, not a layout the test assumes.
let hub: FakeHub;
let cache: string;
beforeAll(async () => {
  hub = new FakeHub({
    'acme/one-GGUF': { revisions: { main: { 'm-Q4_K_M.gguf': pseudoRandomBytes(100, 1), 'm-Q8_0.gguf': pseudoRandomBytes(120, 2) }, dev: { 'm-Q8_0.gguf': pseudoRandomBytes(130, 3) } } },
    'acme/folder': { revisions: { main: { 'config.json': Buffer.from('{}'), 'model.safetensors': pseudoRandomBytes(200, 4) } } },
    'acme/cut': { revisions: { main: { 'c.gguf': pseudoRandomBytes(100_000, 5) } } },
  });
  await hub.start();
  cache = mkdtempSync(join(tmpdir(), 'lowkv-resolve-'));
  const opts = { hub: { endpoint: hub.endpoint }, cacheDir: cache };
  await pull(parseHubRef('acme/one-GGUF'), opts);
  await pull(parseHubRef('acme/one-GGUF@dev'), opts);
  await pull(parseHubRef('acme/folder'), opts);
  hub.behaviour.stallAfter = new Map([['c.gguf', 10_000]]);
  await pull(parseHubRef('acme/cut'), { ...opts, onEvent: (e) => e.type === 'progress' && e.done === 10_000 && hub.dropStalled() }).catch(() => {});
});
afterAll(async () => {
  await hub.close();
  rmSync(cache, { recursive: true, force: true });
});

const models = (...p: string[]): string => join(cache, 'models', ...p);

describe('--model through the cache', () => {
  it('owner/repo:file is the pulled file; @revision picks the revision directory', () => {
    expect(resolveModelSpec('acme/one-GGUF:m-Q4_K_M.gguf', cache)).toBe(models('acme', 'one-GGUF', 'main', 'm-Q4_K_M.gguf'));
    expect(resolveModelSpec('acme/one-GGUF@dev:m-Q8_0.gguf', cache)).toBe(models('acme', 'one-GGUF', 'dev', 'm-Q8_0.gguf'));
  });

  it('owner/repo is the one GGUF pulled from it, or the HF folder', () => {
    expect(resolveModelSpec('acme/one-GGUF', cache)).toBe(models('acme', 'one-GGUF', 'main', 'm-Q4_K_M.gguf'));
    expect(resolveModelSpec('acme/folder', cache)).toBe(models('acme', 'folder', 'main'));
  });

  it('owner/repo with several GGUFs pulled asks for one by name', async () => {
    await pull(parseHubRef('acme/one-GGUF:m-Q8_0.gguf'), { hub: { endpoint: hub.endpoint }, cacheDir: cache });
    expect(() => resolveModelSpec('acme/one-GGUF', cache)).toThrow(/several GGUF files[\s\S]*--model acme\/one-GGUF:m-Q4_K_M\.gguf[\s\S]*--model acme\/one-GGUF:m-Q8_0\.gguf/);
  });

  it('a model not in the cache is an error naming the pull command; nothing is downloaded', () => {
    const before = hub.log.length;
    expect(() => resolveModelSpec('acme/one-GGUF:m-Q2_K.gguf', cache)).toThrow('download it with `lowkv pull acme/one-GGUF:m-Q2_K.gguf`');
    expect(() => resolveModelSpec('acme/other', cache)).toThrow('`lowkv pull acme/other`');
    expect(hub.log.length).toBe(before);
  });

  it('an interrupted download is reported as such', () => {
    expect(() => resolveModelSpec('acme/cut:c.gguf', cache)).toThrow('its download was interrupted; run `lowkv pull acme/cut:c.gguf` to finish it');
  });

  it('local paths win: an existing file is itself, even when it looks like owner/repo', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lowkv-local-'));
    mkdirSync(join(dir, 'acme'));
    writeFileSync(join(dir, 'acme', 'one-GGUF'), 'x');
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      expect(resolveModelSpec('acme/one-GGUF', cache)).toBe('acme/one-GGUF');
    } finally {
      process.chdir(cwd);
      rmSync(dir, { recursive: true, force: true });
    }
    expect(resolveModelSpec('./missing.gguf', cache)).toBe('./missing.gguf');
    expect(resolveModelSpec('/abs/missing.gguf', cache)).toBe('/abs/missing.gguf');
  });
});

describe('cache directory', () => {
  it('--cache-dir, else $LOWKV_CACHE, else lowkv in the platform cache directory', () => {
    expect(cacheDir('/flag', { LOWKV_CACHE: '/env' })).toBe('/flag');
    expect(cacheDir(undefined, { LOWKV_CACHE: '/env' })).toBe('/env');
    expect(defaultCacheDir({ XDG_CACHE_HOME: '/xdg' }, 'linux', '/home/u')).toBe(join('/xdg', 'lowkv'));
    expect(defaultCacheDir({}, 'linux', '/home/u')).toBe(join('/home/u', '.cache', 'lowkv'));
    expect(defaultCacheDir({}, 'darwin', '/Users/u')).toBe(join('/Users/u', 'Library', 'Caches', 'lowkv'));
    expect(defaultCacheDir({ LOCALAPPDATA: 'C:/Users/u/AppData/Local' }, 'win32', 'C:/Users/u')).toBe(join('C:/Users/u/AppData/Local', 'lowkv'));
  });

  it('a revision with slashes is one directory', async () => {
    hub.repos['acme/one-GGUF'].revisions['refs/pr/1'] = { 'pr.gguf': pseudoRandomBytes(50, 6) };
    const r = await pull(parseHubRef('acme/one-GGUF@refs/pr/1'), { hub: { endpoint: hub.endpoint }, cacheDir: cache });
    expect(r.path).toBe(models('acme', 'one-GGUF', 'refs%2Fpr%2F1', 'pr.gguf'));
    expect(resolveModelSpec('acme/one-GGUF@refs/pr/1', cache)).toBe(r.path);
  });
});
