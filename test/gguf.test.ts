import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelFormatError } from '../src/formats/errors.js';
import { matrixValues } from '../src/model/weight-memory.js';
import { GgmlType, dequantizeToF32, ggmlTypeInfo, ggmlTypeName } from '../src/formats/ggml-types.js';
import {
  type GgufFile,
  describeType,
  getArray,
  getBool,
  getNumber,
  getString,
  readGguf,
  readTensor,
  readTensorBytes,
} from '../src/formats/gguf.js';
import {
  type GgufTypedValue,
  type WritableTensorType,
  copyMetadataEntry,
  encodeTensorData,
  writeGguf,
} from '../src/formats/gguf-write.js';
import { llamaFromGguf } from '../src/model/from-gguf.js';
import { dataPath, hasShared, readF32 } from './helpers/shared-data.js';

const tmp = mkdtempSync(join(tmpdir(), 'lowkv-gguf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const sameBits = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && bytesOf(a).equals(bytesOf(b));

const STORIES_V1 = ['models', 'stories260K-gguf-v1', 'tinyllamas-stories-260k-f32.gguf'];
const TINY_V3 = ['models', 'lowkv-tiny-hd64', 'lowkv-tiny-hd64-f32.gguf'];
const VOCAB_ONLY = ['models', 'ggml-vocab-llama-spm', 'ggml-vocab-llama-spm.gguf'];
const arch = (m: string): string => dataPath('golden', 'arch', m, `${m}.gguf`);

describe('ggml type table', () => {
  it('knows every ggml id with its block geometry', () => {
    expect(ggmlTypeInfo(GgmlType.Q8_0)).toMatchObject({ name: 'Q8_0', blockSize: 32, typeSize: 34 });
    expect(ggmlTypeInfo(GgmlType.Q4_K)).toMatchObject({ name: 'Q4_K', blockSize: 256, typeSize: 144 });
    expect(ggmlTypeInfo(GgmlType.IQ4_XS)).toMatchObject({ blockSize: 256, typeSize: 136 });
    expect(ggmlTypeInfo(GgmlType.BF16)).toMatchObject({ name: 'BF16', blockSize: 1, typeSize: 2 });
    expect(ggmlTypeName(31)).toBe('removed type Q4_0_4_4');
    expect(ggmlTypeName(99)).toBe('unknown type 99');
  });

  it('refuses to dequantize types it cannot decode, by name', () => {
    expect(() => dequantizeToF32(GgmlType.IQ2_XXS, new Uint8Array(66), 256)).toThrow(
      'tensor type IQ2_XXS is not supported yet (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS)',
    );
  });
});

describe('real GGUF files', () => {
  it.skipIf(!hasShared)('parses the GGUF v1 stories260K (uint32 counts, lengths and dims)', () => {
    const f = readGguf(dataPath(...STORIES_V1));
    expect(f.version).toBe(1);
    expect(f.tensors.length).toBe(48);
    expect(f.metadata.size).toBe(18);
    expect(f.alignment).toBe(32);
    expect(f.dataOffset).toBe(11456);
    expect(getString(f, 'general.architecture')).toBe('llama');
    expect(getNumber(f, 'llama.embedding_length')).toBe(64);
    expect(f.metadataTypes.get('tokenizer.ggml.tokens')).toEqual({ array: 'string' });
    expect(getArray(f, 'tokenizer.ggml.tokens').length).toBe(512);
    expect(f.tensor('blk.0.attn_k.weight')).toMatchObject({ type: GgmlType.F32, ne: [64, 32], nElements: 2048, nbytes: 8192 });
    const last = f.tensors.reduce((a, b) => (a.offset > b.offset ? a : b));
    expect(last.offset + last.nbytes).toBe(f.fileSize);
  });

  it.skipIf(!hasShared)('parses the GGUF v3 lowkv-tiny-hd64 with typed metadata', () => {
    const f = readGguf(dataPath(...TINY_V3));
    expect(f.version).toBe(3);
    expect(f.tensors.length).toBe(39);
    expect(f.metadata.size).toBe(24);
    expect(f.metadataTypes.get('tokenizer.ggml.scores')).toEqual({ array: 'float32' });
    expect(f.metadata.get('tokenizer.ggml.scores')).toBeInstanceOf(Float32Array);
    expect(f.metadata.get('tokenizer.ggml.token_type')).toBeInstanceOf(Int32Array);
    expect(getBool(f, 'tokenizer.ggml.add_bos_token')).toBe(true);
    expect(f.tensors.every((t) => t.offset % 32 === 0)).toBe(true);
  });

  it.skipIf(!hasShared)('parses a vocab-only v3 file that ends at its header', () => {
    const f = readGguf(dataPath(...VOCAB_ONLY));
    expect(f.tensors.length).toBe(0);
    expect(f.metadata.size).toBe(22);
    expect(getArray(f, 'tokenizer.ggml.tokens').length).toBe(32000);
    expect(getNumber(f, 'llama.block_count')).toBe(32);
    // Arrays bigger than the reader's window are read straight into place.
    const scores = getArray(f, 'tokenizer.ggml.scores');
    expect(scores).toBeInstanceOf(Float32Array);
    expect(scores.length).toBe(32000);
    const types = getArray(f, 'tokenizer.ggml.token_type') as Int32Array;
    expect(types.every((t) => t >= 1 && t <= 6)).toBe(true);
    expect(getArray(f, 'tokenizer.ggml.tokens')[259]).toBe('▁▁');
  });

  it.skipIf(!hasShared)('loads the golden llama2-f32 and llama2-q8_0 models', () => {
    const f32 = llamaFromGguf(readGguf(arch('llama2-f32')));
    expect(f32.config).toEqual({
      arch: 'llama',
      dim: 128,
      hiddenDim: 192,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      headDim: 32,
      vocabSize: 512,
      contextLength: 256,
      ropeTheta: 10000,
      ropeDim: 32,
      rmsEps: 1e-5,
    });
    expect(f32.weights.output).not.toBe(f32.weights.tokenEmbedding);
    const q8 = llamaFromGguf(readGguf(arch('llama2-q8_0')));
    expect(q8.config).toEqual(f32.config);
    expect(q8.weights.layers[1].wq.type).toBe('q8_0');
    const a = matrixValues(f32.weights.layers[1].wq);
    const b = matrixValues(q8.weights.layers[1].wq);
    let maxErr = 0;
    for (let i = 0; i < a.length; i++) maxErr = Math.max(maxErr, Math.abs(a[i] - b[i]));
    expect(maxErr).toBeGreaterThan(0);
    expect(maxErr).toBeLessThan(0.02);
  });

  it.skipIf(!hasShared)('quantizes the f32 model to the same Q8_0 bytes llama-quantize wrote', () => {
    const f32 = readGguf(arch('llama2-f32'));
    const q8 = readGguf(arch('llama2-q8_0'));
    let compared = 0;
    for (const t of q8.tensors) {
      if (t.type !== GgmlType.Q8_0) continue;
      const mine = encodeTensorData(GgmlType.Q8_0, readTensor(f32, t.name));
      expect(bytesOf(mine).equals(bytesOf(readTensorBytes(q8, t)))).toBe(true);
      compared++;
    }
    expect(compared).toBeGreaterThan(10);
  });

  it.skipIf(!hasShared)('keeps quantized matrices in their stored types', () => {
    // Architectures and what they may not contain: test/arch-loading.test.ts.
    // Quantized models load with their matrices in the stored types (golden logits: weights-models.test.ts).
    const k = llamaFromGguf(readGguf(arch('llama2k-q4_k_m')));
    expect([k.weights.tokenEmbedding.type, k.weights.layers[1].wv.type, k.weights.output.type]).toEqual(['q4_K', 'q6_K', 'q6_K']);
  });
});

describe('ggml-weights golden data', () => {
  const cases: Array<[string, WritableTensorType]> = [
    ['f16', GgmlType.F16],
    ['bf16', GgmlType.BF16],
    ['q8_0', GgmlType.Q8_0],
  ];
  const golden = (...p: string[]): Uint8Array => readFileSync(dataPath('golden', 'ggml-weights', ...p));

  it.skipIf(!hasShared)('dequantizes f16, bf16 and q8_0 bit-exactly', () => {
    for (const [name, type] of cases) {
      const out = dequantizeToF32(type, golden(`${name}.bin`), 16 * 512);
      expect(sameBits(out, readF32('golden', 'ggml-weights', `${name}.deq.f32`)), name).toBe(true);
    }
  });

  it.skipIf(!hasShared)('writes f16, bf16 and q8_0 tensors byte-identical to ggml, and reads them back', () => {
    const weights = readF32('golden', 'ggml-weights', 'weights.f32');
    const path = join(tmp, 'golden-roundtrip.gguf');
    writeGguf(path, {
      metadata: [['general.architecture', { type: 'string', value: 'test' }]],
      tensors: [
        { name: 'w.f32', type: GgmlType.F32, ne: [512, 16], data: weights },
        ...cases.map(([name, type]) => ({ name: `w.${name}`, type, ne: [512, 16], data: weights })),
      ],
    });
    const f = readGguf(path);
    expect(sameBits(readTensor(f, 'w.f32'), weights)).toBe(true);
    for (const [name] of cases) {
      const info = f.tensor(`w.${name}`)!;
      expect(bytesOf(readTensorBytes(f, info)).equals(Buffer.from(golden(`${name}.bin`))), name).toBe(true);
      expect(sameBits(readTensor(f, info.name), readF32('golden', 'ggml-weights', `${name}.deq.f32`)), name).toBe(true);
    }
  });
});

describe('writer round trip', () => {
  const everyType: Array<[string, GgufTypedValue]> = [
    ['t.u8', { type: 'uint8', value: 255 }],
    ['t.i8', { type: 'int8', value: -128 }],
    ['t.u16', { type: 'uint16', value: 65535 }],
    ['t.i16', { type: 'int16', value: -32768 }],
    ['t.u32', { type: 'uint32', value: 4294967295 }],
    ['t.i32', { type: 'int32', value: -2147483648 }],
    ['t.f32', { type: 'float32', value: 0.5 }],
    ['t.f64', { type: 'float64', value: 0.1 }],
    ['t.bool', { type: 'bool', value: true }],
    ['t.str', { type: 'string', value: 'héllo ▁wörld' }],
    ['t.u64.small', { type: 'uint64', value: 12345 }],
    ['t.u64.big', { type: 'uint64', value: 2n ** 64n - 1n }],
    ['t.i64', { type: 'int64', value: -(2n ** 63n) }],
    ['t.arr.str', { type: 'array', itemType: 'string', value: ['a', '', 'ß'] }],
    ['t.arr.f32', { type: 'array', itemType: 'float32', value: new Float32Array([1.5, -2]) }],
    ['t.arr.i32', { type: 'array', itemType: 'int32', value: new Int32Array([-1, 7]) }],
    ['t.arr.u64', { type: 'array', itemType: 'uint64', value: new BigUint64Array([1n, 2n ** 63n]) }],
    ['t.arr.bool', { type: 'array', itemType: 'bool', value: [true, false] }],
    ['t.arr.empty', { type: 'array', itemType: 'uint16', value: new Uint16Array(0) }],
    ['t.arr.nested', { type: 'array', itemType: { array: 'int8' }, value: [new Int8Array([1, -1]), new Int8Array(0)] }],
    ['t.arr.nested.empty', { type: 'array', itemType: 'array', value: [] }],
  ];

  function expectSameMetadata(f: GgufFile, entries: Array<[string, GgufTypedValue]>): void {
    for (const [key, tv] of entries) {
      expect(copyMetadataEntry(f, key), key).toEqual(
        tv.type === 'uint64' && typeof tv.value === 'bigint' && tv.value <= BigInt(Number.MAX_SAFE_INTEGER)
          ? { ...tv, value: Number(tv.value) }
          : tv,
      );
    }
  }

  it('preserves every metadata type, in versions 1, 2 and 3', () => {
    for (const version of [1, 2, 3] as const) {
      const path = join(tmp, `types-v${version}.gguf`);
      writeGguf(path, { version, metadata: everyType, tensors: [] });
      const f = readGguf(path);
      expect(f.version).toBe(version);
      expect([...f.metadata.keys()]).toEqual(everyType.map(([k]) => k));
      expectSameMetadata(f, everyType);
      expect(describeType(f.metadataTypes.get('t.arr.nested')!)).toBe('array<array<int8>>');
      expect(f.metadata.get('t.u64.big')).toBe(2n ** 64n - 1n);
      expect(f.metadata.get('t.u64.small')).toBe(12345);
      // No tensors: the file ends at its header.
      expect(f.dataOffset).toBeGreaterThanOrEqual(f.fileSize);
    }
  });

  it('respects a non-default alignment for every tensor and records it', () => {
    const path = join(tmp, 'align64.gguf');
    const data = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    writeGguf(path, {
      alignment: 64,
      metadata: [['general.name', { type: 'string', value: 'x' }]],
      tensors: [
        { name: 'a', type: GgmlType.F32, ne: [3], data: data(3) },
        { name: 'b', type: GgmlType.Q8_0, ne: [32, 3], data: data(96) },
        { name: 'c', type: GgmlType.F16, ne: [5, 1, 1, 2], data: data(10) },
      ],
    });
    const f = readGguf(path);
    expect(f.alignment).toBe(64);
    expect(f.metadataTypes.get('general.alignment')).toBe('uint32');
    expect(f.dataOffset % 64).toBe(0);
    expect(f.tensors.map((t) => (t.offset - f.dataOffset) % 64)).toEqual([0, 0, 0]);
    expect(f.tensor('c')!.ne).toEqual([5, 1, 1, 2]);
    expect(f.tensor('b')!.nbytes).toBe(3 * 34);
    expect(sameBits(readTensor(f, 'a'), data(3))).toBe(true);
  });

  it.skipIf(!hasShared)('copies all metadata of a real file with its original types', () => {
    const src = readGguf(dataPath(...TINY_V3));
    const entries = [...src.metadata.keys()].map((k): [string, GgufTypedValue] => [k, copyMetadataEntry(src, k)]);
    const path = join(tmp, 'copy.gguf');
    writeGguf(path, { metadata: entries, tensors: [] });
    const f = readGguf(path);
    expect(f.metadataTypes).toEqual(src.metadataTypes);
    expect(f.metadata).toEqual(src.metadata);
  });

  it('refuses invalid values without leaving a partial file', () => {
    const path = join(tmp, 'invalid.gguf');
    const write = (tv: GgufTypedValue): void => writeGguf(path, { metadata: [['x', tv]], tensors: [] });
    expect(() => write({ type: 'uint8', value: 256 })).toThrow(`${path}: metadata["x"]: 256 is not a valid uint8`);
    expect(existsSync(path)).toBe(false);
    expect(() => write({ type: 'array', itemType: 'int32', value: [1, 2.5] })).toThrow('metadata["x"][1]: 2.5 is not a valid int32');
    expect(() => write({ type: 'int64', value: 2n ** 63n })).toThrow(ModelFormatError);
    expect(() =>
      writeGguf(path, { metadata: [], tensors: [{ name: 't', type: GgmlType.Q8_0, ne: [16], data: new Float32Array(16) }] }),
    ).toThrow('tensor "t": ne[0] = 16 is not a multiple of the Q8_0 block size');
    expect(existsSync(path)).toBe(false);
  });

  it('getters name the key and the expected and found types', () => {
    const path = join(tmp, 'getters.gguf');
    writeGguf(path, { metadata: everyType, tensors: [] });
    const f = readGguf(path);
    expect(() => getString(f, 't.u32')).toThrow(`${path}: metadata["t.u32"]: expected string, found uint32`);
    expect(() => getNumber(f, 't.arr.str')).toThrow('metadata["t.arr.str"]: expected a number, found array<string>');
    expect(() => getBool(f, 't.str')).toThrow('expected bool, found string');
    expect(() => getArray(f, 't.bool')).toThrow('expected an array, found bool');
    expect(() => getNumber(f, 'missing.key')).toThrow(ModelFormatError);
    expect(() => getNumber(f, 't.u64.big')).toThrow(/too large/);
    expect(getNumber(f, 'missing.key', false)).toBeUndefined();
  });
});
