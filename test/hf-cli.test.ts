import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lowkv } from './helpers/cli.js';
import { goldenGguf, writeHfFolder } from './helpers/hf-folder.js';
import { hasShared } from './helpers/shared-data.js';

const root = mkdtempSync(join(tmpdir(), 'lowkv-hf-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe.skipIf(!hasShared)('lowkv --model DIR', () => {
  it('generates exactly what the same model does as a GGUF file (greedy, same text)', () => {
    const dir = writeHfFolder('llama2-f32', join(root, 'llama2'));
    const args = ['generate', '-p', 'Once upon a time', '-n', '24', '--temp', '0'];
    const hf = lowkv([...args, '--model', dir]);
    const gguf = lowkv([...args, '--model', goldenGguf('llama2-f32')]);
    expect(hf.code, hf.stderr).toBe(0);
    expect(gguf.code, gguf.stderr).toBe(0);
    expect(hf.stdout.startsWith('Once upon a time')).toBe(true);
    expect(hf.stdout).toBe(gguf.stdout);
  });

  it('says what is wrong with a folder that is not a model', () => {
    const r = lowkv(['info', '--model', root]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('config.json: missing: a Hugging Face model folder needs config.json');
  });
});
