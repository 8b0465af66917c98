/**
 * Byte-level BPE (GPT-2 style) with llama.cpp's semantics (`llm_tokenizer_bpe_session`,
 * `llama_vocab::impl::tokenize` and `token_to_piece` for vocab type BPE), so that ids match
 * llama.cpp's exactly: special tokens are cut out first, the rest is split into words by the
 * pre-tokenizer of `tokenizer.ggml.pre`, each word is written in the byte alphabet and merged,
 * lowest merge rank first (leftmost on ties).
 *
 * Where this deliberately differs from llama.cpp:
 * - A token character outside the byte alphabet decodes as its own UTF-8 (llama.cpp writes
 *   "[UNK_BYTE_…]"); decode applies no clean_up_tokenization_spaces pass, so that
 *   decode(encode(x)) === x.
 * - Special tokens of equal byte length are tried in id order (see SpecialSplitter).
 */
import { BYTE_TO_CHAR, CHAR_TO_BYTE, toByteAlphabet } from './byte-unicode.js';
import { preTokenizerFor, WordSplitter } from './pre-tokenizer.js';
import type { PreTokenizer } from './pre-tokenizer.js';
import { RenderedPieces, wellFormed } from './rendered.js';
import { resolveSpecials, SpecialSplitter } from './specials.js';
import { TokenType } from './types.js';
import type { BpeVocab, EncodeOptions, SpecialIds, StreamDecoder, Tokenizer } from './types.js';

/** Words whose ids are remembered; text repeats words a lot, and merging is the costly part. */
const CACHE_LIMIT = 1 << 16;

