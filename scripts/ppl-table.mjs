#!/usr/bin/env node
// Perplexity of one model + text under many KV cache specs, as a markdown table with the
// `lowkv ppl` command that reproduces each row. Rows run in parallel child processes.
//   node scripts/ppl-table.mjs --model M --file F [--ctx 512] [--chunks N] [--jobs 2] SPEC…
// where SPEC is "K" (same for V) or "K|V".
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const self = fileURLToPath(import.meta.url);

if (process.env.LOWKV_PPL_ROW) {
  const { loadModel } = await import('../dist/index.js');
  const { readFileSync } = await import('node:fs');
  const row = JSON.parse(process.env.LOWKV_PPL_ROW);
  const model = await loadModel(row.model);
  const started = performance.now();
  try {
    const r = await model.perplexity(readFileSync(row.file, 'utf8'), { ctx: row.ctx, chunks: row.chunks, cacheTypeK: row.k, cacheTypeV: row.v });
    process.send({ ...row, ppl: r.ppl, uncertainty: r.uncertainty, bits: r.bitsPerValue, bytes: r.kvBytes, seconds: (performance.now() - started) / 1000 });
  } catch (e) {
    process.send({ ...row, error: e.message });
  }
  process.exit(0);
}

const { values, positionals } = parseArgs({
  options: { model: { type: 'string' }, file: { type: 'string' }, ctx: { type: 'string', default: '512' }, chunks: { type: 'string' }, jobs: { type: 'string', default: '2' } },
  allowPositionals: true,
});
if (!values.model || !values.file || positionals.length === 0) {
  console.error('usage: node scripts/ppl-table.mjs --model M --file F [--ctx 512] [--chunks N] [--jobs 2] SPEC|K|V …');
  process.exit(2);
}
const rows = positionals.map((p) => {
  const [k, v = k] = p.split('|');
  return { model: values.model, file: values.file, ctx: Number(values.ctx), chunks: values.chunks ? Number(values.chunks) : undefined, k, v };
});
const results = new Array(rows.length);
let next = 0;
async function worker() {
  while (next < rows.length) {
    const i = next++;
    results[i] = await new Promise((resolve) => {
      const child = fork(self, [], { env: { ...process.env, LOWKV_PPL_ROW: JSON.stringify(rows[i]) } });
      child.on('message', resolve);
      child.on('exit', (code) => code !== 0 && resolve({ ...rows[i], error: `exit ${code}` }));
    });
    const r = results[i];
    console.error(`${r.k} / ${r.v}: ${r.error ?? `PPL ${r.ppl.toFixed(4)} (${r.seconds.toFixed(0)} s)`}`);
  }
}
await Promise.all(Array.from({ length: Number(values.jobs) }, worker));
const q = (s) => (/[^\w.:,=/-]/.test(s) ? `'${s}'` : s);
console.log('| K cache | V cache | K bits/value | V bits/value | PPL | command |');
console.log('|---|---|---|---|---|---|');
for (const r of results) {
  const cmd = `lowkv ppl -m ${r.model} -f ${r.file} --ctx ${r.ctx}${r.chunks ? ` --chunks ${r.chunks}` : ''} --cache-type-k ${q(r.k)} --cache-type-v ${q(r.v)}`;
  const cells = r.error ? ['—', '—', `error: ${r.error}`] : [r.bits.k.toFixed(3), r.bits.v.toFixed(3), `${r.ppl.toFixed(4)} ± ${r.uncertainty.toFixed(4)}`];
  console.log(`| \`${r.k}\` | \`${r.v}\` | ${cells.join(' | ')} | \`${cmd}\` |`);
}
