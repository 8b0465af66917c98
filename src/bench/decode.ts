/**
 * npm run bench:decode -- --model M [--codecs LIST] [--depths 0,512,…] [--decode-tokens N]
 *   [--prefill N] [--peer FILE] [--json] [--out DIR]
 *
 * Prefill tokens/s and decode tokens/s at several cache depths, one child process per codec
 * (so each codec's peak RSS is its own). With --peer (the JSON of `npm run bench:peer` on the
 * same model), adds llama.cpp's numbers and the lowkv / llama.cpp ratios.
 */
import { fork } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../engine/model.js';
import { Rng } from '../engine/rng.js';
import { renderVegaLite } from '../eval/render.js';
import { benchArgs, splitCodecs } from './args.js';

const USAGE = 'npm run bench:decode -- --model M [--codecs A,B…] [--depths 0,512,…] [--decode-tokens N] [--prefill N] [--threads N] [--peer FILE] [--json] [--out DIR]';

export interface DecodeRow {
  readonly engine: 'lowkv' | 'llama.cpp';
  readonly codec: string;
  readonly depth: number;
  readonly decodeTokPerS: number;
  /** Prefill of --prefill tokens on an empty cache (the same for every depth of a codec). */
  readonly prefillTokPerS: number;
  /** KV bytes per token held at this depth (lowkv only). */
  readonly kvBytesPerToken?: number;
  /** Peak resident set of the process up to the end of this depth's decode, bytes (lowkv only). */
  readonly peakRss?: number;
  readonly threads: number;
}

interface ChildJob {
  readonly model: string;
  readonly codec: string;
  readonly depths: readonly number[];
  readonly decodeTokens: number;
  readonly prefill: number;
  readonly threads: number;
}

const CHILD_ENV = 'LOWKV_BENCH_DECODE_JOB';

/** Random token ids (not 0–2, the special tokens of a SentencePiece vocabulary). */
function randomTokens(rng: Rng, n: number, vocab: number): number[] {
  return Array.from({ length: n }, () => 3 + Math.floor(rng.next() * (vocab - 3)));
}

async function runChild(job: ChildJob): Promise<DecodeRow[]> {
  const model = await loadModel(job.model, { threads: job.threads });
  const { llama } = model;
  const vocab = model.config.vocabSize;
  const maxDepth = Math.max(...job.depths);
  const rng = new Rng(1);
  const cache = llama.newCache(Math.max(maxDepth + job.decodeTokens + 1, job.prefill), { k: job.codec, v: job.codec });

  const prompt = randomTokens(rng, job.prefill, vocab);
  llama.forward(prompt.slice(0, Math.min(8, prompt.length)), cache); // warm the JIT
  cache.reset();
  let t = performance.now();
  llama.forward(prompt, cache);
  const prefillTokPerS = job.prefill / ((performance.now() - t) / 1000);
  cache.reset();

  const rows: DecodeRow[] = [];
  const fill = randomTokens(rng, maxDepth, vocab);
  for (const depth of [...job.depths].sort((a, b) => a - b)) {
    // Grow the cache to `depth` in prompt-sized batches, then time single-token steps.
    for (let at = cache.length; at < depth; at += llama.maxBatch) llama.forward(fill.slice(at, Math.min(depth, at + llama.maxBatch)), cache);
    const steps = randomTokens(rng, job.decodeTokens + 1, vocab);
    llama.forward([steps[0]], cache);
    t = performance.now();
    for (let i = 1; i <= job.decodeTokens; i++) llama.forward([steps[i]], cache);
    const seconds = (performance.now() - t) / 1000;
    const held = cache.length;
    const bytes = cache.bytes();
    rows.push({
      engine: 'lowkv',
      codec: job.codec,
      depth,
      decodeTokPerS: job.decodeTokens / seconds,
      prefillTokPerS,
      kvBytesPerToken: held > 0 ? (bytes.k + bytes.v) / held : 0,
      peakRss: process.resourceUsage().maxRSS * 1024,
      threads: job.threads,
    });
    cache.truncate(depth);
    process.stderr.write(`  ${job.codec} depth ${depth}: ${(job.decodeTokens / seconds).toFixed(1)} tok/s\n`);
  }
  return rows;
}

