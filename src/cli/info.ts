import { Command, Option } from 'commander';
import type { LlamaConfig, LlamaWeights } from '../model/types.js';
import { BpeTokenizer } from '../tokenizer/bpe.js';
import { HfTokenizer } from '../tokenizer/hf.js';
import { SpmTokenizer } from '../tokenizer/spm.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { WpmTokenizer } from '../tokenizer/wpm.js';
import { formatBytes, openModel, modelHelp } from './common.js';

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
        `features   ${features(c, m.file.weights).join(', ') || 'none beyond Llama 2'}`,
        `weights    ${weightTypes(m.file.weights)}`,
        `tokenizer  ${tokenizerKind(m.tokenizer)}${m.file.chatTemplate ? ', chat template' : ', no chat template (chat uses ChatML)'}`,
        `tied       ${m.file.weights.output === m.file.weights.tokenEmbedding ? 'yes' : 'no'}`,
        `KV/token   ${kvValues} values: ${kvValues * 4} B as f32, ${kvValues * 2} B as f16`,
      ];
      process.stdout.write(lines.join('\n') + '\n');
    });
}

/** What this model does differently from Llama 2, in the config's own terms. */
function features(c: LlamaConfig, w: LlamaWeights): string[] {
  const f: string[] = [];
  const l = w.layers[0];
  if (l?.bq) f.push('q/k/v biases');
  if (l?.qNorm) f.push('q/k norms');
  if (l?.postAttnNorm) f.push('post-attention/FFN norms');
  if (c.ropePairing === 'neox') f.push('NEOX rope pairing');
  if (c.ropeFreqFactors) f.push('rope frequency factors');
  if (c.embedScale !== undefined) f.push(`embeddings ×${c.embedScale.toPrecision(5)}`);
  if (c.ffnActivation === 'gelu_tanh') f.push('GELU FFN');
  if (c.attnSoftcap !== undefined) f.push(`attention soft-cap ${c.attnSoftcap}`);
  if (c.finalSoftcap !== undefined) f.push(`logit soft-cap ${c.finalSoftcap}`);
  const windows = c.slidingWindow?.filter((w) => w > 0) ?? [];
  if (windows.length) f.push(`sliding window ${Math.max(...windows)} on ${windows.length} of ${c.nLayers} layers`);
  return f;
}

/** Matrix count and bytes per stored weight type, largest first. */
function weightTypes(w: LlamaWeights): string {
  const seen = new Set<object>();
  const by = new Map<string, { n: number; bytes: number }>();
  const add = (m: LlamaWeights['output']): void => {
    if (seen.has(m)) return;
    seen.add(m);
    const e = by.get(m.type) ?? { n: 0, bytes: 0 };
    e.n++;
    e.bytes += m.data.byteLength;
    by.set(m.type, e);
  };
  add(w.tokenEmbedding);
  for (const l of w.layers) [l.wq, l.wk, l.wv, l.wo, l.wGate, l.wUp, l.wDown].forEach(add);
  add(w.output);
  return [...by]
    .sort((a, b) => b[1].bytes - a[1].bytes)
    .map(([t, e]) => `${t} ×${e.n} (${formatBytes(e.bytes)})`)
    .join(', ');
}

function tokenizerKind(t: Tokenizer): string {
  const kind =
    t instanceof SpmTokenizer ? 'SentencePiece' : t instanceof BpeTokenizer ? 'byte-level BPE' : t instanceof WpmTokenizer ? 'WordPiece' : t instanceof HfTokenizer ? 'tokenizer.json' : t.constructor.name;
  return `${kind}, ${t.vocabSize} tokens`;
}
