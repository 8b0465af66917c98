import { Command, Option } from 'commander';
import { openModel, modelHelp } from './common.js';

export function infoCommand(): Command {
  return new Command('info')
    .description('show a model file\'s architecture, tokenizer and KV cache size per token')
    .addOption(new Option('-m, --model <model>', modelHelp('the bundled model')))
    .option('--tokenizer <file>', 'llama2.c tokenizer.bin')
    .action(async (flags: { model?: string; tokenizer?: string }) => {
      const m = await openModel(flags, true);
      const c = m.config;
      const kvValues = c.nLayers * 2 * c.nKvHeads * c.headDim;
      const lines = [
        `model      ${m.file.path} (${m.format}${m.format === 'llama2c' ? `, tokenizer ${m.file.tokenizerPath}` : ''})`,
        `name       ${m.name}`,
        `arch       ${c.arch}: dim ${c.dim}, ${c.nLayers} layers, ${c.nHeads} heads / ${c.nKvHeads} KV heads, head_dim ${c.headDim}, ffn ${c.hiddenDim}`,
        `vocab      ${c.vocabSize} (bos ${m.tokenizer.bos}, eos ${m.tokenizer.eos})`,
        `context    ${c.contextLength} (rope theta ${c.ropeTheta}, rms eps ${c.rmsEps})`,
        `tied       ${m.file.weights.output === m.file.weights.tokenEmbedding ? 'yes' : 'no'}`,
        `KV/token   ${kvValues} values: ${kvValues * 4} B as f32, ${kvValues * 2} B as f16`,
      ];
      process.stdout.write(lines.join('\n') + '\n');
    });
}