function child(job: ChildJob): Promise<DecodeRow[]> {
  return new Promise((resolve, reject) => {
    const p = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, [CHILD_ENV]: JSON.stringify(job) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    let rows: DecodeRow[] | undefined;
    let error: string | undefined;
    p.on('message', (m: { rows?: DecodeRow[]; error?: string }) => ((rows = m.rows), (error = m.error)));
    p.on('exit', (code) => (rows ? resolve(rows) : reject(new Error(`${job.codec}: ${error ?? `child exited with ${code}`}`))));
  });
}

function readPeer(file: string): DecodeRow[] {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    // `npm run` without -s prints its script banner on stdout, ahead of the JSON.
    throw new Error(`--peer ${file}: ${(e as Error).message} (write it with \`npm run -s bench:peer -- --json > FILE\`)`);
  }
  if (!Array.isArray(json)) throw new Error(`--peer ${file}: expected the JSON array that \`npm run -s bench:peer -- --json\` prints`);
  return json.map((r: Record<string, unknown>, i) => {
    const num = (k: string): number => {
      if (typeof r[k] !== 'number') throw new Error(`--peer ${file}: row ${i} has no numeric "${k}"`);
      return r[k] as number;
    };
    return { engine: 'llama.cpp', codec: String(r.cacheType), depth: num('depth'), decodeTokPerS: num('decodeTokPerS'), prefillTokPerS: num('prefillTokPerS'), threads: num('threads') };
  });
}

