import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelFormatError } from '../src/formats/errors.js';
import { MAX_HEADER_BYTES, readSafetensors, readSafetensorsData, readShardedSafetensors } from '../src/formats/safetensors.js';
import { writeRawSafetensors, writeSafetensors } from './helpers/safetensors-write.js';

const root = mkdtempSync(join(tmpdir(), 'lowkv-st-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const path = (name = `f${n++}.safetensors`): string => join(root, name);

function raw(header: unknown, data = new Uint8Array(64), headerLength?: bigint): string {
  const p = path();
  writeRawSafetensors(p, header, data, headerLength);
  return p;
}

/** Expects a ModelFormatError naming the file and field, with a problem matching `problem`. */
function expectError(read: () => unknown, file: string, field: string, problem: RegExp): void {
  try {
    read();
  } catch (e) {
    expect(e).toBeInstanceOf(ModelFormatError);
    const err = e as ModelFormatError;
    expect(err.file).toBe(file);
    expect(err.field).toBe(field);
    expect(err.problem).toMatch(problem);
    return;
  }
  throw new Error('no error');
}

const f32 = (shape: number[], begin: number) => ({ dtype: 'F32', shape, data_offsets: [begin, begin + 4 * shape.reduce((a, b) => a * b, 1)] });

describe('safetensors header', () => {
  it('reads names, dtypes, shapes and absolute offsets; the data reads back', () => {
    const p = path();
    const a = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const b = Float32Array.from([0.5, -2]);
    writeSafetensors(p, [
      { name: 'a', dtype: 'F32', shape: [2, 3], values: a },
      { name: 'b', dtype: 'F16', shape: [2], values: b },
      { name: 'c', dtype: 'BF16', shape: [1, 2], values: b },
    ]);
    const f = readSafetensors(p);
    expect(f.tensors.map((t) => [t.name, t.dtype, t.shape, t.nbytes])).toEqual([
      ['a', 'F32', [2, 3], 24],
      ['b', 'F16', [2], 4],
      ['c', 'BF16', [1, 2], 4],
    ]);
    expect(new Float32Array(readSafetensorsData(f.tensor('a')!).slice().buffer)).toEqual(a);
    expect([...new Uint16Array(readSafetensorsData(f.tensor('b')!).slice().buffer)]).toEqual([0x3800, 0xc000]);
    expect([...new Uint16Array(readSafetensorsData(f.tensor('c')!).slice().buffer)]).toEqual([0x3f00, 0xc000]);
  });

  it('ignores __metadata__', () => {
    const f = readSafetensors(raw({ __metadata__: { format: 'pt', anything: 'x' }, w: f32([2], 0) }));
    expect(f.tensors.map((t) => t.name)).toEqual(['w']);
  });

  it('refuses a file shorter than the header length field', () => {
    const p = path();
    writeFileSync(p, Buffer.from([1, 2, 3]));
    expectError(() => readSafetensors(p), p, 'header length', /truncated.*3 bytes/);
  });

  it('refuses a header length beyond the file', () => {
    const p = raw({ w: f32([2], 0) }, new Uint8Array(8), 1_000_000n);
    expectError(() => readSafetensors(p), p, 'header length', /1000000 bytes, but only \d+ follow/);
  });

  it('refuses a header length beyond the sane maximum', () => {
    const p = path();
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(MAX_HEADER_BYTES + 8));
    // The length must fit in the file for this check to be the one that fires (a sparse file).
    writeFileSync(p, len);
    truncateSync(p, MAX_HEADER_BYTES + 16);
    expectError(() => readSafetensors(p), p, 'header length', /exceeds the 100000000-byte limit/);
  });

  it('refuses a header that is not JSON', () => {
    const p = path();
    const body = Buffer.from('{"w": {"dtype": ');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(body.length));
    writeFileSync(p, Buffer.concat([len, body]));
    expectError(() => readSafetensors(p), p, 'header', /not valid UTF-8 JSON/);
  });

  it('refuses a header that is not an object', () => {
    const p = raw([1, 2]);
    expectError(() => readSafetensors(p), p, 'header', /must be a JSON object, found an array/);
  });

  it('refuses an entry that is not an object', () => {
    const p = raw({ w: 'F32' });
    expectError(() => readSafetensors(p), p, 'tensor "w"', /must be an object/);
  });

  it('refuses an unknown dtype', () => {
    const p = raw({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } });
    expectError(() => readSafetensors(p), p, 'tensor "w" dtype', /unknown dtype "F128" \(supported: F32, F16, BF16\)/);
  });

  it('refuses a known but unsupported dtype by name', () => {
    const p = raw({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } });
    expectError(() => readSafetensors(p), p, 'tensor "ids" dtype', /dtype I64 is not supported \(supported: F32, F16, BF16\)/);
  });

  it('refuses a bad shape', () => {
    const p = raw({ w: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } });
    expectError(() => readSafetensors(p), p, 'tensor "w" shape', /dimension 1 is -1/);
    const q = raw({ w: { dtype: 'F32', shape: [2 ** 40, 2 ** 20], data_offsets: [0, 8] } });
    expectError(() => readSafetensors(q), q, 'tensor "w" shape', /too large/);
  });

  it('refuses malformed data_offsets', () => {
    const p = raw({ w: { dtype: 'F32', shape: [2], data_offsets: [0] } });
    expectError(() => readSafetensors(p), p, 'tensor "w" data_offsets', /must be \[begin, end\]/);
    const q = raw({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } });
    expectError(() => readSafetensors(q), q, 'tensor "w" data_offsets', /begin 8 is after end 0/);
  });

  it('refuses a span that does not match shape × dtype size', () => {
    const p = raw({ w: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 24] } });
    expectError(() => readSafetensors(p), p, 'tensor "w" data_offsets', /span 24 bytes does not match shape \[2,3\] × 2 bytes \(F16\) = 12 bytes/);
  });

  it('refuses data past the end of the file', () => {
    const p = raw({ w: f32([4, 4], 0) }, new Uint8Array(32));
    expectError(() => readSafetensors(p), p, 'tensor "w" data_offsets', /\[0, 64\] ends past the data section \(32 bytes/);
  });

  it('refuses overlapping tensors', () => {
    const p = raw({ a: f32([4], 0), b: f32([4], 8) });
    expectError(() => readSafetensors(p), p, 'tensor "b" data_offsets', /overlaps tensor "a"/);
  });
});

