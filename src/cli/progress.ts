import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, extra: string): void;
  stop(): void;
}

/**
 * A progress bar on stderr when it is a terminal; otherwise one line per tenth of the work, so
 * logs (CI, pipes) stay readable.
 */
export function progress(label: string, total: number, quiet = false): Progress {
  if (quiet) return { update() {}, stop() {} };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { stream: process.stderr, format: `${label} [{bar}] {value}/{total} | {extra} | ETA {eta_formatted}`, hideCursor: true, etaBuffer: 20 },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { extra: '' });
    return { update: (done, extra) => bar.update(done, { extra }), stop: () => bar.stop() };
  }
  let lastTenth = 0;
  return {
    update(done, extra) {
      const tenth = Math.floor((10 * done) / total);
      if (tenth > lastTenth || done === total) {
        lastTenth = tenth;
        process.stderr.write(`${label} ${done}/${total} ${extra}\n`);
      }
    },
    stop() {},
  };
}