function markdown(rows: readonly DecodeRow[], peer: readonly DecodeRow[]): string {
  const depths = [...new Set(rows.map((r) => r.depth))].sort((a, b) => a - b);
  const lines: string[] = [];
  const engines = [...new Set([...rows, ...peer].map((r) => `${r.engine} ${r.codec}`))];
  const all = [...rows, ...peer];
  lines.push(`| engine, cache | prefill tok/s | ${depths.map((d) => `decode @${d}`).join(' | ')} | KV bytes/token | peak RSS MiB |`);
  lines.push(`|---|---|${depths.map(() => '---').join('|')}|---|---|`);
  for (const e of engines) {
    const rs = all.filter((r) => `${r.engine} ${r.codec}` === e);
    const at = (d: number): string => rs.find((r) => r.depth === d)?.decodeTokPerS.toFixed(1) ?? '–';
    const last = rs[rs.length - 1];
    lines.push(`| ${e} | ${rs[0].prefillTokPerS.toFixed(1)} | ${depths.map(at).join(' | ')} | ${last.kvBytesPerToken?.toFixed(0) ?? '–'} | ${last.peakRss ? (last.peakRss / 2 ** 20).toFixed(0) : '–'} |`);
  }
  if (peer.length) {
    const ref = (codec: string, d: number): DecodeRow | undefined => peer.find((r) => r.codec === codec && r.depth === d);
    lines.push('', '| lowkv cache ÷ llama.cpp cache | prefill | ' + depths.map((d) => `decode @${d}`).join(' | ') + ' |', `|---|---|${depths.map(() => '---').join('|')}|`);
    for (const codec of [...new Set(rows.map((r) => r.codec))]) {
      for (const pc of [...new Set(peer.map((r) => r.codec))]) {
        const mine = rows.filter((r) => r.codec === codec);
        const ratio = (d: number): string => {
          const a = mine.find((r) => r.depth === d);
          const b = ref(pc, d);
          return a && b ? (a.decodeTokPerS / b.decodeTokPerS).toFixed(2) : '–';
        };
        const p0 = peer.find((r) => r.codec === pc);
        lines.push(`| ${codec} ÷ ${pc} | ${p0 ? (mine[0].prefillTokPerS / p0.prefillTokPerS).toFixed(2) : '–'} | ${depths.map(ratio).join(' | ')} |`);
      }
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const values = benchArgs('bench:decode', USAGE, {
      model: { type: 'string' },
      codecs: { type: 'string', default: 'f16,q8_0,q4_0,rtn:4,kivi:4,kivi:2,decoquant:4,l=64' },
      depths: { type: 'string', default: '0,512,1024,2048,4096,16384' },
      'decode-tokens': { type: 'string', default: '16' },
      prefill: { type: 'string', default: '512' },
      threads: { type: 'string', default: '1' },
      peer: { type: 'string' },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
  });
  const fail = (why: string): never => {
    process.stderr.write(`bench:decode: ${why}\nusage: ${USAGE}\n`);
    process.exit(2);
  };
  if (!values.model) fail('--model is required');
  const ints = (name: string, v: string, min: number): number[] =>
    v.split(',').map((s) => {
      const n = Number(s);
      if (!Number.isSafeInteger(n) || n < min) fail(`${name}: "${s}" is not an integer ≥ ${min}`);
      return n;
    });
  const depths = ints('--depths', values.depths!, 0);
  const [decodeTokens] = ints('--decode-tokens', values['decode-tokens']!, 1);
  const [prefill] = ints('--prefill', values.prefill!, 1);
  const [threads] = ints('--threads', values.threads!, 1);
  const codecs = splitCodecs(values.codecs!);
  const peer = values.peer ? readPeer(values.peer) : [];

  const rows: DecodeRow[] = [];
  for (const codec of codecs) {
    process.stderr.write(`${codec}…\n`);
    rows.push(...(await child({ model: values.model!, codec, depths, decodeTokens, prefill, threads })));
  }
  if (values.json) process.stdout.write(JSON.stringify([...rows, ...peer]) + '\n');
  else process.stdout.write(markdown(rows, peer) + '\n');
  if (values.out) {
    mkdirSync(values.out, { recursive: true });
    writeFileSync(join(values.out, 'decode.json'), JSON.stringify([...rows, ...peer], null, 2) + '\n');
    writeFileSync(join(values.out, 'decode.md'), markdown(rows, peer) + '\n');
    await renderVegaLite(plotSpec([...rows, ...peer], values.model!), join(values.out, 'decode'));
    process.stderr.write(`wrote decode.json, decode.md, decode.svg, decode.png in ${values.out}\n`);
  }
}

function plotSpec(rows: readonly DecodeRow[], model: string): Record<string, unknown> {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `Decode speed vs depth: ${model.split('/').pop()}`, subtitle: `tokens/s, ${rows[0]?.threads ?? 1} thread(s)`, anchor: 'start', fontSize: 18 },
    width: 900,
    height: 500,
    background: 'white',
    padding: 16,
    config: { font: 'DejaVu Sans, Helvetica, Arial, sans-serif' },
    data: { values: rows.map((r) => ({ ...r, series: `${r.engine} ${r.codec}`, x: Math.max(r.depth, 1) })) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: 'cache depth (tokens; 0 drawn at 1)', scale: { type: 'log' } },
      y: { field: 'decodeTokPerS', type: 'quantitative', title: 'decode tokens/s' },
      color: { field: 'series', type: 'nominal', title: null, scale: { scheme: 'category20' }, legend: { labelLimit: 400 } },
      strokeDash: { field: 'engine', type: 'nominal', title: null },
    },
  };
}

if (process.env[CHILD_ENV]) {
  runChild(JSON.parse(process.env[CHILD_ENV]) as ChildJob)
    .then((rows) => process.send!({ rows }))
    .catch((e: Error) => process.send!({ error: e.message }))
    .finally(() => process.disconnect());
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e: Error) => {
    process.stderr.write(`bench:decode: ${e.message}\n`);
    process.exit(1);
  });
}
