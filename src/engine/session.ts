import type { KvCache, KvPolicy } from '../kv/cache.js';
import type { LlamaModel } from '../model/llama.js';

/**
 * One sequence being decoded: the model, its KV cache and the tokens the cache holds. Every
 * token fed advances the position by one; rollback() forgets the last ones.
 */
export class Session {
  readonly cache: KvCache;
  private readonly held: Int32Array;
  private readonly one = new Int32Array(1);

  constructor(
    readonly model: LlamaModel,
    readonly capacity: number,
    policy?: KvPolicy,
  ) {
    this.cache = model.newCache(capacity, policy);
    this.held = new Int32Array(capacity);
  }

  get length(): number {
    return this.cache.length;
  }

  /** Tokens in the cache, oldest first (a view: copy it to keep it). */
  tokens(): Int32Array {
    return this.held.subarray(0, this.length);
  }

  /**
   * Feeds tokens (the prompt as one batch, or one generated token) and returns the logits
   * after the last one, [vocab] (valid until the next call).
   */
  feed(tokens: ArrayLike<number>): Float32Array {
    const start = this.length;
    const logits = this.model.forward(tokens, this.cache);
    for (let i = 0; i < tokens.length; i++) this.held[start + i] = tokens[i];
    return logits;
  }

  /** feed() for a single token, without allocating. */
  feedOne(token: number): Float32Array {
    this.one[0] = token;
    return this.feed(this.one);
  }

  rollback(n: number): void {
    this.cache.truncate(this.length - n);
  }

  reset(): void {
    this.cache.reset();
  }
}
