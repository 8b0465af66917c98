/**
 * SentencePiece-style (SPM) tokenizer with llama.cpp's semantics (`llm_tokenizer_spm`,
 * `llama_vocab::impl::tokenize` and `token_to_piece` for vocab type SPM), so that ids match
 * llama.cpp's exactly.
 *
 * Where this deliberately differs from llama.cpp:
 * - Decoding drops the dummy-prefix space of the first token that renders text even after a BOS
 *   (llama.cpp's detokenize keeps it after a BOS); this is what makes decode(encode(x)) === x.
 * - A byte-fallback byte whose `<0xNN>` token is missing becomes unk (llama.cpp throws).
 * - Text is taken as its UTF-8 encoding, so a lone UTF-16 surrogate is read as U+FFFD.
 * - Special tokens of equal byte length are tried in id order (llama.cpp's std::sort leaves the
 *   order unspecified); the per-model LSTRIP/RSTRIP attributes (phi-3, jina) are not modelled.
 */
import { RenderedPieces, wellFormed } from './rendered.js';
import { resolveSpecials, SpecialSplitter } from './specials.js';
import { TokenType } from './types.js';
import type { EncodeOptions, SpecialIds, SpmVocab, StreamDecoder, Tokenizer } from './types.js';

const SPACE_SYMBOL = '\u2581';
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

/** Max-heap of candidate merges ordered like llama.cpp's `llm_bigram_spm::comparator`. */
class BigramHeap {
  private score = new Float32Array(1024);
  private left = new Int32Array(1024);
  private right = new Int32Array(1024);
  private size = new Int32Array(1024);
  private token = new Int32Array(1024);
  length = 0;

  /** Fields of the entry removed by the last pop(). */
  topLeft = 0;
  topRight = 0;
  topSize = 0;
  topToken = 0;

  push(score: number, left: number, right: number, size: number, token: number): void {
    if (this.length === this.score.length) this.grow();
    let i = this.length++;
    // Sift up: higher score first, then the leftmost pair.
    while (i > 0) {
      const p = (i - 1) >> 1;
      const ps = this.score[p];
      if (ps > score || (ps === score && this.left[p] <= left)) break;
      this.move(p, i);
      i = p;
    }
    this.set(i, score, left, right, size, token);
  }

  pop(): void {
    this.topLeft = this.left[0];
    this.topRight = this.right[0];
    this.topSize = this.size[0];
    this.topToken = this.token[0];
    const last = --this.length;
    if (last === 0) return;
    const score = this.score[last];
    const left = this.left[last];
    const right = this.right[last];
    const size = this.size[last];
    const token = this.token[last];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= last) break;
      if (c + 1 < last && this.before(c + 1, c)) c++;
      const cs = this.score[c];
      if (score > cs || (score === cs && left < this.left[c])) break;
      this.move(c, i);
      i = c;
    }
    this.set(i, score, left, right, size, token);
  }

  private before(a: number, b: number): boolean {
    const sa = this.score[a];
    const sb = this.score[b];
    return sa > sb || (sa === sb && this.left[a] < this.left[b]);
  }

  private move(from: number, to: number): void {
    this.score[to] = this.score[from];
    this.left[to] = this.left[from];
    this.right[to] = this.right[from];
    this.size[to] = this.size[from];
    this.token[to] = this.token[from];
  }

  private set(i: number, score: number, left: number, right: number, size: number, token: number): void {
    this.score[i] = score;
    this.left[i] = left;
    this.right[i] = right;
    this.size[i] = size;
    this.token[i] = token;
  }

  private grow(): void {
    const n = this.score.length * 2;
    const score = new Float32Array(n);
    const left = new Int32Array(n);
    const right = new Int32Array(n);
    const size = new Int32Array(n);
    const token = new Int32Array(n);
    score.set(this.score);
    left.set(this.left);
    right.set(this.right);
    size.set(this.size);
    token.set(this.token);
    this.score = score;
    this.left = left;
    this.right = right;
    this.size = size;
    this.token = token;
  }
}

/**
 * Which token two adjacent symbols merge into, keyed by symbol ids rather than by concatenated
 * text, so the merge loop allocates no strings. A symbol is always a token (merges only form
 * tokens) or a single code point; code points that are not tokens themselves get ids from
 * vocabSize up. Pair (a, b) maps to t exactly when text(a) + text(b) is token t, so every lookup
 * agrees with llama.cpp's lookup of the concatenated text in the full token map.
 */
class MergeTable {
  private readonly pairs = new Map<number, number>();
  private readonly codePointSymbol = new Map<number, number>();
  private readonly pseudo = new Map<string, number>();
  private readonly stride: number;

