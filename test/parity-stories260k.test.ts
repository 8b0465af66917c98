import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { allLogits, greedy, maxAbsDiff, model, STORIES_BIN, STORIES_GGUF, TINYSTORIES } from './helpers/models.js';
import { hasShared, readJson } from './helpers/shared-data.js';

interface Golden {
  from_bos: { n_steps: number; token_ids: number[]; text: string; logits_pos0_top5: [number, number][] };
  prompt_once_upon_a_time: { prompt: string; prompt_ids: number[]; n_steps: number; token_ids: number[]; text: string };
}

describe.skipIf(!hasShared)('stories260K against its references', () => {
  const golden = hasShared ? readJson<Golden>('models/stories260K/golden_greedy.json') : undefined!;

  it.each([
    ['llama2.c .bin', STORIES_BIN],
    ['GGUF v1', STORIES_GGUF],
  ])('greedy continuation from BOS equals golden_greedy.json (%s)', async (_name, path) => {
    const m = await model(path);
    const g = golden.from_bos;
    // n_steps forward passes from BOS produce n_steps tokens after it.
    const { ids, text } = await greedy(m, '', g.n_steps);
    expect([m.tokenizer.bos, ...ids]).toEqual(g.token_ids);
    expect(text).toBe(g.text);

    const p = golden.prompt_once_upon_a_time;
    expect(m.tokenizer.encode(p.prompt)).toEqual(p.prompt_ids);
    const cont = await greedy(m, p.prompt, p.n_steps - p.prompt_ids.length + 1);
    expect([...p.prompt_ids, ...cont.ids]).toEqual(p.token_ids);
    expect(p.prompt + cont.text).toBe(p.text);
  });

  it('first-step logits equal the float64 reference (top 5)', async () => {
    const m = await model(STORIES_GGUF);
    const logits = allLogits(m, [m.tokenizer.bos]);
    for (const [id, value] of golden.from_bos.logits_pos0_top5) expect(Math.abs(logits[id] - value)).toBeLessThan(1e-4);
  });

  it('the llama2.c and GGUF copies give the same logits (max abs diff < 1e-5)', async () => {
    const bin = await model(STORIES_BIN);
    const gguf = await model(STORIES_GGUF);
    const tokens = bin.tokenizer.encode(readFileSync(TINYSTORIES, 'utf8').slice(0, 2000)).slice(0, 200);
    expect(gguf.tokenizer.encode(readFileSync(TINYSTORIES, 'utf8').slice(0, 2000)).slice(0, 200)).toEqual(tokens);
    expect(maxAbsDiff(allLogits(bin, tokens), allLogits(gguf, tokens))).toBeLessThan(1e-5);
  });

  it('batched prompt processing equals one token at a time', async () => {
    const m = await model(STORIES_GGUF);
    const tokens = golden.from_bos.token_ids.slice(0, 100);
    const batch = allLogits(m, tokens);
    const cache = m.llama.newCache(tokens.length);
    const incr = new Float32Array(batch.length);
    tokens.forEach((t, i) => incr.set(m.llama.forward([t], cache), i * m.config.vocabSize));
    expect(maxAbsDiff(batch, incr)).toBeLessThan(1e-5);
  });

  it('f16 cache: perplexity within 0.001 of llama.cpp (8.2750)', async () => {
    const m = await model(STORIES_GGUF);
    const r = await m.perplexity(readFileSync(TINYSTORIES, 'utf8'), { ctx: 512, cacheTypeK: 'f16', cacheTypeV: 'f16' });
    expect(r.chunks).toBe(79);
    expect(r.count).toBe(20145);
    expect(Math.abs(r.ppl - 8.275)).toBeLessThan(0.001);
    expect(r.bitsPerValue).toEqual({ k: 16, v: 16 });
  });
});
