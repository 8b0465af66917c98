import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import { hubFromEnv, type RepoFile } from '../hub/api.js';
import { cacheDir } from '../hub/cache-dir.js';
import { HubError } from '../hub/errors.js';
import { pull, type PullEvent } from '../hub/pull.js';
import { checkRevision, formatHubRef, parseHubRef } from '../hub/ref.js';
import { formatBytes, interruptSignal } from './common.js';

interface PullFlags {
  revision?: string;
  cacheDir?: string;
}

export function pullCommand(): Command {
  return new Command('pull')
    .description('download a model from the Hugging Face hub into the local cache (resumable, checksummed)')
    .argument('<model>', 'owner/repo[:file]: a GGUF file, or a repo (its Q4_K_M GGUF, or an HF safetensors folder)')
    .addOption(new Option('--revision <rev>', 'branch, tag or commit (default: main)').argParser(revisionArg))
    .addOption(new Option('--cache-dir <dir>', 'cache directory (default: $LOWKV_CACHE, else lowkv in the user cache directory)'))
    .addHelpText(
      'after',
      '\nFiles land in {cache}/models/{owner}/{repo}/{revision}/{file}; afterwards --model owner/repo:file (or owner/repo)\n' +
        'finds them there. HF_ENDPOINT selects another hub (a mirror), HF_TOKEN authenticates for gated and private repos.\n' +
        'An interrupted pull keeps FILE.part; running it again resumes.',
    )
    .action(async (spec: string, flags: PullFlags) => {
      const parsed = parseHubRef(spec);
      if (parsed.revision !== undefined && flags.revision !== undefined && parsed.revision !== flags.revision) {
        throw new HubError('bad-ref', `two revisions given: "${parsed.revision}" in ${spec} and --revision ${flags.revision}`);
      }
      const ref = { ...parsed, revision: parsed.revision ?? flags.revision };
      const cache = cacheDir(flags.cacheDir);
      const display = new PullDisplay();
      const signal = interruptSignal();
      try {
        const r = await pull(ref, { hub: hubFromEnv(), cacheDir: cache, signal, retries: 3, onEvent: (e) => display.on(e) });
        display.stop();
        process.stdout.write(r.path + '\n');
        const modelRef = formatHubRef(r.kind === 'folder' ? { repo: ref.repo, revision: ref.revision } : { ...ref, file: r.files[0].path });
        const env = cache === cacheDir() ? '' : `LOWKV_CACHE=${cache} `;
        process.stderr.write(`run it: ${env}lowkv generate --model ${modelRef}\n`);
      } catch (e) {
        display.stop();
        throw e;
      }
    });
}

function revisionArg(v: string): string {
  try {
    return checkRevision(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** A bar per file on a terminal (cli-progress); otherwise a line per tenth of a file, readable in logs. */
class PullDisplay {
  private bar: cliProgress.SingleBar | undefined;
  private lastTenth = 0;
  // Speed counts this run's bytes only, not those a resumed partial file already had.
  private first: { at: number; bytes: number } | undefined;

  on(e: PullEvent): void {
    switch (e.type) {
      case 'listing':
        return this.line(`listing ${e.repo} at ${e.revision}`);
      case 'cached':
        return this.line(`${e.file.path}: already pulled (${formatBytes(e.file.size)})`);
      case 'start':
        this.first = undefined;
        this.lastTenth = 0;
        return this.line(`${e.file.path}: ${formatBytes(e.file.size)} → ${e.local}`);
      case 'resume':
        return this.line(`${e.file.path}: resuming at ${formatBytes(e.from)}`);
      case 'progress':
        return this.progress(e.file, e.done);
      case 'done':
        return this.line(`${e.file.path}: verified (${e.file.checksum.kind})`);
    }
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }

  private line(s: string): void {
    this.stop();
    process.stderr.write(s + '\n');
  }

  private progress(f: RepoFile, done: number): void {
    if (!this.first) this.first = { at: Date.now(), bytes: done };
    if (process.stderr.isTTY) {
      const secs = (Date.now() - this.first.at) / 1000;
      const payload = { got: formatBytes(done), size: formatBytes(f.size), speed: secs > 0.5 ? `${formatBytes(Math.round((done - this.first.bytes) / secs))}/s` : '' };
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar(
          { stream: process.stderr, format: `${f.path} [{bar}] {percentage}% | {got} / {size} | {speed} | ETA {eta_formatted}`, hideCursor: true, etaBuffer: 50, fps: 5 },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(f.size, done, payload);
      } else {
        this.bar.update(done, payload);
      }
      return;
    }
    const tenth = f.size > 0 ? Math.floor((10 * done) / f.size) : 10;
    if (tenth > this.lastTenth) {
      this.lastTenth = tenth;
      process.stderr.write(`${f.path}: ${formatBytes(done)} / ${formatBytes(f.size)} (${tenth * 10}%)\n`);
    }
  }
}
