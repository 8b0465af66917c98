// llama2.c checkpoints: the legacy headerless format (version 0) and export.py's
// version1_export (256-byte "ak42" header), both float32 only.

import * as fs from 'node:fs';
import { weightMatrix, type WeightMatrix } from '../kernels/weights.js';
import type { LayerWeights, LlamaConfig, LlamaWeights } from '../model/types.js';
import { heapFloat32 } from '../model/weight-memory.js';
import { ModelFormatError } from './errors.js';
import { withFile } from './file.js';

export interface Llama2cModel {
  readonly config: LlamaConfig;
  readonly weights: LlamaWeights;
  readonly version: 0 | 1;
}

const MAGIC_V1 = 0x616b3432; // "ak42" as export.py packs it: a little-endian uint32
const V1_HEADER_BYTES = 256;
const LEGACY_HEADER_BYTES = 7 * 4;
const MAX_FLOATS = 2 ** 31;

interface Header {
  readonly version: 0 | 1;
  readonly headerBytes: number;
  readonly dim: number;
  readonly hiddenDim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly vocabSize: number;
  readonly seqLen: number;
  readonly shared: boolean;
}

/** Read a llama2.c checkpoint (legacy or version 1). */
export function readLlama2c(path: string): Llama2cModel {
  return withFile(path, (fd, fileSize) => {
    const header = readHeader(fd, fileSize, path);
    const config = configOf(header, path);
    const floats = new FloatReader(fd, header.headerBytes, path);
    const layout = header.version === 0 ? legacyLayout : version1Layout;
    const expected = header.headerBytes + 4 * layout(config, header.shared, header.seqLen, null);
    if (fileSize !== expected) {
      const problem =
        fileSize < expected
          ? `truncated: expected ${fmt(expected)} bytes, file has ${fmt(fileSize)}`
          : `has ${fmt(fileSize - expected)} trailing bytes (expected ${fmt(expected)} bytes, file has ${fmt(fileSize)})`;
      throw new ModelFormatError(path, 'file size', problem);
    }
    const parts = new Parts(config);
    layout(config, header.shared, header.seqLen, { floats, parts });
    return { config, weights: parts.weights(config, header.shared), version: header.version };
  });
}

function readHeader(fd: number, fileSize: number, path: string): Header {
  const b = Buffer.alloc(V1_HEADER_BYTES);
  const got = fs.readSync(fd, b, 0, Math.min(V1_HEADER_BYTES, fileSize), 0);
  if (got >= 4 && b.readUInt32LE(0) === MAGIC_V1) {
    if (got < 8) throw new ModelFormatError(path, 'header.version', `truncated: the file has ${got} bytes`);
    const version = b.readInt32LE(4);
    if (version === 2) {
      throw new ModelFormatError(path, 'header.version', 'llama2.c version 2 (int8 Q8_0) checkpoints are not supported yet');
    }
    if (version !== 1) throw new ModelFormatError(path, 'header.version', `unknown llama2.c checkpoint version ${version}`);
    if (got < V1_HEADER_BYTES) {
      throw new ModelFormatError(path, 'header', `truncated: the version 1 header is 256 bytes, the file has ${got}`);
    }
    const flag = b.readUInt8(36);
    if (flag > 1) throw new ModelFormatError(path, 'header.shared_classifier', `is ${flag}, expected 0 or 1`);
    return { version: 1, headerBytes: V1_HEADER_BYTES, ...params(b, 8), shared: flag === 1 };
  }
  if (got >= 4 && b.toString('latin1', 0, 4) === 'GGUF') {
    throw new ModelFormatError(path, 'header', 'this is a GGUF file, not a llama2.c checkpoint');
  }
  if (got < LEGACY_HEADER_BYTES) {
    throw new ModelFormatError(path, 'header', `truncated: the header is 28 bytes, the file has ${got}`);
  }
  const p = params(b, 0);
  // Legacy files flag an untied classifier with a negative vocab_size.
  return { version: 0, headerBytes: LEGACY_HEADER_BYTES, ...p, vocabSize: Math.abs(p.vocabSize), shared: p.vocabSize > 0 };
}

