import { statSync } from 'node:fs';
import { Command, Option } from 'commander';
import { SpmTokenizer } from '../tokenizer/spm.js';
import { writeModelGguf, WEIGHT_TYPES, type WeightTypeName } from '../model/to-gguf.js';
import { formatBytes, openModel } from './common.js';

export function convertCommand(): Command {
  return new Command('convert')
    .description('write a model (llama2.c or GGUF) as a GGUF file with F32, F16, BF16 or Q8_0 weights')
    .addOption(new Option('-m, --model <file>', 'source checkpoint (default: $LOWKV_MODEL)'))
    .option('--tokenizer <file>', 'llama2.c tokenizer.bin')
    .requiredOption('-o, --out <file>', 'GGUF file to write')
    .addOption(
      new Option('--type <type>', 'weight type of the matrices').choices(Object.keys(WEIGHT_TYPES)).default('f16'),
    )
    .action(async (flags: { model?: string; tokenizer?: string; out: string; type: WeightTypeName }) => {
      const model = await openModel(flags);
      if (!(model.tokenizer instanceof SpmTokenizer)) throw new Error('this tokenizer cannot be embedded in a GGUF file');
      const summary = writeModelGguf(model.file, model.tokenizer.vocab, flags.out, flags.type);
      const note = summary.keptF16.length ? ` (${summary.keptF16.length} matrices kept at F16: rows not a multiple of 32)` : '';
      process.stderr.write(`wrote ${flags.out}: ${summary.tensors} tensors, ${formatBytes(statSync(flags.out).size)}${note}\n`);
    });
}
