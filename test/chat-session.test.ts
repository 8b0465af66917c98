import { beforeAll, describe, expect, it } from 'vitest';
import { ChatSession, type ChatOptions, type ChatTurnResult } from '../src/engine/chat-session.js';
import { ChatTemplateError } from '../src/engine/chat-template.js';
import type { GenerateChunk } from '../src/engine/generate.js';
import { loadModel, Model, type CacheOptions } from '../src/engine/model.js';
import { weightMatrix, type WeightMatrix } from '../src/kernels/weights.js';
import type { LlamaConfig } from '../src/model/types.js';
import { SpmTokenizer } from '../src/tokenizer/spm.js';
import { MISTRAL_TEMPLATE, withChatTemplate } from './helpers/chat-model.js';
import { STORIES_GGUF } from './helpers/models.js';
import { hasShared } from './helpers/shared-data.js';

interface Turn {
  ids: number[];
  text: string;
  result: ChatTurnResult;
}

async function drain(it: AsyncGenerator<GenerateChunk, ChatTurnResult>): Promise<Turn> {
  const ids: number[] = [];
  let text = '';
  for (let r = await it.next(); ; r = await it.next()) {
    if (r.done) return { ids, text, result: r.value };
    if (r.value.token >= 0) ids.push(r.value.token);
    text += r.value.text;
  }
}

const GREEDY: ChatOptions = { temperature: 0, maxTokens: 30 };
const Q1 = 'Tell me a story about a cat.';
const Q2 = 'What did the cat do next?';

