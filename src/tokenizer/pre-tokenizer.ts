/**
 * The pre-tokenizers of byte-level BPE vocabularies: how llama.cpp (src/llama-vocab.cpp and
 * src/unicode.cpp @ c392e50) cuts text into words before merging, selected by the GGUF key
 * `tokenizer.ggml.pre`.
 *
 * A pre-tokenizer is a list of regexes applied in turn; each one cuts every piece left by the
 * previous ones into its matches and the text between them (nothing is dropped). Like llama.cpp:
 * - the GPT-2 and Llama-3 patterns run as hand-written splitters (`unicode_regex_split_custom_*`),
 *   which is what llama.cpp executes for them;
 * - a pattern that uses \p{…} runs on a "collapsed" text where each code point ≥ 128 becomes one
 *   stand-in character for its category (and the pattern's \p{X} matches that stand-in plus the
 *   ASCII members of X), because std::regex has no Unicode classes;
 * - any other pattern runs on the code points themselves, with non-ASCII whitespace replaced by
 *   U+000B, and \s meaning ASCII whitespace only (std::wregex in the C locale).
 */
import { CATEGORY_MASK, CpFlag, codePoints, cpFlags, toLowerCp } from './unicode.js';

/** A pattern: one of llama.cpp's hand-written splitters, or a std::regex (ECMAScript) source. */
type Pattern = 'gpt2' | 'llama3' | string;

export interface PreTokenizer {
  /** The llama.cpp pre-tokenizer type (LLAMA_VOCAB_PRE_TYPE_*), lower case. */
  readonly type: string;
  readonly patterns: readonly Pattern[];
  /** A word that is itself a token is emitted whole, without merging (Llama 3, Tekken). */
  readonly ignoreMerges: boolean;
  /** llama.cpp's add_bos default for this type (tokenizer.ggml.add_bos_token overrides it). */
  readonly addBos: boolean;
}

const GPT2: Pattern = 'gpt2';
const LLAMA3: Pattern = 'llama3';
const CJK = '[一-龥ࠀ-一가-퟿]+';
const QWEN2 = String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const BLOOM = String.raw` ?[^(\s|.,!?…。，、।۔،)]+`;

