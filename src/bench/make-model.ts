#!/usr/bin/env node
// npm run bench:model -- --preset 42m|1b|hd128|tiny --type f32|f16|q8_0 -o FILE [--seed N]

import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { totalmem } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { formatBytes, intArg } from '../cli/common.js';
import { progress } from '../cli/progress.js';
import { PRESETS, parameterCount, presetConfig, writeRandomModel, type PresetName } from './random-model.js';

interface Flags {
  preset: PresetName;
  type: 'f32' | 'f16' | 'q8_0';
  out: string;
  seed: number;
}

function seedArg(v: string): number {
  const n = intArg('--seed')(v);
  if (n > 0xffffffff) throw new InvalidArgumentError(`--seed must be below 2^32 (got "${v}")`);
  return n;
}

const presetHelp = Object.entries(PRESETS)
  .map(([name, p]) => `${name}: ${p.description}`)
  .join('; ');

const program = new Command('bench:model')
  .description('write a random-weight Llama GGUF with realistic shapes, for benchmarks only')
  .showHelpAfterError('(run with --help for usage)')
  .addOption(new Option('--preset <name>', `model shape (${presetHelp})`).choices(Object.keys(PRESETS)).makeOptionMandatory())
  .addOption(new Option('--type <type>', 'weight type of the matrices (norms stay f32; q8_0 as llama-quantize writes it)').choices(['f32', 'f16', 'q8_0']).makeOptionMandatory())
  .requiredOption('-o, --out <file>', 'GGUF file to write')
  .option('--seed <n>', 'seed of the weights (the same seed writes the same bytes)', seedArg, 1)
  .action((flags: Flags) => {
    const config = presetConfig(flags.preset);
    const params = parameterCount(config);
    // writeGguf takes whole float32 tensors, so the model is generated in memory before writing.
    const needed = 4 * params;
    if (needed > 0.8 * totalmem()) {
      throw new Error(`preset ${flags.preset} needs about ${formatBytes(needed)} of memory to generate; this machine has ${formatBytes(totalmem())}`);
    }
    process.stderr.write(`${flags.preset}: ${(params / 1e6).toFixed(1)} M parameters, ${flags.type} weights, seed ${flags.seed}\n`);
    const bar = progress('generating', config.nLayers + 1);
    mkdirSync(dirname(flags.out), { recursive: true });
    const written = writeRandomModel(flags.out, {
      ...flags,
      onProgress: (done, total) => {
        bar.update(done, done === 1 ? 'embedding' : `layer ${done - 1}/${total - 1}`);
        if (done === total) {
          bar.stop();
          process.stderr.write(`writing ${flags.out}\n`);
        }
      },
    });
    process.stderr.write(`wrote ${flags.out}: ${written.tensors} tensors, ${formatBytes(statSync(flags.out).size)}\n`);
  });

try {
  program.parse(process.argv);
} catch (e) {
  process.stderr.write(`bench:model: error: ${(e as Error).message}\n`);
  process.exit(1);
}
