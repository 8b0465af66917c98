import { yieldToEventLoop } from '../engine/event-loop.js';
import type { KvPolicy } from '../kv/cache.js';
import type { LlamaModel } from '../model/llama.js';
import { chunkCount, loadChunk } from './chunks.js';
import { logSoftmaxAt, NllStats } from './perplexity.js';
import { ReferenceReader, ReferenceWriter, tokensHash } from './reference.js';

export interface EvalMethod {
  readonly label: string;
  readonly policy: KvPolicy;
  /** Came from `all`: skipped, not an error, where the model does not allow it (e.g. head_dim). */
  readonly fromAll?: boolean;
}

export interface EvalRow {
  readonly label: string;
  readonly bitsK: number;
  readonly bitsV: number;
  /** Over K and V together, from bytes() (measured, not nominal). */
  readonly bits: number;
  readonly bytesPerToken: number;
  readonly ppl: number;
  readonly uncertainty: number;
  readonly dPpl: number;
  readonly dPplPct: number;
  /** Mean KL(reference ‖ method) of the next-token distributions, nats. */
  readonly kld: number;
  /** Share of positions whose most likely token matches the reference's, %. */
  readonly top1: number;
  readonly seconds: number;
  readonly count: number;
  readonly chunks: number;
}

export interface EvalOptions {
  readonly ctx?: number;
  readonly chunks?: number;
  /** Token that replaces each chunk's first token (BOS), or undefined. */
  readonly bos?: number;
  /** A saved reference to read instead of running the f32 cache. */
  readonly reference?: string;
  /** Where to save this run's reference. */
  readonly saveReference?: string;
  readonly modelName?: string;
  readonly onProgress?: (chunk: number, chunks: number, label: string) => void;
  /** Stops after the current chunk; rows then cover the chunks done. */
  readonly signal?: AbortSignal;
}

/** Running KLD and top-1 agreement of one method against the reference. */
class Divergence {
  nll = new NllStats();
  kld = 0;
  same = 0;
  seconds = 0;
  bits = { k: 0, v: 0 };
  bytes = 0;
  tokens = 0;
}

/**
 * Runs every method over the same chunks as llama-perplexity (see perplexity.ts) and compares
 * each position's next-token distribution with the f32 cache's, llama.cpp's KL-divergence mode:
 * the reference is computed once per chunk (or read from a saved file) and shared by all methods.
 */
export async function evaluate(model: LlamaModel, tokens: ArrayLike<number>, methods: readonly EvalMethod[], opts: EvalOptions = {}): Promise<{ reference: EvalRow; rows: EvalRow[] }> {
  const ctx = opts.ctx ?? 512;
  const vocab = model.config.vocabSize;
  const first = ctx >> 1;
  const scored = ctx - 1 - first;
  const nChunks = chunkCount(tokens.length, ctx, opts.chunks);
  const header = { model: opts.modelName ?? 'model', ctx, vocab, scored, tokensHash: tokensHash(tokens) };
  const reader = opts.reference ? new ReferenceReader(opts.reference) : undefined;
  reader?.check(header, nChunks);
  const writer = opts.saveReference ? new ReferenceWriter(opts.saveReference, header) : undefined;

  const refLp = new Float32Array(scored * vocab);
  const refArgmax = new Int32Array(scored);
  const lq = new Float32Array(vocab);
  const batch = new Int32Array(ctx);
  const ref = new Divergence();
  const caches = methods.map((m) => model.newCache(ctx, m.policy));
  const acc = methods.map(() => new Divergence());
  const refCache = reader ? undefined : model.newCache(ctx);
  let done = 0;
  try {
    for (let c = 0; c < nChunks; c++) {
      await yieldToEventLoop();
      if (opts.signal?.aborted) break;
      const s = c * ctx;
      loadChunk(batch, tokens, c, opts.bos);

      opts.onProgress?.(c, nChunks, 'f32 reference');
      if (reader) reader.readChunk(c, refLp);
      else {
        const t0 = performance.now();
        refCache!.reset();
        const logits = model.forward(batch, refCache!, first);
        for (let j = 0; j < scored; j++) {
          logSoftmax(logits, j * vocab, vocab, refLp, j * vocab);
          ref.nll.add(-logSoftmaxAt(logits, j * vocab, vocab, tokens[s + first + 1 + j]));
        }
        ref.seconds += (performance.now() - t0) / 1000;
        ref.bits = refCache!.bitsPerValue();
        ref.bytes = refCache!.bytes().total;
        ref.tokens = ctx;
      }
      writer?.writeChunk(refLp);
      for (let j = 0; j < scored; j++) {
        refArgmax[j] = argmaxAt(refLp, j * vocab, vocab);
        // A saved reference holds float32 log-probabilities; its PPL agrees with a live one to ~1e-9.
        if (reader) ref.nll.add(-refLp[j * vocab + tokens[s + first + 1 + j]]);
      }

      for (let m = 0; m < methods.length; m++) {
        opts.onProgress?.(c, nChunks, methods[m].label);
        const a = acc[m];
        const t0 = performance.now();
        caches[m].reset();
        const logits = model.forward(batch, caches[m], first);
        for (let j = 0; j < scored; j++) {
          logSoftmax(logits, j * vocab, vocab, lq, 0);
          // NLL in double precision exactly as `lowkv ppl` computes it; KLD on the float32 rows.
          a.nll.add(-logSoftmaxAt(logits, j * vocab, vocab, tokens[s + first + 1 + j]));
          let kld = 0;
          const ro = j * vocab;
          for (let v = 0; v < vocab; v++) {
            const lp = refLp[ro + v];
            kld += Math.exp(lp) * (lp - lq[v]);
          }
          a.kld += kld;
          if (argmaxAt(lq, 0, vocab) === refArgmax[j]) a.same++;
        }
        a.seconds += (performance.now() - t0) / 1000;
        a.bits = caches[m].bitsPerValue();
        a.bytes = caches[m].bytes().total;
        a.tokens = ctx;
      }
      done++;
    }
  } finally {
    reader?.close();
    writer?.close();
  }
  if (done === 0) throw new Error('evaluation stopped before the first chunk finished');
  const base = ref.nll.summary();
  const row = (label: string, d: Divergence, isRef: boolean): EvalRow => {
    const r = d.nll.summary();
    return {
      label,
      bitsK: d.bits.k,
      bitsV: d.bits.v,
      bits: (d.bits.k + d.bits.v) / 2,
      bytesPerToken: d.tokens ? d.bytes / d.tokens : 0,
      ppl: r.ppl,
      uncertainty: r.uncertainty,
      dPpl: r.ppl - base.ppl,
      dPplPct: (100 * (r.ppl - base.ppl)) / base.ppl,
      kld: isRef ? 0 : d.kld / r.count,
      top1: isRef ? 100 : (100 * d.same) / r.count,
      seconds: d.seconds,
      count: r.count,
      chunks: done,
    };
  };
  return { reference: row('f32 (reference)', ref, true), rows: methods.map((m, i) => row(m.label, acc[i], false)) };
}

/** out[oOff + i] = x[xOff + i] − logsumexp(x row), max-subtracted, sum in double precision. */
function logSoftmax(x: Float32Array, xOff: number, n: number, out: Float32Array, oOff: number): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[xOff + i] > max) max = x[xOff + i];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(x[xOff + i] - max);
  const lse = max + Math.log(sum);
  for (let i = 0; i < n; i++) out[oOff + i] = x[xOff + i] - lse;
}

function argmaxAt(x: Float32Array, off: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (x[off + i] > x[off + best]) best = i;
  return best;
}
