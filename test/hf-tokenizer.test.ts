import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelFormatError } from '../src/formats/errors.js';
import { HfTokenizer, chatTemplateOf, readHfTokenizerFiles } from '../src/tokenizer/hf.js';
import { writeHfFolder } from './helpers/hf-folder.js';
import { hasShared, readJson } from './helpers/shared-data.js';

type TokensJson = Record<string, { text: string; ids: number[] }>;

const root = mkdtempSync(join(tmpdir(), 'lowkv-hf-tok-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const folders = new Map<string, string>();
function folder(model: string): string {
  let dir = folders.get(model);
  if (!dir) folders.set(model, (dir = writeHfFolder(model, join(root, model))));
  return dir;
}
const tokenizer = (model: string, vocab?: number): HfTokenizer => new HfTokenizer(readHfTokenizerFiles(folder(model)), vocab);

// tokens.json holds llama.cpp's tokenization of the same text with the GGUF vocabulary; the
// tokenizer.json here is built from that vocabulary, laid out like the real Llama 3 / Qwen2 /
// Llama 2 files, and run by @huggingface/tokenizers.
describe.skipIf(!hasShared)('tokenizer.json through @huggingface/tokenizers, against llama.cpp ids', () => {
  const tokens = hasShared ? readJson<TokensJson>('golden/arch/tokens.json') : {};
  const cases: Array<[string, string]> = [
    ['llama3-f32', 'llama3'],
    ['qwen2-f32', 'qwen2'],
    ['llama2-f32', 'spm512'],
  ];

  it.each(cases)('%s reproduces the %s ids (BOS as the folder says)', (model, key) => {
    const { text, ids } = tokens[key];
    const ours = tokenizer(model).encode(text);
    expect(ours.slice(0, ids.length)).toEqual(ids);
  });

  it('BOS: llama3 adds it through its post-processor template, qwen2 has none', () => {
    const l3 = tokenizer('llama3-f32');
    expect([l3.bos, l3.addBos]).toEqual([1021, true]);
    const q2 = tokenizer('qwen2-f32');
    expect(q2.addBos).toBe(false);
    expect(q2.eos).toBe(1021);
    expect(q2.encode('Hi', { addBos: true })[0]).toBe(q2.bos);
  });

  it.each(cases)('%s: decode(encode(text)) is the text, and streaming gives the same text', (model) => {
    const tok = tokenizer(model);
    const text = 'Héllo wörld — 漢字 🌍 and\n  spaces, naïve café ';
    const ids = tok.encode(text);
    expect(tok.decode(ids)).toBe(text);
    const d = tok.decoder();
    const streamed = ids.map((id) => d.push(id)).join('') + d.flush();
    expect(streamed).toBe(text);
    // a multi-byte character split over byte tokens is held back, not emitted as U+FFFD
    const pieces = ids.map((id) => d.push(id));
    expect(pieces.join('')).not.toContain('\uFFFD');
  });

  it('control tokens are matched only with parseSpecial, render as "" and end generation', () => {
    const tok = tokenizer('qwen2-f32');
    const text = '<|im_start|>user';
    const special = tok.encode(text, { parseSpecial: true });
    expect(special[0]).toBe(1022);
    expect(special.length).toBeLessThan(tok.encode(text).length);
    expect(tok.encode(text)).not.toContain(1022);
    expect(tok.decode(special)).toBe('user');
    expect(tok.isEog(1023)).toBe(true); // <|im_end|>
    expect(tok.isEog(1021)).toBe(true); // <|endoftext|> = eos
    expect(tok.isEog(1022)).toBe(false);
    expect(tok.piece(1022)).toBe('<|im_start|>');
    expect(tok.specialTokenId('<|im_start|>')).toBe(1022);
    expect(tok.specialTokenId('user')).toBeUndefined(); // an ordinary token is not a special one
    expect(tokenizer('llama3-f32').isEog(1023)).toBe(true); // <|eot_id|>
  });

  it('streams text after a control token with its space, as decode() of the whole does', () => {
    const tok = tokenizer('llama2-f32');
    const ids = [1, ...tok.encode('Once upon', { addBos: false }), 2, ...tok.encode(' a time', { addBos: false })];
    const d = tok.decoder();
    expect(ids.map((id) => d.push(id)).join('') + d.flush()).toBe(tok.decode(ids));
  });

  it('pads the vocabulary to the embedding rows; padding ids decode to "" ', () => {
    const tok = tokenizer('qwen2-f32', 1030);
    expect(tok.vocabSize).toBe(1030);
    expect(tok.decode([1027, ...tok.encode('abc')])).toBe('abc');
    expect(() => tokenizer('qwen2-f32', 1000)).toThrow(/ids up to 1023.*1000 rows/);
  });

  it('reads the chat template (string, named list, or chat_template.jinja)', () => {
    const dir = folder('qwen2-f32');
    const files = readHfTokenizerFiles(dir);
    expect(chatTemplateOf(files.config, dir, files.configPath)).toContain('<|im_start|>');
    expect(chatTemplateOf({ chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }] }, dir, 'x')).toBe('D');
    const bare = join(root, 'bare');
    rmSync(bare, { recursive: true, force: true });
    writeHfFolder('llama2-f32', bare);
    writeFileSync(join(bare, 'chat_template.jinja'), 'J');
    expect(chatTemplateOf({}, bare, 'x')).toBe('J');
    expect(() => chatTemplateOf({ chat_template: 5 }, dir, 'x')).toThrow(ModelFormatError);
  });
});
