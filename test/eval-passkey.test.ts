import { describe, expect, it } from 'vitest';
import { passkey, passkeyCorrect, passkeyKey, passkeyPrompt, PASSKEY_QUESTION, PASSKEY_RESERVE } from '../src/eval/passkey.js';
import { loadModel } from '../src/engine/model.js';
import { STORIES_BIN } from './helpers/models.js';
import { hasShared } from './helpers/shared-data.js';

/** A word-level stand-in tokenizer: BOS plus one token per space-separated word. */
const words = { encode: (text: string): number[] => [1, ...text.split(' ').filter(Boolean).map(() => 5)] };

/** Filler sentences before the needle, read back from the prompt text. */
function sentencesBefore(prompt: string): number {
  const at = prompt.indexOf('The pass key is');
  return (prompt.slice(0, at).match(/\./g) ?? []).length;
}

describe('passkey prompt', () => {
  it('fits ctx − 16 tokens and uses as much filler as fits', () => {
    for (const ctx of [64, 100, 256, 1000]) {
      const p = passkeyPrompt(words, ctx, 0.5, 12345);
      expect(p.tokens).toBeLessThanOrEqual(ctx - PASSKEY_RESERVE);
      expect(words.encode(p.prompt)).toHaveLength(p.tokens);
      // One more sentence (≤ 5 words) would not fit.
      expect(p.tokens + 5).toBeGreaterThan(ctx - PASSKEY_RESERVE - 5);
      expect(p.prompt.endsWith(PASSKEY_QUESTION)).toBe(true);
      expect(p.prompt).toContain('The pass key is 12345. Remember it. 12345 is the pass key.');
    }
  });

  it('places the key at the requested depth', () => {
    for (const depth of [0, 0.25, 0.5, 0.75, 1]) {
      const p = passkeyPrompt(words, 512, depth, 54321);
      expect(p.fillerSentences).toBeGreaterThan(20);
      expect(Math.abs(sentencesBefore(p.prompt) - depth * p.fillerSentences)).toBeLessThanOrEqual(1);
      expect(p.insertAt).toBe(sentencesBefore(p.prompt));
    }
    expect(passkeyPrompt(words, 512, 0, 11111).prompt.startsWith('The pass key is 11111.')).toBe(true);
    expect(passkeyPrompt(words, 512, 1, 11111).prompt).toMatch(/11111 is the pass key\. What is the pass key\? The pass key is$/);
  });

  it('is deterministic for a seed, with 5-digit keys', () => {
    expect(passkeyKey(7, 1, 2)).toBe(passkeyKey(7, 1, 2));
    const keys = new Set<number>();
    for (let s = 0; s < 50; s++) {
      const k = passkeyKey(s, 0, 0);
      expect(k).toBeGreaterThanOrEqual(10000);
      expect(k).toBeLessThanOrEqual(99999);
      keys.add(k);
    }
    expect(keys.size).toBeGreaterThan(40);
    expect(passkeyPrompt(words, 300, 0.25, passkeyKey(3, 1, 0))).toEqual(passkeyPrompt(words, 300, 0.25, passkeyKey(3, 1, 0)));
  });

  it('rejects a context too small and a bad depth', () => {
    expect(() => passkeyPrompt(words, 30, 0, 12345)).toThrow(/too small/);
    expect(() => passkeyPrompt(words, 256, 1.5, 12345)).toThrow(/depth/);
  });

  it('scores the first five digits of the output', () => {
    expect(passkeyCorrect(' 12345.', 12345)).toBe(true);
    expect(passkeyCorrect(' 1 2 3 4 5 6', 12345)).toBe(true);
    expect(passkeyCorrect(' 12344', 12345)).toBe(false);
    expect(passkeyCorrect(' 1234', 12345)).toBe(false);
    expect(passkeyCorrect(' the sky', 12345)).toBe(false);
  });
});

describe.skipIf(!hasShared)('passkey on stories260K', () => {
  it('runs end to end with f32 and q8_0', async () => {
    const model = await loadModel(STORIES_BIN);
    const p = passkeyPrompt(model.tokenizer, 256, 0.5, 12345);
    expect(p.tokens).toBeLessThanOrEqual(256 - PASSKEY_RESERVE);
    expect(p.tokens).toBeGreaterThan(200);
    const progress: number[] = [];
    const rows = await passkey(model, {
      ctx: 256,
      depths: [0, 1],
      trials: 1,
      seed: 1,
      policies: [
        { label: 'f32', policy: { k: 'f32', v: 'f32' } },
        { label: 'q8_0', policy: { k: 'q8_0', v: 'q8_0' } },
      ],
      onProgress: (d, t) => progress.push(d / t),
    });
    expect(progress).toEqual([0.25, 0.5, 0.75, 1]);
    expect(rows.map((r) => [r.label, r.depth, r.trials])).toEqual([
      ['f32', 0, 1],
      ['f32', 1, 1],
      ['q8_0', 0, 1],
      ['q8_0', 1, 1],
      ['f32', 'all', 2],
      ['q8_0', 'all', 2],
    ]);
    for (const r of rows) {
      expect(r.accuracy).toBeGreaterThanOrEqual(0);
      expect(r.accuracy).toBeLessThanOrEqual(1);
      expect(r.accuracy).toBe(r.correct / r.trials);
    }
  });
});

if (!hasShared) console.warn('skipping the stories260K passkey run: shared data not found');
