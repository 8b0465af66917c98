import { describe, expect, it } from 'vitest';
import { generate } from '../src/engine/generate.js';
import { Session } from '../src/engine/session.js';
import { LlamaModel } from '../src/model/llama.js';
import type { LlamaConfig } from '../src/model/types.js';
import { SpmTokenizer } from '../src/tokenizer/spm.js';
import { greedy, model, STORIES_GGUF } from './helpers/models.js';
import { hasShared } from './helpers/shared-data.js';
import { weightMatrix, type WeightMatrix } from '../src/kernels/weights.js';

/**
 * A one-layer model whose layers contribute nothing (zero projections), so the residual stream is
 * the embedding (all ones) and the logits are the output rows' sums: EOS (row 2) wins by 4.
 */
function eosModel(): { llama: LlamaModel; tokenizer: SpmTokenizer } {
  const c: LlamaConfig = { arch: 'llama', dim: 4, hiddenDim: 4, nLayers: 1, nHeads: 1, nKvHeads: 1, headDim: 4, vocabSize: 8, contextLength: 16, ropeTheta: 10000, ropeDim: 4, rmsEps: 1e-5 };
  const z = (n: number): Float32Array => new Float32Array(n);
  const ones = (n: number): Float32Array => new Float32Array(n).fill(1);
  const output = z(8 * 4);
  output.fill(1, 2 * 4, 3 * 4);
  const m = (data: Float32Array, rows = 4): WeightMatrix => weightMatrix('f32', rows, 4, data);
  const layer = { attnNorm: ones(4), wq: m(z(16)), wk: m(z(16)), wv: m(z(16)), wo: m(z(16)), ffnNorm: ones(4), wGate: m(z(16)), wDown: m(z(16)), wUp: m(z(16)) };
  const llama = new LlamaModel(c, { tokenEmbedding: m(ones(8 * 4), 8), layers: [layer], outputNorm: ones(4), output: m(output, 8) });
  const tokens = ['<unk>', '<s>', '</s>', 'a', 'b', 'c', 'd', 'e'];
  const tokenizer = new SpmTokenizer({
    tokens,
    scores: new Float32Array(8),
    types: Int32Array.from([2, 3, 3, 1, 1, 1, 1, 1]),
    bos: 1,
    eos: 2,
    unk: 0,
    addBos: true,
    addEos: false,
    addSpacePrefix: false,
  });
  return { llama, tokenizer };
}

async function drain<T, R>(it: AsyncGenerator<T, R>): Promise<{ chunks: T[]; result: R }> {
  const chunks: T[] = [];
  for (let r = await it.next(); ; r = await it.next()) {
    if (r.done) return { chunks, result: r.value };
    chunks.push(r.value);
  }
}

describe('generation', () => {
  it('ends at EOS without emitting it', async () => {
    const { llama, tokenizer } = eosModel();
    const { chunks, result } = await drain(generate(new Session(llama, 16), tokenizer, 'abc', { temperature: 0, maxTokens: 10 }));
    expect(result.finishReason).toBe('eos');
    expect(result.generatedTokens).toBe(1);
    expect(result.promptTokens).toBe(4);
    expect(chunks).toEqual([]);
    expect(result.text).toBe('');
  });

  it.skipIf(!hasShared)('streams the same text through the iterator and the callback; ends at the context limit', async () => {
    const m = await model(STORIES_GGUF);
    const pieces: string[] = [];
    const session = m.createSession({ ctx: 20 });
    const { chunks, result } = await drain(generate(session, m.tokenizer, 'Once upon', { temperature: 0.9, seed: 5, maxTokens: 100, onText: (t) => pieces.push(t) }));
    expect(result.finishReason).toBe('context');
    // 3 prompt tokens; 17 generated tokens fill the cache, one more is sampled from the last logits.
    expect(result.promptTokens).toBe(3);
    expect(result.generatedTokens).toBe(20 - 3 + 1);
    expect(session.length).toBe(20);
    expect(chunks.map((c) => c.text).join('')).toBe(result.text);
    expect(pieces.join('')).toBe(result.text);
    expect(m.tokenizer.decode([...session.tokens()]).startsWith('Once upon' + result.text.slice(0, 5))).toBe(true);
  });

  it.skipIf(!hasShared)('maxTokens 0 generates nothing; a prompt that fills the context is refused', async () => {
    const m = await model(STORIES_GGUF);
    expect((await greedy(m, 'Once upon a time', 0)).ids).toEqual([]);
    const long = 'Once upon a time there was a dog. '.repeat(20);
    await expect(drain(m.generate(long, { ctx: 16 }))).rejects.toThrow(/does not fit the context of 16/);
  });
});
