/**
 * npm run bench:attention -- [--ctx N[,N…]] [--codecs LIST] [--heads H] [--kv-heads K]
 *   [--head-dim D] [--threads N] [--json]
 *
 * Decode attention of ONE layer for one new token, per KV codec and context length: scores of the
 * query against every cached key, softmax, and the weighted sum of the cached values, over all KV
 * heads (each KV head serving its group of query heads in one call). Each (codec, ctx) gets its
 * own K and V codec from the registry, filled with ctx random rows (gaussian, one 10× channel per
 * head, as real keys have); the step is timed repeatedly and the median reported, with the bytes
 * the codecs hold for K and V (what a step reads), the effective GB/s, the speed-up over the f16
 * codec measured in the same run (f16 ms / codec ms), and the share of this machine's DRAM read
 * bandwidth, measured first by a WASM SIMD sum over 512 MiB.
 *
 * --json prints one JSON array on stdout, an object per (codec, ctx):
 * {codec, ctx, msPerToken, bytesRead, gbPerS, ratioVsFp16}. Progress goes to stderr.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { softmax } from '../kernels/wasm/ops.js';
import { wasmHeap } from '../kernels/wasm/runtime.js';
import type { CodecContext, KvCodec } from '../kv/codec.js';
import { attnKernels } from '../kv/codecs/attn-wasm.js';
import { codecFactory, codecNames, createCodec } from '../kv/registry.js';
import { Rng } from '../engine/rng.js';
import { benchArgs, splitCodecs } from './args.js';

export interface AttentionRow {
  readonly codec: string;
  readonly ctx: number;
  readonly msPerToken: number;
  /** K and V bytes held by the codecs: what one decode step reads. */
  readonly bytesRead: number;
  readonly gbPerS: number;
  /** f16 codec's ms per token / this codec's, same ctx and run (> 1: faster than f16). */
  readonly ratioVsFp16: number;
}

interface Measured {
  readonly spec: string;
  readonly ctx: number;
  readonly ms: number;
  readonly scoresMs: number;
  readonly softmaxMs: number;
  readonly accumulateMs: number;
  readonly bytes: number;
}

interface Shape {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
}

const DEFAULT_CTX = [1024, 4096, 16384, 32768, 131072];
const DEFAULT_CODECS = ['f16', 'q8_0', 'q4_0', 'rtn:4', 'rtn:2', 'kivi:4', 'kivi:2'];
const FP16 = 'f16';
const CHUNK = 1024; // rows generated at once and appended repeatedly
const BANDWIDTH_BYTES = 512 * 2 ** 20;
const MIN_REPS = 7;
const MIN_SECONDS = 0.5;
const MAX_REPS = 500;

const log = (line: string): void => void process.stderr.write(`${line}\n`);

function fail(message: string): never {
  process.stderr.write(`bench:attention: ${message}\n`);
  process.exit(2);
}

function positiveInt(flag: string, text: string): number {
  if (!/^[1-9][0-9]*$/.test(text.trim())) fail(`${flag} must be a positive integer (got "${text}")`);
  return Number(text);
}

/** gc() (exposed at run time): codecs free their heap storage when collected. */
const gc: () => void = (() => {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
})();

async function collect(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    // FinalizationRegistry callbacks (the heap's frees) run on a later task.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The machine's read bandwidth as the WASM kernels see it: GB/s of a SIMD sum over 512 MiB. */
function dramReadGBs(): number {
  const heap = wasmHeap();
  const n = BANDWIDTH_BYTES / 4;
  const buf = heap.f32(n);
  // Written first: untouched pages would all read the kernel's one zero page, from cache.
  buf.fill(1);
  const k = attnKernels(heap);
  k.streamSumF32(buf.byteOffset, n);
  const times: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    k.streamSumF32(buf.byteOffset, n);
    times.push(performance.now() - t);
  }
  heap.release(buf.byteOffset);
  return BANDWIDTH_BYTES / (median(times) / 1000) / 1e9;
}

/** n standard normal values (Box–Muller). */
function gaussian(rng: Rng, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rng.next()));
    const a = 2 * Math.PI * rng.next();
    x[i] = r * Math.cos(a);
    if (i + 1 < n) x[i + 1] = r * Math.sin(a);
  }
  return x;
}

