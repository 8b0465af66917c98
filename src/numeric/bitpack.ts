// B-bit codes packed LSB-first into 32-bit words (KIVI/DecoQuant's layout, methods.md §0):
// code j of a word sits at bit offset j·B. For B that does not divide 32 (3, 5, 6, 7 bits) codes
// straddle words, so the general helpers work on a bit offset.

/** Words needed for n codes of `bits` bits. */
export function packedWords(n: number, bits: number): number {
  return Math.ceil((n * bits) / 32);
}

/** Writes code (0 ≤ code < 2^bits) as the index-th code of the packed array. */
export function setCode(words: Uint32Array, index: number, bits: number, code: number): void {
  const bit = index * bits;
  const w = bit >>> 5;
  const off = bit & 31;
  const mask = bits === 32 ? 0xffffffff : (1 << bits) - 1;
  words[w] = (words[w] & ~(mask << off)) | ((code & mask) << off);
  if (off + bits > 32) {
    const hiBits = off + bits - 32;
    const hiMask = (1 << hiBits) - 1;
    words[w + 1] = (words[w + 1] & ~hiMask) | ((code & mask) >>> (bits - hiBits));
  }
}

/** Reads the index-th code of the packed array. */
export function getCode(words: Uint32Array, index: number, bits: number): number {
  const bit = index * bits;
  const w = bit >>> 5;
  const off = bit & 31;
  const mask = bits === 32 ? 0xffffffff : (1 << bits) - 1;
  let v = words[w] >>> off;
  if (off + bits > 32) v |= words[w + 1] << (32 - off);
  return (v & mask) >>> 0;
}
