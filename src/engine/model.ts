import type { KvPolicy } from '../kv/cache.js';
import { LlamaModel } from '../model/llama.js';
import { loadModelFile, type LoadedModelFile, type ModelFormat } from '../model/load.js';
import type { LlamaConfig } from '../model/types.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { perplexity, type PerplexityOptions, type PerplexityResult } from '../eval/perplexity.js';
import { ChatSession, type ChatOptions, type ChatSessionOptions, type ChatTurnResult } from './chat-session.js';
import { ChatTemplate, type ChatMessage } from './chat-template.js';
import { generate, type GenerateChunk, type GenerateOptions, type GenerateResult } from './generate.js';
import { Session } from './session.js';

export interface LoadModelOptions {
  /** llama2.c checkpoints: tokenizer.bin to use instead of the one found beside the model. */
  readonly tokenizer?: string;
  /** Tokens per micro-batch when prompts are processed (default 512). */
  readonly maxBatch?: number;
  /** Kernel threads (default: $LOWKV_THREADS, else 1). */
  readonly threads?: number;
}

/** The longest default context of a session (CacheOptions.ctx). */
export const DEFAULT_CTX = 4096;

/** How a session's KV cache is stored: one codec spec for K and one for V, or a full policy. */
export interface CacheOptions {
  /**
   * Tokens the session can hold (default: the model's training context, at most DEFAULT_CTX: the
   * cache is allocated whole up front, so a model trained on 128K tokens does not get 128K unasked).
   */
  readonly ctx?: number;
  readonly cacheTypeK?: string;
  readonly cacheTypeV?: string;
  /** Per-layer policy; cacheTypeK/V, when given, override its defaults. */
  readonly policy?: KvPolicy;
}

export function cachePolicy(o: CacheOptions): KvPolicy {
  const base = o.policy ?? { k: 'f32', v: 'f32' };
  return { ...base, k: o.cacheTypeK ?? base.k, v: o.cacheTypeV ?? base.v };
}

/** A loaded model with its tokenizer: the entry point of the library API. */
export class Model {
  readonly llama: LlamaModel;
  private template?: ChatTemplate;

  constructor(
    readonly file: LoadedModelFile,
    opts: LoadModelOptions = {},
  ) {
    this.llama = new LlamaModel(file.config, file.weights, { maxBatch: opts.maxBatch, threads: opts.threads });
  }

  get config(): LlamaConfig {
    return this.file.config;
  }
  get tokenizer(): Tokenizer {
    return this.file.tokenizer;
  }
  get format(): ModelFormat {
    return this.file.format;
  }
  get name(): string {
    return this.file.name;
  }

  /** The model's chat template, or the documented fallback (ChatML) when it has none. */
  get chatTemplate(): ChatTemplate {
    this.template ??= ChatTemplate.forModel(this.file.chatTemplate, this.tokenizer);
    return this.template;
  }

  /** The context a session gets when none is asked for. */
  get defaultContext(): number {
    return Math.min(this.config.contextLength, DEFAULT_CTX);
  }

  /** A fresh sequence with its own KV cache. */
  createSession(opts: CacheOptions = {}): Session {
    const ctx = opts.ctx ?? this.defaultContext;
    if (!Number.isInteger(ctx) || ctx < 1) throw new RangeError(`context must be a positive integer (got ${ctx})`);
    return new Session(this.llama, ctx, cachePolicy(opts));
  }

  /** Streams a continuation of prompt in a fresh session; the iterator's return value is the summary. */
  generate(prompt: string, opts: GenerateOptions & CacheOptions = {}): AsyncGenerator<GenerateChunk, GenerateResult, undefined> {
    return generate(this.createSession(opts), this.tokenizer, prompt, opts);
  }

  /** A conversation that keeps its KV cache across turns. */
  chatSession(opts: ChatSessionOptions = {}): ChatSession {
    return new ChatSession(this, opts);
  }

  /** Streams the assistant's reply to `messages` in a fresh session; the iterator's return value is the summary. */
  chat(
    messages: readonly ChatMessage[],
    opts: ChatOptions & Omit<ChatSessionOptions, 'messages' | 'system'> = {},
  ): AsyncGenerator<GenerateChunk, ChatTurnResult, undefined> {
    return new ChatSession(this, { ...opts, messages }).reply(opts);
  }

  /** llama-perplexity over text (tokenized once with BOS). */
  perplexity(text: string, opts: Omit<PerplexityOptions, 'policy' | 'bos'> & Omit<CacheOptions, 'ctx'> = {}): Promise<PerplexityResult> {
    // llama-perplexity: tokenize once with the vocabulary's BOS rule; when it adds BOS, every
    // chunk starts with BOS.
    const tokens = this.tokenizer.encode(text);
    const bos = this.tokenizer.addBos ? this.tokenizer.bos : undefined;
    return perplexity(this.llama, tokens, { ...opts, policy: cachePolicy(opts), bos });
  }
}

export async function loadModel(path: string, opts: LoadModelOptions = {}): Promise<Model> {
  return new Model(loadModelFile(path, { tokenizerPath: opts.tokenizer }), opts);
}