export class BpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bos: number;
  readonly eos: number;
  readonly addBos: boolean;
  readonly vocab: BpeVocab;
  readonly preTokenizer: PreTokenizer;

  private readonly types: Int32Array;
  private readonly eog: ReadonlySet<number>;
  private readonly specials: SpecialSplitter;
  private readonly words: WordSplitter;
  private readonly merges: MergeTable;
  private readonly rendered: RenderedPieces;
  private readonly cache = new Map<string, number[]>();
  private readonly heap = new PairHeap();

  constructor(vocab: BpeVocab, specialIds: SpecialIds = {}) {
    const n = vocab.tokens.length;
    if (n === 0) throw new RangeError('BPE vocabulary is empty');
    if (vocab.types.length !== n) throw new RangeError(`BPE vocabulary has ${n} tokens but ${vocab.types.length} types`);
    for (const [name, id] of [['bos', vocab.bos], ['eos', vocab.eos]] as const) {
      if (!Number.isInteger(id) || id < 0 || id >= n) {
        throw new RangeError(`BPE vocabulary: ${name} id ${id} is out of range for ${n} tokens`);
      }
    }
    const pre = preTokenizerFor(vocab.pre);
    if (!pre) throw new RangeError(`BPE vocabulary: unknown pre-tokenizer "${vocab.pre}"`);
    this.vocab = vocab;
    this.vocabSize = n;
    this.bos = vocab.bos;
    this.eos = vocab.eos;
    this.addBos = vocab.addBos;
    this.preTokenizer = pre;
    this.words = new WordSplitter(pre.patterns);
    ({ types: this.types, eog: this.eog } = resolveSpecials(vocab.tokens, vocab.types, vocab.eos, specialIds));
    this.specials = new SpecialSplitter(vocab.tokens, this.types);
    this.merges = new MergeTable(vocab.tokens, vocab.merges);

    const pieces = vocab.tokens.map((text, id) => {
      switch (this.types[id]) {
        case TokenType.Normal:
          return fromByteAlphabet(text);
        case TokenType.UserDefined:
          return utf8.encode(text);
        default:
          return new Uint8Array(0);
      }
    });
    this.rendered = new RenderedPieces(pieces, false);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const addBos = opts.addBos ?? this.vocab.addBos;
    // llama.cpp's add_special governs both BOS and EOS: turning BOS off turns EOS off too.
    const addEos = this.vocab.addEos && opts.addBos !== false;
    const raw = wellFormed(text);
    const out: number[] = [];
    if (addBos) out.push(this.bos);
    if (raw.length > 0) {
      for (const f of this.specials.split(raw, opts.parseSpecial ?? false)) {
        if (f.id >= 0) out.push(f.id);
        else for (const word of this.words.split(raw.slice(f.start, f.end))) this.encodeWord(word, out);
      }
    }
    if (addEos) out.push(this.eos);
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    return this.rendered.decode(ids);
  }

  decoder(): StreamDecoder {
    return this.rendered.decoder();
  }

  piece(id: number): string {
    this.rendered.checkId(id);
    if (this.types[id] !== TokenType.Normal) return this.vocab.tokens[id];
    return new TextDecoder().decode(fromByteAlphabet(this.vocab.tokens[id]));
  }

  isEog(id: number): boolean {
    return this.eog.has(id);
  }

  specialTokenId(text: string): number | undefined {
    return this.specials.idOf(text);
  }

  private encodeWord(word: string, out: number[]): void {
    let ids = this.cache.get(word);
    if (!ids) {
      ids = this.mergeWord(toByteAlphabet(word));
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(word, ids);
    }
    for (const id of ids) out.push(id);
  }

  /** `llm_tokenizer_bpe_session::tokenize` for one word written in the byte alphabet. */
  private mergeWord(word: string): number[] {
    const merges = this.merges;
    if (this.preTokenizer.ignoreMerges) {
      const whole = merges.tokenOf(word);
      if (whole >= 0) return [whole];
    }
    const count = word.length; // one alphabet character per byte
    if (count === 0) return [];
    const sym = new Int32Array(count);
    const prev = new Int32Array(count);
    const next = new Int32Array(count);
    const alive = new Uint8Array(count).fill(1);
    for (let i = 0; i < count; i++) {
      sym[i] = merges.charSymbol(word.charCodeAt(i));
      prev[i] = i - 1;
      next[i] = i + 1;
    }
    next[count - 1] = -1;

    const heap = this.heap;
    heap.clear();
    const tryAdd = (left: number, right: number) => {
      if (left < 0 || right < 0) return;
      const rank = merges.rank(sym[left], sym[right]);
      if (rank >= 0) heap.push(rank, left, right, sym[left], sym[right]);
    };
    for (let i = 1; i < count; i++) tryAdd(i - 1, i);
    while (heap.size > 0) {
      heap.pop();
      const { topLeft: left, topRight: right } = heap;
      // Stale entry: a side was merged away or grew since the pair was queued (symbols only grow,
      // so unchanged symbols mean unchanged text, which is llama.cpp's test).
      if (!alive[left] || !alive[right] || sym[left] !== heap.topLeftSym || sym[right] !== heap.topRightSym) continue;
      sym[left] = merges.result(sym[left], sym[right]);
      alive[right] = 0;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      tryAdd(prev[left], left);
      tryAdd(left, next[left]);
    }

    const ids: number[] = [];
    for (let i = 0; i !== -1; i = next[i]) {
      const token = merges.isToken(sym[i]) ? sym[i] : -1;
      if (token >= 0) {
        ids.push(token);
        continue;
      }
      // Not a token: llama.cpp looks up each byte of the symbol's UTF-8 as a one-byte token, which
      // only ASCII alphabet characters can be.
      const text = sym[i] >= 0 ? merges.text(sym[i]) : word[i];
      for (const ch of text) {
        const id = ch.charCodeAt(0) < 0x80 ? merges.tokenOf(ch) : -1;
        if (id >= 0) ids.push(id);
      }
    }
    return ids;
  }
}

const utf8 = new TextEncoder();

/** The bytes a token written in the byte alphabet stands for. */
function fromByteAlphabet(text: string): Uint8Array {
  const bytes: number[] = [];
  for (const ch of text) {
    const b = CHAR_TO_BYTE.get(ch.codePointAt(0)!);
    if (b !== undefined) bytes.push(b);
    else bytes.push(...utf8.encode(ch));
  }
  return Uint8Array.from(bytes);
}

/**
 * The merge rules over symbol ids instead of strings: a symbol is a token (its id) or a string
 * that merges name but the vocabulary lacks (ids from vocabSize up). Pair (a, b) has the rank of
 * the first rule "text(a) text(b)", exactly like llama.cpp's bpe_ranks lookup by strings.
 */
class MergeTable {
  readonly vocabSize: number;
  private readonly idOf = new Map<string, number>();
  private readonly texts: string[];
  /** Pair key a * stride + b → rank. */
  private readonly pairs = new Map<number, number>();
  /** Rank → symbol the pair merges into. */
  private readonly results: Int32Array;
  private readonly stride: number;
  private readonly byChar = new Map<number, number>();

