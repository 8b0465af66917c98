import { createInterface } from 'node:readline';
import { Command, Option } from 'commander';
import type { ChatSession } from '../engine/chat-session.js';
import { SAMPLER_DEFAULTS } from '../engine/sampler.js';
import { DEFAULT_CTX } from '../engine/model.js';
import { cacheOptions, formatBytes, intArg, openModel, policyFromFlags, policyLabel, threadsOption, type CacheFlags, type ModelFlags, modelHelp } from './common.js';
import { addSamplingOptions, samplerOptions, type SamplingFlags } from './sampling.js';

export interface ChatFlags extends SamplingFlags, CacheFlags, ModelFlags {
  system?: string;
  n?: number;
  ctx?: number;
}

const HELP = [
  '/reset   forget the conversation and empty the KV cache',
  '/stats   KV cache bytes, bits per value, tokens held; speed of the last reply',
  '/help    this list',
  '/exit    leave (so do Ctrl-D and Ctrl-C at an empty prompt)',
  'Ctrl-C during a reply stops it; what was written stays in the conversation.',
].join('\n');

export function chatCommand(): Command {
  const cmd = new Command('chat')
    .description('talk with a model in the terminal, keeping the KV cache across turns (one turn per line when stdin is piped)')
    .addOption(new Option('-m, --model <model>', modelHelp()))
    .addOption(threadsOption())
    .option('--tokenizer <file>', 'llama2.c tokenizer.bin (default: tokenizer.bin or tok*.bin beside the model)')
    .option('--system <text>', 'system message opening the conversation')
    .option('-n, --n <tokens>', 'most tokens per reply (default: until the model ends its turn or the context is full)', intArg('-n', 1));
  addSamplingOptions(cmd, SAMPLER_DEFAULTS.temperature).option('-c, --ctx <tokens>', `context size (default: the model's training context, at most ${DEFAULT_CTX})`, intArg('--ctx', 2));
  for (const o of cacheOptions('f32')) cmd.addOption(o);
  return cmd.action((flags: ChatFlags) => runChat(flags));
}

async function runChat(flags: ChatFlags): Promise<void> {
  const model = await openModel(flags);
  const ctx = flags.ctx ?? model.defaultContext;
  const chat = model.chatSession({ ctx, policy: policyFromFlags(flags), system: flags.system });
  const tty = process.stdin.isTTY === true;
  if (chat.template.isFallback) {
    process.stderr.write(`note: ${model.name} has no chat template; using ChatML (<|im_start|>role\\n…<|im_end|>)\n`);
  }
  if (tty) process.stderr.write(`${model.name}: context ${ctx} tokens, KV ${policyLabel(chat.session.cache.policy)}. /help lists commands.\n`);

  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: tty, prompt: '> ' });
  let reply: AbortController | undefined;
  const interrupt = (): void => {
    if (reply) reply.abort();
    else if (rl.line === '') rl.close();
    else {
      // Like a shell: Ctrl-C on a half-typed line discards it.
      rl.write(null, { ctrl: true, name: 'u' });
    }
  };
  // A terminal in raw mode delivers Ctrl-C to readline; with piped stdin it arrives as a signal.
  rl.on('SIGINT', interrupt);
  process.on('SIGINT', interrupt);
  const prompt = (): void => {
    if (tty) rl.prompt();
  };

  try {
    prompt();
    for await (const raw of rl) {
      const line = raw.trim();
      if (line.startsWith('/')) {
        if (!command(line, chat)) break;
      } else if (line !== '') {
        reply = new AbortController();
        try {
          await turn(chat, line, flags, reply.signal);
        } finally {
          reply = undefined;
        }
      }
      prompt();
    }
  } finally {
    process.off('SIGINT', interrupt);
    rl.close();
  }
}

async function turn(chat: ChatSession, text: string, flags: ChatFlags, signal: AbortSignal): Promise<void> {
  let started = false;
  try {
    const it = chat.send(text, { ...samplerOptions(flags), maxTokens: flags.n, signal });
    let r = await it.next();
    started = true;
    while (!r.done) {
      process.stdout.write(r.value.text);
      r = await it.next();
    }
    process.stdout.write('\n');
    const why = { aborted: 'reply stopped', context: 'the context is full: /reset to start over', length: `reply cut at ${flags.n} tokens` } as const;
    const reason = r.value.finishReason;
    if (reason === 'aborted' || reason === 'context' || reason === 'length') process.stderr.write(`[${why[reason]}]\n`);
  } catch (e) {
    if (started) process.stdout.write('\n');
    process.stderr.write(`error: ${(e as Error).message}\n`);
  }
}

/** Runs a /command; false when the chat should end. */
function command(line: string, chat: ChatSession): boolean {
  const name = line.split(/\s+/, 1)[0];
  switch (name) {
    case '/exit':
    case '/quit':
      return false;
    case '/reset':
      chat.reset();
      process.stdout.write('conversation and KV cache cleared\n');
      return true;
    case '/stats':
      process.stdout.write(stats(chat) + '\n');
      return true;
    case '/help':
      process.stdout.write(HELP + '\n');
      return true;
    default:
      process.stderr.write(`unknown command ${name}; /help lists them\n`);
      return true;
  }
}

function stats(chat: ChatSession): string {
  const cache = chat.session.cache;
  const bytes = cache.bytes();
  const bits = cache.bitsPerValue();
  const held = chat.session.length;
  const lines = [
    `KV cache: ${formatBytes(bytes.total)} held (K ${formatBytes(bytes.k)}, V ${formatBytes(bytes.v)}) for ${held} of ${chat.session.capacity} tokens` +
      (held > 0 ? `, ${(bytes.total / held).toFixed(0)} B/token` : ''),
    `${policyLabel(cache.policy)}` + (held > 0 ? `: K ${bits.k.toFixed(2)} bits/value, V ${bits.v.toFixed(2)} bits/value` : ''),
  ];
  const r = chat.lastResult;
  if (r) {
    const decodeTps = r.generatedTokens > 1 ? ((r.generatedTokens - 1) / r.decodeMs) * 1000 : 0;
    const prefillTps = (r.promptTokens / r.prefillMs) * 1000;
    lines.push(
      `last reply: ${r.generatedTokens} tokens at ${decodeTps.toFixed(1)} tok/s (${r.finishReason}); ` +
        `prompt: ${r.promptTokens} new tokens at ${prefillTps.toFixed(1)} tok/s, ${r.reusedTokens} reused from the cache`,
    );
  }
  return lines.join('\n');
}
