import { Command, Option } from 'commander';
import { formatBytes, policyLabel, threadsOption, modelHelp } from './common.js';
import { addGenerateOptions, runGenerate, summaryLine, type GenerateFlags } from './generate.js';

const DEMO_PROMPT = 'It was a dark and stormy night';

export function demoCommand(): Command {
  const cmd = new Command('demo')
    .description('the main job: a sampled continuation with the bundled model, and what its KV cache held')
    .addOption(new Option('-m, --model <model>', modelHelp('the bundled lowkv-tiny-hd64')))
    .addOption(threadsOption())
    .option('--tokenizer <file>', 'llama2.c tokenizer.bin');
  addGenerateOptions(cmd, { n: 48, temp: 0.8, cache: 'f16' });
  return cmd.action(async (flags: GenerateFlags) => {
    const f = { ...flags, prompt: flags.prompt || DEMO_PROMPT, seed: flags.seed ?? 42 };
    const { result, session } = await runGenerate(f, true);
    const c = session.model.config;
    const bytes = session.cache.bytes();
    const f32PerToken = c.nLayers * 2 * c.nKvHeads * c.headDim * 4;
    process.stderr.write(
      `\nKV cache: ${formatBytes(bytes.total)} for ${session.length} tokens = ${(bytes.total / session.length).toFixed(0)} bytes/token ` +
        `(${policyLabel(session.cache.policy)}; an f32 cache needs ${f32PerToken} bytes/token, ${c.nLayers} layers × K,V × ${c.nKvHeads} heads × ${c.headDim})\n`,
    );
    process.stderr.write(summaryLine(result, session) + '\n');
  });
}
