/**
 * llama2.c `tokenizer.bin`: int32 max_token_length, then per token float32 score, int32 byte
 * length and the piece's UTF-8 bytes, all little-endian. The exporter writes SentencePiece's "▁"
 * as a plain space and BOS/EOS as "\n<s>\n" / "\n</s>\n"; both are undone here so the vocabulary
 * looks like the GGUF one and tokenizes identically.
 */
import { readFileSync } from 'node:fs';
import { ModelFormatError } from '../formats/errors.js';
import { TokenType } from './types.js';
import type { SpmVocab } from './types.js';

const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;
const EXPORTED_CONTROL: ReadonlyMap<string, string> = new Map([
  ['\n<s>\n', '<s>'],
  ['\n</s>\n', '</s>'],
]);

export function readLlama2cTokenizer(path: string, vocabSize: number): SpmVocab {
  if (!Number.isInteger(vocabSize) || vocabSize < 3) {
    // Ids 0..2 are unk/BOS/EOS by the llama2.c convention.
    throw new ModelFormatError(path, 'vocab_size', `${vocabSize} is not a vocabulary size of at least 3`);
  }
  const buf = readFileSync(path);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

  if (buf.length < 4) {
    throw new ModelFormatError(path, 'max_token_length', `file is ${buf.length} bytes, too short for the header`);
  }
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength < 0) {
    throw new ModelFormatError(path, 'max_token_length', `${maxTokenLength} is negative`);
  }

  const tokens: string[] = [];
  const scores = new Float32Array(vocabSize);
  const types = new Int32Array(vocabSize);
  const seen = new Map<string, number>();
  let off = 4;
  for (let i = 0; i < vocabSize; i++) {
    const left = buf.length - off;
    if (left === 0) {
      const problem = `file holds ${i} tokens but the model has vocab_size ${vocabSize}`;
      throw new ModelFormatError(path, 'token count', problem);
    }
    if (left < 8) {
      const problem = `file ends early: ${left} bytes left, 8 needed for score and length`;
      throw new ModelFormatError(path, `token[${i}]`, problem);
    }
    const score = view.getFloat32(off, true);
    const length = view.getInt32(off + 4, true);
    off += 8;
    if (Number.isNaN(score)) throw new ModelFormatError(path, `token[${i}].score`, 'is NaN');
    if (length < 0) throw new ModelFormatError(path, `token[${i}].length`, `${length} is negative`);
    if (length > buf.length - off) {
      throw new ModelFormatError(
        path,
        `token[${i}].length`,
        `${length} bytes exceed the ${buf.length - off} bytes left in the file`,
      );
    }
    let text: string;
    try {
      text = utf8.decode(buf.subarray(off, off + length));
    } catch {
      throw new ModelFormatError(path, `token[${i}]`, 'piece is not valid UTF-8');
    }
    off += length;
    text = EXPORTED_CONTROL.get(text) ?? text.replaceAll(' ', '\u2581');
    const dup = seen.get(text);
    if (dup !== undefined) throw new ModelFormatError(path, `token[${i}]`, `"${text}" repeats token[${dup}]`);
    seen.set(text, i);

    tokens.push(text);
    scores[i] = score;
    types[i] = tokenType(i, text);
  }
  if (off < buf.length) {
    const extra = countWholeTokens(view, off);
    const problem =
      extra > 0
        ? `file holds ${vocabSize + extra} tokens but the model has vocab_size ${vocabSize}`
        : `${buf.length - off} trailing bytes after the last of ${vocabSize} tokens`;
    throw new ModelFormatError(path, 'token count', problem);
  }

  return {
    tokens,
    scores,
    types,
    bos: 1,
    eos: 2,
    unk: 0,
    addBos: true,
    addEos: false,
    addSpacePrefix: true,
  };
}

function tokenType(id: number, text: string): TokenType {
  if (id === 0) return TokenType.Unknown;
  if (id === 1 || id === 2) return TokenType.Control;
  return BYTE_PIECE.test(text) ? TokenType.Byte : TokenType.Normal;
}

/** How many well-formed tokens fill the bytes from `off` exactly (0 when they do not). */
function countWholeTokens(view: DataView, off: number): number {
  let count = 0;
  while (off < view.byteLength) {
    if (view.byteLength - off < 8) return 0;
    const length = view.getInt32(off + 4, true);
    off += 8;
    if (length < 0 || length > view.byteLength - off) return 0;
    off += length;
    count++;
  }
  return count;
}
