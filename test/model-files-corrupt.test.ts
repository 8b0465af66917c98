// Corrupt and unsupported model files: each must fail with a ModelFormatError naming the file
// and the field, quickly and without large allocations. The files are built here, in a temp dir.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelFormatError } from '../src/formats/errors.js';
import { GgmlType } from '../src/formats/ggml-types.js';
import { readGguf, readTensor } from '../src/formats/gguf.js';
import { type GgufTensorToWrite, type GgufTypedValue, writeGguf } from '../src/formats/gguf-write.js';
import { readLlama2c } from '../src/formats/llama2c.js';
import { llamaFromGguf } from '../src/model/from-gguf.js';

const tmp = mkdtempSync(join(tmpdir(), 'lowkv-corrupt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let serial = 0;
const tmpPath = (name: string): string => join(tmp, `${serial++}-${name}`);

/** Runs fn, expecting a ModelFormatError for `path` whose field matches; returns the error. */
function fails(fn: () => unknown, path: string, field: string | RegExp, problem?: string | RegExp): ModelFormatError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ModelFormatError);
  const e = err as ModelFormatError;
  expect(e.file).toBe(path);
  expect(e.message.startsWith(`${path}: `)).toBe(true);
  if (typeof field === 'string') expect(e.field).toBe(field);
  else expect(e.field).toMatch(field);
  if (problem !== undefined) {
    if (typeof problem === 'string') expect(e.problem).toContain(problem);
    else expect(e.problem).toMatch(problem);
  }
  return e;
}

// ---- a tiny llama GGUF (dim 32, 1 layer, 4/2 heads, hidden 64, vocab 16) ----

const DIM = 32;
const HIDDEN = 64;
const VOCAB = 16;

function fill(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 1000 + i) * 0.1);
}

function tinyTensors(shapeOf: (name: string, ne: number[]) => number[] = (_, ne) => ne): GgufTensorToWrite[] {
  const hd = DIM / 4;
  const specs: Array<[string, number[], GgmlType.F32 | GgmlType.Q8_0]> = [
    ['token_embd.weight', [DIM, VOCAB], GgmlType.Q8_0],
    ['blk.0.attn_norm.weight', [DIM], GgmlType.F32],
    ['blk.0.attn_q.weight', [DIM, 4 * hd], GgmlType.F32],
    ['blk.0.attn_k.weight', [DIM, 2 * hd], GgmlType.F32],
    ['blk.0.attn_v.weight', [DIM, 2 * hd], GgmlType.F32],
    ['blk.0.attn_output.weight', [4 * hd, DIM], GgmlType.F32],
    ['blk.0.ffn_norm.weight', [DIM], GgmlType.F32],
    ['blk.0.ffn_gate.weight', [DIM, HIDDEN], GgmlType.F32],
    ['blk.0.ffn_down.weight', [HIDDEN, DIM], GgmlType.F32],
    ['blk.0.ffn_up.weight', [DIM, HIDDEN], GgmlType.F32],
    ['output_norm.weight', [DIM], GgmlType.F32],
    ['output.weight', [DIM, VOCAB], GgmlType.F32],
  ];
  return specs.map(([name, ne0, type], i) => {
    const ne = shapeOf(name, ne0);
    return { name, type, ne, data: fill(ne.reduce((a, b) => a * b, 1), i) };
  });
}

function tinyMetadata(extra: Array<[string, GgufTypedValue]> = [], arch = 'llama'): Array<[string, GgufTypedValue]> {
  const u32 = (value: number): GgufTypedValue => ({ type: 'uint32', value });
  return [
    ['general.architecture', { type: 'string', value: arch }],
    ['general.name', { type: 'string', value: 'tiny corrupt-test model' }],
    [`${arch}.context_length`, u32(8)],
    [`${arch}.embedding_length`, u32(DIM)],
    [`${arch}.block_count`, u32(1)],
    [`${arch}.feed_forward_length`, u32(HIDDEN)],
    [`${arch}.attention.head_count`, u32(4)],
    [`${arch}.attention.head_count_kv`, u32(2)],
    [`${arch}.attention.layer_norm_rms_epsilon`, { type: 'float32', value: 1e-5 }],
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: Array.from({ length: VOCAB }, (_, i) => `t${i}`) }],
    ...extra,
  ];
}