function params(b: Buffer, at: number) {
  const i = (k: number): number => b.readInt32LE(at + 4 * k);
  return { dim: i(0), hiddenDim: i(1), nLayers: i(2), nHeads: i(3), nKvHeads: i(4), vocabSize: i(5), seqLen: i(6) };
}

function configOf(h: Header, path: string): LlamaConfig {
  const fail = (field: string, problem: string): never => {
    throw new ModelFormatError(path, `header.${field}`, problem);
  };
  const named: ReadonlyArray<readonly [string, number]> = [
    ['dim', h.dim],
    ['hidden_dim', h.hiddenDim],
    ['n_layers', h.nLayers],
    ['n_heads', h.nHeads],
    ['n_kv_heads', h.nKvHeads],
    ['vocab_size', h.vocabSize],
    ['seq_len', h.seqLen],
  ];
  for (const [field, v] of named) if (v <= 0) fail(field, `must be positive, is ${v}`);
  if (h.dim % h.nHeads !== 0) fail('n_heads', `dim ${h.dim} is not divisible by n_heads ${h.nHeads}`);
  if (h.nHeads % h.nKvHeads !== 0) fail('n_kv_heads', `n_heads ${h.nHeads} is not divisible by n_kv_heads ${h.nKvHeads}`);
  const headDim = h.dim / h.nHeads;
  if (headDim % 2 !== 0) fail('n_heads', `head size dim/n_heads = ${headDim} is odd; RoPE needs pairs`);
  const sizes: ReadonlyArray<readonly [string, number]> = [
    ['vocab_size', h.vocabSize * h.dim],
    ['n_layers', h.nLayers * h.dim * h.dim],
    ['hidden_dim', h.nLayers * h.hiddenDim * h.dim],
    ['seq_len', h.seqLen * headDim],
  ];
  for (const [field, n] of sizes) {
    if (n > MAX_FLOATS) fail(field, `implies a ${fmt(n)}-float array, more than 2^31`);
  }
  return {
    arch: 'llama',
    dim: h.dim,
    hiddenDim: h.hiddenDim,
    nLayers: h.nLayers,
    nHeads: h.nHeads,
    nKvHeads: h.nKvHeads,
    headDim,
    vocabSize: h.vocabSize,
    contextLength: h.seqLen,
    ropeTheta: 10000,
    ropeDim: headDim,
    rmsEps: 1e-5,
  };
}

/** Reads consecutive float32 arrays, each at its file offset, into fresh Float32Arrays. */
class FloatReader {
  constructor(
    private readonly fd: number,
    private pos: number,
    private readonly path: string,
  ) {}

  next(n: number, what: string): Float32Array {
    const out = heapFloat32(n);
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    let done = 0;
    while (done < bytes.length) {
      const got = fs.readSync(this.fd, bytes, done, bytes.length - done, this.pos + done);
      if (got === 0) throw new ModelFormatError(this.path, what, `truncated at byte ${this.pos + done}`);
      done += got;
    }
    this.pos += bytes.length;
    return out;
  }

  skip(n: number): void {
    this.pos += 4 * n;
  }
}

/** The tensors every layer has (llama2.c files hold no architecture-specific extras). */
type LayerKey = { [K in keyof LayerWeights]-?: undefined extends LayerWeights[K] ? never : K }[keyof LayerWeights];

/** Collects arrays as the layout reads them, then assembles LlamaWeights. */
class Parts {
  private readonly layers: Array<Partial<Record<LayerKey, Float32Array>>>;
  tokenEmbedding?: Float32Array;
  outputNorm?: Float32Array;
  output?: Float32Array;

  constructor(config: LlamaConfig) {
    this.layers = Array.from({ length: config.nLayers }, () => ({}));
  }

  setLayer(l: number, key: LayerKey, a: Float32Array): void {
    this.layers[l][key] = a;
  }

