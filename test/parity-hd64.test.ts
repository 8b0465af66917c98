import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { logSoftmaxAt } from '../src/eval/perplexity.js';
import { allLogits, greedy, HD64_BIN, HD64_GGUF, maxAbsDiff, model, WIKITEXT2 } from './helpers/models.js';
import { hasShared, readJson, repoRoot } from './helpers/shared-data.js';
import { resolve } from 'node:path';

interface Golden {
  greedy: { prompt: string; prompt_ids: number[]; gen_ids: number[]; text: string; top5_logits_at_first_step: [number, number][] }[];
  reference_text: string;
  reference_ids: number[];
  reference_positions: { pos: number; token: number; top5: [number, number][]; next_token_nll: number | null }[];
}

function top5(logits: Float32Array, offset: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => i)
    .sort((a, b) => logits[offset + b] - logits[offset + a])
    .slice(0, 5);
}

describe.skipIf(!hasShared)('lowkv-tiny-hd64 against its references', () => {
  const golden = hasShared ? readJson<Golden>('models/lowkv-tiny-hd64/golden_greedy.json') : undefined!;

  it.each([
    ['GGUF v3', HD64_GGUF],
    ['llama2.c .bin', HD64_BIN],
  ])('greedy outputs and first-step top-5 logits equal golden_greedy.json (%s)', async (_name, path) => {
    const m = await model(path);
    for (const g of golden.greedy) {
      expect(m.tokenizer.encode(g.prompt)).toEqual(g.prompt_ids);
      const { ids, text } = await greedy(m, g.prompt, g.gen_ids.length);
      expect(ids).toEqual(g.gen_ids);
      expect(text.trimStart()).toBe(g.text.trimStart());
      const logits = allLogits(m, g.prompt_ids);
      const last = (g.prompt_ids.length - 1) * m.config.vocabSize;
      expect(top5(logits, last, m.config.vocabSize)).toEqual(g.top5_logits_at_first_step.map(([id]) => id));
      for (const [id, v] of g.top5_logits_at_first_step) expect(Math.abs(logits[last + id] - v)).toBeLessThan(1e-3);
    }
  });

  it('per-position top-5 logits and next-token NLL of the reference text (1e-3)', async () => {
    const m = await model(HD64_GGUF);
    expect(m.tokenizer.encode(golden.reference_text)).toEqual(golden.reference_ids);
    const V = m.config.vocabSize;
    const logits = allLogits(m, golden.reference_ids);
    for (const p of golden.reference_positions) {
      expect(top5(logits, p.pos * V, V)).toEqual(p.top5.map(([id]) => id));
      for (const [id, v] of p.top5) expect(Math.abs(logits[p.pos * V + id] - v)).toBeLessThan(1e-3);
      if (p.next_token_nll !== null) {
        const nll = -logSoftmaxAt(logits, p.pos * V, V, golden.reference_ids[p.pos + 1]);
        expect(Math.abs(nll - p.next_token_nll)).toBeLessThan(1e-3);
      }
    }
  });

  it('the bundled F16 demo model stays within f16 rounding of the f32 model', async () => {
    const f32 = await model(HD64_GGUF);
    const f16 = await model(resolve(repoRoot, 'models/lowkv-tiny-hd64-f16.gguf'));
    const tokens = golden.reference_ids;
    const a = allLogits(f32, tokens);
    const b = allLogits(f16, tokens);
    expect(maxAbsDiff(a, b)).toBeLessThan(0.05);
    const V = f32.config.vocabSize;
    for (let p = 0; p < tokens.length; p++) expect(top5(b, p * V, V)[0]).toBe(top5(a, p * V, V)[0]);
  });

  it("perplexity on WikiText-2 test, ctx 512, 100 chunks, f32 cache = llama.cpp's 314.7263 (± 0.003)", async () => {
    const m = await model(HD64_GGUF);
    const r = await m.perplexity(readFileSync(WIKITEXT2, 'utf8'), { ctx: 512, chunks: 100 });
    expect(r.count).toBe(25500);
    expect(Math.abs(r.ppl - 314.7263)).toBeLessThan(0.003);
  });
});
