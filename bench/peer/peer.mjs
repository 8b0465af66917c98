#!/usr/bin/env node
// llama.cpp (through node-llama-cpp, CPU only) as the peer of lowkv's decode benchmark: prefill
// and decode tokens/s per KV cache type and context depth. See README.md.

import { parseArgs } from 'node:util';
import { GgmlType, getLlama } from 'node-llama-cpp';

const USAGE = `usage: npm run bench:peer -- --model FILE [options]
  --model FILE            GGUF model (e.g. one written by npm run bench:model)
  --depths LIST           context depths to measure at (default 0,512,1024,2048,4096,16384)
  --cache-types LIST      llama.cpp KV cache types, for K and V alike (default f16,q8_0,q4_0)
  --threads N             CPU threads (default 1)
  --decode-tokens N       single-token steps timed at each depth (default 32)
  --prefill N             tokens in the timed prompt, on an empty context (default 512)
  --batch N               llama.cpp batch size (default 512)
  --seed N                seed of the random token ids (default 1)
  --json                  print one JSON array instead of a markdown table`;

const DEFAULTS = { depths: '0,512,1024,2048,4096,16384', 'cache-types': 'f16,q8_0,q4_0', threads: '1', 'decode-tokens': '32', prefill: '512', batch: '512', seed: '1' };

class UsageError extends Error {}

function parseFlags(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        model: { type: 'string' },
        depths: { type: 'string' },
        'cache-types': { type: 'string' },
        threads: { type: 'string' },
        'decode-tokens': { type: 'string' },
        prefill: { type: 'string' },
        batch: { type: 'string' },
        seed: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (e) {
    throw new UsageError(e.message);
  }
  if (values.help) return null;
  const v = { ...DEFAULTS, ...values };
  if (!v.model) throw new UsageError('--model FILE is required');
  const depths = [...new Set(list(v.depths, '--depths').map((d) => int(d, '--depths', 0)))].sort((a, b) => a - b);
  const cacheTypes = [...new Set(list(v['cache-types'], '--cache-types').map(cacheType))];
  return {
    model: v.model,
    depths,
    cacheTypes,
    threads: int(v.threads, '--threads', 1),
    decodeTokens: int(v['decode-tokens'], '--decode-tokens', 1),
    prefill: int(v.prefill, '--prefill', 1),
    batch: int(v.batch, '--batch', 1),
    seed: int(v.seed, '--seed', 0),
    json: v.json,
  };
}

function list(s, flag) {
  const items = s.split(',').map((x) => x.trim());
  if (items.some((x) => x === '')) throw new UsageError(`${flag} must be a comma-separated list (got "${s}")`);
  return items;
}

function int(s, flag, min) {
  const n = Number(s);
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`${flag} takes integers ≥ ${min} (got "${s}")`);
  return n;
}

/** "q8_0" → "Q8_0", checked against the ggml types node-llama-cpp knows. */
function cacheType(name) {
  const key = name.toUpperCase();
  if (typeof GgmlType[key] !== 'number') throw new UsageError(`--cache-types: unknown ggml type "${name}" (llama.cpp caches: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1)`);
  return key;
}

/**
 * mulberry32: random token ids, so the prompts need no tokenizer and no text. Ids 0–2 (the
 * special tokens of a SentencePiece vocabulary) are left out, as bench:decode does for lowkv.
 */
function tokenSource(seed, vocab) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return (n) => Array.from({ length: n }, () => 3 + Math.floor(next() * (vocab - 3)));
}

function vocabSize(model) {
  const emb = model.fileInfo.fullTensorInfo?.find((t) => t.name === 'token_embd.weight');
  if (!emb || emb.dimensions.length !== 2) throw new Error(`${model.filename ?? 'model'}: no 2-D token_embd.weight tensor to take the vocabulary size from`);
  return Number(emb.dimensions[1]);
}

const log = (msg) => process.stderr.write(`${msg}\n`);

/**
 * One context per cache type, warmed up once. Prefill: a --prefill prompt on the empty context
 * (as bench:decode measures lowkv, so one number per cache type). Decode, at each depth
 * (ascending, so the fill grows incrementally): fill the sequence to the depth untimed, time
 * --decode-tokens generation steps (each computes logits and samples, as a decode loop does),
 * erase them.
 */
