/**
 * Per-code-point Unicode facts as llama.cpp's tokenizers see them (src/unicode.cpp, tables from
 * scripts/gen-unicode-data.py): general-category flags, White_Space, the simple lowercase mapping
 * and the first code point of the NFD decomposition. They come from the JS engine's Unicode
 * tables, so they follow its Unicode version rather than the one llama.cpp was generated from.
 */

export const enum CpFlag {
  /** Unassigned (Cn); llama.cpp gives it a non-zero flag, so "has flags" means "is a code point". */
  Undefined = 0x0001,
  Number = 0x0002,
  Letter = 0x0004,
  Separator = 0x0008,
  Mark = 0x0010,
  Punctuation = 0x0020,
  Symbol = 0x0040,
  Control = 0x0080,
  Whitespace = 0x0100,
  /** Set once the entry is filled in; never part of the answer. */
  Known = 0x8000,
}

export const CATEGORY_MASK = 0x00ff;

const CATEGORIES: [RegExp, number][] = [
  [/^\p{N}$/u, CpFlag.Number],
  [/^\p{L}$/u, CpFlag.Letter],
  [/^\p{Z}$/u, CpFlag.Separator],
  [/^\p{M}$/u, CpFlag.Mark],
  [/^\p{P}$/u, CpFlag.Punctuation],
  [/^\p{S}$/u, CpFlag.Symbol],
  [/^[\p{Cc}\p{Cf}\p{Co}\p{Cs}]$/u, CpFlag.Control],
];
const WHITE_SPACE = /^\p{White_Space}$/u;
const MAX_CODE_POINT = 0x10ffff;

/** Filled lazily: classifying all 1.1M code points up front would cost far more than any text. */
const flagTable = new Uint16Array(MAX_CODE_POINT + 1);

/** llama.cpp's `unicode_cpt_flags_from_cpt` (category flags plus Whitespace). */
export function cpFlags(cp: number): number {
  if (cp < 0 || cp > MAX_CODE_POINT) return CpFlag.Undefined;
  let f = flagTable[cp];
  if (f === 0) {
    const ch = String.fromCodePoint(cp);
    f = CpFlag.Undefined;
    for (const [re, flag] of CATEGORIES) {
      if (re.test(ch)) {
        f = flag;
        break;
      }
    }
    if (WHITE_SPACE.test(ch)) f |= CpFlag.Whitespace;
    flagTable[cp] = f | CpFlag.Known;
  }
  return f & ~CpFlag.Known;
}

/** UnicodeData's simple lowercase mapping (one code point to one code point). */
export function toLowerCp(cp: number): number {
  const lower = String.fromCodePoint(cp).toLowerCase();
  // Full mappings longer than one code point (U+0130 → i + U+0307) start with the simple one.
  return lower.codePointAt(0)!;
}

/** The first code point of cp's NFD decomposition, which is all llama.cpp keeps of it. */
export function nfdFirstCp(cp: number): number {
  if (cp < 0xc0) return cp; // nothing below U+00C0 decomposes
  return String.fromCodePoint(cp).normalize('NFD').codePointAt(0)!;
}

/** The code points of a string; a lone surrogate reads as U+FFFD, as invalid UTF-8 does in llama.cpp. */
export function codePoints(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        out.push(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000);
        i++;
        continue;
      }
    }
    out.push(c >= 0xd800 && c <= 0xdfff ? 0xfffd : c);
  }
  return out;
}

/** Number of UTF-8 bytes of one code point. */
export function utf8Length(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}
