import { Command } from 'commander';
import { describeCodecs } from '../kv/registry.js';

export function codecsCommand(): Command {
  return new Command('codecs').description('list the KV cache types (--cache-type-k / --cache-type-v)').action(() => {
    process.stdout.write(`KV cache types:\n${describeCodecs()}\n`);
  });
}
