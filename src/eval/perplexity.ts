import { yieldToEventLoop } from '../engine/event-loop.js';
import { chunkCount, loadChunk } from './chunks.js';
import type { KvPolicy } from '../kv/cache.js';
import type { LlamaModel } from '../model/llama.js';

export interface PerplexityOptions {
  /** Tokens per chunk (llama.cpp -c). Default 512. */
  readonly ctx?: number;
  /** Evaluate at most this many chunks (llama.cpp --chunks). Default: all. */
  readonly chunks?: number;
  readonly policy?: KvPolicy;
  /** Token that replaces each chunk's first token, or undefined to keep it (no BOS). */
  readonly bos?: number;
  /** Progress after each chunk. */
  readonly onChunk?: (done: number, total: number, runningPpl: number) => void;
  /** Stops after the current chunk; the result covers the chunks done. */
  readonly signal?: AbortSignal;
}

export interface PerplexityResult {
  readonly ppl: number;
  /** llama.cpp's ± : ppl · sqrt(var(nll) / (count − 1)). */
  readonly uncertainty: number;
  readonly meanNll: number;
  /** Scored predictions. */
  readonly count: number;
  readonly chunks: number;
  readonly ctx: number;
  /** KV cache bytes held at the end of a full chunk, and bits per value for K and V. */
  readonly kvBytes: { readonly k: number; readonly v: number; readonly total: number };
  readonly bitsPerValue: { readonly k: number; readonly v: number };
  readonly seconds: number;
}

/**
 * Perplexity as llama-perplexity computes it (golden/llamacpp-ppl.md): non-overlapping chunks
 * of ctx tokens, each from an empty cache with its first token replaced by BOS, scoring only the
 * second half: logits at positions ctx/2 … ctx−2 predict the next token.
 */
export async function perplexity(model: LlamaModel, tokens: ArrayLike<number>, opts: PerplexityOptions = {}): Promise<PerplexityResult> {
  const ctx = opts.ctx ?? 512;
  const nChunks = chunkCount(tokens.length, ctx, opts.chunks);
  const first = ctx >> 1;
  const vocab = model.config.vocabSize;
  const cache = model.newCache(ctx, opts.policy);
  const batch = new Int32Array(ctx);
  const start = performance.now();

  const stats = new NllStats();
  let done = 0;
  let kvBytes = cache.bytes();
  let bitsPerValue = cache.bitsPerValue();
  for (let c = 0; c < nChunks; c++) {
    // Let signal handlers (Ctrl-C) and progress output run between chunks.
    await yieldToEventLoop();
    if (opts.signal?.aborted) break;
    const s = c * ctx;
    loadChunk(batch, tokens, c, opts.bos);
    cache.reset();
    const logits = model.forward(batch, cache, first);
    kvBytes = cache.bytes();
    bitsPerValue = cache.bitsPerValue();
    for (let j = 0; j < ctx - 1 - first; j++) stats.add(-logSoftmaxAt(logits, j * vocab, vocab, tokens[s + first + 1 + j]));
    done++;
    opts.onChunk?.(done, nChunks, stats.ppl);
  }
  if (stats.count === 0) throw new Error('perplexity: stopped before the first chunk finished');
  return { ...stats.summary(), chunks: done, ctx, kvBytes, bitsPerValue, seconds: (performance.now() - start) / 1000 };
}

/** Running negative log-likelihoods, summarised as llama-perplexity does. */
export class NllStats {
  private sum = 0;
  private sum2 = 0;
  count = 0;

  add(nll: number): void {
    this.sum += nll;
    this.sum2 += nll * nll;
    this.count++;
  }

  get ppl(): number {
    return Math.exp(this.sum / this.count);
  }

  /** ppl, llama.cpp's ± (ppl · sqrt(var(nll) / (count − 1))), mean NLL and count. */
  summary(): { ppl: number; uncertainty: number; meanNll: number; count: number } {
    const mean = this.sum / this.count;
    const ppl = Math.exp(mean);
    const variance = this.sum2 / this.count - mean * mean;
    const uncertainty = variance > 0 && this.count > 1 ? Math.sqrt(variance / (this.count - 1)) * ppl : 0;
    return { ppl, uncertainty, meanNll: mean, count: this.count };
  }
}

/** log softmax(logits row)[token], with the max subtracted and the sum in double precision. */
export function logSoftmaxAt(logits: Float32Array, offset: number, n: number, token: number): number {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[offset + i] > max) max = logits[offset + i];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[offset + i] - max);
  return logits[offset + token] - max - Math.log(sum);
}
