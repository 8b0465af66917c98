#!/usr/bin/env node
// Assembles docs/results.md from `lowkv eval` runs: one section per (model, text) with the
// table, the two trade-off plots (drawn again from results.json, so every plot has the current
// style) and the command that reproduced it. Needs `npm run build`.
//   node scripts/results-doc.mjs [--runs out/results] [--out docs]
// Each run is out/results/<name>/results.json written by the command in RUNS below.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeTradeoffPlots } from '../dist/eval/plot.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: 'out/results' }, out: { type: 'string', default: 'docs' } } });

const S260K = '../shared/data/models/stories260K-gguf-v1/tinyllamas-stories-260k-f32.gguf';
const HD64 = '../shared/data/models/lowkv-tiny-hd64/lowkv-tiny-hd64-f32.gguf';
const TS = '../shared/data/text/tinystories/tinystories_v2_valid_first100.txt';
const WT = '../shared/data/text/wikitext2/wikitext2_test_hfjoin.txt';
const CALIB = '../shared/data/text/train/val.txt';

export const RUNS = [
  { name: 'stories260K-tinystories', model: 'stories260K', text: 'TinyStories slice', args: [S260K, TS, 40] },
  { name: 'stories260K-wikitext2', model: 'stories260K', text: 'WikiText-2 test', args: [S260K, WT, 40] },
  { name: 'hd64-tinystories', model: 'lowkv-tiny-hd64', text: 'TinyStories slice', args: [HD64, TS, 12] },
  { name: 'hd64-wikitext2', model: 'lowkv-tiny-hd64', text: 'WikiText-2 test', args: [HD64, WT, 12] },
];

export function command({ name, args: [model, text, chunks] }) {
  return `npx lowkv eval -m ${model} -f ${text} --methods all --calibrate ${CALIB} --chunks ${chunks} --out out/results/${name} --plot`;
}

const fmt = {
  bits: (x) => x.toFixed(3),
  ppl: (x) => x.toFixed(4),
  pct: (x) => (x >= 0 ? '+' : '') + x.toFixed(3),
  kld: (x) => (x === 0 ? '0' : x.toExponential(3)),
  top1: (x) => x.toFixed(2),
};

function table(rows) {
  const lines = ['| method | bits K | bits V | bits/value | KV bytes/token | PPL | ΔPPL % | mean KLD | same top-1 % |', '|---|---|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    lines.push(`| ${r.label.replaceAll('|', '\\|')} | ${fmt.bits(r.bitsK)} | ${fmt.bits(r.bitsV)} | ${fmt.bits(r.bits)} | ${r.bytesPerToken.toFixed(0)} | ${fmt.ppl(r.ppl)} | ${fmt.pct(r.dPplPct)} | ${fmt.kld(r.kld)} | ${fmt.top1(r.top1)} |`);
  }
  return lines.join('\n');
}

const sections = [];
mkdirSync(join(values.out, 'results'), { recursive: true });
for (const run of RUNS) {
  const dir = join(values.runs, run.name);
  const file = join(dir, 'results.json');
  if (!existsSync(file)) {
    console.error(`skipping ${run.name}: ${file} not found (run: ${command(run)})`);
    continue;
  }
  const json = JSON.parse(readFileSync(file, 'utf8'));
  const plotDir = join(values.out, 'results', run.name);
  const methods = json.rows.slice(1).map((r) => ({ label: r.label, bitsPerValue: r.bits, dPplPct: r.dPplPct, kld: r.kld }));
  await writeTradeoffPlots(methods, plotDir, { title: `${run.model}, ${run.text}, ctx ${json.ctx}, ${json.chunks} chunks` });
  const plots = [];
  for (const kind of ['ppl', 'kld']) {
    for (const ext of ['png', 'svg']) renameSync(join(plotDir, `tradeoff-${kind}.${ext}`), join(values.out, 'results', `${run.name}-tradeoff-${kind}.${ext}`));
    plots.push(`![${run.model}, ${run.text}: bits/value vs ${kind === 'ppl' ? 'ΔPPL %' : 'KLD'}](results/${run.name}-tradeoff-${kind}.png)`);
  }
  rmSync(plotDir, { recursive: true, force: true });
  const seconds = json.rows.reduce((s, r) => s + r.seconds, 0);
  sections.push(
    [
      `## ${run.model} on the ${run.text}`,
      '',
      `ctx ${json.ctx}, first ${json.chunks} chunks (${json.chunks * json.ctx} tokens of ${json.tokens}), ${json.rows.length - 1} methods, ` +
        `calibrated methods calibrated on \`${json.calibrate ?? '-'}\` with seed ${json.seed}; ${(seconds / 60).toFixed(0)} min of compute.`,
      '',
      '```sh',
      command(run),
      '```',
      '',
      table(json.rows),
      '',
      plots.join('\n'),
      '',
    ].join('\n'),
  );
}

const head = readFileSync(new URL('./results/head.md', import.meta.url), 'utf8');
const tail = readFileSync(new URL('./results/tail.md', import.meta.url), 'utf8');
writeFileSync(join(values.out, 'results.md'), [head.trim(), '', ...sections, tail.trim(), ''].join('\n'));
console.error(`wrote ${join(values.out, 'results.md')} (${sections.length} of ${RUNS.length} runs)`);
