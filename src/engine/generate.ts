import { yieldToEventLoop } from './event-loop.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { Sampler, type SamplerOptions } from './sampler.js';
import type { Session } from './session.js';
import { StopMatcher } from './stop.js';

export interface GenerateOptions extends SamplerOptions {
  /** Most tokens to generate (default 128). */
  readonly maxTokens?: number;
  /** Generation ends before the first occurrence of any of these; they are not emitted. */
  readonly stop?: readonly string[];
  /** Called with each piece of text as it becomes final. */
  readonly onText?: (text: string, token: number) => void;
  /** Ends generation early (finish reason "aborted"). */
  readonly signal?: AbortSignal;
  /** Prepend BOS to the prompt (default: the tokenizer's rule). */
  readonly addBos?: boolean;
}

export interface GenerateChunk {
  /** Text made final by this token ("" while a UTF-8 sequence or stop-string prefix is pending). */
  readonly text: string;
  readonly token: number;
}

export type FinishReason = 'eos' | 'stop' | 'length' | 'context' | 'aborted';

export interface GenerateResult {
  readonly text: string;
  readonly promptTokens: number;
  readonly generatedTokens: number;
  readonly finishReason: FinishReason;
  readonly seed: number;
  readonly prefillMs: number;
  readonly decodeMs: number;
}

/**
 * Generates a continuation of `prompt` in `session` (which keeps its cache afterwards, so a
 * caller can continue). Yields text as it becomes final; returns the summary.
 */
export async function* generate(
  session: Session,
  tokenizer: Tokenizer,
  prompt: string,
  opts: GenerateOptions = {},
): AsyncGenerator<GenerateChunk, GenerateResult, undefined> {
  const promptIds = tokenizer.encode(prompt, { addBos: opts.addBos });
  if (promptIds.length === 0) promptIds.push(tokenizer.bos);
  return yield* generateFrom(session, tokenizer, promptIds, opts);
}

/**
 * generate() for a prompt already tokenized: feeds `promptIds` after whatever `session` holds
 * (a chat turn feeds only the tokens its cache lacks) and continues from there.
 */
export async function* generateFrom(
  session: Session,
  tokenizer: Tokenizer,
  promptIds: readonly number[],
  opts: Omit<GenerateOptions, 'addBos'> = {},
): AsyncGenerator<GenerateChunk, GenerateResult, undefined> {
  const maxTokens = opts.maxTokens ?? 128;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new RangeError(`max tokens must be a non-negative integer (got ${maxTokens})`);
  if (promptIds.length === 0) throw new RangeError('the prompt has no tokens: generation needs at least one token to continue from');
  const sampler = new Sampler(tokenizer.vocabSize, opts);
  const stop = new StopMatcher(opts.stop ?? []);
  const decoder = tokenizer.decoder();
  if (session.length + promptIds.length >= session.capacity) {
    throw new RangeError(`prompt of ${promptIds.length} tokens does not fit the context of ${session.capacity} (${session.length} already used)`);
  }
  // The repetition penalty looks back over the whole context, cached tokens included.
  for (const t of session.tokens()) sampler.accept(t);
  for (const t of promptIds) {
    sampler.accept(t);
    // The decoder must know the prompt: the SentencePiece leading-space rule applies to the
    // first token of the whole text, not to the first generated one.
    decoder.push(t);
  }

  let text = '';
  const emit = (piece: string, token: number): GenerateChunk => {
    text += piece;
    if (piece) opts.onText?.(piece, token);
    return { text: piece, token };
  };

  const t0 = performance.now();
  let logits = session.feed(promptIds);
  const t1 = performance.now();
  let generated = 0;
  let finishReason: FinishReason = 'length';
  while (generated < maxTokens) {
    // A macrotask turn per token lets Ctrl-C handlers and other requests run.
    await yieldToEventLoop();
    if (opts.signal?.aborted) {
      finishReason = 'aborted';
      break;
    }
    const token = sampler.sample(logits);
    generated++;
    if (tokenizer.isEog(token)) {
      finishReason = 'eos';
      break;
    }
    sampler.accept(token);
    yield emit(stop.push(decoder.push(token)), token);
    if (stop.stopped) {
      finishReason = 'stop';
      break;
    }
    if (generated === maxTokens) break;
    if (session.length >= session.capacity) {
      finishReason = 'context';
      break;
    }
    logits = session.feedOne(token);
  }
  const tail = stop.stopped ? '' : stop.push(decoder.flush()) + stop.flush();
  if (tail) yield emit(tail, -1);
  return {
    text,
    promptTokens: promptIds.length,
    generatedTokens: generated,
    finishReason,
    seed: sampler.seed,
    prefillMs: t1 - t0,
    decodeMs: performance.now() - t1,
  };
}