  constructor(
    private readonly idOf: ReadonlyMap<string, number>,
    private readonly vocabSize: number,
  ) {
    const splits: [string, string, number][] = [];
    for (const [text, id] of idOf) {
      for (let k = codePointEnd(text, 0); k < text.length; k = codePointEnd(text, k)) {
        const a = text.slice(0, k);
        const b = text.slice(k);
        splits.push([a, b, id]);
        for (const part of [a, b]) {
          if (!idOf.has(part) && isOneCodePoint(part) && !this.pseudo.has(part)) {
            this.pseudo.set(part, vocabSize + this.pseudo.size);
          }
        }
      }
    }
    this.stride = vocabSize + this.pseudo.size;
    for (const [a, b, id] of splits) {
      const sa = this.textSymbol(a);
      const sb = this.textSymbol(b);
      if (sa >= 0 && sb >= 0) this.pairs.set(sa * this.stride + sb, id);
    }
  }

  /** Symbol id of the code point starting at text[i]: a token id, a pseudo id, or -1 (never merges). */
  symbolAt(text: string, i: number): number {
    const cp = text.codePointAt(i)!;
    let sym = this.codePointSymbol.get(cp);
    if (sym === undefined) {
      sym = this.textSymbol(String.fromCodePoint(cp));
      this.codePointSymbol.set(cp, sym);
    }
    return sym;
  }

  /** The token symbols a and b merge into, or -1. */
  merge(a: number, b: number): number {
    if (a < 0 || b < 0) return -1;
    return this.pairs.get(a * this.stride + b) ?? -1;
  }

  isToken(sym: number): boolean {
    return sym >= 0 && sym < this.vocabSize;
  }

  private textSymbol(text: string): number {
    return this.idOf.get(text) ?? this.pseudo.get(text) ?? -1;
  }
}