async function measureCacheType(model, type, o, tokens) {
  const maxDepth = o.depths[o.depths.length - 1];
  let context;
  try {
    context = await model.createContext({
      contextSize: Math.max(o.prefill, maxDepth + o.decodeTokens),
      batchSize: o.batch,
      threads: { ideal: o.threads, min: o.threads },
      // llama.cpp needs flash attention for a quantized V cache; it is on for every type alike.
      flashAttention: true,
      experimentalKvCacheKeyType: type,
      experimentalKvCacheValueType: type,
      failedCreationRemedy: false,
    });
  } catch (e) {
    throw new Error(`llama.cpp could not create a context with a ${type.toLowerCase()} cache: ${e.message}`);
  }
  const seq = context.getSequence();
  const clear = (from) => seq.eraseContextTokenRanges([{ start: from, end: seq.nextTokenIndex }]);
  const rows = [];
  try {
    // Warm-up, so the timed prompt does not pay for graph allocation and thread start-up.
    await seq.evaluateWithoutGeneratingNewTokens(tokens(8));
    await clear(0);
    let t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(tokens(o.prefill));
    const prefillTokPerS = round(o.prefill / ((performance.now() - t0) / 1000));
    await clear(0);
    log(`${type.toLowerCase()}: prefill ${prefillTokPerS} tok/s`);

    for (const depth of o.depths) {
      const fill = depth - seq.nextTokenIndex;
      if (fill > 0) {
        if (fill > 4096) log(`${type.toLowerCase()}: filling the context to depth ${depth}`);
        await seq.evaluateWithoutGeneratingNewTokens(tokens(fill));
      }

      let steps = 0;
      t0 = performance.now();
      for await (const _ of seq.evaluate(tokens(1), { yieldEogToken: true })) {
        if (++steps === o.decodeTokens) break;
      }
      const decodeS = (performance.now() - t0) / 1000;
      await clear(depth);

      const row = {
        engine: 'llama.cpp',
        cacheType: type.toLowerCase(),
        depth,
        decodeTokPerS: round(o.decodeTokens / decodeS),
        prefillTokPerS,
        threads: o.threads,
      };
      log(`${row.cacheType} depth ${depth}: decode ${row.decodeTokPerS} tok/s`);
      rows.push(row);
    }
  } finally {
    await context.dispose();
  }
  return rows;
}

function round(x) {
  return Math.round(x * 10) / 10;
}

function markdown(rows, o) {
  const lines = [
    `llama.cpp (node-llama-cpp, CPU) on ${o.model}: ${o.threads} thread(s), prefill of ${o.prefill} tokens, ${o.decodeTokens} decode steps per depth`,
    '',
    `| cache | prefill tok/s | ${o.depths.map((d) => `decode @${d}`).join(' | ')} |`,
    `|---|---:|${o.depths.map(() => '---:').join('|')}|`,
    ...o.cacheTypes.map((type) => {
      const mine = rows.filter((r) => r.cacheType === type.toLowerCase());
      return `| ${mine[0].cacheType} | ${mine[0].prefillTokPerS} | ${mine.map((r) => r.decodeTokPerS).join(' | ')} |`;
    }),
  ];
  return lines.join('\n');
}

async function main() {
  const o = parseFlags(process.argv.slice(2));
  if (o === null) return void console.log(USAGE);
  const llama = await getLlama({
    gpu: false,
    // Prebuilt binaries only: never download or compile llama.cpp in a benchmark run.
    build: 'never',
    maxThreads: o.threads,
    logLevel: 'warn',
    // stdout carries only the results (the --json array must parse).
    logger: (level, message) => process.stderr.write(`llama.cpp ${level}: ${message.trimEnd()}\n`),
  });
  try {
    const model = await llama.loadModel({ modelPath: o.model });
    const vocab = vocabSize(model);
    const rows = [];
    // Every cache type sees the same token ids.
    for (const type of o.cacheTypes) rows.push(...(await measureCacheType(model, type, o, tokenSource(o.seed, vocab))));
    console.log(o.json ? JSON.stringify(rows, null, 2) : markdown(rows, o));
  } finally {
    await llama.dispose();
  }
}

try {
  await main();
} catch (e) {
  process.stderr.write(`bench:peer: error: ${e.message}\n`);
  if (e instanceof UsageError) process.stderr.write(`${USAGE}\n`);
  process.exitCode = 1;
}
