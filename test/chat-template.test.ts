import { describe, expect, it } from 'vitest';
import { ChatTemplate, ChatTemplateError, FALLBACK_CHAT_TEMPLATE, type ChatMessage } from '../src/engine/chat-template.js';
import { SpmTokenizer } from '../src/tokenizer/spm.js';
import { GEMMA, LLAMA2, LLAMA3, LLAMA32, PHI3, QWEN2 } from './fixtures/chat-templates.js';
import { MISTRAL_TEMPLATE } from './helpers/chat-model.js';

// The expected strings below are written by hand from each model card's documented prompt format,
// not produced by any template engine.

const SYSTEM: ChatMessage = { role: 'system', content: 'You are a pirate.' };
const TURNS: ChatMessage[] = [
  { role: 'user', content: 'Hello!' },
  { role: 'assistant', content: 'Hi! How can I help?' },
  { role: 'user', content: 'Tell me a joke.' },
];

const tokens = (bos: string, eos: string): { bos_token: string; eos_token: string } => ({ bos_token: bos, eos_token: eos });

describe('published chat templates render the documented prompt format', () => {
  it('Qwen2 (ChatML): the given system message, or its default one', () => {
    const t = new ChatTemplate(QWEN2, tokens('', '<|im_end|>'));
    expect(t.render([SYSTEM, ...TURNS])).toBe(
      '<|im_start|>system\nYou are a pirate.<|im_end|>\n' +
        '<|im_start|>user\nHello!<|im_end|>\n' +
        '<|im_start|>assistant\nHi! How can I help?<|im_end|>\n' +
        '<|im_start|>user\nTell me a joke.<|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
    expect(t.render(TURNS.slice(0, 1))).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n',
    );
    // Without the generation prompt the conversation ends after the last message.
    expect(t.render(TURNS.slice(0, 2), { addGenerationPrompt: false })).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi! How can I help?<|im_end|>\n',
    );
  });

  it('Llama 3: BOS once, headers, <|eot_id|> after each (trimmed) message', () => {
    const t = new ChatTemplate(LLAMA3, tokens('<|begin_of_text|>', '<|end_of_text|>'));
    const padded = [SYSTEM, TURNS[0], { role: 'assistant', content: '  Hi! How can I help?\n' }, TURNS[2]];
    expect(t.render(padded)).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a pirate.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });

  it('Llama 3.2: the dated system header, from date_string or from strftime_now', () => {
    const t = new ChatTemplate(LLAMA32, tokens('<|begin_of_text|>', '<|eot_id|>'));
    const dated = (date: string, system: string): string =>
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n' +
      `Cutting Knowledge Date: December 2023\nToday Date: ${date}\n\n${system}<|eot_id|>`;
    expect(t.render([SYSTEM, ...TURNS], { vars: { date_string: '26 Jul 2024' } })).toBe(
      dated('26 Jul 2024', 'You are a pirate.') +
        '<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    // No date given: the template asks strftime_now("%d %b %Y") for today's.
    const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
    const today = (d: Date): string => `${String(d.getDate()).padStart(2, '0')} ${months[d.getMonth()]} ${d.getFullYear()}`;
    const before = new Date();
    const out = t.render(TURNS.slice(0, 1));
    const after = new Date();
    const tail = '<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n';
    expect([dated(today(before), '') + tail, dated(today(after), '') + tail]).toContain(out);
  });

  it('Llama 2: <<SYS>> inside the first [INST], BOS before every user turn, EOS after every reply', () => {
    const t = new ChatTemplate(LLAMA2, tokens('<s>', '</s>'));
    expect(t.render([SYSTEM, ...TURNS])).toBe(
      '<s>[INST] <<SYS>>\nYou are a pirate.\n<</SYS>>\n\nHello! [/INST] Hi! How can I help? </s><s>[INST] Tell me a joke. [/INST]',
    );
    expect(() => t.render([TURNS[0], TURNS[0]])).toThrow(ChatTemplateError);
    expect(() => t.render([TURNS[0], TURNS[0]])).toThrow(/Conversation roles must alternate user\/assistant/);
  });

  it('Gemma: <start_of_turn>user / model, and no system role', () => {
    const t = new ChatTemplate(GEMMA, tokens('<bos>', '<eos>'));
    expect(t.render(TURNS)).toBe(
      '<bos><start_of_turn>user\nHello!<end_of_turn>\n' +
        '<start_of_turn>model\nHi! How can I help?<end_of_turn>\n' +
        '<start_of_turn>user\nTell me a joke.<end_of_turn>\n' +
        '<start_of_turn>model\n',
    );
    expect(() => t.render([SYSTEM, ...TURNS])).toThrow(/chat template refused the conversation: System role not supported/);
  });

  it('Phi-3.5: <|role|> lines closed by <|end|>; EOS when no reply is asked for', () => {
    const t = new ChatTemplate(PHI3, tokens('<s>', '<|endoftext|>'));
    const body =
      '<|system|>\nYou are a pirate.<|end|>\n<|user|>\nHello!<|end|>\n<|assistant|>\nHi! How can I help?<|end|>\n<|user|>\nTell me a joke.<|end|>\n';
    expect(t.render([SYSTEM, ...TURNS])).toBe(body + '<|assistant|>\n');
    expect(t.render([SYSTEM, ...TURNS], { addGenerationPrompt: false })).toBe(body + '<|endoftext|>');
  });

  it('Mistral Instruct: replies follow [/INST] directly and end with EOS', () => {
    const t = new ChatTemplate(MISTRAL_TEMPLATE, tokens('<s>', '</s>'));
    expect(t.render(TURNS)).toBe('<s>[INST] Hello! [/INST]Hi! How can I help?</s>[INST] Tell me a joke. [/INST]');
    expect(() => t.render([SYSTEM, ...TURNS])).toThrow(/Conversation roles must alternate/);
  });
});

