import { Command, Option } from 'commander';
import { generate, type GenerateResult } from '../engine/generate.js';
import type { Session } from '../engine/session.js';
import { SAMPLER_DEFAULTS } from '../engine/sampler.js';
import { cacheOptions, formatBytes, intArg, interruptSignal, openModel, policyFromFlags, policyLabel, threadsOption, modelHelp } from './common.js';
import { addSamplingOptions, samplerOptions, type SamplingFlags } from './sampling.js';

export interface GenerateFlags extends SamplingFlags {
  model?: string;
  tokenizer?: string;
  prompt: string;
  n: number;
  ctx?: number;
  cacheTypeK: string;
  cacheTypeV: string;
  kvPolicy?: string;
  echo: boolean;
}

/** Sampling and cache flags shared by `generate` and `demo`. */
export function addGenerateOptions(cmd: Command, defaults: { n: number; temp: number; cache: string }): Command {
  cmd
    .option('-p, --prompt <text>', 'prompt (default: empty, generation starts from BOS)', '')
    .option('-n, --n <tokens>', 'tokens to generate', intArg('-n', 0), defaults.n);
  addSamplingOptions(cmd, defaults.temp)
    .option('-c, --ctx <tokens>', 'context size (default: the model\'s training context, at most 4096)', intArg('--ctx', 1))
    .option('--no-echo', 'do not print the prompt before the continuation');
  for (const o of cacheOptions(defaults.cache)) cmd.addOption(o);
  return cmd;
}

export async function runGenerate(flags: GenerateFlags, allowDefaultModel: boolean): Promise<{ result: GenerateResult; session: Session }> {
  const model = await openModel(flags, allowDefaultModel);
  const ctx = flags.ctx ?? model.defaultContext;
  if (ctx > model.config.contextLength) {
    process.stderr.write(`warning: context ${ctx} is longer than the ${model.config.contextLength} tokens ${model.name} was trained on\n`);
  }
  const session = model.createSession({ ctx, policy: policyFromFlags(flags) });
  if (flags.echo) process.stdout.write(flags.prompt);
  const it = generate(session, model.tokenizer, flags.prompt, {
    ...samplerOptions(flags),
    maxTokens: flags.n,
    signal: interruptSignal(),
  });
  let r = await it.next();
  while (!r.done) {
    process.stdout.write(r.value.text);
    r = await it.next();
  }
  process.stdout.write('\n');
  if (r.value.finishReason === 'aborted') process.exitCode = 130;
  return { result: r.value, session };
}

export function summaryLine(result: GenerateResult, session: Session): string {
  const decodeTps = result.generatedTokens > 1 ? ((result.generatedTokens - 1) / result.decodeMs) * 1000 : 0;
  const prefillTps = (result.promptTokens / result.prefillMs) * 1000;
  const bytes = session.cache.bytes();
  const bits = session.cache.bitsPerValue();
  const perToken = session.length > 0 ? bytes.total / session.length : 0;
  return (
    `tokens: ${result.promptTokens} prompt + ${result.generatedTokens} generated (${result.finishReason}) | ` +
    `prompt ${prefillTps.toFixed(1)} tok/s, decode ${decodeTps.toFixed(1)} tok/s | ` +
    `KV ${formatBytes(bytes.total)} held for ${session.length} tokens = ${perToken.toFixed(0)} B/token ` +
    `(${policyLabel(session.cache.policy)}: K ${bits.k.toFixed(2)} bits/value, V ${bits.v.toFixed(2)}) | seed ${result.seed}`
  );
}

export function generateCommand(): Command {
  const cmd = new Command('generate')
    .description('generate text from a prompt, streaming it to stdout')
    .addOption(new Option('-m, --model <model>', modelHelp()))
    .addOption(threadsOption())
    .option('--tokenizer <file>', 'llama2.c tokenizer.bin (default: tokenizer.bin or tok*.bin beside the model)');
  addGenerateOptions(cmd, { n: 128, temp: SAMPLER_DEFAULTS.temperature, cache: 'f32' });
  return cmd.action(async (flags: GenerateFlags) => {
    const { result, session } = await runGenerate(flags, false);
    process.stderr.write(summaryLine(result, session) + '\n');
  });
}
