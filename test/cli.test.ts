import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lowkv } from './helpers/cli.js';
import { STORIES_BIN, STORIES_GGUF, TINYSTORIES } from './helpers/models.js';
import { hasShared, readJson } from './helpers/shared-data.js';

describe('lowkv demo (bundled model, no arguments)', () => {
  it('generates a sampled continuation and reports KV bytes per token', () => {
    const r = lowkv(['demo']);
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith('It was a dark and stormy night')).toBe(true);
    expect(r.stdout.length).toBeGreaterThan('It was a dark and stormy night'.length + 40);
    // f16 cache of lowkv-tiny-hd64: 4 layers × (K + V) × 2 KV heads × 64 dims × 2 bytes.
    expect(r.stderr).toMatch(/= 2048 bytes\/token \(K f16 \/ V f16; an f32 cache needs 4096 bytes\/token/);
    expect(r.stderr).toMatch(/decode [\d.]+ tok\/s/);
  });

  it('same seed, same text; another seed, another text', () => {
    const a = lowkv(['demo', '--seed', '3', '-n', '24']);
    const b = lowkv(['demo', '--seed', '3', '-n', '24']);
    const c = lowkv(['demo', '--seed', '4', '-n', '24']);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout).not.toBe(c.stdout);
  });

  it.skipIf(!hasShared)('takes $LOWKV_MODEL (a llama2.c checkpoint, tokenizer found beside it)', () => {
    const golden = readJson<{ from_bos: { text: string } }>('models/stories260K/golden_greedy.json');
    const r = lowkv(['demo', '--temp', '0', '-n', '30', '-p', ''], { LOWKV_MODEL: STORIES_BIN });
    expect(r.code).toBe(0);
    // An empty -p falls back to the demo prompt; the greedy text must still be the model's own.
    expect(r.stdout.startsWith('It was a dark and stormy night')).toBe(true);
    const g = lowkv(['generate', '--temp', '0', '-n', '30'], { LOWKV_MODEL: STORIES_BIN });
    expect(golden.from_bos.text.startsWith(g.stdout.trimEnd())).toBe(true);
    expect(g.stdout.trim().length).toBeGreaterThan(60);
  });
});

describe.skipIf(!hasShared)('lowkv generate / ppl on stories260K', () => {
  it('streams text to stdout and a summary line to stderr; stop strings end generation', () => {
    const r = lowkv(['generate', '-m', STORIES_GGUF, '-p', 'Once upon a time', '--temp', '0', '-n', '60', '--stop', 'Lily']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('Once upon a time, there was a little girl named \n');
    expect(r.stderr).toMatch(/tokens: 5 prompt \+ \d+ generated \(stop\)/);
    expect(r.stderr).toMatch(/KV [\d.]+ KiB held for \d+ tokens = 1280 B\/token \(K f32 \/ V f32: K 32\.00 bits\/value, V 32\.00\)/);
  });

  it('ppl --json with an f32 cache gives llama.cpp\'s 8.2753 ± 0.17624', () => {
    const r = lowkv(['ppl', '-m', STORIES_GGUF, '-f', TINYSTORIES, '--ctx', '512', '--cache-type-k', 'f32', '--cache-type-v', 'f32', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(Math.abs(j.ppl - 8.2753)).toBeLessThan(0.0005);
    expect(Math.abs(j.uncertainty - 0.17624)).toBeLessThan(1e-5);
    expect(j.chunks).toBe(79);
    expect(j.count).toBe(20145);
  });

  it('prints PPL = x ± σ, and warns (not refuses) past the training context', () => {
    const r = lowkv(['ppl', '-m', STORIES_BIN, '-f', TINYSTORIES, '--ctx', '1024', '--chunks', '1']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: context 1024 is longer than the 512 tokens/);
    expect(r.stdout).toMatch(/^PPL = \d+\.\d{4} ± \d+\.\d{5}\n$/);
  });

  it('convert writes a GGUF that loads and generates the same greedy text', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'lowkv-')), 's.gguf');
    const c = lowkv(['convert', '-m', STORIES_BIN, '-o', out, '--type', 'f32']);
    expect(c.code).toBe(0);
    const a = lowkv(['generate', '-m', out, '--temp', '0', '-n', '40']);
    const b = lowkv(['generate', '-m', STORIES_BIN, '--temp', '0', '-n', '40']);
    expect(a.stdout).toBe(b.stdout);
  });
});

describe('bad input gets one clear line, never a stack trace', () => {
  const garbage = join(mkdtempSync(join(tmpdir(), 'lowkv-')), 'garbage.bin');
  writeFileSync(garbage, Buffer.from('this is not a model file at all, just text'));

  it.each([
    [['generate', '-m', '/nonexistent/model.gguf'], /\/nonexistent\/model\.gguf: path: no such file/],
    [['generate', '-m', garbage], /garbage\.bin: /],
    [['generate', '--cache-type-k', 'q3_foo'], /unknown KV cache type "q3_foo"; valid types:[\s\S]*f16/],
    [['generate', '-n', '-5'], /-n must be an integer ≥ 0/],
    [['generate', '--temp', 'hot'], /--temp must be a number/],
    [['ppl', '-m', 'x.gguf'], /required option '-f, --file <text>'/],
    [['generate'], /no model given: pass --model FILE or set LOWKV_MODEL/],
  ])('%j', (args, message) => {
    const r = lowkv(args);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