/** Pattern lists of each pre-tokenizer type (`llm_tokenizer_bpe`'s constructor). */
const TYPES: Record<string, readonly Pattern[]> = {
  default: [String.raw`[\p{P}\$\+<=>\^~\|]+`, GPT2, String.raw`\p{N}+`, '[0-9][0-9][0-9]'],
  llama3: [LLAMA3],
  dbrx: [LLAMA3],
  smaug: [LLAMA3],
  'deepseek-llm': [
    '[\r\n]',
    String.raw`\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1F7Dᾀ-ᾴᾶ-ᾼ\u1FBEῂ-ῄῆ-ῌῐ-\u1FD3ῖ-\u1FDBῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212A-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+`,
    String.raw`\s?[!-/:-~！-／：-～‘-‟　-。]+`,
    String.raw`\s+$`,
    CJK,
    String.raw`\p{N}+`,
  ],
  'deepseek3-llm': [
    String.raw`\p{N}{1,3}`,
    '[一-龥぀-ゟ゠-ヿ]+',
    String.raw`[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_` +
      '`' +
      String.raw`{|}~][A-Za-z]+|[^` +
      '\r\n' +
      String.raw`\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[` +
      '\r\n' +
      String.raw`]*|\s*[` +
      '\r\n' +
      String.raw`]+|\s+(?!\S)|\s+`,
  ],
  'deepseek-coder': ['[\r\n]', String.raw`\s?\p{L}+`, String.raw`\s?\p{P}+`, CJK, String.raw`\p{N}`],
  falcon: [String.raw`[\p{P}\$\+<=>\^~\|` + '`' + ']+', GPT2, '[0-9][0-9][0-9]'],
  starcoder: [String.raw`\p{N}`, GPT2],
  refact: [String.raw`\p{N}`, GPT2],
  'command-r': [String.raw`\p{N}`, GPT2],
  smollm: [String.raw`\p{N}`, GPT2],
  codeshell: [String.raw`\p{N}`, GPT2],
  exaone: [String.raw`\p{N}`, GPT2],
  minerva: [String.raw`\p{N}`, GPT2],
  gpt2: [GPT2],
  mpt: [GPT2],
  olmo: [GPT2],
  jais: [GPT2],
  stablelm2: [QWEN2],
  qwen2: [QWEN2],
  poro: [BLOOM],
  bloom: [BLOOM],
  'gpt3-finnish': [BLOOM],
  chatglm4: [LLAMA3],
  viking: [BLOOM, String.raw`\p{N}`],
  tekken: [
    String.raw`[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
  ],
  chameleon: [
    '<sentinel:[0-9]+>',
    '(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z',
    String.raw`([\t\n]|    |  )`,
    String.raw`\p{N}`,
    String.raw`[\p{P}!-/:-@\[-` + '`' + '{-~]',
    GPT2,
  ],
};

/** `tokenizer.ggml.pre` names and the type each selects (`llama_vocab::impl::load`). */
const NAMES: Record<string, string> = {
  default: 'default',
  llama3: 'llama3',
  'llama-v3': 'llama3',
  'llama-bpe': 'llama3',
  falcon3: 'llama3',
  'deepseek-llm': 'deepseek-llm',
  'deepseek-coder': 'deepseek-coder',
  'deepseek-v3': 'deepseek3-llm',
  falcon: 'falcon',
  mpt: 'mpt',
  starcoder: 'starcoder',
  'gpt-2': 'gpt2',
  'phi-2': 'gpt2',
  'jina-es': 'gpt2',
  'jina-de': 'gpt2',
  gigachat: 'gpt2',
  'jina-v1-en': 'gpt2',
  'jina-v2-es': 'gpt2',
  'jina-v2-de': 'gpt2',
  'jina-v2-code': 'gpt2',
  'roberta-bpe': 'gpt2',
  refact: 'refact',
  'command-r': 'command-r',
  qwen2: 'qwen2',
  stablelm2: 'stablelm2',
  olmo: 'olmo',
  dbrx: 'dbrx',
  'smaug-bpe': 'smaug',
  'poro-chat': 'poro',
  'chatglm-bpe': 'chatglm4',
  viking: 'viking',
  jais: 'jais',
  tekken: 'tekken',
  smollm: 'smollm',
  codeshell: 'codeshell',
  bloom: 'bloom',
  'gpt3-finnish': 'gpt3-finnish',
  exaone: 'exaone',
  chameleon: 'chameleon',
  'minerva-7b': 'minerva',
  megrez: 'qwen2',
};

/** Every `tokenizer.ggml.pre` value understood, for error messages. */
export const KNOWN_PRE_TOKENIZERS: readonly string[] = Object.keys(NAMES);

/**
 * The pre-tokenizer for a `tokenizer.ggml.pre` value; undefined (key absent) selects llama.cpp's
 * fallback, "default". Returns null for a name llama.cpp does not know.
 */
export function preTokenizerFor(name: string | undefined): PreTokenizer | null {
  const type = name === undefined ? 'default' : NAMES[name];
  if (type === undefined) return null;
  const ignoreMerges = type === 'llama3' || type === 'tekken';
  return {
    type,
    patterns: TYPES[type],
    ignoreMerges,
    addBos: ignoreMerges || type === 'chameleon',
  };
}

// ---------------------------------------------------------------------------------------------

/** Cuts text into words (`unicode_regex_split` before the byte encoding). */
export class WordSplitter {
  private readonly steps: ((cps: readonly number[], offsets: number[], collapsed: () => string) => number[])[];

  constructor(patterns: readonly Pattern[]) {
    this.steps = patterns.map((p) => {
      if (p === GPT2) return (cps, offsets) => splitGpt2(cps, offsets);
      if (p === LLAMA3) return (cps, offsets) => splitLlama3(cps, offsets);
      if (CATEGORY_SYNTAX.test(p)) {
        const re = new RegExp(collapsePattern(p), 'g');
        return (_cps, offsets, collapsed) => splitCollapsed(collapsed(), re, offsets);
      }
      const re = new RegExp(asciiWhitespace(p), 'gu');
      return (cps, offsets) => splitWide(cps, re, offsets);
    });
  }

  split(text: string): string[] {
    const cps = codePoints(text);
    if (cps.length === 0) return [];
    let collapsedText: string | undefined;
    const collapsed = () => (collapsedText ??= collapse(cps));
    let offsets = [cps.length];
    for (const step of this.steps) offsets = step(cps, offsets, collapsed);
    const words: string[] = new Array(offsets.length);
    let start = 0;
    for (let i = 0; i < offsets.length; i++) {
      words[i] = fromCodePoints(cps, start, start + offsets[i]);
      start += offsets[i];
    }
    return words;
  }
}

/** The \p{…} names llama.cpp replaces (`k_ucat_enum`); any of them selects the collapsed text. */
const CATEGORY_OF: Record<string, number> = {
  '\\p{N}': CpFlag.Number,
  '\\p{L}': CpFlag.Letter,
  '\\p{P}': CpFlag.Punctuation,
  '\\p{M}': CpFlag.Mark,
  '\\p{S}': CpFlag.Symbol,
  '\\p{Lu}': CpFlag.Letter,
  '\\p{Ll}': CpFlag.Letter,
  '\\p{Lt}': CpFlag.Letter,
  '\\p{Lm}': CpFlag.Letter,
  '\\p{Lo}': CpFlag.Letter,
};
const CATEGORY_SYNTAX = /\\p\{(?:N|L|P|M|S|Lu|Ll|Lt|Lm|Lo)\}/;

/** The stand-in character of each category in the collapsed text (`k_ucat_cpt`). */
const STAND_IN: Record<number, string> = {
  [CpFlag.Number]: '\u00d1',
  [CpFlag.Letter]: '\u00d2',
  [CpFlag.Punctuation]: '\u00d3',
  [CpFlag.Mark]: '\u00d4',
  [CpFlag.Symbol]: '\u00d5',
};
const OTHER_STAND_IN = '\u00d0';

/** The ASCII members of each category, as class contents (`k_ucat_map`). */
const ASCII_MEMBERS: Record<number, string> = {
  [CpFlag.Number]: '0-9',
  [CpFlag.Letter]: 'A-Za-z',
  [CpFlag.Punctuation]: '!-#%-*,-/:-;?-@\\[-\\]_\\{\\}',
  [CpFlag.Mark]: '',
  [CpFlag.Symbol]: '\\$\\+<->^`\\|',
};

/** One character per code point: ASCII as is, whitespace as U+000B, anything else its category's stand-in. */
function collapse(cps: readonly number[]): string {
  let out = '';
  for (const cp of cps) {
    if (cp < 128) {
      out += String.fromCharCode(cp);
      continue;
    }
    const flags = cpFlags(cp);
    out += flags & CpFlag.Whitespace ? '\u000b' : (STAND_IN[flags & CATEGORY_MASK] ?? OTHER_STAND_IN);
  }
  return out;
}

/** The pattern rewritten for the collapsed text, with llama.cpp's bracket tracking. */
function collapsePattern(p: string): string {
  for (const ch of p) {
    if (ch.codePointAt(0)! >= 128) {
      throw new Error(`pre-tokenizer pattern mixes Unicode categories with non-ASCII characters: ${p}`);
    }
  }
  let out = '';
  let inside = false;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '[' && (i === 0 || p[i - 1] !== '\\')) {
      out += '[';
      inside = true;
      continue;
    }
    if (inside && p[i] === ']' && p[i - 1] !== '\\') {
      out += ']';
      inside = false;
      continue;
    }
    if (p[i] === '\\' && i + 3 < p.length && p[i + 1] === 'p' && p[i + 2] === '{') {
      const close = p.indexOf('}', i + 3);
      const category = close >= 0 && close <= i + 10 ? CATEGORY_OF[p.slice(i, close + 1)] : undefined;
      if (category !== undefined) {
        const members = STAND_IN[category] + ASCII_MEMBERS[category];
        out += inside ? members : `[${members}]`;
        i = close;
        continue;
      }
    }
    out += p[i];
  }
  return out;
}

