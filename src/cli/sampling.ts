import type { Command } from 'commander';
import { SAMPLER_DEFAULTS, type SamplerOptions } from '../engine/sampler.js';
import { floatArg, intArg } from './common.js';

export interface SamplingFlags {
  temp: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  seed?: number;
  stop: string[];
}

/** Sampler flags and --stop, shared by the commands that generate (`generate`, `demo`, `chat`). */
export function addSamplingOptions(cmd: Command, temp: number): Command {
  return cmd
    .option('--temp <t>', 'temperature; 0 = greedy', floatArg('--temp', 0), temp)
    .option('--top-k <k>', 'top-k, 0 = off', intArg('--top-k', 0), SAMPLER_DEFAULTS.topK)
    .option('--top-p <p>', 'top-p, 1 = off', floatArg('--top-p', 0), SAMPLER_DEFAULTS.topP)
    .option('--min-p <p>', 'min-p, 0 = off', floatArg('--min-p', 0), SAMPLER_DEFAULTS.minP)
    .option('--repeat-penalty <r>', 'repetition penalty, 1 = off', floatArg('--repeat-penalty', 0), SAMPLER_DEFAULTS.repeatPenalty)
    .option('-s, --seed <n>', 'random seed (same seed, same text)', intArg('--seed', 0))
    .option('--stop <text>', 'stop before this string (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[]);
}

export function samplerOptions(flags: SamplingFlags): SamplerOptions & { stop: string[] } {
  return {
    temperature: flags.temp,
    topK: flags.topK,
    topP: flags.topP,
    minP: flags.minP,
    repeatPenalty: flags.repeatPenalty,
    seed: flags.seed,
    stop: flags.stop,
  };
}