export class SpmTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bos: number;
  readonly eos: number;
  readonly addBos: boolean;
  /** The vocabulary as given (e.g. to embed it in a GGUF file). */
  readonly vocab: SpmVocab;

  /** Token type per id, after llama.cpp's control-type overrides. */
  private readonly types: Int32Array;
  private readonly merges: MergeTable;
  /** Token id for each byte value's `<0xNN>` piece (unk when the vocabulary lacks it). */
  private readonly byteToken = new Int32Array(256);
  /** UTF-8 bytes each token renders as in decode (empty for control/unknown/unused). */
  private readonly rendered: RenderedPieces;
  private readonly specials: SpecialSplitter;
  private readonly eog: ReadonlySet<number>;
  private readonly heap = new BigramHeap();
  private readonly run = new SymbolRun();

  constructor(vocab: SpmVocab, specialIds: SpecialIds = {}) {
    const n = vocab.tokens.length;
    if (n === 0) throw new RangeError('SPM vocabulary is empty');
    if (vocab.scores.length !== n || vocab.types.length !== n) {
      throw new RangeError(
        `SPM vocabulary has ${n} tokens but ${vocab.scores.length} scores and ${vocab.types.length} types`,
      );
    }
    for (const [name, id] of [['bos', vocab.bos], ['eos', vocab.eos], ['unk', vocab.unk]] as const) {
      if (!Number.isInteger(id) || id < 0 || id >= n) {
        throw new RangeError(`SPM vocabulary: ${name} id ${id} is out of range for ${n} tokens`);
      }
    }
    this.vocab = vocab;
    this.vocabSize = n;
    this.bos = vocab.bos;
    this.eos = vocab.eos;
    this.addBos = vocab.addBos;
    ({ types: this.types, eog: this.eog } = resolveSpecials(vocab.tokens, vocab.types, vocab.eos, specialIds));

    // Like llama.cpp's token_to_id map, a repeated text resolves to its last id.
    const idOf = new Map<string, number>();
    for (let id = 0; id < n; id++) idOf.set(vocab.tokens[id], id);
    this.merges = new MergeTable(idOf, n);

    for (let b = 0; b < 256; b++) {
      this.byteToken[b] = idOf.get(bytePieceName(b)) ?? vocab.unk;
    }

    const encoder = new TextEncoder();
    const pieces = vocab.tokens.map((text, id) => {
      switch (this.types[id]) {
        case TokenType.Normal:
          return encoder.encode(text.replaceAll(SPACE_SYMBOL, ' '));
        case TokenType.UserDefined:
          return encoder.encode(text);
        case TokenType.Byte: {
          const m = BYTE_PIECE.exec(text);
          if (!m) throw new RangeError(`SPM vocabulary: byte token ${id} is named "${text}", not <0xNN>`);
          return Uint8Array.of(parseInt(m[1], 16));
        }
        default:
          return new Uint8Array(0);
      }
    });
    this.rendered = new RenderedPieces(pieces, vocab.addSpacePrefix);

    this.specials = new SpecialSplitter(vocab.tokens, this.types);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const addBos = opts.addBos ?? this.vocab.addBos;
    // llama.cpp's add_special governs both BOS and EOS: turning BOS off turns EOS off too.
    const addEos = this.vocab.addEos && opts.addBos !== false;
    const raw = wellFormed(text);
    const out: number[] = [];
    if (addBos) out.push(this.bos);
    if (raw.length > 0) {
      let prevSpecial = true;
      for (const f of this.specials.split(raw, opts.parseSpecial ?? false)) {
        if (f.id >= 0) {
          out.push(f.id);
          prevSpecial = true;
          continue;
        }
        let piece = raw.slice(f.start, f.end);
        if (this.vocab.addSpacePrefix && prevSpecial) piece = ' ' + piece;
        this.tokenizeFragment(piece.replaceAll(' ', SPACE_SYMBOL), out);
        prevSpecial = false;
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
    const text = this.vocab.tokens[this.rendered.checkId(id)];
    return this.types[id] === TokenType.Normal ? text.replaceAll(SPACE_SYMBOL, ' ') : text;
  }

  isEog(id: number): boolean {
    return this.eog.has(id);
  }

  specialTokenId(text: string): number | undefined {
    return this.specials.idOf(text);
  }

  /**
   * llama.cpp's `llm_tokenizer_spm_session::tokenize`: start from single code points and keep
   * merging the adjacent pair whose concatenation is the highest-scoring token (leftmost on ties).
   *
   * A code point that occurs in no token can never merge, so it cuts the text into runs that merge
   * independently; each run sees the same merges in the same order as in one big run, while the
   * heap and the symbol arrays only ever hold one run (for most vocabularies a newline is a cut).
   *
   * llama.cpp also records how each merged text was formed (rev_merge) to re-split final symbols
   * that are not tokens. That path never fires for well-formed text: a merge only happens when the
   * concatenation is a token, so a final symbol is either a token or one unmerged code point,
   * which goes to byte fallback. It is therefore left out.
   */
  private tokenizeFragment(text: string, out: number[]): void {
    const run = this.run;
    run.count = 0;
    for (let i = 0; i < text.length; ) {
      const end = codePointEnd(text, i);
      const sym = this.merges.symbolAt(text, i);
      if (sym >= 0) {
        run.add(sym, i, end - i);
      } else {
        this.mergeRun(text, out);
        this.pushBytes(text.slice(i, end), out);
      }
      i = end;
    }
    this.mergeRun(text, out);
  }

  /** Merges the symbols in this.run as far as the vocabulary allows, emits them and empties the run. */
  private mergeRun(text: string, out: number[]): void {
    const { count, sym, start, len, prev, next } = this.run;
    if (count === 0) return;
    this.run.count = 0;
    for (let i = 0; i < count; i++) {
      prev[i] = i - 1;
      next[i] = i + 1;
    }
    next[count - 1] = -1;

    const heap = this.heap;
    const merges = this.merges;
    const scores = this.vocab.scores;
    const tryAdd = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const token = merges.merge(sym[left], sym[right]);
      if (token >= 0) heap.push(scores[token], left, right, len[left] + len[right], token);
    };

    heap.length = 0;
    for (let i = 1; i < count; i++) tryAdd(i - 1, i);
    while (heap.length > 0) {
      heap.pop();
      const left = heap.topLeft;
      const right = heap.topRight;
      // Stale entry: one side was merged away or grew since the pair was queued.
      if (len[left] === 0 || len[right] === 0 || len[left] + len[right] !== heap.topSize) continue;
      sym[left] = heap.topToken;
      len[left] += len[right];
      len[right] = 0;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      tryAdd(prev[left], left);
      tryAdd(left, next[left]);
    }

    for (let i = 0; i !== -1; i = next[i]) {
      if (merges.isToken(sym[i])) out.push(sym[i]);
      else this.pushBytes(text.slice(start[i], start[i] + len[i]), out);
    }
  }

  /** Byte fallback: one `<0xNN>` token per UTF-8 byte. */
  private pushBytes(symbol: string, out: number[]): void {
    for (const b of Buffer.from(symbol, 'utf8')) out.push(this.byteToken[b]);
  }
}

/** The symbols of one run: a doubly linked list over its code points, in reusable arrays. */
class SymbolRun {
  count = 0;
  /** Token id, or MergeTable pseudo id. */
  sym = new Int32Array(256);
  /** Position in the text and length, in UTF-16 units; len 0 once merged into the left neighbour. */
  start = new Int32Array(256);
  len = new Int32Array(256);
  prev = new Int32Array(256);
  next = new Int32Array(256);

  add(sym: number, start: number, len: number): void {
    if (this.count === this.sym.length) this.grow();
    this.sym[this.count] = sym;
    this.start[this.count] = start;
    this.len[this.count] = len;
    this.count++;
  }

  private grow(): void {
    const n = this.sym.length * 2;
    const grown = (a: Int32Array) => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.sym = grown(this.sym);
    this.start = grown(this.start);
    this.len = grown(this.len);
    this.prev = new Int32Array(n);
    this.next = new Int32Array(n);
  }
}

function bytePieceName(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** Index just past the code point that starts at s[i] (text here is well-formed UTF-16). */
function codePointEnd(s: string, i: number): number {
  return s.codePointAt(i)! > 0xffff ? i + 2 : i + 1;
}

function isOneCodePoint(s: string): boolean {
  return s.length > 0 && codePointEnd(s, 0) === s.length;
}
