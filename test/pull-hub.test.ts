import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hubFromEnv, type Hub } from '../src/hub/api.js';
import { HubError } from '../src/hub/errors.js';
import { pull } from '../src/hub/pull.js';
import { parseHubRef } from '../src/hub/ref.js';
import { FakeHub, pseudoRandomBytes } from './helpers/fake-hub.js';

const bytes = (n: number, seed: number): Buffer => pseudoRandomBytes(n, seed);
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

const QUANTS = {
  'model-Q2_K.gguf': bytes(1000, 1),
  'model-Q4_K_M.gguf': bytes(1400, 2),
  'model-Q8_0.gguf': bytes(2000, 3),
  'mmproj-model-f16.gguf': bytes(500, 4),
  'README.md': Buffer.from('# quants\n'),
};
const SHARDS = { 'model-00001-of-00002.safetensors': bytes(3000, 5), 'model-00002-of-00002.safetensors': bytes(2000, 6) };
const FOLDER = {
  'config.json': json({ architectures: ['Qwen2ForCausalLM'] }),
  'model.safetensors.index.json': json({ metadata: { total_size: 5000 }, weight_map: { 'a.weight': 'model-00001-of-00002.safetensors', 'b.weight': 'model-00002-of-00002.safetensors', 'c.weight': 'model-00001-of-00002.safetensors' } }),
  ...SHARDS,
  // Not named by the index: Mistral-style repos ship both layouts.
  'consolidated.safetensors': bytes(5000, 7),
  'tokenizer.json': json({ model: { type: 'BPE' } }),
  'tokenizer_config.json': json({ chat_template: '{{ messages }}' }),
  'README.md': Buffer.from('# folder\n'),
  'onnx/model.onnx': bytes(100, 8),
};

let hub: FakeHub;
let cache: string;
const TOKEN = 'hf_test_token';

beforeEach(async () => {
  hub = new FakeHub({
    'acme/quants-GGUF': { revisions: { main: QUANTS } },
    'acme/two-GGUF': { revisions: { main: { 'x-Q5_K_M.gguf': bytes(10, 9), 'x-Q8_0.gguf': bytes(20, 10) } } },
    'acme/one-GGUF': { revisions: { main: { 'sub/only-IQ4_XS.gguf': bytes(30, 11) }, v2: { 'sub/only-IQ4_XS.gguf': bytes(31, 12) } } },
    'acme/folder': { revisions: { main: FOLDER } },
    'acme/single': { revisions: { main: { 'config.json': json({}), 'model.safetensors': bytes(700, 13), 'generation_config.json': json({ eos_token_id: 2 }) } } },
    'acme/gated': { revisions: { main: { 'g-Q4_K_M.gguf': bytes(900, 14) } }, gatedToken: TOKEN },
    'acme/readme-only': { revisions: { main: { 'README.md': Buffer.from('nothing\n') } } },
  });
  await hub.start();
  cache = mkdtempSync(join(tmpdir(), 'lowkv-hub-'));
});
afterEach(async () => {
  await hub.close();
  rmSync(cache, { recursive: true, force: true });
});

const run = (spec: string, h: Partial<Hub> = {}) => pull(parseHubRef(spec), { hub: { endpoint: hub.endpoint, ...h }, cacheDir: cache });
async function failure(p: Promise<unknown>): Promise<HubError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(HubError);
  return e as HubError;
}

