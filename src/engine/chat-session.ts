import type { Tokenizer } from '../tokenizer/types.js';
import { ChatTemplate, type ChatMessage } from './chat-template.js';
import { generateFrom, type GenerateChunk, type GenerateOptions, type GenerateResult } from './generate.js';
import type { CacheOptions, Model } from './model.js';
import type { Session } from './session.js';

/** Options of one reply: sampling, limits, stop strings, streaming callback, abort signal. */
export type ChatOptions = Omit<GenerateOptions, 'addBos'>;

export interface ChatSessionOptions extends CacheOptions {
  /** A system message that opens the conversation (and survives reset()). */
  readonly system?: string;
  /** The conversation so far, after the system message. */
  readonly messages?: readonly ChatMessage[];
  /** Jinja source to use instead of the model's chat template. */
  readonly template?: string;
  /** More template variables (e.g. `date_string` for Llama 3.x templates). */
  readonly templateVars?: Readonly<Record<string, unknown>>;
}

/** A reply's summary; its promptTokens are the tokens this turn processed, the rendered conversation minus reusedTokens. */
export interface ChatTurnResult extends GenerateResult {
  /** Tokens of the rendered conversation already in the cache, not processed again. */
  readonly reusedTokens: number;
}

/**
 * A conversation with one KV cache kept across turns. Each turn renders the whole conversation
 * through the chat template, keeps the longest token prefix the cache already holds (dropping
 * the cache from where they differ) and processes only the rest.
 */
export class ChatSession {
  readonly session: Session;
  readonly template: ChatTemplate;
  private readonly tokenizer: Tokenizer;
  private readonly system: ChatMessage[];
  private history: ChatMessage[];
  private readonly templateVars?: Readonly<Record<string, unknown>>;
  private last?: ChatTurnResult;

  constructor(model: Model, opts: ChatSessionOptions = {}) {
    this.tokenizer = model.tokenizer;
    this.template = opts.template === undefined ? model.chatTemplate : ChatTemplate.forModel(opts.template, model.tokenizer);
    this.session = model.createSession(opts);
    this.system = opts.system === undefined ? [] : [{ role: 'system', content: opts.system }];
    this.history = [...this.system, ...(opts.messages ?? [])];
    this.templateVars = opts.templateVars;
  }

  /** The conversation, system message first. */
  get messages(): readonly ChatMessage[] {
    return this.history;
  }

  /** The summary of the latest reply, if any. */
  get lastResult(): ChatTurnResult | undefined {
    return this.last;
  }

  /**
   * Adds a user message and streams the assistant's reply, which joins the conversation when it
   * ends, however it ends (a reply stopped early or aborted stays, as far as it got).
   */
  async *send(content: string, opts: ChatOptions = {}): AsyncGenerator<GenerateChunk, ChatTurnResult, undefined> {
    this.history.push({ role: 'user', content });
    return yield* this.stream(opts, true);
  }

  /** Streams an assistant reply to the conversation as it stands (e.g. one given whole to the constructor). */
  async *reply(opts: ChatOptions = {}): AsyncGenerator<GenerateChunk, ChatTurnResult, undefined> {
    return yield* this.stream(opts, false);
  }

  /** Forgets the conversation (all but the system message) and empties the cache. */
  reset(): void {
    this.history = [...this.system];
    this.session.reset();
    this.last = undefined;
  }

  /** The conversation's prompt as tokens: rendered, then tokenized with special tokens recognised. */
  promptTokens(): number[] {
    const text = this.template.render(this.history, { addGenerationPrompt: true, vars: this.templateVars });
    const ids = this.tokenizer.encode(text, { addBos: false, parseSpecial: true });
    // Exactly one BOS where the vocabulary wants one, whether or not the template wrote it.
    if (this.tokenizer.addBos && ids[0] !== this.tokenizer.bos) ids.unshift(this.tokenizer.bos);
    return ids;
  }

  /** Renders the conversation, trims the cache to the prefix it shares with it; returns what is left to feed. */
  private prepare(): number[] {
    const ids = this.promptTokens();
    const capacity = this.session.capacity;
    if (ids.length >= capacity) {
      throw new RangeError(`the conversation is ${ids.length} tokens, more than the context of ${capacity} leaves room for: reset it or use a larger context`);
    }
    const held = this.session.tokens();
    // At least one token is fed again: the reply starts from the logits after the last one.
    const max = Math.min(held.length, ids.length - 1);
    let keep = 0;
    while (keep < max && held[keep] === ids[keep]) keep++;
    try {
      this.session.rollback(this.session.length - keep);
    } catch {
      // A codec that encodes tokens jointly may refuse to cut inside a block: start over.
      this.session.reset();
      keep = 0;
    }
    return ids.slice(keep);
  }

  /** Generates the reply; `userTurn`: a user message was just added, to withdraw if no reply can start. */
  private async *stream(opts: ChatOptions, userTurn: boolean): AsyncGenerator<GenerateChunk, ChatTurnResult, undefined> {
    let text = '';
    let started = false;
    try {
      const fed = this.prepare();
      const reusedTokens = this.session.length;
      const it = generateFrom(this.session, this.tokenizer, fed, {
        ...opts,
        maxTokens: opts.maxTokens ?? this.session.capacity,
        stop: [...this.template.stopStrings, ...(opts.stop ?? [])],
      });
      for (;;) {
        const r = await it.next();
        started = true;
        if (r.done) {
          this.last = { ...r.value, reusedTokens };
          return this.last;
        }
        text += r.value.text;
        yield r.value;
      }
    } catch (e) {
      // The conversation stays as it was when the message cannot be answered at all.
      if (!started && userTurn) this.history.pop();
      throw e;
    } finally {
      if (started) this.history.push({ role: 'assistant', content: text });
    }
  }
}
