#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { calibrateCommand } from './calibrate.js';
import { chatCommand } from './chat.js';
import { codecsCommand } from './codecs.js';
import { convertCommand } from './convert.js';
import { demoCommand } from './demo.js';
import { evalCommand } from './eval.js';
import { generateCommand } from './generate.js';
import { infoCommand } from './info.js';
import { pplCommand } from './ppl.js';
import { pullCommand } from './pull.js';

const program = new Command('lowkv')
  .description('LLM inference with a compressed KV cache')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .enablePositionalOptions()
  .addCommand(demoCommand())
  .addCommand(generateCommand())
  .addCommand(chatCommand())
  .addCommand(pplCommand())
  .addCommand(evalCommand())
  .addCommand(infoCommand())
  .addCommand(codecsCommand())
  .addCommand(calibrateCommand())
  .addCommand(convertCommand())
  .addCommand(pullCommand());

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  // Bad input is reported as one line naming the problem; a stack only on request.
  const err = e as Error;
  process.stderr.write(`lowkv: error: ${err.message}\n`);
  if (process.env.LOWKV_DEBUG) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
}
