import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readGguf } from '../src/formats/gguf.js';
import { readLlama2c } from '../src/formats/llama2c.js';
import { llamaFromGguf } from '../src/model/from-gguf.js';
import type { LlamaConfig, LlamaWeights } from '../src/model/types.js';
import { dataPath, hasShared } from './helpers/shared-data.js';
import type { WeightMatrix } from '../src/kernels/weights.js';
import { matrixValues } from '../src/model/weight-memory.js';

const tmp = mkdtempSync(join(tmpdir(), 'lowkv-llama2c-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const STORIES_BIN = ['models', 'stories260K', 'stories260K.bin'];
const STORIES_GGUF = ['models', 'stories260K-gguf-v1', 'tinyllamas-stories-260k-f32.gguf'];
const TINY_BIN = ['models', 'lowkv-tiny-hd64', 'lowkv-tiny-hd64.bin'];
const TINY_GGUF = ['models', 'lowkv-tiny-hd64', 'lowkv-tiny-hd64-f32.gguf'];

const LAYER_KEYS = ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'ffnNorm', 'wGate', 'wDown', 'wUp'] as const;

/** Every array of a model, named, in a fixed order. */
function arrays(w: LlamaWeights): Array<[string, Float32Array]> {
  const v = (a: Float32Array | WeightMatrix): Float32Array => (a instanceof Float32Array ? a : matrixValues(a));
  const out: Array<[string, Float32Array]> = [['tokenEmbedding', v(w.tokenEmbedding)]];
  w.layers.forEach((l, i) => LAYER_KEYS.forEach((k) => out.push([`layers[${i}].${k}`, v(l[k])])));
  out.push(['outputNorm', w.outputNorm], ['output', v(w.output)]);
  return out;
}

function expectBitIdentical(a: LlamaWeights, b: LlamaWeights): void {
  const x = arrays(a);
  const y = arrays(b);
  expect(x.map(([n]) => n)).toEqual(y.map(([n]) => n));
  x.forEach(([name, arr], i) => {
    const other = y[i][1];
    const same = Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength).equals(
      Buffer.from(other.buffer, other.byteOffset, other.byteLength),
    );
    expect(same, name).toBe(true);
  });
}

/** A llama2.c version-1 checkpoint laid out as export.py's version1_export writes it. */
function writeVersion1(path: string, c: LlamaConfig, w: LlamaWeights, shared: boolean): void {
  const header = Buffer.alloc(256);
  header.writeUInt32LE(0x616b3432, 0);
  header.writeInt32LE(1, 4);
  [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.contextLength].forEach((v, i) =>
    header.writeInt32LE(v, 8 + 4 * i),
  );
  header.writeUInt8(shared ? 1 : 0, 36);
  const L = w.layers;
  const parts: Float32Array[] = [
    ...L.map((l) => l.attnNorm),
    ...L.map((l) => l.ffnNorm),
    w.outputNorm,
    matrixValues(w.tokenEmbedding),
    ...(['wq', 'wk', 'wv', 'wo', 'wGate', 'wDown', 'wUp'] as const).flatMap((k) => L.map((l) => matrixValues(l[k]))),
    ...(shared ? [] : [matrixValues(w.output)]),
  ];
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, header);
    for (const p of parts) writeSync(fd, new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
  } finally {
    closeSync(fd);
  }
}

describe('llama2.c checkpoints', () => {
  it.skipIf(!hasShared)('reads the legacy tied stories260K', () => {
    const m = readLlama2c(dataPath(...STORIES_BIN));
    expect(m.version).toBe(0);
    expect(m.config).toEqual({
      arch: 'llama',
      dim: 64,
      hiddenDim: 172,
      nLayers: 5,
      nHeads: 8,
      nKvHeads: 4,
      headDim: 8,
      vocabSize: 512,
      contextLength: 512,
      ropeTheta: 10000,
      ropeDim: 8,
      rmsEps: 1e-5,
    });
    expect(m.weights.output).toBe(m.weights.tokenEmbedding);
    expect(m.weights.layers[0].wk.data.length).toBe(32 * 64);
  });

  it.skipIf(!hasShared)('reads the legacy untied lowkv-tiny-hd64 (negative vocab_size)', () => {
    const m = readLlama2c(dataPath(...TINY_BIN));
    expect(m.config).toMatchObject({ dim: 256, hiddenDim: 704, nLayers: 4, nHeads: 4, nKvHeads: 2, headDim: 64, vocabSize: 4096 });
    expect(m.weights.output).not.toBe(m.weights.tokenEmbedding);
    expect(m.weights.output.data.length).toBe(4096 * 256);
  });

  for (const [name, bin, gguf] of [
    ['stories260K (GGUF v1)', STORIES_BIN, STORIES_GGUF],
    ['lowkv-tiny-hd64 (GGUF v3)', TINY_BIN, TINY_GGUF],
  ] as const) {
    it.skipIf(!hasShared)(`${name}: the llama2.c and GGUF copies give bit-identical weights and equal configs`, () => {
      const a = readLlama2c(dataPath(...bin));
      const b = llamaFromGguf(readGguf(dataPath(...gguf)));
      expect(b.config).toEqual(a.config);
      expectBitIdentical(a.weights, b.weights);
    });
  }

  for (const [name, bin, shared] of [
    ['tied', STORIES_BIN, true],
    ['untied', TINY_BIN, false],
  ] as const) {
    it.skipIf(!hasShared)(`a version-1 export (${name}) loads to the same weights as the legacy file`, () => {
      const legacy = readLlama2c(dataPath(...bin));
      const path = join(tmp, `v1-${name}.bin`);
      writeVersion1(path, legacy.config, legacy.weights, shared);
      const v1 = readLlama2c(path);
      expect(v1.version).toBe(1);
      expect(v1.config).toEqual(legacy.config);
      expectBitIdentical(v1.weights, legacy.weights);
      expect(v1.weights.output === v1.weights.tokenEmbedding).toBe(shared);
    });
  }
});
