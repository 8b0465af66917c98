import { generate } from '../engine/generate.js';
import type { Model } from '../engine/model.js';
import { Rng } from '../engine/rng.js';
import type { KvPolicy } from '../kv/cache.js';
import type { Tokenizer } from '../tokenizer/types.js';

/** Accuracy of one policy at one depth; depth 'all' is the policy's overall row. */
export interface PasskeyRow {
  readonly label: string;
  /** Needle position as a fraction of the filler (0 = start, 1 = end), or 'all'. */
  readonly depth: number | 'all';
  readonly trials: number;
  readonly correct: number;
  readonly accuracy: number;
}

export interface PasskeyOptions {
  /** Context of each session; the prompt fits in ctx − 16 tokens. */
  readonly ctx: number;
  /** Needle depths as fractions of the filler (default [0, 0.25, 0.5, 0.75, 1]). */
  readonly depths?: readonly number[];
  /** Trials per depth (default 2). */
  readonly trials?: number;
  /** Key seed (default 0): the key of trial t at depth index d comes from Rng(seed + t + d). */
  readonly seed?: number;
  readonly policies: readonly { readonly label: string; readonly policy: KvPolicy }[];
  /** Called after each generation: done and total over policies × depths × trials. */
  readonly onProgress?: (done: number, total: number) => void;
  /** Stops after the current generation; rows cover the trials done. */
  readonly signal?: AbortSignal;
}

export const PASSKEY_FILLER = ['The grass is green.', 'The sky is blue.', 'The sun is yellow.', 'Here we go.', 'There and back again.'];
export const PASSKEY_QUESTION = 'What is the pass key? The pass key is';
/** Tokens left free in the context for the answer. */
export const PASSKEY_RESERVE = 16;
const MAX_TOKENS = 8;

export interface PasskeyPrompt {
  readonly prompt: string;
  readonly key: number;
  /** Filler sentences in the prompt. */
  readonly fillerSentences: number;
  /** Filler sentences before the needle. */
  readonly insertAt: number;
  /** Prompt tokens as generate() encodes it (with the tokenizer's BOS rule). */
  readonly tokens: number;
}

/** The 5-digit key of a trial: Rng(seed + trial + depthIndex), uniform in 10000 … 99999. */
export function passkeyKey(seed: number, trial: number, depthIndex: number): number {
  return 10000 + Math.floor(new Rng(seed + trial + depthIndex).next() * 90000);
}

function needle(key: number): string {
  return `The pass key is ${key}. Remember it. ${key} is the pass key.`;
}

function build(nFiller: number, depth: number, key: number): { prompt: string; insertAt: number } {
  const insertAt = Math.round(depth * nFiller);
  const parts: string[] = [];
  for (let i = 0; i < nFiller; i++) {
    if (i === insertAt) parts.push(needle(key));
    parts.push(PASSKEY_FILLER[i % PASSKEY_FILLER.length]);
  }
  if (insertAt === nFiller) parts.push(needle(key));
  parts.push(PASSKEY_QUESTION);
  return { prompt: parts.join(' '), insertAt };
}

/**
 * The longest prompt (most filler sentences) that fits in ctx − 16 tokens, with the needle after
 * round(depth · sentences) filler sentences.
 */
export function passkeyPrompt(tokenizer: Pick<Tokenizer, 'encode'>, ctx: number, depth: number, key: number): PasskeyPrompt {
  if (!(depth >= 0 && depth <= 1)) throw new RangeError(`passkey depth must be a fraction in [0, 1] (got ${depth})`);
  const budget = ctx - PASSKEY_RESERVE;
  const count = (n: number): number => tokenizer.encode(build(n, depth, key).prompt).length;
  if (count(0) > budget) throw new RangeError(`context ${ctx} is too small for the passkey prompt (${count(0)} tokens without filler + ${PASSKEY_RESERVE} for the answer)`);
  // Tokens grow with the sentence count; search for the largest count that fits, then step back
  // should tokenization ever be non-monotone.
  let lo = 0;
  let hi = 1;
  while (count(hi) <= budget) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (count(mid) <= budget) lo = mid;
    else hi = mid;
  }
  while (lo > 0 && count(lo) > budget) lo--;
  const { prompt, insertAt } = build(lo, depth, key);
  return { prompt, key, fillerSentences: lo, insertAt, tokens: count(lo) };
}

/** True when the first five digits of the output are the key. */
export function passkeyCorrect(output: string, key: number): boolean {
  return output.replace(/[^0-9]/g, '').slice(0, 5) === String(key);
}

/**
 * Passkey retrieval: a key hidden at several depths of a filler text, then asked for; greedy
 * decoding of up to 8 tokens in a fresh session per policy and trial. Returns one row per policy
 * and depth, then one 'all' row per policy.
 */
export async function passkey(model: Model, opts: PasskeyOptions): Promise<PasskeyRow[]> {
  const depths = opts.depths ?? [0, 0.25, 0.5, 0.75, 1];
  const trials = opts.trials ?? 2;
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(opts.ctx) || opts.ctx < 1) throw new RangeError(`context must be a positive integer (got ${opts.ctx})`);
  if (!Number.isInteger(trials) || trials < 1) throw new RangeError(`trials must be a positive integer (got ${trials})`);
  if (depths.length === 0) throw new RangeError('passkey needs at least one depth');
  if (opts.policies.length === 0) throw new RangeError('passkey needs at least one policy');
  // Prompts depend only on depth and trial: build them once, and fail early on a bad depth or ctx.
  const prompts = depths.map((depth, d) => Array.from({ length: trials }, (_, t) => passkeyPrompt(model.tokenizer, opts.ctx, depth, passkeyKey(seed, t, d))));
  const total = opts.policies.length * depths.length * trials;
  let done = 0;
  const rows: PasskeyRow[] = [];
  const overall: PasskeyRow[] = [];
  outer: for (const { label, policy } of opts.policies) {
    let allTrials = 0;
    let allCorrect = 0;
    for (let d = 0; d < depths.length; d++) {
      let ran = 0;
      let correct = 0;
      for (const p of prompts[d]) {
        if (opts.signal?.aborted) {
          if (ran > 0) rows.push(row(label, depths[d], ran, correct));
          allTrials += ran;
          allCorrect += correct;
          if (allTrials > 0) overall.push(row(label, 'all', allTrials, allCorrect));
          break outer;
        }
        const session = model.createSession({ ctx: opts.ctx, policy });
        const it = generate(session, model.tokenizer, p.prompt, { temperature: 0, maxTokens: MAX_TOKENS, signal: opts.signal });
        let r = await it.next();
        while (!r.done) r = await it.next();
        ran++;
        if (passkeyCorrect(r.value.text, p.key)) correct++;
        opts.onProgress?.(++done, total);
      }
      rows.push(row(label, depths[d], ran, correct));
      allTrials += ran;
      allCorrect += correct;
    }
    overall.push(row(label, 'all', allTrials, allCorrect));
  }
  return [...rows, ...overall];
}

function row(label: string, depth: number | 'all', trials: number, correct: number): PasskeyRow {
  return { label, depth, trials, correct, accuracy: trials === 0 ? 0 : correct / trials };
}