/** Gaussian K/V rows with one 10× channel per head. */
function randomRows(rng: Rng, rows: number, shape: Shape): Float32Array {
  const x = gaussian(rng, rows * shape.kvHeads * shape.headDim);
  for (let i = 3 % shape.headDim; i < x.length; i += shape.headDim) x[i] *= 10;
  return x;
}

function makeCodec(spec: string, role: 'k' | 'v', ctx: number, shape: Shape): KvCodec {
  const c: CodecContext = { role, layer: 0, nKvHeads: shape.kvHeads, headDim: shape.headDim, capacity: ctx, rope: { theta: 10000, dim: shape.headDim } };
  return createCodec(spec, c);
}

async function measure(spec: string, ctx: number, shape: Shape, pool: Float32Array[]): Promise<Measured> {
  const { heads, kvHeads, headDim: hd } = shape;
  const group = heads / kvHeads;
  const k = makeCodec(spec, 'k', ctx, shape);
  const v = makeCodec(spec, 'v', ctx, shape);
  for (let t = 0, c = 0; t < ctx; t += CHUNK, c++) {
    const n = Math.min(CHUNK, ctx - t);
    const rows = pool[c % pool.length].subarray(0, n * kvHeads * hd);
    k.append(rows, n);
    v.append(pool[(c + 1) % pool.length].subarray(0, n * kvHeads * hd), n);
  }
  const heap = wasmHeap();
  const q = heap.f32(heads * hd);
  q.set(gaussian(new Rng(ctx), heads * hd));
  const att = heap.f32(group * ctx);
  const out = heap.f32(heads * hd);
  const scale = 1 / Math.sqrt(hd);
  const parts = [0, 0, 0];
  const step = (): void => {
    out.fill(0);
    for (let h = 0; h < kvHeads; h++) {
      const qOff = h * group * hd;
      const t0 = performance.now();
      k.scores(h, q, qOff, group, ctx, att, 0, ctx);
      const t1 = performance.now();
      for (let g = 0; g < group; g++) softmax(att, g * ctx, ctx, scale);
      const t2 = performance.now();
      v.accumulate(h, att, 0, ctx, group, ctx, out, qOff);
      const t3 = performance.now();
      parts[0] += t1 - t0;
      parts[1] += t2 - t1;
      parts[2] += t3 - t2;
    }
  };
  step();
  step();
  const totals: number[] = [];
  const split: number[][] = [[], [], []];
  const start = performance.now();
  while (totals.length < MAX_REPS && (totals.length < MIN_REPS || performance.now() - start < MIN_SECONDS * 1000)) {
    parts.fill(0);
    const t = performance.now();
    step();
    totals.push(performance.now() - t);
    parts.forEach((p, i) => split[i].push(p));
  }
  const result: Measured = {
    spec,
    ctx,
    ms: median(totals),
    scoresMs: median(split[0]),
    softmaxMs: median(split[1]),
    accumulateMs: median(split[2]),
    bytes: k.bytes() + v.bytes(),
  };
  for (const a of [q, att, out]) heap.release(a.byteOffset);
  return result;
}

/** Every registered method that needs no calibration file, no wrapped spec and no alias, by name. */
function otherMethods(shape: Shape, taken: Set<string>): string[] {
  const extra: string[] = [];
  for (const name of codecNames()) {
    const f = codecFactory(name);
    if (f.calibrate || f.summary.startsWith('alias of')) continue;
    try {
      const canonical = makeCodec(name, 'k', 64, shape).spec;
      if (!taken.has(canonical)) {
        extra.push(name);
        taken.add(canonical);
      }
    } catch (e) {
      log(`(skipping ${name}: ${(e as Error).message.split('\n')[0]})`);
    }
  }
  return extra;
}

