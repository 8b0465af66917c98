import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';

/**
 * The f32-cache run's log-probabilities at every scored position, saved so that evaluating many
 * methods (or the same methods again) does not recompute them. Float32, exact: KLDs of good
 * caches are ~1e-6 and a quantized reference would drown them.
 *
 * Layout: "LKVREF1\n", uint32 header length, JSON header, then per chunk `scored × vocab`
 * float32 log-probabilities, little-endian.
 */
export interface ReferenceHeader {
  readonly model: string;
  readonly ctx: number;
  readonly vocab: number;
  /** Scored positions per chunk (ctx/2 … ctx−2). */
  readonly scored: number;
  /** FNV-1a of the token ids the chunks came from: a reference only fits its own text. */
  readonly tokensHash: string;
}

const MAGIC = Buffer.from('LKVREF1\n', 'latin1');

export function tokensHash(tokens: ArrayLike<number>): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < tokens.length; i++) {
    h ^= tokens[i] & 0xffff;
    h = Math.imul(h, 0x01000193) >>> 0;
    h ^= tokens[i] >>> 16;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `${tokens.length}:${h.toString(16)}`;
}

export class ReferenceWriter {
  private readonly fd: number;

  constructor(path: string, header: ReferenceHeader) {
    this.fd = openSync(path, 'w');
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(json.length);
    writeSync(this.fd, Buffer.concat([MAGIC, len, json]));
  }

  writeChunk(logProbs: Float32Array): void {
    writeSync(this.fd, new Uint8Array(logProbs.buffer, logProbs.byteOffset, logProbs.byteLength));
  }

  close(): void {
    closeSync(this.fd);
  }
}

export class ReferenceReader {
  readonly header: ReferenceHeader;
  readonly chunks: number;
  private readonly fd: number;
  private readonly dataOffset: number;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'r');
    const size = fstatSync(this.fd).size;
    const head = Buffer.alloc(12);
    const bad = (why: string): never => {
      closeSync(this.fd);
      throw new Error(`${path} is not a usable lowkv reference: ${why}`);
    };
    if (readSync(this.fd, head, 0, 12, 0) < 12 || !head.subarray(0, 8).equals(MAGIC)) bad('wrong magic (write one with `lowkv eval --save-reference`)');
    const len = head.readUInt32LE(8);
    if (len > size - 12 || len > 1 << 20) bad(`header length ${len} exceeds the file`);
    const json = Buffer.alloc(len);
    readSync(this.fd, json, 0, len, 12);
    let h: ReferenceHeader;
    try {
      h = JSON.parse(json.toString('utf8')) as ReferenceHeader;
    } catch {
      h = bad('header is not JSON');
    }
    for (const k of ['ctx', 'vocab', 'scored'] as const) if (!Number.isSafeInteger(h[k]) || h[k] <= 0) bad(`header.${k} is not a positive integer`);
    this.header = h;
    this.dataOffset = 12 + len;
    const chunkBytes = h.scored * h.vocab * 4;
    if ((size - this.dataOffset) % chunkBytes !== 0) bad(`data is ${size - this.dataOffset} bytes, not a whole number of ${chunkBytes}-byte chunks (truncated?)`);
    this.chunks = (size - this.dataOffset) / chunkBytes;
  }

  /** Checks this reference was made for the same model vocabulary, context and text. */
  check(expect: Omit<ReferenceHeader, 'model'>, needChunks: number): void {
    const h = this.header;
    const diffs = (['ctx', 'vocab', 'scored', 'tokensHash'] as const).filter((k) => h[k] !== expect[k]).map((k) => `${k} ${h[k]} ≠ ${expect[k]}`);
    if (diffs.length) throw new Error(`${this.path} was made for other settings (${diffs.join(', ')}); make a new one with --save-reference`);
    if (this.chunks < needChunks) throw new Error(`${this.path} holds ${this.chunks} chunks, ${needChunks} are needed`);
  }

  readChunk(c: number, out: Float32Array): void {
    const bytes = this.header.scored * this.header.vocab * 4;
    readSync(this.fd, new Uint8Array(out.buffer, out.byteOffset, bytes), 0, bytes, this.dataOffset + c * bytes);
  }

  close(): void {
    closeSync(this.fd);
  }
}
