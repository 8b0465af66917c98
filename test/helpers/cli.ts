import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { repoRoot } from './shared-data.js';

export const CLI = resolve(repoRoot, 'dist/cli/main.js');
if (!existsSync(CLI)) throw new Error(`${CLI} not found: run \`npm run build\` first (npm test does)`);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI the way a user would, with LOWKV_MODEL cleared unless given. */
export function lowkv(args: string[], env: Record<string, string> = {}): CliResult {
  const { LOWKV_MODEL: _, ...base } = process.env;
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { LOWKV_THREADS: '1', ...base, ...env }, timeout: 300_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