/** \s and \S as std::wregex reads them in the C locale: ASCII whitespace only (JS adds U+FEFF). */
function asciiWhitespace(p: string): string {
  const ws = '\\t\\n\\v\\f\\r ';
  let out = '';
  let inside = false;
  for (let i = 0; i < p.length; i++) {
    const ch = p[i];
    if (ch === '\\' && i + 1 < p.length) {
      const e = p[++i];
      if (e === 's') out += inside ? ws : `[${ws}]`;
      else if (e === 'S' && !inside) out += `[^${ws}]`;
      else if (e === 'S') throw new Error(`pre-tokenizer pattern has \\S inside a class: ${p}`);
      else out += ch + e;
      continue;
    }
    if (ch === '[' && !inside) inside = true;
    else if (ch === ']' && inside) inside = false;
    out += ch;
  }
  return out;
}

/**
 * `unicode_regex_split_stl` on the collapsed text (one character per code point): cuts each piece
 * [start, start + offset) into matches and the text between them.
 */
function splitCollapsed(subject: string, re: RegExp, offsets: readonly number[]): number[] {
  const out: number[] = [];
  let start = 0;
  for (const len of offsets) {
    cutPiece(subject.slice(start, start + len), re, len, out, null);
    start += len;
  }
  return out;
}