describe('ChatTemplate', () => {
  // A SentencePiece vocabulary that has BOS/EOS but no chat template of its own.
  const tokenizer = new SpmTokenizer({
    tokens: ['<unk>', '<s>', '</s>', 'a'],
    scores: new Float32Array(4),
    types: Int32Array.from([2, 3, 3, 1]),
    bos: 1,
    eos: 2,
    unk: 0,
    addBos: true,
    addEos: false,
    addSpacePrefix: false,
  });

  it('falls back to ChatML for a model without a template, and stops at its markers', () => {
    const t = ChatTemplate.forModel(undefined, tokenizer);
    expect(t.isFallback).toBe(true);
    expect(t.source).toBe(FALLBACK_CHAT_TEMPLATE);
    expect(t.stopStrings).toEqual(['<|im_end|>', '<|im_start|>']);
    expect(t.render([SYSTEM, TURNS[0]])).toBe('<|im_start|>system\nYou are a pirate.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n');
  });

  it("takes bos_token and eos_token from the model's tokenizer", () => {
    const t = ChatTemplate.forModel(LLAMA2, tokenizer);
    expect(t.isFallback).toBe(false);
    expect(t.stopStrings).toEqual([]);
    expect(t.specialTokens).toEqual({ bos_token: '<s>', eos_token: '</s>' });
    expect(t.render(TURNS.slice(0, 2), { addGenerationPrompt: false })).toBe('<s>[INST] Hello! [/INST] Hi! How can I help? </s>');
  });

  it('refuses a template that does not parse, and malformed messages, naming the problem', () => {
    expect(() => new ChatTemplate('{% for m in messages %}{{ m.content }}', tokens('', ''))).toThrow(/chat template cannot be parsed/);
    const t = new ChatTemplate(QWEN2, tokens('', ''));
    expect(() => t.render([{ role: 'user', content: 5 } as unknown as ChatMessage])).toThrow(/message 0 \(user\): content must be a string/);
    expect(() => t.render([TURNS[0], { role: '', content: 'x' }])).toThrow(/message 1: role must be a non-empty string/);
  });
});