  constructor(
    tokens: readonly string[],
    merges: readonly string[],
  ) {
    this.vocabSize = tokens.length;
    this.texts = [...tokens];
    tokens.forEach((t, id) => this.idOf.set(t, id));
    const intern = (s: string): number => {
      let id = this.idOf.get(s);
      if (id === undefined) {
        id = this.texts.length;
        this.texts.push(s);
        this.idOf.set(s, id);
      }
      return id;
    };
    const rules: [number, number, number][] = [];
    for (const rule of merges) {
      // llama.cpp splits at the first space after the first character; a rule without one pairs
      // two empty strings, which never occur.
      const at = rule.indexOf(' ', 1);
      if (at < 0) continue;
      const left = rule.slice(0, at);
      const right = rule.slice(at + 1);
      rules.push([intern(left), intern(right), intern(left + right)]);
    }
    this.stride = this.texts.length;
    this.results = new Int32Array(rules.length);
    rules.forEach(([a, b, r], rank) => {
      const key = a * this.stride + b;
      if (this.pairs.has(key)) return; // the first rule for a pair wins (map emplace)
      this.pairs.set(key, rank);
      this.results[rank] = r;
    });
    for (let b = 0; b < 256; b++) {
      const c = BYTE_TO_CHAR[b];
      this.byChar.set(c.charCodeAt(0), this.idOf.get(c) ?? -1);
    }
  }

  /** Symbol of one byte-alphabet character, or -1 if no token or rule names it. */
  charSymbol(code: number): number {
    return this.byChar.get(code) ?? -1;
  }

  /** Merge rank of the pair (a, b), or -1. */
  rank(a: number, b: number): number {
    if (a < 0 || b < 0) return -1;
    return this.pairs.get(a * this.stride + b) ?? -1;
  }

  /** Symbol that the pair (a, b) merges into (the pair must have a rank). */
  result(a: number, b: number): number {
    return this.results[this.pairs.get(a * this.stride + b)!];
  }

  isToken(sym: number): boolean {
    return sym >= 0 && sym < this.vocabSize;
  }

  text(sym: number): string {
    return this.texts[sym];
  }

  /** Token id of a text, or -1. */
  tokenOf(text: string): number {
    const id = this.idOf.get(text);
    return id !== undefined && id < this.vocabSize ? id : -1;
  }
}

/** Min-heap of candidate merges ordered like llama.cpp's `llm_bigram_bpe::comparator`: rank, then left. */
class PairHeap {
  private rank = new Int32Array(256);
  private left = new Int32Array(256);
  private right = new Int32Array(256);
  private leftSym = new Int32Array(256);
  private rightSym = new Int32Array(256);
  size = 0;

  topLeft = 0;
  topRight = 0;
  topLeftSym = 0;
  topRightSym = 0;

  clear(): void {
    this.size = 0;
  }

  push(rank: number, left: number, right: number, leftSym: number, rightSym: number): void {
    if (this.size === this.rank.length) this.grow();
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.rank[p] < rank || (this.rank[p] === rank && this.left[p] <= left)) break;
      this.move(p, i);
      i = p;
    }
    this.set(i, rank, left, right, leftSym, rightSym);
  }

  pop(): void {
    this.topLeft = this.left[0];
    this.topRight = this.right[0];
    this.topLeftSym = this.leftSym[0];
    this.topRightSym = this.rightSym[0];
    const last = --this.size;
    if (last === 0) return;
    const rank = this.rank[last];
    const left = this.left[last];
    const right = this.right[last];
    const leftSym = this.leftSym[last];
    const rightSym = this.rightSym[last];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= last) break;
      if (c + 1 < last && (this.rank[c + 1] < this.rank[c] || (this.rank[c + 1] === this.rank[c] && this.left[c + 1] < this.left[c]))) c++;
      if (rank < this.rank[c] || (rank === this.rank[c] && left < this.left[c])) break;
      this.move(c, i);
      i = c;
    }
    this.set(i, rank, left, right, leftSym, rightSym);
  }

  private move(from: number, to: number): void {
    this.set(to, this.rank[from], this.left[from], this.right[from], this.leftSym[from], this.rightSym[from]);
  }

  private set(i: number, rank: number, left: number, right: number, leftSym: number, rightSym: number): void {
    this.rank[i] = rank;
    this.left[i] = left;
    this.right[i] = right;
    this.leftSym[i] = leftSym;
    this.rightSym[i] = rightSym;
  }

  private grow(): void {
    const grown = (a: Int32Array) => {
      const b = new Int32Array(a.length * 2);
      b.set(a);
      return b;
    };
    this.rank = grown(this.rank);
    this.left = grown(this.left);
    this.right = grown(this.right);
    this.leftSym = grown(this.leftSym);
    this.rightSym = grown(this.rightSym);
  }
}