/** The same on the code points themselves, through a `u` regex. */
function splitWide(cps: readonly number[], re: RegExp, offsets: readonly number[]): number[] {
  const out: number[] = [];
  let start = 0;
  for (const len of offsets) {
    let piece = '';
    const cpAt: number[] = [];
    for (let i = start; i < start + len; i++) {
      const cp = cps[i] > 0x7f && cpFlags(cps[i]) & CpFlag.Whitespace ? 0x0b : cps[i];
      cpAt.push(i - start);
      if (cp > 0xffff) cpAt.push(i - start);
      piece += String.fromCodePoint(cp);
    }
    cpAt.push(len);
    cutPiece(piece, re, len, out, cpAt);
    start += len;
  }
  return out;
}

/**
 * Appends the lengths (in code points) of the matches of re in piece and of the text between them.
 * The regex sees only the piece, so $ and lookaheads stop at its end, as in llama.cpp.
 * cpAt maps UTF-16 positions to code-point positions when the piece has surrogate pairs.
 */
function cutPiece(piece: string, re: RegExp, len: number, out: number[], cpAt: readonly number[] | null): void {
  re.lastIndex = 0;
  let done = 0; // code points of the piece already emitted
  for (let m = re.exec(piece); m !== null; m = re.exec(piece)) {
    if (m[0].length === 0) {
      re.lastIndex++;
      continue;
    }
    const from = cpAt ? cpAt[m.index] : m.index;
    const to = cpAt ? cpAt[m.index + m[0].length] : m.index + m[0].length;
    if (from > done) out.push(from - done);
    out.push(to - from);
    done = to;
  }
  if (done < len) out.push(len - done);
}

/**
 * The pieces [start, start + offset) of a code-point array, with llama.cpp's accessors: outside
 * the piece a code point reads as OUT_OF_RANGE and its flags as 0.
 */
const OUT_OF_RANGE = -1;

function forEachPiece(
  cps: readonly number[],
  offsets: readonly number[],
  cut: (cpt: (pos: number) => number, flags: (pos: number) => number, ini: number, end: number, add: (end: number) => number) => void,
): number[] {
  const out: number[] = [];
  let start = 0;
  for (const len of offsets) {
    const ini = start;
    const end = start + len;
    start = end;
    const cpt = (pos: number) => (pos >= ini && pos < end ? cps[pos] : OUT_OF_RANGE);
    const flags = (pos: number) => (pos >= ini && pos < end ? cpFlags(cps[pos]) : 0);
    let prevEnd = ini;
    const add = (to: number): number => {
      const n = to - prevEnd;
      if (n > 0) out.push(n);
      prevEnd = to;
      return n;
    };
    cut(cpt, flags, ini, end, add);
  }
  return out;
}

function fromCodePoints(cps: readonly number[], start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i += 4096) s += String.fromCodePoint(...cps.slice(i, Math.min(end, i + 4096)));
  return s;
}

const APOS = 0x27;
const SPACE = 0x20;
const CR = 0x0d;
const LF = 0x0a;
const c = (s: string) => s.charCodeAt(0);
const NOT_WORD = CpFlag.Whitespace | CpFlag.Letter | CpFlag.Number;

