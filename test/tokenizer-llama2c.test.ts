import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readLlama2cTokenizer } from '../src/tokenizer/llama2c-vocab.js';
import { TokenType } from '../src/tokenizer/types.js';
import { dataPath, hasShared } from './helpers/shared-data.js';

const dir = mkdtempSync(join(tmpdir(), 'lowkv-tok-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
function tmpFile(bytes: Uint8Array): string {
  const p = join(dir, `tok${fileNo++}.bin`);
  writeFileSync(p, bytes);
  return p;
}

/** A llama2.c tokenizer.bin image: pieces as [score, utf8 bytes or text]. */
function tokenizerBin(pieces: ReadonlyArray<readonly [number, string | Uint8Array]>, maxLen = 8): Buffer {
  const parts: Buffer[] = [int32(maxLen)];
  for (const [score, piece] of pieces) {
    const bytes = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : Buffer.from(piece);
    const head = Buffer.alloc(8);
    head.writeFloatLE(score, 0);
    head.writeInt32LE(bytes.length, 4);
    parts.push(head, bytes);
  }
  return Buffer.concat(parts);
}

function int32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  return b;
}

const PIECES: Array<[number, string]> = [
  [0, '<unk>'],
  [0, '\n<s>\n'],
  [0, '\n</s>\n'],
  [0, '<0x0A>'],
  [-1, ' the'],
  [-2, 'a b'],
];

/** Expect readLlama2cTokenizer to fail with a ModelFormatError on `field`. */
function expectFormatError(path: string, n: number, field: string, problem: RegExp): void {
  let error: unknown;
  try {
    readLlama2cTokenizer(path, n);
  } catch (e) {
    error = e;
  }
  expect(error).toMatchObject({ name: 'ModelFormatError', file: path, field });
  expect((error as Error).message).toMatch(problem);
}

/** Byte offset of token i's score/length header in a tokenizer.bin image. */
function tokenOffset(buf: Buffer, i: number): number {
  let off = 4;
  for (let k = 0; k < i; k++) off += 8 + buf.readInt32LE(off + 4);
  return off;
}

describe('readLlama2cTokenizer', () => {
  it('restores ▁ and the control pieces and types the tokens', () => {
    const v = readLlama2cTokenizer(tmpFile(tokenizerBin(PIECES)), PIECES.length);
    expect(v.tokens).toEqual(['<unk>', '<s>', '</s>', '<0x0A>', '▁the', 'a▁b']);
    expect([...v.scores]).toEqual([0, 0, 0, 0, -1, -2]);
    expect([...v.types]).toEqual([
      TokenType.Unknown,
      TokenType.Control,
      TokenType.Control,
      TokenType.Byte,
      TokenType.Normal,
      TokenType.Normal,
    ]);
    expect(v).toMatchObject({ bos: 1, eos: 2, unk: 0, addBos: true, addEos: false, addSpacePrefix: true });
  });

  it('rejects a huge or negative piece length without allocating it', () => {
    for (const [len, problem] of [
      [0x7fffffff, /2147483647 bytes exceed the \d+ bytes left/],
      [-5, /-5 is negative/],
      [-0x80000000, /negative/],
    ] as const) {
      const buf = tokenizerBin(PIECES);
      buf.writeInt32LE(len, tokenOffset(buf, 3) + 4);
      expectFormatError(tmpFile(buf), PIECES.length, 'token[3].length', problem);
    }
  });

  it('rejects files that end early', () => {
    const buf = tokenizerBin(PIECES);
    expectFormatError(tmpFile(buf.subarray(0, buf.length - 1)), PIECES.length, 'token[5].length', /exceed/);
    expectFormatError(tmpFile(buf.subarray(0, tokenOffset(buf, 5) + 5)), PIECES.length, 'token[5]', /ends early/);
    const atToken5 = tmpFile(buf.subarray(0, tokenOffset(buf, 5)));
    expectFormatError(atToken5, PIECES.length, 'token count', /holds 5 tokens.*vocab_size 6/);
    expectFormatError(tmpFile(buf.subarray(0, 2)), PIECES.length, 'max_token_length', /too short/);
  });

  it('rejects trailing bytes and token counts other than the vocab size', () => {
    const buf = tokenizerBin(PIECES);
    const trailing = tmpFile(Buffer.concat([buf, Buffer.from([1, 2, 3])]));
    expectFormatError(trailing, PIECES.length, 'token count', /3 trailing bytes/);
    expectFormatError(tmpFile(buf), PIECES.length - 1, 'token count', /holds 6 tokens.*vocab_size 5/);
    expectFormatError(tmpFile(buf), PIECES.length + 1, 'token count', /holds 6 tokens.*vocab_size 7/);
  });

  it('rejects malformed pieces', () => {
    const badUtf8 = tokenizerBin([...PIECES.slice(0, 4), [-1, Uint8Array.of(0x61, 0xff)]]);
    expectFormatError(tmpFile(badUtf8), 5, 'token[4]', /UTF-8/);
    const dup = tokenizerBin([...PIECES, [-3, ' the']]);
    expectFormatError(tmpFile(dup), 7, 'token[6]', /repeats token\[4\]/);
    const nan = tokenizerBin([...PIECES, [NaN, 'x']]);
    expectFormatError(tmpFile(nan), 7, 'token[6].score', /NaN/);
    const negMax = tokenizerBin(PIECES, -1);
    expectFormatError(tmpFile(negMax), 6, 'max_token_length', /negative/);
  });
});

describe.skipIf(!hasShared)('readLlama2cTokenizer on a corrupted copy of tok512.bin', () => {
  const original = hasShared ? readFileSync(dataPath('models/stories260K/tok512.bin')) : Buffer.alloc(0);

  it('reads the original', () => {
    expect(readLlama2cTokenizer(tmpFile(original), 512).tokens).toHaveLength(512);
  });

  it('names the broken field', () => {
    const huge = Buffer.from(original);
    huge.writeInt32LE(0x7fffffff, tokenOffset(huge, 300) + 4);
    expectFormatError(tmpFile(huge), 512, 'token[300].length', /exceed/);
    expectFormatError(tmpFile(original.subarray(0, original.length - 3)), 512, 'token[511].length', /exceed/);
    expectFormatError(tmpFile(Buffer.concat([original, Buffer.alloc(5)])), 512, 'token count', /5 trailing bytes/);
    expectFormatError(tmpFile(original), 511, 'token count', /holds 512 tokens/);
    expectFormatError(tmpFile(original), 513, 'token count', /holds 512 tokens/);
  });
});