  weights(c: LlamaConfig, shared: boolean): LlamaWeights {
    const q = c.nHeads * c.headDim;
    const kv = c.nKvHeads * c.headDim;
    const m = (a: Float32Array | undefined, rows: number, cols: number): WeightMatrix => weightMatrix('f32', rows, cols, must(a));
    const tokenEmbedding = m(this.tokenEmbedding, c.vocabSize, c.dim);
    return {
      tokenEmbedding,
      layers: this.layers.map(
        (p): LayerWeights => ({
          attnNorm: must(p.attnNorm),
          wq: m(p.wq, q, c.dim),
          wk: m(p.wk, kv, c.dim),
          wv: m(p.wv, kv, c.dim),
          wo: m(p.wo, c.dim, q),
          ffnNorm: must(p.ffnNorm),
          wGate: m(p.wGate, c.hiddenDim, c.dim),
          wDown: m(p.wDown, c.dim, c.hiddenDim),
          wUp: m(p.wUp, c.hiddenDim, c.dim),
        }),
      ),
      outputNorm: must(this.outputNorm),
      output: shared ? tokenEmbedding : m(this.output, c.vocabSize, c.dim),
    };
  }
}

function must(a: Float32Array | undefined): Float32Array {
  if (!a) throw new Error('llama2c layout left a weight unread');
  return a;
}

/** Where a layout puts what it reads; null only counts floats (to check the file size). */
type Sink = { floats: FloatReader; parts: Parts } | null;

/**
 * A layout walks the file's arrays in order. Called with a null sink it just returns the float
 * count, so the size check and the read can never disagree about the layout.
 */
type Layout = (c: LlamaConfig, shared: boolean, seqLen: number, sink: Sink) => number;

function shapes(c: LlamaConfig): Record<LayerKey, number> {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  return {
    attnNorm: c.dim,
    wq: q * c.dim,
    wk: kv * c.dim,
    wv: kv * c.dim,
    wo: c.dim * q,
    ffnNorm: c.dim,
    wGate: c.hiddenDim * c.dim,
    wDown: c.dim * c.hiddenDim,
    wUp: c.hiddenDim * c.dim,
  };
}

function makeWalker(c: LlamaConfig, sink: Sink) {
  const size = shapes(c);
  let total = 0;
  return {
    layers(key: LayerKey): void {
      for (let l = 0; l < c.nLayers; l++) {
        total += size[key];
        sink?.parts.setLayer(l, key, sink.floats.next(size[key], `layer ${l} ${key}`));
      }
    },
    one(n: number, what: string, set: ((p: Parts, a: Float32Array) => void) | null): void {
      total += n;
      if (!sink) return;
      if (set) set(sink.parts, sink.floats.next(n, what));
      else sink.floats.skip(n);
    },
    get total(): number {
      return total;
    },
  };
}

// export.py legacy_export: token_embedding, then each weight kind for all layers, final norm,
// the (unused) RoPE tables freq_cis_real/imag [seq_len, head_dim/2], and wcls if not shared.
const legacyLayout: Layout = (c, shared, seqLen, sink) => {
  const w = makeWalker(c, sink);
  w.one(c.vocabSize * c.dim, 'token_embedding', (p, a) => (p.tokenEmbedding = a));
  for (const k of ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'ffnNorm', 'wGate', 'wDown', 'wUp'] as const) w.layers(k);
  w.one(c.dim, 'rms_final', (p, a) => (p.outputNorm = a));
  w.one(seqLen * (c.headDim / 2), 'freq_cis_real', null);
  w.one(seqLen * (c.headDim / 2), 'freq_cis_imag', null);
  if (!shared) w.one(c.vocabSize * c.dim, 'wcls', (p, a) => (p.output = a));
  return w.total;
};

// export.py version1_export: norms first (attention, ffn, final), then token embedding, the
// matrices kind by kind over all layers, and the classifier only if not shared. No RoPE tables.
const version1Layout: Layout = (c, shared, _seqLen, sink) => {
  const w = makeWalker(c, sink);
  w.layers('attnNorm');
  w.layers('ffnNorm');
  w.one(c.dim, 'norm', (p, a) => (p.outputNorm = a));
  w.one(c.vocabSize * c.dim, 'tok_embeddings', (p, a) => (p.tokenEmbedding = a));
  for (const k of ['wq', 'wk', 'wv', 'wo', 'wGate', 'wDown', 'wUp'] as const) w.layers(k);
  if (!shared) w.one(c.vocabSize * c.dim, 'output', (p, a) => (p.output = a));
  return w.total;
};

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}