/** `unicode_regex_split_custom_gpt2`: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
function splitGpt2(cps: readonly number[], offsets: readonly number[]): number[] {
  return forEachPiece(cps, offsets, (cpt, flags, ini, end, add) => {
    for (let pos = ini; pos < end; ) {
      const cp = cpt(pos);
      const f = flags(pos);
      if (cp === APOS && pos + 1 < end) {
        const next = cpt(pos + 1);
        if (next === c('s') || next === c('t') || next === c('m') || next === c('d')) {
          pos += add(pos + 2);
          continue;
        }
        if (pos + 2 < end) {
          const next2 = cpt(pos + 2);
          if ((next === c('r') && next2 === c('e')) || (next === c('v') && next2 === c('e')) || (next === c('l') && next2 === c('l'))) {
            pos += add(pos + 3);
            continue;
          }
        }
      }
      let f2 = cp === SPACE ? flags(pos + 1) : f;
      if (f2 & CpFlag.Letter) {
        if (cp === SPACE) pos++;
        while (f2 & CpFlag.Letter) f2 = flags(++pos);
        add(pos);
        continue;
      }
      if (f2 & CpFlag.Number) {
        if (cp === SPACE) pos++;
        while (f2 & CpFlag.Number) f2 = flags(++pos);
        add(pos);
        continue;
      }
      if (!(f2 & NOT_WORD) && f2 !== 0) {
        if (cp === SPACE) pos++;
        while (!(f2 & NOT_WORD) && f2 !== 0) f2 = flags(++pos);
        add(pos);
        continue;
      }
      let spaces = 0;
      while (flags(pos + spaces) & CpFlag.Whitespace) spaces++;
      if (spaces > 1 && cpt(pos + spaces) !== OUT_OF_RANGE) {
        pos += spaces - 1;
        add(pos);
        continue;
      }
      if (spaces > 0) {
        pos += spaces;
        add(pos);
        continue;
      }
      add(++pos);
    }
  });
}

/**
 * `unicode_regex_split_custom_llama3`:
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 */
function splitLlama3(cps: readonly number[], offsets: readonly number[]): number[] {
  return forEachPiece(cps, offsets, (cpt, flags, ini, end, add) => {
    for (let pos = ini; pos < end; ) {
      const cp = cpt(pos);
      const f = flags(pos);
      if (cp === APOS && pos + 1 < end) {
        const next = toLowerCp(cpt(pos + 1));
        if (next === c('s') || next === c('t') || next === c('m') || next === c('d')) {
          pos += add(pos + 2);
          continue;
        }
        if (pos + 2 < end) {
          const next2 = toLowerCp(cpt(pos + 2));
          if ((next === c('r') && next2 === c('e')) || (next === c('v') && next2 === c('e')) || (next === c('l') && next2 === c('l'))) {
            pos += add(pos + 3);
            continue;
          }
        }
      }
      if (!(cp === CR || cp === LF || f & CpFlag.Number)) {
        if (f & CpFlag.Letter || flags(pos + 1) & CpFlag.Letter) {
          pos++;
          while (flags(pos) & CpFlag.Letter) pos++;
          add(pos);
          continue;
        }
      }
      if (f & CpFlag.Number) {
        let ini3 = pos;
        while (flags(pos) & CpFlag.Number) {
          if (++pos - ini3 >= 3) {
            add(pos);
            ini3 = pos;
          }
        }
        add(pos);
        continue;
      }
      let f2 = cp === SPACE ? flags(pos + 1) : f;
      // llama.cpp tests the first code point's own flags here (f, not f2) for "is in the piece".
      if (!(f2 & NOT_WORD) && f !== 0) {
        if (cp === SPACE) pos++;
        while (!(f2 & NOT_WORD) && f2 !== 0) f2 = flags(++pos);
        let cp2 = cpt(pos);
        while (cp2 === CR || cp2 === LF) cp2 = cpt(++pos);
        add(pos);
        continue;
      }
      let spaces = 0;
      let lastEndOfLine = 0;
      while (flags(pos + spaces) & CpFlag.Whitespace) {
        const cp2 = cpt(pos + spaces);
        if (cp2 === CR || cp2 === LF) lastEndOfLine = pos + spaces + 1;
        spaces++;
      }
      if (lastEndOfLine > 0) {
        pos = lastEndOfLine;
        add(pos);
        continue;
      }
      if (spaces > 1 && cpt(pos + spaces) !== OUT_OF_RANGE) {
        pos += spaces - 1;
        add(pos);
        continue;
      }
      if (spaces > 0) {
        pos += spaces;
        add(pos);
        continue;
      }
      add(++pos);
    }
  });
}
