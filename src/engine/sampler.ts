import { Rng } from './rng.js';

export interface SamplerOptions {
  /** 0 = greedy (argmax). Default 0.8. */
  readonly temperature?: number;
  /** Keep the k most likely tokens; 0 = off. Default 40. */
  readonly topK?: number;
  /** Keep the smallest set with cumulative probability ≥ p; 1 = off. Default 0.95. */
  readonly topP?: number;
  /** Drop tokens with probability < minP · p(max); 0 = off. Default 0.05. */
  readonly minP?: number;
  /** Divide positive / multiply negative logits of recent tokens; 1 = off. Default 1. */
  readonly repeatPenalty?: number;
  /** How many recent tokens the repetition penalty looks at. Default 64. */
  readonly repeatLastN?: number;
  /** Same seed, same text. Default: random. */
  readonly seed?: number;
}

export const SAMPLER_DEFAULTS = {
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repeatPenalty: 1,
  repeatLastN: 64,
} as const;

/**
 * llama.cpp's default chain, in its order: repetition penalty → top-k → top-p → min-p →
 * temperature → draw. Every buffer is allocated once per vocabulary, none per token.
 */
export class Sampler {
  readonly seed: number;
  private readonly opts: Required<Omit<SamplerOptions, 'seed'>>;
  private readonly rng: Rng;
  private readonly ids: Int32Array;
  private readonly vals: Float32Array;
  private readonly probs: Float64Array;
  private readonly recent: Int32Array;
  private nRecent = 0;
  private recentHead = 0;
  private readonly byLogitDesc = (a: number, b: number): number => this.vals[b] - this.vals[a] || a - b;

  constructor(
    readonly vocabSize: number,
    options: SamplerOptions = {},
  ) {
    const o = { ...SAMPLER_DEFAULTS, ...stripUndefined(options) };
    check(o.temperature >= 0 && Number.isFinite(o.temperature), `temperature must be ≥ 0 (got ${o.temperature})`);
    check(Number.isInteger(o.topK) && o.topK >= 0, `top-k must be a non-negative integer (got ${o.topK})`);
    check(o.topP > 0 && o.topP <= 1, `top-p must be in (0, 1] (got ${o.topP})`);
    check(o.minP >= 0 && o.minP < 1, `min-p must be in [0, 1) (got ${o.minP})`);
    check(o.repeatPenalty > 0 && Number.isFinite(o.repeatPenalty), `repeat penalty must be > 0 (got ${o.repeatPenalty})`);
    check(Number.isInteger(o.repeatLastN) && o.repeatLastN >= 0, `repeat-last-n must be a non-negative integer (got ${o.repeatLastN})`);
    this.opts = o;
    this.seed = options.seed ?? Math.floor(Math.random() * 0xffffffff);
    check(Number.isInteger(this.seed) && this.seed >= 0 && this.seed <= 0xffffffff, `seed must be an integer in 0..4294967295 (got ${this.seed})`);
    this.rng = new Rng(this.seed);
    this.ids = new Int32Array(vocabSize);
    this.vals = new Float32Array(vocabSize);
    this.probs = new Float64Array(vocabSize);
    this.recent = new Int32Array(Math.max(1, o.repeatLastN));
  }

  /** Records a token the penalty should see (prompt and generated alike). */
  accept(token: number): void {
    if (this.opts.repeatLastN === 0) return;
    this.recent[this.recentHead] = token;
    this.recentHead = (this.recentHead + 1) % this.recent.length;
    this.nRecent = Math.min(this.nRecent + 1, this.recent.length);
  }

  /** Picks the next token from logits[offset … offset + vocabSize). */
  sample(logits: Float32Array, offset = 0): number {
    const { vals, ids, vocabSize } = this;
    for (let i = 0; i < vocabSize; i++) vals[i] = logits[offset + i];
    this.penalize();
    const o = this.opts;
    if (o.temperature === 0) return argmax(vals, vocabSize);

    let n = vocabSize;
    for (let i = 0; i < n; i++) ids[i] = i;
    if (o.topK > 0 && o.topK < n) n = this.keepTop(o.topK);
    else ids.sort(this.byLogitDesc); // n is the whole vocabulary here

    // Probabilities of the survivors at temperature 1, which top-p and min-p are defined on.
    this.softmaxIds(n, 1);
    if (o.topP < 1) {
      let cum = 0;
      for (let i = 0; i < n; i++) {
        cum += this.probs[i];
        if (cum >= o.topP) {
          n = i + 1;
          break;
        }
      }
    }
    if (o.minP > 0) {
      const floor = o.minP * this.probs[0];
      let keep = 1;
      while (keep < n && this.probs[keep] >= floor) keep++;
      n = keep;
    }
    this.softmaxIds(n, o.temperature);
    let r = this.rng.next();
    for (let i = 0; i < n; i++) {
      r -= this.probs[i];
      if (r < 0) return ids[i];
    }
    return ids[n - 1];
  }

  private penalize(): void {
    const p = this.opts.repeatPenalty;
    if (p === 1) return;
    const { vals, recent } = this;
    // A token repeated several times is penalised once, as in llama.cpp.
    for (let i = 0; i < this.nRecent; i++) {
      const t = recent[i];
      let seen = false;
      for (let j = 0; j < i; j++) if (recent[j] === t) seen = true;
      if (seen || t < 0 || t >= this.vocabSize) continue;
      vals[t] = vals[t] > 0 ? vals[t] / p : vals[t] * p;
    }
  }

  /** Moves the k largest logits' ids to the front, sorted descending; returns k. */
  private keepTop(k: number): number {
    const { ids, vals } = this;
    // Keep a sorted top-k window: cheap for the small k used in practice.
    let size = 0;
    for (let i = 0; i < this.vocabSize; i++) {
      const v = vals[i];
      if (size === k && !(v > vals[ids[k - 1]])) continue;
      let j = size < k ? size++ : k - 1;
      while (j > 0 && v > vals[ids[j - 1]]) {
        ids[j] = ids[j - 1];
        j--;
      }
      ids[j] = i;
    }
    return size;
  }

  private softmaxIds(n: number, temperature: number): void {
    const { ids, vals, probs } = this;
    const max = vals[ids[0]];
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const e = Math.exp((vals[ids[i]] - max) / temperature);
      probs[i] = e;
      sum += e;
    }
    for (let i = 0; i < n; i++) probs[i] /= sum;
  }
}

export function argmax(x: ArrayLike<number>, n: number, offset = 0): number {
  let best = 0;
  let bestVal = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = x[offset + i];
    if (v > bestVal) {
      bestVal = v;
      best = i;
    }
  }
  return best;
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new RangeError(message);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
