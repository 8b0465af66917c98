import { describe, expect, it } from 'vitest';
import { getCode, packedWords, setCode } from '../src/numeric/bitpack.js';

describe('bit packing', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8, 12, 16])('round-trips random %i-bit codes, LSB first', (bits) => {
    const n = 1000;
    const words = new Uint32Array(packedWords(n, bits));
    const codes = Array.from({ length: n }, (_, i) => (i * 2654435761) % 2 ** bits);
    codes.forEach((c, i) => setCode(words, i, bits, c));
    codes.forEach((c, i) => expect(getCode(words, i, bits)).toBe(c));
    // Overwriting one code leaves its neighbours alone.
    setCode(words, 500, bits, 0);
    expect(getCode(words, 499, bits)).toBe(codes[499]);
    expect(getCode(words, 501, bits)).toBe(codes[501]);
  });

  it('uses the KIVI layout: code j of a word at bit j·B', () => {
    const w = new Uint32Array(1);
    [1, 2, 3, 0].forEach((c, j) => setCode(w, j, 2, c));
    expect(w[0]).toBe(1 | (2 << 2) | (3 << 4));
  });
});
