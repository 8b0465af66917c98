// Prefill attends in tiles of query tokens (one scores/accumulate call per KV head per tile). The
// reference is attentionTile 1, one query token per call: every score and weighted sum must come
// out bit-identical, for every codec family and with a cache that already holds tokens.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ALL_METHODS } from '../src/eval/methods.js';
import { LlamaModel } from '../src/model/llama.js';
import { HD64_GGUF, model, STORIES_GGUF, TINYSTORIES } from './helpers/models.js';
import { hasShared } from './helpers/shared-data.js';

const PREFIX = 40;
const TOKENS = 110;

function prefill(llama: LlamaModel, tokens: number[], k: string, v: string): Float32Array {
  const cache = llama.newCache(tokens.length, { k, v });
  llama.forward(tokens.slice(0, PREFIX), cache, PREFIX);
  return Float32Array.from(llama.forward(tokens.slice(PREFIX), cache, 0));
}

describe.skipIf(!hasShared)('tiled prefill attention', () => {
  it.each([
    ['lowkv-tiny-hd64', HD64_GGUF],
    ['stories260K (GQA)', STORIES_GGUF],
  ])('equals one query token per call, bit for bit, for every method (%s)', async (_name, path) => {
    const m = await model(path);
    const tokens = m.tokenizer.encode(readFileSync(TINYSTORIES, 'utf8')).slice(0, TOKENS);
    const tiled = new LlamaModel(m.llama.config, m.llama.weights, { attentionTile: 16, threads: 1 });
    const single = new LlamaModel(m.llama.config, m.llama.weights, { attentionTile: 1, threads: 1 });
    let compared = 0;
    for (const item of ALL_METHODS) {
      const [k, v = k] = item.split('|');
      if (m.llama.config.headDim < 64 && /l=64|basis=head/.test(item)) continue; // blocks larger than the head
      const a = prefill(tiled, tokens, k, v);
      const b = prefill(single, tokens, k, v);
      expect(a.length).toBe((TOKENS - PREFIX) * m.llama.config.vocabSize);
      const differing = a.findIndex((x, i) => x !== b[i]);
      expect(differing, `${item}: first differing logit`).toBe(-1);
      compared++;
    }
    expect(compared).toBeGreaterThan(25);
  });

  it('rejects a tile that is not a positive integer', async () => {
    const m = await model(STORIES_GGUF);
    expect(() => new LlamaModel(m.llama.config, m.llama.weights, { attentionTile: 0 })).toThrow(/attentionTile 0/);
  });
});