function writeTiny(
  name: string,
  opts: { metadata?: Array<[string, GgufTypedValue]>; tensors?: GgufTensorToWrite[] } = {},
): string {
  const path = tmpPath(name);
  writeGguf(path, { metadata: opts.metadata ?? tinyMetadata(), tensors: opts.tensors ?? tinyTensors() });
  return path;
}

/** Writes a modified copy of a file's bytes. */
function patched(src: string, name: string, edit: (b: Buffer) => Buffer | void): string {
  const b = readFileSync(src);
  const out = edit(b) ?? b;
  const path = tmpPath(name);
  writeFileSync(path, out);
  return path;
}

/** Offset just after a GGUF v3 length-prefixed string (a key or a tensor name) in the header. */
function afterString(b: Buffer, s: string): number {
  const needle = Buffer.alloc(8 + Buffer.byteLength(s));
  needle.writeBigUInt64LE(BigInt(Buffer.byteLength(s)));
  needle.write(s, 8);
  const i = b.indexOf(needle);
  if (i < 0) throw new Error(`"${s}" not in file`);
  return i + needle.length;
}

/** Positions of a 2-D tensor's info fields. */
function tensorFields(b: Buffer, name: string) {
  const nDims = afterString(b, name);
  const n = b.readUInt32LE(nDims);
  const type = nDims + 4 + 8 * n;
  return { nDims, ne: nDims + 4, type, offset: type + 4 };
}

