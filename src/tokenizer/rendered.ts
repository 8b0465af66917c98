/**
 * Decoding shared by every tokenizer: each token renders as a fixed byte string (llama.cpp's
 * token_to_piece with special = false), and text is the UTF-8 decoding of their concatenation.
 */
import type { StreamDecoder } from './types.js';

export class RenderedPieces {
  /**
   * @param pieces UTF-8 bytes of each token id (empty for tokens that render as nothing).
   * @param stripFirstSpace drop one leading space from the first piece that renders text: the
   *   SentencePiece dummy prefix or the WordPiece word-start space, which encode added.
   */
  constructor(
    private readonly pieces: readonly Uint8Array[],
    private readonly stripFirstSpace: boolean,
  ) {}

  get size(): number {
    return this.pieces.length;
  }

  decode(ids: ArrayLike<number>): string {
    let total = 0;
    let strip = this.stripFirstSpace;
    const parts: Uint8Array[] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      let bytes = this.pieces[this.checkId(ids[i])];
      if (strip && bytes.length > 0) {
        strip = false;
        if (bytes[0] === 0x20) bytes = bytes.subarray(1);
      }
      parts[i] = bytes;
      total += bytes.length;
    }
    const all = new Uint8Array(total);
    let off = 0;
    for (const p of parts) {
      all.set(p, off);
      off += p.length;
    }
    return utf8Decoder().decode(all);
  }

  decoder(): StreamDecoder {
    const utf8 = utf8Decoder();
    let strip = this.stripFirstSpace;
    return {
      push: (id: number): string => {
        let bytes = this.pieces[this.checkId(id)];
        if (bytes.length === 0) return '';
        if (strip) {
          strip = false;
          if (bytes[0] === 0x20) bytes = bytes.subarray(1);
        }
        return utf8.decode(bytes, { stream: true });
      },
      flush: (): string => utf8.decode(),
    };
  }

  checkId(id: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.pieces.length) {
      throw new RangeError(`token id ${id} is out of range for a vocabulary of ${this.pieces.length} tokens`);
    }
    return id;
  }
}

/** ignoreBOM keeps a leading U+FEFF in the output, so decode never drops text that encode saw. */
export function utf8Decoder() {
  return new TextDecoder('utf-8', { ignoreBOM: true });
}

/** The text as UTF-8 would carry it: lone surrogates become U+FFFD, as TextEncoder does. */
export function wellFormed(s: string): string {
  return s.replace(/\p{Surrogate}/gu, '\uFFFD');
}
