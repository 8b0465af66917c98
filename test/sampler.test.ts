import { describe, expect, it } from 'vitest';
import { Sampler } from '../src/engine/sampler.js';
import { StopMatcher } from '../src/engine/stop.js';

const logits = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)]);

function frequencies(s: Sampler, n: number, l = logits): number[] {
  const f = new Array(l.length).fill(0);
  for (let i = 0; i < n; i++) f[s.sample(l)]++;
  return f.map((c) => c / n);
}

const plain = { topK: 0, topP: 1, minP: 0 };

describe('sampler', () => {
  it('temperature 0 is argmax; top-k 1 is argmax at any temperature', () => {
    const l = Float32Array.from([0.1, 3, -2, 2.9, 3]);
    expect(new Sampler(5, { temperature: 0 }).sample(l)).toBe(1);
    const s = new Sampler(5, { temperature: 5, topK: 1, seed: 1 });
    for (let i = 0; i < 50; i++) expect(s.sample(l)).toBe(1);
  });

  it('draws from softmax(logits / T)', () => {
    const n = 40000;
    const f1 = frequencies(new Sampler(4, { ...plain, temperature: 1, seed: 3 }), n);
    [0.5, 0.3, 0.15, 0.05].forEach((p, i) => expect(Math.abs(f1[i] - p)).toBeLessThan(0.012));
    const z = [0.5, 0.3, 0.15, 0.05].map((p) => Math.sqrt(p));
    const zs = z.reduce((a, b) => a + b);
    const f2 = frequencies(new Sampler(4, { ...plain, temperature: 2, seed: 4 }), n);
    z.forEach((p, i) => expect(Math.abs(f2[i] - p / zs)).toBeLessThan(0.012));
  });

  it('top-p keeps the smallest nucleus, min-p drops tokens below minP·p(max), top-k the k best', () => {
    const fp = frequencies(new Sampler(4, { ...plain, topP: 0.75, temperature: 1, seed: 5 }), 5000);
    expect(fp[2] + fp[3]).toBe(0);
    expect(fp[1]).toBeGreaterThan(0.3);
    const fm = frequencies(new Sampler(4, { ...plain, minP: 0.2, temperature: 1, seed: 6 }), 5000);
    expect(fm[3]).toBe(0);
    expect(fm[2]).toBeGreaterThan(0.1);
    const fk = frequencies(new Sampler(4, { ...plain, topK: 3, temperature: 1, seed: 7 }), 5000);
    expect(fk[3]).toBe(0);
    expect(fk[2]).toBeGreaterThan(0.1);
  });

  it('same seed gives the same tokens; another seed does not', () => {
    const l = Float32Array.from({ length: 100 }, (_, i) => Math.sin(i));
    const run = (seed: number): number[] => {
      const s = new Sampler(100, { temperature: 1.5, topK: 0, topP: 1, minP: 0, seed });
      return Array.from({ length: 50 }, () => s.sample(l));
    };
    expect(run(42)).toEqual(run(42));
    expect(run(42)).not.toEqual(run(43));
  });

  it('repetition penalty divides positive and multiplies negative logits of recent tokens', () => {
    const pos = new Sampler(2, { temperature: 0, repeatPenalty: 1.1 });
    expect(pos.sample(Float32Array.from([2.0, 1.9]))).toBe(0);
    pos.accept(0);
    expect(pos.sample(Float32Array.from([2.0, 1.9]))).toBe(1); // 2/1.1 < 1.9
    expect(pos.sample(Float32Array.from([2.0, 1.8]))).toBe(0); // 2/1.1 > 1.8
    const neg = new Sampler(2, { temperature: 0, repeatPenalty: 1.1 });
    neg.accept(0);
    expect(neg.sample(Float32Array.from([-1, -1.05]))).toBe(1); // -1.1 < -1.05
    const window = new Sampler(3, { temperature: 0, repeatPenalty: 2, repeatLastN: 1 });
    window.accept(0);
    window.accept(2);
    expect(window.sample(Float32Array.from([1, 0.9, 0]))).toBe(0); // token 0 left the window
  });

  it('rejects impossible settings with a message naming them', () => {
    expect(() => new Sampler(4, { temperature: -1 })).toThrow(/temperature/);
    expect(() => new Sampler(4, { topP: 0 })).toThrow(/top-p/);
    expect(() => new Sampler(4, { minP: 1 })).toThrow(/min-p/);
    expect(() => new Sampler(4, { topK: 1.5 })).toThrow(/top-k/);
    expect(() => new Sampler(4, { seed: -3 })).toThrow(/seed/);
  });
});

describe('stop strings', () => {
  it('holds back possible prefixes and cuts at the earliest match across pieces', () => {
    const m = new StopMatcher(['\n\n', 'THE END']);
    const out = ['Once', ' upon\n', 'a TH', 'E', ' time'].map((p) => m.push(p));
    expect(out.join('') + m.flush()).toBe('Once upon\na THE time');
    expect(out[1]).toBe(' upon'); // "\n" might start "\n\n"
    const s = new StopMatcher(['\n\n', 'THE END']);
    expect(['Hello', ' THE E', 'ND', ' more'].map((p) => s.push(p)).join('')).toBe('Hello ');
    expect(s.stopped).toBe(true);
    expect(s.flush()).toBe('');
  });
});