describe('corrupt GGUF files', { timeout: 1000 }, () => {
  const good = writeTiny('good.gguf');

  it('the uncorrupted tiny file loads', () => {
    const m = llamaFromGguf(readGguf(good));
    expect(m.config).toMatchObject({ dim: DIM, nLayers: 1, headDim: 8, vocabSize: VOCAB, rmsEps: 1e-5 });
  });

  it('wrong magic', () => {
    const p = patched(good, 'magic.gguf', (b) => void b.write('GGML', 0));
    fails(() => readGguf(p), p, 'header.magic', 'expected "GGUF"');
  });

  it('unsupported GGUF version 4', () => {
    const p = patched(good, 'v4.gguf', (b) => void b.writeUInt32LE(4, 4));
    fails(() => readGguf(p), p, 'header.version', 'unsupported GGUF version 4');
  });

  it('truncated header: says which field the file ends in', () => {
    // A long first entry puts every later field beyond the bytes the counts alone require, so
    // the cut is found mid-field rather than by the count plausibility check.
    const src = writeTiny('described.gguf', {
      metadata: [['general.description', { type: 'string', value: 'x'.repeat(2000) }], ...tinyMetadata()],
    });
    const b = readFileSync(src);
    const q = tensorFields(b, 'blk.0.attn_q.weight');
    const cuts: Array<[number, string | RegExp, RegExp?]> = [
      [2, 'header.magic'],
      [6, 'header.version'],
      [12, 'header.tensor_count'],
      [20, 'header.metadata_kv_count'],
      // Mid-string: the length is checked against what is left before any byte is read.
      [afterString(b, 'general.description') + 4 + 8 + 1000, 'metadata["general.description"]', /string length 2000 exceeds the 1000 bytes left/],
      [afterString(b, 'general.architecture') - 5, 'metadata entry #1 key'],
      [afterString(b, 't15') - 1, 'metadata["tokenizer.ggml.tokens"][15]'],
      [q.nDims - 4, /^tensor #\d+ name$/],
      [q.nDims + 2, 'tensor "blk.0.attn_q.weight" n_dims'],
      [q.ne + 12, 'tensor "blk.0.attn_q.weight" ne[1]'],
      [q.type + 1, 'tensor "blk.0.attn_q.weight" type'],
      [q.offset + 7, 'tensor "blk.0.attn_q.weight" offset'],
    ];
    for (const [cut, field, problem] of cuts) {
      const p = patched(src, `cut-${cut}.gguf`, (x) => x.subarray(0, cut));
      // Fixed-size fields report the cut; strings report their length against the bytes left.
      const cutOrShort = /^(truncated: the field needs \d+ bytes at offset \d+, but the file ends at byte \d+|string length \d+ exceeds the \d+ bytes left in the file)$/;
      fails(() => readGguf(p), p, field, problem ?? cutOrShort);
    }
  });

  it('cuts all through the header fail cleanly', () => {
    const b = readFileSync(good);
    const end = readGguf(good).dataOffset;
    const p = tmpPath('cut-any.gguf');
    // Every byte of the fixed header, then a stride co-prime with the field sizes, to stay fast.
    for (let cut = 0; cut < end; cut += cut < 64 ? 1 : 3) {
      writeFileSync(p, b.subarray(0, cut));
      fails(() => readGguf(p), p, /./, /truncated|exceeds the \d+ bytes left in the file|past the end of the file/);
    }
  });

  it('truncated tensor data', () => {
    const f = readGguf(good);
    const last = f.tensors.reduce((a, t) => (t.offset > a.offset ? t : a));
    const p = patched(good, 'data-cut.gguf', (b) => b.subarray(0, b.length - 3));
    fails(() => readGguf(p), p, `tensor "${last.name}"`, 'truncated tensor data');
  });

  it('tensor offset past the end of the file', () => {
    const p = patched(good, 'offset-past.gguf', (b) => {
      b.writeBigUInt64LE(2n ** 40n, tensorFields(b, 'blk.0.attn_k.weight').offset);
    });
    fails(() => readGguf(p), p, 'tensor "blk.0.attn_k.weight" offset', 'past the end of the file');
  });

  it('misaligned tensor offset', () => {
    const p = patched(good, 'misaligned.gguf', (b) => {
      const at = tensorFields(b, 'blk.0.attn_k.weight').offset;
      b.writeBigUInt64LE(b.readBigUInt64LE(at) + 4n, at);
    });
    fails(() => readGguf(p), p, 'tensor "blk.0.attn_k.weight" offset', 'not a multiple of the alignment 32');
  });

  it('overlapping tensor data', () => {
    const p = patched(good, 'overlap.gguf', (b) => {
      const v = b.readBigUInt64LE(tensorFields(b, 'blk.0.attn_k.weight').offset);
      b.writeBigUInt64LE(v, tensorFields(b, 'blk.0.attn_v.weight').offset);
    });
    fails(() => readGguf(p), p, /offset$/, 'overlaps');
  });

  it('unknown and removed tensor type ids', () => {
    const p = patched(good, 'type99.gguf', (b) => void b.writeUInt32LE(99, tensorFields(b, 'blk.0.attn_q.weight').type));
    fails(() => readGguf(p), p, 'tensor "blk.0.attn_q.weight" type', 'unknown tensor type id 99');
    const r = patched(good, 'type31.gguf', (b) => void b.writeUInt32LE(31, tensorFields(b, 'blk.0.attn_q.weight').type));
    fails(() => readGguf(r), r, 'tensor "blk.0.attn_q.weight" type', 'Q4_0_4_4 (id 31) was removed');
  });

  it('ne[0] not a multiple of the block size', () => {
    const p = patched(good, 'block.gguf', (b) => {
      b.writeUInt32LE(GgmlType.Q4_K, tensorFields(b, 'blk.0.attn_q.weight').type);
    });
    fails(() => readGguf(p), p, 'tensor "blk.0.attn_q.weight"', 'ne[0] = 32 is not a multiple of the Q4_K block size 256');
  });

  it('n_dims 9 and a zero dimension', () => {
    const p = patched(good, 'ndims.gguf', (b) => void b.writeUInt32LE(9, tensorFields(b, 'blk.0.attn_q.weight').nDims));
    fails(() => readGguf(p), p, 'tensor "blk.0.attn_q.weight" n_dims', 'n_dims 9 is outside 1..4');
    const z = patched(good, 'ne0.gguf', (b) => void b.writeBigUInt64LE(0n, tensorFields(b, 'blk.0.attn_q.weight').ne + 8));
    fails(() => readGguf(z), z, 'tensor "blk.0.attn_q.weight" ne[1]', 'at least 1');
  });

  it('element count beyond 2^53', () => {
    const p = patched(good, 'huge-ne.gguf', (b) => {
      const ne = tensorFields(b, 'blk.0.attn_q.weight').ne;
      b.writeBigUInt64LE(2n ** 40n, ne);
      b.writeBigUInt64LE(2n ** 20n, ne + 8);
    });
    fails(() => readGguf(p), p, 'tensor "blk.0.attn_q.weight" ne[1]', 'exceeds 2^53');
  });

  it('a metadata string length of 2^60 fails fast, naming the key', () => {
    const p = patched(good, 'strlen.gguf', (b) => void b.writeBigUInt64LE(2n ** 60n, afterString(b, 'general.name') + 4));
    const left = readFileSync(p).length - (afterString(readFileSync(p), 'general.name') + 4 + 8);
    const t0 = performance.now();
    const e = fails(() => readGguf(p), p, 'metadata["general.name"]');
    expect(performance.now() - t0).toBeLessThan(200);
    expect(e.message).toBe(
      `${p}: metadata["general.name"]: string length 1152921504606846976 exceeds the ${left} bytes left in the file`,
    );
  });

  it('a huge array length', () => {
    const p = patched(good, 'arrlen.gguf', (b) => {
      b.writeBigUInt64LE(2n ** 62n, afterString(b, 'tokenizer.ggml.tokens') + 4 + 4);
    });
    fails(() => readGguf(p), p, 'metadata["tokenizer.ggml.tokens"]', /array length 4611686018427387904 × 8 bytes exceeds the \d+ bytes left/);
  });

  it('huge tensor and metadata counts', () => {
    const t = patched(good, 'tcount.gguf', (b) => void b.writeBigUInt64LE(2n ** 40n, 8));
    fails(() => readGguf(t), t, 'header.tensor_count', /^1099511627776 tensor infos need at least 35184372088832 bytes, but only \d+ are left/);
    const k = patched(good, 'kvcount.gguf', (b) => void b.writeBigUInt64LE(2n ** 63n, 16));
    fails(() => readGguf(k), k, 'header.metadata_kv_count', /^9223372036854775808 metadata entries and 12 tensor infos need/);
  });

  it('unknown value type, bad bool, duplicate key, bad alignment', () => {
    const vt = patched(good, 'vtype.gguf', (b) => void b.writeUInt32LE(13, afterString(b, 'general.name')));
    fails(() => readGguf(vt), vt, 'metadata["general.name"] value type', 'unknown value type 13');

    const withExtras = writeTiny('extras.gguf', {
      metadata: tinyMetadata([
        ['x.flag', { type: 'bool', value: true }],
        ['x.aaaa', { type: 'uint8', value: 1 }],
        ['x.bbbb', { type: 'uint8', value: 2 }],
        ['general.alignment', { type: 'uint32', value: 32 }],
      ]),
    });
    const bool = patched(withExtras, 'bool.gguf', (b) => void b.writeUInt8(2, afterString(b, 'x.flag') + 4));
    fails(() => readGguf(bool), bool, 'metadata["x.flag"]', 'bool byte is 2');
    const dup = patched(withExtras, 'dup.gguf', (b) => void b.write('aaaa', afterString(b, 'x.bbbb') - 4));
    fails(() => readGguf(dup), dup, 'metadata["x.aaaa"]', 'duplicate key');
    const align = patched(withExtras, 'align.gguf', (b) => void b.writeUInt32LE(48, afterString(b, 'general.alignment') + 4));
    fails(() => readGguf(align), align, 'metadata["general.alignment"]', 'not a power of two');
  });

  it('arrays nested too deep', () => {
    const deep: GgufTypedValue = {
      type: 'array',
      itemType: { array: { array: { array: { array: 'uint8' } } } },
      value: [[[[new Uint8Array([1])]]]],
    };
    const p = writeTiny('deep.gguf', { metadata: tinyMetadata([['x.deep', deep]]) });
    fails(() => readGguf(p), p, /^metadata\["x\.deep"\]/, 'nested deeper');
  });

  it('duplicate tensor names', () => {
    const p = patched(good, 'duptensor.gguf', (b) => void b.write('k', afterString(b, 'blk.0.attn_v.weight') - 8));
    fails(() => readGguf(p), p, 'tensor "blk.0.attn_k.weight"', 'duplicate tensor name');
  });
});

describe('GGUF files that disagree with their hyperparameters', { timeout: 1000 }, () => {
  it('a tensor whose shape disagrees (attn_q of the wrong size)', () => {
    const p = writeTiny('shape.gguf', {
      tensors: tinyTensors((name, ne) => (name === 'blk.0.attn_q.weight' ? [DIM, 16] : ne)),
    });
    fails(() => llamaFromGguf(readGguf(p)), p, 'tensor "blk.0.attn_q.weight"', 'shape [32, 16] does not match the expected [32, 32]');
  });

  it('a missing tensor', () => {
    const p = writeTiny('missing.gguf', { tensors: tinyTensors().filter((t) => t.name !== 'blk.0.ffn_up.weight') });
    fails(() => llamaFromGguf(readGguf(p)), p, 'tensor "blk.0.ffn_up.weight"', 'missing (expected shape [32, 64])');
  });

  it('unsupported architecture', () => {
    const p = writeTiny('mamba.gguf', { metadata: tinyMetadata([], 'mamba') });
    const e = fails(() => llamaFromGguf(readGguf(p)), p, 'general.architecture');
    expect(e.problem).toBe('unsupported architecture "mamba"; supported: llama, qwen2, qwen3, phi3, gemma, gemma2');
  });

  it('partial RoPE and missing hyperparameters', () => {
    const p = writeTiny('rope.gguf', { metadata: tinyMetadata([['llama.rope.dimension_count', { type: 'uint32', value: 4 }]]) });
    fails(() => llamaFromGguf(readGguf(p)), p, 'metadata["llama.rope.dimension_count"]', 'partial RoPE');
    const m = writeTiny('nodim.gguf', { metadata: tinyMetadata().filter(([k]) => k !== 'llama.embedding_length') });
    fails(() => llamaFromGguf(readGguf(m)), m, 'metadata["llama.embedding_length"]', 'missing');
    const t = writeTiny('badtype.gguf', {
      metadata: tinyMetadata().map(([k, v]): [string, GgufTypedValue] =>
        k === 'llama.block_count' ? [k, { type: 'string', value: '1' }] : [k, v],
      ),
    });
    fails(() => llamaFromGguf(readGguf(t)), t, 'metadata["llama.block_count"]', 'expected a number, found string');
  });

  it('an extra tensor (a bias) is refused rather than ignored', () => {
    const p = writeTiny('bias.gguf', {
      tensors: [...tinyTensors(), { name: 'blk.0.attn_q.bias', type: GgmlType.F32, ne: [DIM], data: fill(DIM, 99) }],
    });
    fails(() => llamaFromGguf(readGguf(p)), p, 'tensor "blk.0.attn_q.bias"', 'unexpected tensor');
  });

  it('a missing tensor asked for by name', () => {
    const good = writeTiny('lookup.gguf');
    fails(() => readTensor(readGguf(good), 'nope.weight'), good, 'tensor "nope.weight"', 'not found');
  });
});

// ---- llama2.c ----

interface L2cParams {
  dim: number;
  hidden: number;
  layers: number;
  heads: number;
  kv: number;
  vocab: number;
  seq: number;
}
const L2C: L2cParams = { dim: 8, hidden: 16, layers: 2, heads: 2, kv: 1, vocab: 10, seq: 4 };

/** Float count of a legacy checkpoint with these (valid) parameters. */
function legacyFloats(p: L2cParams): number {
  const hs = p.dim / p.heads;
  const perLayer = 2 * p.dim + p.dim * p.dim * 2 + 2 * p.kv * hs * p.dim + 3 * p.hidden * p.dim;
  return Math.abs(p.vocab) * p.dim * (p.vocab < 0 ? 2 : 1) + p.layers * perLayer + p.dim + p.seq * hs;
}

const fmt = (n: number): string => n.toLocaleString('en-US');

function writeLegacy(name: string, header: L2cParams, floats = legacyFloats(L2C)): string {
  const b = Buffer.alloc(28 + 4 * floats);
  [header.dim, header.hidden, header.layers, header.heads, header.kv, header.vocab, header.seq].forEach((v, i) =>
    b.writeInt32LE(v, 4 * i),
  );
  for (let i = 0; i < floats; i++) b.writeFloatLE(Math.cos(i), 28 + 4 * i);
  const path = tmpPath(name);
  writeFileSync(path, b);
  return path;
}

describe('corrupt llama2.c checkpoints', { timeout: 1000 }, () => {
  it('the uncorrupted synthetic file loads', () => {
    const m = readLlama2c(writeLegacy('ok.bin', L2C));
    expect(m.config).toMatchObject({ dim: 8, headDim: 4, nKvHeads: 1, vocabSize: 10 });
    expect(m.weights.outputNorm.length).toBe(8);
  });

  it('negative and zero dimensions', () => {
    const neg = writeLegacy('neg.bin', { ...L2C, dim: -8 });
    fails(() => readLlama2c(neg), neg, 'header.dim', 'must be positive, is -8');
    const zero = writeLegacy('zero.bin', { ...L2C, layers: 0 });
    fails(() => readLlama2c(zero), zero, 'header.n_layers', 'must be positive, is 0');
    const vocab = writeLegacy('vocab0.bin', { ...L2C, vocab: 0 });
    fails(() => readLlama2c(vocab), vocab, 'header.vocab_size', 'must be positive');
  });

  it('dim not divisible by heads, heads not divisible by kv heads, odd head size', () => {
    const a = writeLegacy('heads.bin', { ...L2C, heads: 3 });
    fails(() => readLlama2c(a), a, 'header.n_heads', 'dim 8 is not divisible by n_heads 3');
    const b = writeLegacy('kv.bin', { ...L2C, heads: 4, kv: 3 });
    fails(() => readLlama2c(b), b, 'header.n_kv_heads', 'n_heads 4 is not divisible by n_kv_heads 3');
    const c = writeLegacy('odd.bin', { ...L2C, heads: 8, kv: 8 });
    fails(() => readLlama2c(c), c, 'header.n_heads', 'odd');
  });

  it('absurd sizes are refused before any allocation', () => {
    const p = writeLegacy('huge.bin', { ...L2C, dim: 1 << 20, heads: 1 << 10, kv: 1 << 10 });
    fails(() => readLlama2c(p), p, /^header\./, 'more than 2^31');
  });

  it('a file whose size disagrees with its header', () => {
    const expected = 28 + 4 * legacyFloats(L2C);
    const short = writeLegacy('short.bin', L2C, legacyFloats(L2C) - 5);
    fails(() => readLlama2c(short), short, 'file size', `truncated: expected ${fmt(expected)} bytes, file has ${fmt(expected - 20)}`);
    const long = writeLegacy('long.bin', L2C, legacyFloats(L2C) + 1);
    fails(() => readLlama2c(long), long, 'file size', 'has 4 trailing bytes');
    // The untied flag (negative vocab) makes the same bytes too short by one classifier.
    const untied = writeLegacy('untied.bin', { ...L2C, vocab: -10 });
    fails(() => readLlama2c(untied), untied, 'file size', 'truncated');
    const header = tmpPath('header.bin');
    writeFileSync(header, Buffer.alloc(10));
    fails(() => readLlama2c(header), header, 'header', 'truncated');
  });

  it('versioned headers: version 2 and unknown versions are refused by name', () => {
    const v = (version: number): string => {
      const b = Buffer.alloc(256);
      b.writeUInt32LE(0x616b3432, 0);
      b.writeInt32LE(version, 4);
      const path = tmpPath(`v${version}.bin`);
      writeFileSync(path, b);
      return path;
    };
    const v2 = v(2);
    fails(() => readLlama2c(v2), v2, 'header.version', 'version 2 (int8 Q8_0)');
    const v7 = v(7);
    fails(() => readLlama2c(v7), v7, 'header.version', 'unknown llama2.c checkpoint version 7');
    const v1 = v(1);
    fails(() => readLlama2c(v1), v1, 'header.dim', 'must be positive');
  });

  it('a GGUF file handed to the llama2.c reader', () => {
    const p = writeTiny('notl2c.gguf');
    fails(() => readLlama2c(p), p, 'header', 'GGUF file');
  });
});