describe('pull: which files', () => {
  it('a GGUF repo without a file named gives its Q4_K_M', async () => {
    const r = await run('acme/quants-GGUF');
    expect(r.kind).toBe('file');
    expect(r.path.endsWith(join('main', 'model-Q4_K_M.gguf'))).toBe(true);
    expect(readFileSync(r.path).equals(QUANTS['model-Q4_K_M.gguf'])).toBe(true);
    expect(hub.requests('/acme/quants-GGUF/resolve/')).toHaveLength(1);
  });

  it('a repo with one GGUF gives that one, from a subfolder and another revision too', async () => {
    const r = await run('acme/one-GGUF@v2');
    expect(r.path).toBe(join(cache, 'models', 'acme', 'one-GGUF', 'v2', 'sub', 'only-IQ4_XS.gguf'));
    expect(readFileSync(r.path).equals(bytes(31, 12))).toBe(true);
  });

  it('several GGUFs and no Q4_K_M: the error lists them and asks for a name', async () => {
    const e = await failure(run('acme/two-GGUF'));
    expect(e.kind).toBe('choice');
    expect(e.message).toContain('lowkv pull acme/two-GGUF:FILE');
    expect(e.message).toContain('x-Q5_K_M.gguf');
    expect(e.message).toContain('x-Q8_0.gguf');
    expect(hub.requests('/acme/two-GGUF/resolve/')).toHaveLength(0);
  });

  it('a safetensors repo gives the folder: config, index, the shards it names, tokenizer files', async () => {
    const r = await run('acme/folder');
    expect(r.kind).toBe('folder');
    expect(r.path).toBe(join(cache, 'models', 'acme', 'folder', 'main'));
    const got = readdirSync(r.path).filter((f) => !f.startsWith('.')).sort();
    expect(got).toEqual(['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json']);
    for (const f of got) expect(readFileSync(join(r.path, f)).equals(FOLDER[f as keyof typeof FOLDER])).toBe(true);
    // config.json last: a pull cut short leaves no config.json for the resolver to take as a model.
    expect(hub.requests('/acme/folder/resolve/').at(-1)?.url).toBe('/acme/folder/resolve/main/config.json');
  });

  it('an unsharded folder gives model.safetensors and generation_config.json', async () => {
    const r = await run('acme/single');
    expect(readdirSync(r.path).filter((f) => !f.startsWith('.')).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors']);
  });

  it('a repo with neither GGUF nor config.json is refused by name', async () => {
    const e = await failure(run('acme/readme-only'));
    expect(e.message).toMatch(/acme\/readme-only .*no GGUF files and no config\.json/);
  });

  it('follows the listing across pages (Link: rel="next")', async () => {
    hub.behaviour.pageSize = 2;
    const r = await run('acme/folder');
    expect(hub.requests('/api/models/acme/folder/tree/main').length).toBeGreaterThan(4);
    expect(existsSync(join(r.path, 'tokenizer_config.json'))).toBe(true);
  });
});

describe('pull: errors', () => {
  it('a repo that does not exist: 401 RepoNotFound to an anonymous caller, mentioning HF_TOKEN', async () => {
    const e = await failure(run('acme/nope:x.gguf'));
    expect(e.kind).toBe('auth');
    expect(e.message).toContain('repository acme/nope not found');
    expect(e.message).toContain('HF_TOKEN');
    const withToken = await failure(run('acme/nope:x.gguf', { token: TOKEN }));
    expect(withToken.kind).toBe('not-found');
    expect(withToken.message).toContain('HTTP 404');
  });

  it('a revision that does not exist', async () => {
    const e = await failure(run('acme/quants-GGUF@v9:model-Q8_0.gguf'));
    expect(e.kind).toBe('not-found');
    expect(e.message).toContain('revision "v9" not found in acme/quants-GGUF');
  });

  it('a file the listing does not have: 404, with the repo\'s GGUF files', async () => {
    const e = await failure(run('acme/quants-GGUF:model-Q5_K_M.gguf'));
    expect(e.kind).toBe('not-found');
    expect(e.message).toContain('model-Q5_K_M.gguf not found in acme/quants-GGUF');
    expect(e.message).toContain('model-Q8_0.gguf');
  });

  it('a file the hub refuses to serve (404 EntryNotFound)', async () => {
    hub.behaviour.unservable = new Set(['model-Q8_0.gguf']);
    const e = await failure(run('acme/quants-GGUF:model-Q8_0.gguf'));
    expect(e.kind).toBe('not-found');
    expect(e.message).toContain('model-Q8_0.gguf not found in acme/quants-GGUF at revision "main"');
  });

  it('a gated repo: 401 without a token (set HF_TOKEN), 403 with the wrong one, the file with the right one', async () => {
    const anon = await failure(run('acme/gated'));
    expect(anon.kind).toBe('gated');
    expect(anon.message).toContain(`accept its conditions at ${hub.endpoint}/acme/gated`);
    expect(anon.message).toContain('set HF_TOKEN');
    expect(anon.message).toContain('HTTP 401');

    const wrong = await failure(run('acme/gated', { token: 'hf_other' }));
    expect(wrong.kind).toBe('gated');
    expect(wrong.message).toContain('HF_TOKEN');
    expect(wrong.message).toContain('HTTP 403');

    const r = await run('acme/gated', { token: TOKEN });
    expect(readFileSync(r.path).equals(bytes(900, 14))).toBe(true);
    expect(hub.requests('/acme/gated/resolve/').at(-1)?.authorization).toBe(`Bearer ${TOKEN}`);
    expect(hub.requests('/api/models/acme/gated/').at(-1)?.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it('the token goes to the hub, not to the CDN on another origin that the hub redirects downloads to', async () => {
    const gated = new FakeHub({ 'acme/gated': { revisions: { main: { 'g-Q4_K_M.gguf': bytes(900, 14) } }, gatedToken: TOKEN } }, { separateCdn: true });
    await gated.start();
    try {
      const r = await pull(parseHubRef('acme/gated'), { hub: { endpoint: gated.endpoint, token: TOKEN }, cacheDir: cache });
      expect(readFileSync(r.path).equals(bytes(900, 14))).toBe(true);
      expect(gated.cdn).not.toBe(gated.endpoint);
      expect(gated.requests('/acme/gated/resolve/').map((q) => q.authorization)).toEqual([`Bearer ${TOKEN}`]);
      expect(gated.requests('/cdn/').map((q) => q.authorization)).toEqual([undefined]);
    } finally {
      await gated.close();
    }
  });

  it('a hub that cannot be reached is a network error naming the URL', async () => {
    const endpoint = hub.endpoint;
    await hub.close();
    const e = await failure(pull(parseHubRef('acme/quants-GGUF'), { hub: { endpoint }, cacheDir: cache }));
    expect(e.kind).toBe('network');
    expect(e.message).toContain(`${endpoint}/api/models/acme/quants-GGUF/tree/main`);
    expect(e.message).toContain('ECONNREFUSED');
  });

  it('references that are not owner/repo[:file], or escape the repo, are refused before any request', () => {
    for (const bad of ['just-a-name', 'a/b/c', '../x/y', 'a/b:../../etc/passwd', 'a/b:/abs', 'a/b@..:f.gguf', 'a/b:']) {
      expect(() => parseHubRef(bad), bad).toThrow(HubError);
    }
    expect(parseHubRef('Qwen/Qwen2.5-0.5B-Instruct-GGUF@refs/pr/1:q/x.gguf')).toEqual({ repo: 'Qwen/Qwen2.5-0.5B-Instruct-GGUF', revision: 'refs/pr/1', file: 'q/x.gguf' });
  });
});

describe('hub from the environment', () => {
  it('HF_ENDPOINT (trailing slash dropped) and HF_TOKEN, as huggingface_hub reads them', () => {
    expect(hubFromEnv({})).toEqual({ endpoint: 'https://huggingface.co', token: undefined });
    expect(hubFromEnv({ HF_ENDPOINT: 'https://hf-mirror.com/', HF_TOKEN: 'hf_x' })).toEqual({ endpoint: 'https://hf-mirror.com', token: 'hf_x' });
  });
});
