// The tokenizers on the whole text corpus in ../shared/data/text: reference token counts from
// llama.cpp, lossless round trips, streaming = batch decoding, and GGUF = llama2.c vocabularies.
import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { SpmTokenizer } from '../src/tokenizer/spm.js';
import { readLlama2cTokenizer } from '../src/tokenizer/llama2c-vocab.js';
import { spmVocabFromGguf } from '../src/tokenizer/gguf-vocab.js';
import { readGguf } from '../src/formats/gguf.js';
import { dataPath, hasShared } from './helpers/shared-data.js';


function textFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return textFiles(p);
    return e.name.endsWith('.txt') ? [p] : [];
  });
}

function streamed(tok: SpmTokenizer, ids: readonly number[]): string {
  const d = tok.decoder();
  let s = '';
  for (const id of ids) s += d.push(id);
  return s + d.flush();
}

const bin = (rel: string, n: number) => new SpmTokenizer(readLlama2cTokenizer(dataPath(rel), n));
const tokenizers = hasShared
  ? {
      tok512: bin('models/stories260K/tok512.bin', 512),
      tok4096: bin('models/lowkv-tiny-hd64/tok4096.bin', 4096),
      llama2: bin('models/llama2-tokenizer/tokenizer.bin', 32000),
    }
  : undefined;
const tok4096Gguf = hasShared
  ? (() => {
      const p = dataPath('models/lowkv-tiny-hd64/lowkv-tiny-hd64-f32.gguf');
      return new SpmTokenizer(spmVocabFromGguf(readGguf(p).metadata, p));
    })()
  : undefined;
const files = hasShared ? textFiles(dataPath('text')).sort() : [];

describe.skipIf(!hasShared)('reference token counts', () => {
  it('WikiText-2 test with tok4096: 467,790 ids with BOS, as llama-tokenize prints', () => {
    const text = readFileSync(dataPath('text/wikitext2/wikitext2_test_hfjoin.txt'), 'utf8');
    const t0 = performance.now();
    const ids = tokenizers!.tok4096.encode(text, { addBos: false });
    const ms = performance.now() - t0;
    console.log(`WikiText-2 (${text.length} chars) encoded to ${ids.length} ids in ${ms.toFixed(0)} ms`);
    // llama-tokenize adds BOS by default: its 467,790 ids are BOS + these 467,789.
    expect(ids.length).toBe(467_789);
    expect(tokenizers!.tok4096.encode(text)).toEqual([1, ...ids]);
    // Guards against super-linear behaviour, not a benchmark.
    expect(ms).toBeLessThan(20_000);
  });

  it('TinyStories slice with tok512 + BOS: 40,710 ids, as llama-perplexity sees', () => {
    const text = readFileSync(dataPath('text/tinystories/tinystories_v2_valid_first100.txt'), 'utf8');
    expect(tokenizers!.tok512.encode(text)).toHaveLength(40_710);
  });
});

describe.skipIf(!hasShared)('lossless round trips over ../shared/data/text', () => {
  for (const file of files) {
    const name = relative(dataPath('text'), file);
    it(`${name}: decode(encode(x)) === x, streamed === decode, tok4096 GGUF === .bin`, () => {
      const text = readFileSync(file, 'utf8');
      for (const [tokName, tok] of Object.entries(tokenizers!)) {
        const ids = tok.encode(text);
        const back = tok.decode(ids);
        expect(back === text, `${tokName} round trip`).toBe(true);
        expect(streamed(tok, ids) === back, `${tokName} streamed`).toBe(true);
        if (tokName === 'tok4096') {
          expect(tok4096Gguf!.encode(text), 'tok4096 GGUF ids').toEqual(ids);
        }
      }
    });
  }

  it('wikitext2_test_rows.jsonl: every row round-trips', () => {
    const rows = readFileSync(dataPath('text/wikitext2/wikitext2_test_rows.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (JSON.parse(l) as { text: string }).text);
    expect(rows).toHaveLength(4358);
    for (const [tokName, tok] of Object.entries(tokenizers!)) {
      for (const row of rows) {
        const ids = tok.encode(row);
        expect(tok.decode(ids), `${tokName}: ${JSON.stringify(row.slice(0, 60))}`).toBe(row);
        expect(streamed(tok, ids)).toBe(row);
        if (tokName === 'tok4096') expect(tok4096Gguf!.encode(row)).toEqual(ids);
      }
    }
  });
});
