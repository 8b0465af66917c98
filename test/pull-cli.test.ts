import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MODEL } from '../src/cli/common.js';
import { CLI } from './helpers/cli.js';
import { FakeHub, sha256 } from './helpers/fake-hub.js';

// The bundled model served by the fake hub: a real GGUF, so `lowkv info --model owner/repo`
// proves the pulled file is the one the loader opens.
const MODEL = readFileSync(DEFAULT_MODEL);
const NAME = 'lowkv-tiny-hd64-f16.gguf';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The built CLI, asynchronously: the fake hub runs in this process and must keep answering. */
function lowkvAsync(args: string[], env: Record<string, string>, onStderr?: (soFar: string, kill: (sig: NodeJS.Signals) => void) => void): Promise<Run> {
  const { LOWKV_MODEL: _m, HF_TOKEN: _t, HF_ENDPOINT: _e, LOWKV_CACHE: _c, ...base } = process.env;
  const child = spawn(process.execPath, [CLI, ...args], { env: { LOWKV_THREADS: '1', ...base, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    onStderr?.(stderr, (sig) => child.kill(sig));
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

let hub: FakeHub;
let cache: string;
let env: Record<string, string>;
beforeAll(async () => {
  hub = new FakeHub({ 'acme/tiny-GGUF': { revisions: { main: { [NAME]: MODEL, 'README.md': Buffer.from('# tiny\n') } } } });
  await hub.start();
  cache = mkdtempSync(join(tmpdir(), 'lowkv-cli-pull-'));
  env = { HF_ENDPOINT: hub.endpoint, LOWKV_CACHE: cache };
});
afterAll(async () => {
  await hub.close();
  rmSync(cache, { recursive: true, force: true });
});

describe('lowkv pull (built CLI, fake hub)', () => {
  it('Ctrl-C keeps a .part; the same command resumes it, verifies it, and --model owner/repo opens it', { timeout: 120_000 }, async () => {
    const dest = join(cache, 'models', 'acme', 'tiny-GGUF', 'main', NAME);
    hub.behaviour.stallAfter = new Map([[NAME, 3_000_000]]);
    // Interrupt as a user would, once the progress lines show a fifth of the file arrived.
    let interrupted = false;
    const cut = await lowkvAsync(['pull', 'acme/tiny-GGUF'], env, (soFar, kill) => {
      if (!interrupted && soFar.includes('(20%)')) {
        interrupted = true;
        kill('SIGINT');
      }
    });
    expect(cut.code).toBe(1);
    const m = /lowkv: error: acme\/tiny-GGUF:lowkv-tiny-hd64-f16\.gguf: interrupted after (\d+) of \d+ bytes; they are kept in .*\.part, run again to resume/.exec(cut.stderr);
    expect(m, cut.stderr).not.toBeNull();
    const kept = Number(m![1]);
    expect(kept).toBeGreaterThanOrEqual(MODEL.length / 5);
    expect(kept).toBeLessThanOrEqual(3_000_000);
    expect(statSync(`${dest}.part`).size).toBe(kept);
    expect(readFileSync(`${dest}.part`).equals(MODEL.subarray(0, kept))).toBe(true);

    const r = await lowkvAsync(['pull', 'acme/tiny-GGUF'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${dest}\n`);
    expect(r.stderr).toContain(`resuming at ${(kept / 2 ** 20).toFixed(2)} MiB`);
    expect(r.stderr).toContain('(100%)');
    expect(r.stderr).toContain('verified (sha256)');
    expect(r.stderr).toContain('run it: lowkv generate --model acme/tiny-GGUF:lowkv-tiny-hd64-f16.gguf');
    expect(hub.requests('/cdn/').at(-1)?.range).toBe(`bytes=${kept}-`);
    expect(sha256(readFileSync(dest))).toBe(sha256(MODEL));

    for (const spec of ['acme/tiny-GGUF', `acme/tiny-GGUF:${NAME}`]) {
      const info = await lowkvAsync(['info', '--model', spec], env);
      expect(info.code, info.stderr).toBe(0);
      expect(info.stdout).toContain(`model      ${dest} (gguf)`);
    }
  });

  it('--model of a model not pulled fails with the pull command to run, downloading nothing', async () => {
    const before = hub.log.length;
    const r = await lowkvAsync(['info', '--model', 'acme/tiny-GGUF:other.gguf'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('download it with `lowkv pull acme/tiny-GGUF:other.gguf`');
    expect(hub.log.length).toBe(before);
  });

  it('a file the repo does not have: one error line, exit 1', async () => {
    const r = await lowkvAsync(['pull', 'acme/tiny-GGUF:nope.gguf', '--cache-dir', join(cache, 'elsewhere')], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`lowkv: error: nope.gguf not found in acme/tiny-GGUF at revision "main"; its GGUF files:\n  ${NAME}`);
  });
});
