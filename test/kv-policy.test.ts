import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePolicy, readPolicyFile } from '../src/kv/policy.js';
import { lowkv } from './helpers/cli.js';
import { STORIES_GGUF, TINYSTORIES } from './helpers/models.js';
import { hasShared } from './helpers/shared-data.js';

const defaults = { k: 'f32', v: 'f32' };

describe('KV policy files', () => {
  it('reads a layer map, and the nested form with its own defaults', () => {
    expect(parsePolicy({ '0': { k: 'f16' }, '2': { k: 'bf16', v: 'f16' } }, 'p', defaults)).toEqual({
      k: 'f32',
      v: 'f32',
      layers: { 0: { k: 'f16' }, 2: { k: 'bf16', v: 'f16' } },
    });
    expect(parsePolicy({ k: 'f16', v: 'bf16', layers: { '1': { v: 'f32' } } }, 'p', defaults)).toEqual({ k: 'f16', v: 'bf16', layers: { 1: { v: 'f32' } } });
  });

  it.each([
    [[], /expected a JSON object/],
    [{ x: { k: 'f16' } }, /layer "x" is not a layer index/],
    [{ '0': { k: 'f16', q: 'f16' } }, /layer 0: unknown key "q"/],
    [{ '0': { k: 4 } }, /layer 0 k must be a spec string/],
    [{ '0': { k: 'q3_foo' } }, /layer 0 k: unknown KV cache type "q3_foo"; valid types/],
    [{ k: 'f16', extra: 1 }, /unknown key "extra"/],
  ])('refuses %j', (json, message) => {
    expect(() => parsePolicy(json, 'p.json', defaults)).toThrow(message);
  });

  it('names the file when it cannot be read', () => {
    expect(() => readPolicyFile('/nonexistent/p.json', defaults)).toThrow(/cannot read KV policy \/nonexistent\/p\.json/);
    const bad = join(mkdtempSync(join(tmpdir(), 'lowkv-')), 'bad.json');
    writeFileSync(bad, '{ not json');
    expect(() => readPolicyFile(bad, defaults)).toThrow(/cannot read KV policy .*bad\.json/);
  });
});

describe.skipIf(!hasShared)('--kv-policy on the command line', () => {
  it('a policy that sets every layer to f16 scores exactly like --cache-type-k/v f16', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lowkv-'));
    const all16 = join(dir, 'all16.json');
    writeFileSync(all16, JSON.stringify(Object.fromEntries([0, 1, 2, 3, 4].map((l) => [l, { k: 'f16', v: 'f16' }]))));
    const a = JSON.parse(lowkv(['ppl', '-m', STORIES_GGUF, '-f', TINYSTORIES, '--chunks', '3', '--json', '--kv-policy', all16]).stdout);
    const b = JSON.parse(lowkv(['ppl', '-m', STORIES_GGUF, '-f', TINYSTORIES, '--chunks', '3', '--json', '--cache-type-k', 'f16', '--cache-type-v', 'f16']).stdout);
    const c = JSON.parse(lowkv(['ppl', '-m', STORIES_GGUF, '-f', TINYSTORIES, '--chunks', '3', '--json']).stdout);
    expect(a.ppl).toBe(b.ppl);
    expect(a.ppl).not.toBe(c.ppl);
    expect(a.bitsPerValue).toEqual({ k: 16, v: 16 });

    const mixed = join(dir, 'mixed.json');
    writeFileSync(mixed, JSON.stringify({ '1': { k: 'f16' } }));
    const g = lowkv(['generate', '-m', STORIES_GGUF, '--temp', '0', '-n', '8', '--kv-policy', mixed]);
    expect(g.code).toBe(0);
    // One of five layers' keys at 16 bits, the rest at 32: (4·32 + 16) / 5.
    expect(g.stderr).toMatch(/K f32 \/ V f32 \(L1 f16\/f32\): K 28\.80 bits\/value, V 32\.00/);
    const wrong = join(dir, 'wrong.json');
    writeFileSync(wrong, JSON.stringify({ '7': { k: 'f16' } }));
    const w = lowkv(['generate', '-m', STORIES_GGUF, '-n', '2', '--kv-policy', wrong]);
    expect(w.code).toBe(1);
    expect(w.stderr).toMatch(/KV policy names layer "7", but the model has layers 0\.\.4/);
  });
});
