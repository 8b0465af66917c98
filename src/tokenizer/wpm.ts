/**
 * WordPiece (BERT) with llama.cpp's semantics (`llm_tokenizer_wpm_session` and the WPM branch of
 * `llama_vocab::impl::tokenize`): text is reduced to the first code point of each NFD
 * decomposition (which drops accents), lowercased, split at whitespace and around punctuation,
 * ASCII symbols and CJK ideographs; each word, with a "▁" in front, is cut greedily into the
 * longest tokens from the left, and becomes [UNK] as a whole if some position matches nothing.
 * add_special wraps the ids in [CLS] … [SEP].
 *
 * Decoding joins the pieces, "▁" read as a space, without the first word's space. It is not an
 * inverse of encode: case, accents and the spacing around punctuation are gone.
 */
import { RenderedPieces, wellFormed } from './rendered.js';
import { resolveSpecials, SpecialSplitter } from './specials.js';
import { TokenType } from './types.js';
import type { EncodeOptions, SpecialIds, StreamDecoder, Tokenizer, WpmVocab } from './types.js';
import { CpFlag, codePoints, cpFlags, nfdFirstCp, toLowerCp, utf8Length } from './unicode.js';

const SPACE_SYMBOL = '\u2581';

export class WpmTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bos: number;
  /** EOS if the vocabulary names one, else [SEP], the token add_special ends with. */
  readonly eos: number;
  readonly addBos: boolean;
  readonly vocab: WpmVocab;

  private readonly types: Int32Array;
  private readonly eog: ReadonlySet<number>;
  private readonly specials: SpecialSplitter;
  private readonly idOf = new Map<string, number>();
  /** Longest token in UTF-8 bytes. */
  private readonly maxTokenBytes: number;
  private readonly rendered: RenderedPieces;

  constructor(vocab: WpmVocab, specialIds: SpecialIds = {}) {
    const n = vocab.tokens.length;
    if (n === 0) throw new RangeError('WordPiece vocabulary is empty');
    if (vocab.types.length !== n) throw new RangeError(`WordPiece vocabulary has ${n} tokens but ${vocab.types.length} types`);
    for (const [name, id] of [['bos', vocab.bos], ['sep', vocab.sep], ['unk', vocab.unk], ['eos', vocab.eos ?? 0]] as const) {
      if (!Number.isInteger(id) || id < 0 || id >= n) {
        throw new RangeError(`WordPiece vocabulary: ${name} id ${id} is out of range for ${n} tokens`);
      }
    }
    this.vocab = vocab;
    this.vocabSize = n;
    this.bos = vocab.bos;
    this.eos = vocab.eos ?? vocab.sep;
    this.addBos = vocab.addBos;
    ({ types: this.types, eog: this.eog } = resolveSpecials(vocab.tokens, vocab.types, vocab.eos, specialIds));
    this.specials = new SpecialSplitter(vocab.tokens, this.types);
    let maxBytes = 0;
    vocab.tokens.forEach((t, id) => {
      this.idOf.set(t, id);
      maxBytes = Math.max(maxBytes, Buffer.byteLength(t, 'utf8'));
    });
    this.maxTokenBytes = maxBytes;

    const encoder = new TextEncoder();
    const pieces = vocab.tokens.map((text, id) => {
      switch (this.types[id]) {
        case TokenType.Normal:
          return encoder.encode(text.replaceAll(SPACE_SYMBOL, ' '));
        case TokenType.UserDefined:
          return encoder.encode(text);
        default:
          return new Uint8Array(0);
      }
    });
    this.rendered = new RenderedPieces(pieces, true);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const addSpecial = opts.addBos ?? this.vocab.addBos;
    const raw = wellFormed(text);
    const out: number[] = [];
    if (addSpecial) out.push(this.bos);
    if (raw.length > 0) {
      for (const f of this.specials.split(raw, opts.parseSpecial ?? false)) {
        if (f.id >= 0) out.push(f.id);
        else for (const word of splitWords(raw.slice(f.start, f.end))) this.encodeWord(word, out);
      }
    }
    if (addSpecial) out.push(this.vocab.sep);
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

  /** Greedy longest match from the left over code-point boundaries, as llama.cpp's byte loop ends up. */
  private encodeWord(word: number[], out: number[]): void {
    const cps = [SPACE_SYMBOL.codePointAt(0)!, ...word];
    const n = cps.length;
    const bytePos = new Int32Array(n + 1);
    for (let k = 0; k < n; k++) bytePos[k + 1] = bytePos[k] + utf8Length(cps[k]);
    const mark = out.length;
    for (let i = 0; i < n; ) {
      let j = n;
      while (j > i && bytePos[j] - bytePos[i] > this.maxTokenBytes) j--;
      let id: number | undefined;
      for (; j > i; j--) {
        id = this.idOf.get(String.fromCodePoint(...cps.slice(i, j)));
        if (id !== undefined) break;
      }
      if (id === undefined) {
        out.length = mark; // one unmatched position discards the whole word
        break;
      }
      out.push(id);
      i = j;
    }
    if (out.length === mark) out.push(this.vocab.unk);
  }
}

/** `llm_tokenizer_wpm_session::preprocess`: the words of a text, as code points. */
function splitWords(text: string): number[][] {
  const words: number[][] = [];
  let word: number[] = [];
  const finish = () => {
    if (word.length > 0) words.push(word);
    word = [];
  };
  for (const original of codePoints(text)) {
    const cp = nfdFirstCp(original);
    const flags = cpFlags(cp);
    if (flags & CpFlag.Whitespace) {
      finish();
      continue;
    }
    if (cp === 0 || cp === 0xfffd || flags & CpFlag.Control) continue;
    const lower = toLowerCp(cp);
    if (flags & CpFlag.Punctuation || (cp < 0x7f && flags & CpFlag.Symbol) || isChineseChar(cp)) {
      finish();
      words.push([lower]);
    } else {
      word.push(lower);
    }
  }
  finish();
  return words;
}

/** BERT's CJK ranges (the 0x2B920 bound follows the HF Rust code, as llama.cpp does). */
function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}