describe.skipIf(!hasShared)('ChatSession on stories260K with the Mistral Instruct template', () => {
  let m: Model;
  beforeAll(async () => {
    m = await loadModel(withChatTemplate(STORIES_GGUF, MISTRAL_TEMPLATE));
  });
  const enc = (text: string): number[] => m.tokenizer.encode(text, { addBos: false });

  it('reads tokenizer.chat_template from the GGUF; the prompt has one BOS and </s> as the EOS token', () => {
    expect(m.file.chatTemplate).toBe(MISTRAL_TEMPLATE);
    expect(m.chatTemplate.isFallback).toBe(false);
    // The documented format: <s>[INST] Q1 [/INST]reply</s>[INST] Q2 [/INST], with <s> and </s>
    // the control tokens and every text run tokenized on its own.
    const chat = m.chatSession({ messages: [{ role: 'user', content: Q1 }] });
    expect(chat.promptTokens()).toEqual([m.tokenizer.bos, ...enc(`[INST] ${Q1} [/INST]`)]);
    const chat2 = m.chatSession({
      messages: [
        { role: 'user', content: Q1 },
        { role: 'assistant', content: 'Once upon a time' },
        { role: 'user', content: Q2 },
      ],
    });
    expect(chat2.promptTokens()).toEqual([m.tokenizer.bos, ...enc(`[INST] ${Q1} [/INST]Once upon a time`), m.tokenizer.eos, ...enc(`[INST] ${Q2} [/INST]`)]);
  });

  for (const cache of [{}, { cacheTypeK: 'q4_0', cacheTypeV: 'q8_0' }] as CacheOptions[]) {
    const label = cache.cacheTypeK ? `K ${cache.cacheTypeK} / V ${cache.cacheTypeV}` : 'f32';
    it(`the second turn processes only the new tokens and replies as a fresh session fed the whole conversation (${label})`, async () => {
      const chat = m.chatSession({ ...cache, ctx: 256 });
      const t1 = await drain(chat.send(Q1, GREEDY));
      const prompt1 = [m.tokenizer.bos, ...enc(`[INST] ${Q1} [/INST]`)];
      expect(t1.result).toMatchObject({ promptTokens: prompt1.length, reusedTokens: 0, generatedTokens: 30, finishReason: 'length' });
      // A reply cut by maxTokens leaves its last token unfed.
      expect(chat.session.length).toBe(prompt1.length + 29);
      expect(chat.messages).toEqual([
        { role: 'user', content: Q1 },
        { role: 'assistant', content: t1.text },
      ]);

      const t2 = await drain(chat.send(Q2, GREEDY));
      // Reused: everything the cache held. Fed: the reply's last token, then </s>[INST] Q2 [/INST].
      expect(t2.result.reusedTokens).toBe(prompt1.length + 29);
      expect(t2.result.promptTokens).toBe(1 + 1 + enc(`[INST] ${Q2} [/INST]`).length);

      const fresh = new ChatSession(m, { ...cache, ctx: 256, messages: chat.messages.slice(0, 3) });
      const f = await drain(fresh.reply(GREEDY));
      expect(f.result.reusedTokens).toBe(0);
      expect(f.result.promptTokens).toBe(t2.result.reusedTokens + t2.result.promptTokens);
      expect(t2.ids).toEqual(f.ids);
      expect(t2.text).toBe(f.text);
      expect([...chat.session.tokens()]).toEqual([...fresh.session.tokens()]);
    });
  }

  it('a reply ended by a stop string is cut from the cache where the conversation diverges', async () => {
    const probe = await drain(m.chatSession({ ctx: 256 }).send(Q1, GREEDY));
    // Stop at a word from the middle of the greedy reply.
    const word = probe.text.trim().split(/\s+/)[3];
    const chat = m.chatSession({ ctx: 256 });
    const t1 = await drain(chat.send(Q1, { ...GREEDY, stop: [word] }));
    expect(t1.result.finishReason).toBe('stop');
    expect(t1.text).toBe(probe.text.slice(0, probe.text.indexOf(word)));
    const held = chat.session.length;
    const t2 = await drain(chat.send(Q2, GREEDY));
    // The stop string's first tokens were fed before it was complete; the conversation lacks them.
    expect(t2.result.reusedTokens).toBeLessThan(held);
    const f = await drain(new ChatSession(m, { ctx: 256, messages: chat.messages.slice(0, 3) }).reply(GREEDY));
    expect(t2.ids).toEqual(f.ids);
  });

  it('an aborted or abandoned reply stays in the conversation as far as it got', async () => {
    const chat = m.chatSession({ ctx: 256 });
    const ctl = new AbortController();
    let chunks = 0;
    const t1 = await drain(
      chat.send(Q1, {
        ...GREEDY,
        signal: ctl.signal,
        onText: () => {
          if (++chunks === 5) ctl.abort();
        },
      }),
    );
    expect(t1.result.finishReason).toBe('aborted');
    expect(t1.ids.length).toBeGreaterThanOrEqual(5);
    expect(t1.ids.length).toBeLessThan(30);
    expect(chat.messages[1]).toEqual({ role: 'assistant', content: t1.text });

    // A consumer that stops reading: the reply so far is kept.
    let seen = '';
    for await (const c of chat.send(Q2, GREEDY)) {
      seen += c.text;
      if (seen.length > 10) break;
    }
    expect(chat.messages.map((x) => x.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    expect(chat.messages[3].content).toBe(seen);
    const t3 = await drain(chat.send('And then?', GREEDY));
    const f = await drain(new ChatSession(m, { ctx: 256, messages: chat.messages.slice(0, 5) }).reply(GREEDY));
    expect(t3.ids).toEqual(f.ids);
  });

  it('a message the template refuses or the context cannot hold leaves the conversation as it was', async () => {
    const chat = m.chatSession({ ctx: 64, system: 'Be brief.' });
    // Mistral's template has no system role.
    await expect(drain(chat.send(Q1))).rejects.toThrow(ChatTemplateError);
    await expect(drain(chat.send(Q1))).rejects.toThrow(/Conversation roles must alternate user\/assistant/);
    expect(chat.messages).toEqual([{ role: 'system', content: 'Be brief.' }]);

    const small = m.chatSession({ ctx: 16 });
    await expect(drain(small.send(Q1 + ' ' + Q2))).rejects.toThrow(/the conversation is \d+ tokens, more than the context of 16/);
    expect(small.messages).toEqual([]);
    const other = m.chatSession({ ctx: 64 });
    await expect(drain(other.send('Hi', { temperature: -1 }))).rejects.toThrow(/temperature must be ≥ 0/);
    expect(other.messages).toEqual([]);
  });

  it('reset() forgets the conversation and the cache, keeping the system message', async () => {
    const chat = m.chatSession({ ctx: 256 });
    const a = await drain(chat.send(Q1, GREEDY));
    await drain(chat.send(Q2, GREEDY));
    chat.reset();
    expect(chat.messages).toEqual([]);
    expect(chat.session.length).toBe(0);
    expect(chat.lastResult).toBeUndefined();
    const b = await drain(chat.send(Q1, GREEDY));
    expect(b.ids).toEqual(a.ids);
    expect(b.result.reusedTokens).toBe(0);
  });

  // Renders only the user turns, each opened by BOS as in Llama 2: a new turn drops the previous
  // reply, so the cache must be cut back to the end of the first prompt.
  const USER_ONLY = "{% for m in messages %}{% if m['role'] == 'user' %}{{ bos_token + '[INST] ' + m['content'] + ' [/INST]' }}{% endif %}{% endfor %}";

  it('a conversation that diverges inside the cache truncates it there', async () => {
    const chat = m.chatSession({ ctx: 256, template: USER_ONLY });
    const t1 = await drain(chat.send(Q1, GREEDY));
    const t2 = await drain(chat.send(Q2, GREEDY));
    expect(t2.result.reusedTokens).toBe(t1.result.promptTokens);
    expect(t2.result.promptTokens).toBe(1 + enc(`[INST] ${Q2} [/INST]`).length);
    const f = await drain(new ChatSession(m, { ctx: 256, template: USER_ONLY, messages: chat.messages.slice(0, 3) }).reply(GREEDY));
    expect(t2.ids).toEqual(f.ids);
  });

  it('falls back to a fresh cache when a codec refuses to cut inside a block', async () => {
    // DecoQuant encodes blocks of l tokens jointly: a cut inside a sealed block is refused.
    const cache = { cacheTypeK: 'decoquant:4,l=24', cacheTypeV: 'f32', ctx: 256, template: USER_ONLY };
    const chat = m.chatSession(cache);
    const t1 = await drain(chat.send(Q1, GREEDY));
    const cut = t1.result.promptTokens;
    expect(cut % 24 !== 0 && cut < Math.floor(chat.session.length / 24) * 24).toBe(true);
    const t2 = await drain(chat.send(Q2, GREEDY));
    expect(t2.result.reusedTokens).toBe(0);
    const f = await drain(new ChatSession(m, { ...cache, messages: chat.messages.slice(0, 3) }).reply(GREEDY));
    expect(t2.ids).toEqual(f.ids);
  });

  it('model.chat(messages) streams the reply of a fresh session', async () => {
    const messages = [{ role: 'user', content: Q1 }];
    const viaModel = await drain(m.chat(messages, { ...GREEDY, ctx: 128, cacheTypeK: 'q8_0' }));
    const viaSession = await drain(m.chatSession({ ctx: 128, cacheTypeK: 'q8_0' }).send(Q1, GREEDY));
    expect(viaModel.ids).toEqual(viaSession.ids);
    expect(viaModel.result.promptTokens).toBe(viaSession.result.promptTokens);
  });

  it('a GGUF without a chat template chats through the ChatML fallback', async () => {
    const plain = await loadModel(STORIES_GGUF);
    expect(plain.file.chatTemplate).toBeUndefined();
    expect(plain.chatTemplate.isFallback).toBe(true);
    const chat = plain.chatSession({ ctx: 256 });
    const t = await drain(chat.send('Hi', GREEDY));
    expect(t.result.promptTokens).toBe(plain.tokenizer.encode('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n').length);
    expect(t.text).not.toContain('<|im_end|>');
  });

  it('refuses a tokenizer.chat_template that is not a string', async () => {
    const bad = withChatTemplate(STORIES_GGUF, { type: 'uint32', value: 7 }, 'bad.gguf');
    await expect(loadModel(bad)).rejects.toThrow(/bad\.gguf: tokenizer\.chat_template: must be a string/);
  });
});

describe('ChatSession ends a reply at an end-of-generation token', () => {
  /**
   * A one-layer model whose layers contribute nothing, so the logits are the output rows' sums:
   * EOS (row 2) always wins.
   */
  function eosModel(): Model {
    const config: LlamaConfig = { arch: 'llama', dim: 4, hiddenDim: 4, nLayers: 1, nHeads: 1, nKvHeads: 1, headDim: 4, vocabSize: 8, contextLength: 32, ropeTheta: 10000, ropeDim: 4, rmsEps: 1e-5 };
    const z = (n: number): Float32Array => new Float32Array(n);
    const ones = (n: number): Float32Array => new Float32Array(n).fill(1);
    const output = z(8 * 4);
    output.fill(1, 2 * 4, 3 * 4);
    const mat = (data: Float32Array, rows = 4): WeightMatrix => weightMatrix('f32', rows, 4, data);
    const layer = { attnNorm: ones(4), wq: mat(z(16)), wk: mat(z(16)), wv: mat(z(16)), wo: mat(z(16)), ffnNorm: ones(4), wGate: mat(z(16)), wDown: mat(z(16)), wUp: mat(z(16)) };
    const tokenizer = new SpmTokenizer({
      tokens: ['<unk>', '<s>', '</s>', 'a', 'b', 'c', 'd', 'e'],
      scores: new Float32Array(8),
      types: Int32Array.from([2, 3, 3, 1, 1, 1, 1, 1]),
      bos: 1,
      eos: 2,
      unk: 0,
      addBos: true,
      addEos: false,
      addSpacePrefix: false,
    });
    const weights = { tokenEmbedding: mat(ones(8 * 4), 8), layers: [layer], outputNorm: ones(4), output: mat(output, 8) };
    // The template writes BOS itself; the prompt must still hold only one.
    const chatTemplate = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}";
    return new Model({ path: 'eos-model', format: 'gguf', name: 'eos-model', config, weights, tokenizer, tokenizerPath: 'eos-model', chatTemplate });
  }

  it('stops without emitting it; the empty reply joins the conversation', async () => {
    const chat = eosModel().chatSession();
    const t = await drain(chat.send('abc', { temperature: 0, maxTokens: 10 }));
    expect(t.result).toMatchObject({ finishReason: 'eos', generatedTokens: 1, promptTokens: 4 });
    expect(t.ids).toEqual([]);
    expect(chat.messages).toEqual([
      { role: 'user', content: 'abc' },
      { role: 'assistant', content: '' },
    ]);
  });
});