describe('sharded safetensors (model.safetensors.index.json)', () => {
  function sharded(name: string, weightMap: Record<string, unknown>, shards: Record<string, string[]>): string {
    const dir = join(root, name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    for (const [file, names] of Object.entries(shards)) {
      writeSafetensors(join(dir, file), names.map((t) => ({ name: t, dtype: 'F32', shape: [2], values: Float32Array.from([1, 2]) })));
    }
    const index = join(dir, 'model.safetensors.index.json');
    writeFileSync(index, JSON.stringify({ metadata: {}, weight_map: weightMap }));
    return index;
  }

  it('joins the shards', () => {
    const idx = sharded('ok', { a: 's1.safetensors', b: 's2.safetensors', c: 's1.safetensors' }, { 's1.safetensors': ['a', 'c'], 's2.safetensors': ['b'] });
    const ck = readShardedSafetensors(idx);
    expect(ck.tensors.map((t) => t.name)).toEqual(['a', 'c', 'b']);
    expect(ck.tensor('b')!.file).toBe(join(root, 'ok', 's2.safetensors'));
  });

  it('refuses a missing shard', () => {
    const idx = sharded('missing', { a: 's1.safetensors', b: 's2.safetensors' }, { 's1.safetensors': ['a'] });
    expectError(() => readShardedSafetensors(idx), idx, 'weight_map["b"]', /shard "s2.safetensors" does not exist/);
  });

  it('refuses a tensor held by two shards', () => {
    const idx = sharded('twice', { a: 's1.safetensors', b: 's2.safetensors' }, { 's1.safetensors': ['a', 'b'], 's2.safetensors': ['b'] });
    expectError(() => readShardedSafetensors(idx), join(root, 'twice', 's1.safetensors'), 'tensor "b"', /index puts it in shard "s2.safetensors"/);
    const idx3 = sharded('twice3', { a: 's1.safetensors', b: 's1.safetensors', c: 's2.safetensors' }, { 's1.safetensors': ['a', 'b'], 's2.safetensors': ['b', 'c'] });
    expectError(() => readShardedSafetensors(idx3), join(root, 'twice3', 's2.safetensors'), 'tensor "b"', /listed twice: also in shard "s1.safetensors"/);
  });

  it('refuses a listed tensor its shard lacks, and a shard tensor the index does not list', () => {
    const idx = sharded('lacks', { a: 's1.safetensors', b: 's1.safetensors' }, { 's1.safetensors': ['a'] });
    expectError(() => readShardedSafetensors(idx), join(root, 'lacks', 's1.safetensors'), 'tensor "b"', /missing: the index lists it/);
    const idx2 = sharded('extra', { a: 's1.safetensors' }, { 's1.safetensors': ['a', 'z'] });
    expectError(() => readShardedSafetensors(idx2), join(root, 'extra', 's1.safetensors'), 'tensor "z"', /not in the index's weight_map/);
  });

  it('refuses shard paths outside the folder and a missing weight_map', () => {
    const idx = sharded('escape', { a: '../s1.safetensors' }, {});
    expectError(() => readShardedSafetensors(idx), idx, 'weight_map["a"]', /not a plain file name/);
    const idx2 = sharded('nomap', {}, {});
    writeFileSync(idx2, JSON.stringify({ metadata: {} }));
    expectError(() => readShardedSafetensors(idx2), idx2, 'weight_map', /must be an object/);
  });
});
