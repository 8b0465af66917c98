import { writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { calibrate, calibratedMethods, collectSamples } from '../kv/calibration.js';
import { intArg, interruptSignal, openModel, readTextFile, threadsOption, modelHelp } from './common.js';
import { progress } from './progress.js';

interface CalibrateFlags {
  model?: string;
  tokenizer?: string;
  file: string;
  method: string;
  out: string;
  ctx: number;
  tokens: number;
  seed: number;
}

export function calibrateCommand(): Command {
  return new Command('calibrate')
    .description('learn what a calibrated KV method needs (codebooks, ranges) from a text file')
    .addOption(new Option('-m, --model <model>', modelHelp()))
    .addOption(threadsOption())
    .option('--tokenizer <file>', 'llama2.c tokenizer.bin')
    .requiredOption('-f, --file <text>', 'calibration text (keep it apart from evaluation text)')
    .requiredOption('--method <spec>', 'the method to calibrate, e.g. kvquant:3 or cq:4c8b')
    .requiredOption('-o, --out <file>', 'calibration file to write (JSON)')
    .option('-c, --ctx <tokens>', 'tokens per forward chunk', intArg('--ctx', 2), 512)
    .option('--tokens <n>', 'calibration tokens to collect', intArg('--tokens', 1), 16384)
    .option('-s, --seed <n>', 'k-means seed (same text and seed, same file)', intArg('--seed', 0), 1)
    .action(async (flags: CalibrateFlags) => {
      const model = await openModel(flags);
      const text = readTextFile(flags.file);
      const tokens = model.tokenizer.encode(text).slice(0, flags.tokens);
      const total = Math.ceil(tokens.length / flags.ctx);
      const bar = progress('collect', total);
      const samples = await collectSamples(model.llama, tokens, {
        ctx: flags.ctx,
        maxRows: flags.tokens,
        bos: model.tokenizer.addBos ? model.tokenizer.bos : undefined,
        signal: interruptSignal(),
        onChunk: (done) => bar.update(done, `${Math.min(done * flags.ctx, tokens.length)} tokens`),
      });
      bar.stop();
      const c = model.config;
      const started = performance.now();
      const file = calibrate(flags.method, samples, { name: model.name, nLayers: c.nLayers, nKvHeads: c.nKvHeads, headDim: c.headDim }, { file: flags.file, tokens: samples[0].nRows, seed: flags.seed });
      writeFileSync(flags.out, JSON.stringify(file));
      process.stderr.write(
        `wrote ${flags.out}: ${flags.method} for ${c.nLayers} layers from ${samples[0].nRows} tokens in ${((performance.now() - started) / 1000).toFixed(1)} s; ` +
          `use --cache-type-k "${flags.method},calib=${flags.out}"\n`,
      );
    })
    .addHelpText('after', () => `\nMethods that calibrate: ${calibratedMethods().join(', ') || '(none registered)'}`);
}