function table(rows: Measured[], ratio: (m: Measured) => number, dram: number, shape: Shape): string {
  const lines = [
    `Decode attention, one layer, one token: ${shape.heads} query heads, ${shape.kvHeads} KV heads, head_dim ${shape.headDim}, 1 thread.`,
    `DRAM read bandwidth (WASM SIMD sum over 512 MiB): ${dram.toFixed(1)} GB/s.`,
    '',
    '| codec | ctx | ms/token | scores | softmax | accumulate | KV read (MiB) | GB/s | % of DRAM | × f16 speed |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const m of rows) {
    const gbs = m.bytes / (m.ms / 1000) / 1e9;
    lines.push(
      `| ${m.spec} | ${m.ctx} | ${m.ms.toFixed(3)} | ${m.scoresMs.toFixed(3)} | ${m.softmaxMs.toFixed(3)} | ${m.accumulateMs.toFixed(3)} | ${(m.bytes / 2 ** 20).toFixed(2)} | ${gbs.toFixed(1)} | ${((100 * gbs) / dram).toFixed(0)}% | ${ratio(m).toFixed(2)} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const values = benchArgs('bench:attention', 'npm run bench:attention -- [--ctx N,N…] [--codecs A,B…] [--heads 8] [--kv-heads 8] [--head-dim 64] [--threads 1] [--json]', {
    ctx: { type: 'string' },
    codecs: { type: 'string' },
    heads: { type: 'string', default: '8' },
    'kv-heads': { type: 'string', default: '8' },
    'head-dim': { type: 'string', default: '64' },
    threads: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
  });
  const ctxs = values.ctx === undefined ? DEFAULT_CTX : values.ctx.split(',').map((s) => positiveInt('--ctx', s));
  const shape: Shape = {
    heads: positiveInt('--heads', values.heads),
    kvHeads: positiveInt('--kv-heads', values['kv-heads']),
    headDim: positiveInt('--head-dim', values['head-dim']),
  };
  if (shape.heads % shape.kvHeads !== 0) fail(`--heads (${shape.heads}) must be a multiple of --kv-heads (${shape.kvHeads})`);
  const threads = positiveInt('--threads', values.threads);
  if (threads > 1) log(`--threads ${threads}: the attention kernels run on one thread (the codecs are not on the worker pool yet); timing 1 thread.`);

  let specs: string[];
  if (values.codecs !== undefined) {
    specs = splitCodecs(values.codecs);
    if (specs.length === 0) fail('--codecs names no codec');
    for (const s of specs) {
      try {
        makeCodec(s, 'k', 64, shape);
      } catch (e) {
        fail(`--codecs: ${(e as Error).message}`);
      }
    }
  } else {
    specs = [...DEFAULT_CODECS];
    specs.push(...otherMethods(shape, new Set(specs.map((s) => makeCodec(s, 'k', 64, shape).spec))));
  }
  // The f16 codec is the yardstick: measured in the same run even when not asked for.
  if (!specs.includes(FP16)) specs.unshift(FP16);

  log('measuring DRAM read bandwidth …');
  const dram = dramReadGBs();
  log(`DRAM read: ${dram.toFixed(1)} GB/s`);

  const rng = new Rng(42);
  const pool = [0, 1, 2, 3].map(() => randomRows(rng, CHUNK, shape));
  const measured: Measured[] = [];
  for (const ctx of ctxs) {
    for (const spec of specs) {
      log(`${spec} @ ${ctx} …`);
      const m = await measure(spec, ctx, shape, pool);
      log(`  ${m.ms.toFixed(3)} ms/token`);
      measured.push(m);
      await collect();
    }
  }

  const fp16 = new Map(measured.filter((m) => m.spec === FP16).map((m) => [m.ctx, m.ms]));
  const ratio = (m: Measured): number => (fp16.get(m.ctx) ?? NaN) / m.ms;
  if (values.json) {
    const rows: AttentionRow[] = measured.map((m) => ({
      codec: m.spec,
      ctx: m.ctx,
      msPerToken: m.ms,
      bytesRead: m.bytes,
      gbPerS: m.bytes / (m.ms / 1000) / 1e9,
      ratioVsFp16: ratio(m),
    }));
    process.stdout.write(`${JSON.stringify(rows)}\n`);
  } else {
    process.stdout.write(`${table(measured, ratio, dram, shape)}\n`);
  }
}

await main();
