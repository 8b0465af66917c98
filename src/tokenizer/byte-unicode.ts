/**
 * GPT-2's byte ↔ Unicode alphabet (`bytes_to_unicode`, llama.cpp's `unicode_byte_to_utf8_map`):
 * byte-level BPE vocabularies spell every byte as one printable code point, so that a token's
 * text never contains raw whitespace or control characters. Printable Latin-1 bytes stand for
 * themselves; the other 68 bytes take U+0100 onwards, in byte order.
 */

function buildByteToChar(): string[] {
  const map: string[] = new Array(256);
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) map[b] = String.fromCharCode(printable(b) ? b : 256 + n++);
  return map;
}

/** The code point (as a one-character string) that byte b is written as. */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

/** The byte that a code point of the alphabet stands for (undefined outside the alphabet). */
export const CHAR_TO_BYTE: ReadonlyMap<number, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c.charCodeAt(0), b]));

const encoder = new TextEncoder();

/** Text written in the byte alphabet: its UTF-8 bytes, one alphabet character each. */
export function toByteAlphabet(text: string): string {
  let out = '';
  for (const b of encoder.encode(text)) out += BYTE_TO_CHAR[b];
  return out;
}
