import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readGguf, readTensor } from '../src/formats/gguf.js';
import { copyMetadataEntry, writeGguf } from '../src/formats/gguf-write.js';
import { ModelFormatError } from '../src/formats/errors.js';
import { loadModelFile } from '../src/model/load.js';
import { STORIES_BIN, STORIES_GGUF } from './helpers/models.js';
import { dataPath, hasShared } from './helpers/shared-data.js';

describe.skipIf(!hasShared)('model loading', () => {
  const dir = (): string => mkdtempSync(join(tmpdir(), 'lowkv-load-'));

  it('finds a llama2.c tokenizer beside the model, preferring tok<vocab>.bin', () => {
    const d = dir();
    copyFileSync(STORIES_BIN, join(d, 'm.bin'));
    expect(() => loadModelFile(join(d, 'm.bin'))).toThrow(/no tokenizer\.bin or tok\*\.bin beside it; pass --tokenizer FILE/);
    copyFileSync(dataPath('models/lowkv-tiny-hd64/tok4096.bin'), join(d, 'tokenizer.bin'));
    copyFileSync(dataPath('models/stories260K/tok512.bin'), join(d, 'tok512.bin'));
    const m = loadModelFile(join(d, 'm.bin'));
    expect(m.tokenizerPath).toBe(join(d, 'tok512.bin'));
    expect(m.tokenizer.vocabSize).toBe(512);
    expect(() => loadModelFile(join(d, 'm.bin'), { tokenizerPath: join(d, 'tokenizer.bin') })).toThrow(
      /tokenizer\.bin: token count: file holds 4096 tokens but the model has vocab_size 512/,
    );
  });

  it('refuses a GGUF whose tokenizer disagrees with its embedding (vocabulary size mismatch)', () => {
    const f = readGguf(STORIES_GGUF);
    const out = join(dir(), 'bad-vocab.gguf');
    writeGguf(out, {
      metadata: [...f.metadata.keys()].map((k) => {
        const e = copyMetadataEntry(f, k);
        return [k, k.startsWith('tokenizer.ggml.') && e.type === 'array' ? { ...e, value: e.value.slice(0, 500) } : e] as const;
      }),
      tensors: f.tensors.map((t) => ({ name: t.name, type: 0, ne: t.ne, data: readTensor(f, t.name) })),
    });
    expect(() => loadModelFile(out)).toThrow(ModelFormatError);
    expect(() => loadModelFile(out)).toThrow(/bad-vocab\.gguf: vocab_size: the tokenizer has 500 tokens but the model's embedding has 512 rows/);
  });

  it('refuses --tokenizer for a GGUF, which carries its own', () => {
    expect(() => loadModelFile(STORIES_GGUF, { tokenizerPath: 'x.bin' })).toThrow(/carries its own tokenizer/);
  });
});
