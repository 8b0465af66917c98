/**
 * llama-perplexity's chunking, shared by ppl, eval and the per-layer profile: ⌊n/ctx⌋
 * non-overlapping chunks (at most `limit`), each with its first token replaced by BOS.
 */
export function chunkCount(nTokens: number, ctx: number, limit?: number): number {
  if (!Number.isInteger(ctx) || ctx < 4) throw new RangeError(`context must be an integer ≥ 4 (got ${ctx})`);
  const available = Math.floor(nTokens / ctx);
  if (available === 0) throw new RangeError(`need at least ${ctx} tokens for one chunk of context ${ctx}; the text has ${nTokens}`);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new RangeError(`chunks must be a positive integer (got ${limit})`);
  return Math.min(available, limit ?? available);
}

/** Copies chunk c of tokens into batch (ctx = batch.length), its first token replaced by bos. */
export function loadChunk(batch: Int32Array, tokens: ArrayLike<number>, c: number, bos: number | undefined): void {
  const s = c * batch.length;
  for (let i = 0; i < batch.length; i++) batch[i] = tokens[s + i];
  if (bos !== undefined) batch[0] = bos;
}
