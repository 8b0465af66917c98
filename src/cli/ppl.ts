import { Command, Option } from 'commander';
import { cacheOptions, formatBytes, intArg, interruptSignal, openModel, policyFromFlags, policyLabel, readTextFile, threadsOption, modelHelp } from './common.js';
import { progress } from './progress.js';

interface PplFlags {
  model?: string;
  tokenizer?: string;
  file: string;
  ctx: number;
  chunks?: number;
  cacheTypeK: string;
  cacheTypeV: string;
  kvPolicy?: string;
  json: boolean;
}

export function pplCommand(): Command {
  const cmd = new Command('ppl')
    .description("perplexity of a text file, with llama.cpp's llama-perplexity convention")
    .addOption(new Option('-m, --model <model>', modelHelp()))
    .addOption(threadsOption())
    .option('--tokenizer <file>', 'llama2.c tokenizer.bin')
    .requiredOption('-f, --file <text>', 'text file to score')
    .option('-c, --ctx <tokens>', 'tokens per chunk', intArg('--ctx', 4), 512)
    .option('--chunks <n>', 'score at most n chunks', intArg('--chunks', 1))
    .option('--json', 'print the result as JSON on stdout', false);
  for (const o of cacheOptions()) cmd.addOption(o);
  return cmd.action(async (flags: PplFlags) => {
    const model = await openModel(flags);
    const text = readTextFile(flags.file);
    if (flags.ctx > model.config.contextLength) {
      process.stderr.write(`warning: context ${flags.ctx} is longer than the ${model.config.contextLength} tokens ${model.name} states as its training context\n`);
    }
    const policy = policyFromFlags(flags);
    model.createSession({ ctx: 1, policy }); // fail on a bad policy before tokenizing
    const tokens = model.tokenizer.encode(text);
    const total = Math.min(Math.floor(tokens.length / flags.ctx), flags.chunks ?? Infinity);
    process.stderr.write(`${flags.file}: ${tokens.length} tokens, ${total} chunks of ${flags.ctx}, ${policyLabel(policy)}\n`);
    const bar = progress('ppl', total, flags.json && !process.stderr.isTTY);
    const r = await model.perplexity(text, {
      ctx: flags.ctx,
      chunks: flags.chunks,
      policy,
      signal: interruptSignal(),
      onChunk: (done, _total, running) => bar.update(done, `PPL ${running.toFixed(4)}`),
    });
    bar.stop();
    if (r.chunks < total) {
      process.stderr.write(`interrupted: ${r.chunks} of ${total} chunks scored\n`);
      process.exitCode = 130;
    }
    if (flags.json) {
      const out = {
        model: model.file.path,
        file: flags.file,
        policy,
        ...r,
      };
      process.stdout.write(JSON.stringify(out, null, 2) + '\n');
      return;
    }
    process.stderr.write(
      `KV cache per chunk: ${formatBytes(r.kvBytes.total)} (K ${r.bitsPerValue.k.toFixed(2)} bits/value, V ${r.bitsPerValue.v.toFixed(2)}), ` +
        `${r.count} predictions in ${r.seconds.toFixed(1)} s\n`,
    );
    process.stdout.write(`PPL = ${r.ppl.toFixed(4)} ± ${r.uncertainty.toFixed(5)}\n`);
  });
}
