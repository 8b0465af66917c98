import { Template } from '@huggingface/jinja';
import type { Tokenizer } from '../tokenizer/types.js';

/** One turn of a conversation, as chat templates expect it. */
export interface ChatMessage {
  /** "system", "user" or "assistant" (templates may accept others, e.g. "tool"). */
  readonly role: string;
  readonly content: string;
}

/** A chat template that cannot be parsed, or one that refuses a conversation (raise_exception). */
export class ChatTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateError';
  }
}

/**
 * The template used when a model carries none: ChatML, which llama.cpp also falls back to. Its
 * markers are plain text to most vocabularies, so generation also stops at them as strings.
 */
export const FALLBACK_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const FALLBACK_STOPS = ['<|im_end|>', '<|im_start|>'] as const;

export interface RenderOptions {
  /** Append the opening of an assistant turn (default true): the prompt a reply continues. */
  readonly addGenerationPrompt?: boolean;
  /** More template variables (e.g. `date_string` for Llama 3.x templates). */
  readonly vars?: Readonly<Record<string, unknown>>;
}

/** A parsed Jinja chat template (transformers' `apply_chat_template` semantics). */
export class ChatTemplate {
  private readonly template: Template;

  /**
   * @param source Jinja source, as in GGUF `tokenizer.chat_template` or tokenizer_config.json.
   * @param specialTokens The strings templates insert as `bos_token` / `eos_token`.
   * @param isFallback Whether this is FALLBACK_CHAT_TEMPLATE standing in for a missing one.
   */
  constructor(
    readonly source: string,
    readonly specialTokens: { readonly bos_token: string; readonly eos_token: string },
    readonly isFallback = false,
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`the chat template cannot be parsed: ${(e as Error).message}`);
    }
  }

  /** The model's template (or the fallback), with its tokenizer's BOS and EOS strings. */
  static forModel(chatTemplate: string | undefined, tokenizer: Tokenizer): ChatTemplate {
    const specialTokens = { bos_token: tokenizer.piece(tokenizer.bos), eos_token: tokenizer.piece(tokenizer.eos) };
    return chatTemplate === undefined
      ? new ChatTemplate(FALLBACK_CHAT_TEMPLATE, specialTokens, true)
      : new ChatTemplate(chatTemplate, specialTokens);
  }

  /** Strings generation should stop at besides the tokenizer's end-of-generation tokens. */
  get stopStrings(): readonly string[] {
    return this.isFallback ? FALLBACK_STOPS : [];
  }

  render(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    messages.forEach(checkMessage);
    try {
      return this.template.render({
        ...opts.vars,
        ...this.specialTokens,
        messages,
        add_generation_prompt: opts.addGenerationPrompt ?? true,
      });
    } catch (e) {
      throw new ChatTemplateError(`the chat template refused the conversation: ${(e as Error).message}`);
    }
  }
}

function checkMessage(m: ChatMessage, i: number): void {
  if (typeof m !== 'object' || m === null) throw new TypeError(`message ${i} must be an object with role and content`);
  if (typeof m.role !== 'string' || m.role === '') throw new TypeError(`message ${i}: role must be a non-empty string`);
  if (typeof m.content !== 'string') throw new TypeError(`message ${i} (${m.role}): content must be a string`);
}
