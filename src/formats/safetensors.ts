// safetensors reader: an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and [begin, end) byte range in the data section, then the data. Like the GGUF
// reader, every length, shape and offset is checked against the file before it is trusted, and
// sharded checkpoints (model.safetensors.index.json) are checked against their shards.

import * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ModelFormatError } from './errors.js';
import { withFile } from './file.js';

/** The dtypes lowkv can compute with, and their sizes in bytes. */
export const SAFETENSORS_DTYPE_SIZES = { F32: 4, F16: 2, BF16: 2 } as const;
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_SIZES;

// Every other dtype the format defines: refused by name rather than as "unknown".
const UNSUPPORTED_DTYPES = new Set([
  'BOOL', 'U8', 'I8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64', 'F64', 'C64',
  'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4',
]);

/** The safetensors crate's own limit; a header length beyond it is corruption, not a model. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsTensor {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  /** PyTorch order: slowest-varying first (a Linear weight is [out, in]). */
  readonly shape: readonly number[];
  readonly nElements: number;
  readonly nbytes: number;
  /** The file holding the data, and the absolute offset of the data in it. */
  readonly file: string;
  readonly offset: number;
}

/** One safetensors file, or all shards of a sharded checkpoint. */
export interface SafetensorsCheckpoint {
  /** The .safetensors file, or the index of a sharded checkpoint. */
  readonly path: string;
  readonly files: readonly string[];
  /** In file order (shard by shard). */
  readonly tensors: readonly SafetensorsTensor[];
  tensor(name: string): SafetensorsTensor | undefined;
}

export const INDEX_FILE = 'model.safetensors.index.json';

/** Parse one .safetensors file's header; the tensor data stays on disk. */
export function readSafetensors(path: string): SafetensorsCheckpoint {
  const tensors = withFile(path, (fd, size) => parseHeader(fd, size, path));
  return checkpoint(path, [path], tensors);
}

function checkpoint(path: string, files: string[], tensors: SafetensorsTensor[]): SafetensorsCheckpoint {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  return { path, files, tensors, tensor: (name) => byName.get(name) };
}

function parseHeader(fd: number, fileSize: number, path: string): SafetensorsTensor[] {
  const fail = (field: string, problem: string): never => {
    throw new ModelFormatError(path, field, problem);
  };
  if (fileSize < 8) fail('header length', `truncated: the file has ${fileSize} bytes, fewer than the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  readFully(fd, lenBuf, 0, path, 'header length');
  const headerLen = lenBuf.readBigUInt64LE(0);
  if (headerLen > BigInt(fileSize - 8)) {
    fail('header length', `${headerLen} bytes, but only ${fileSize - 8} follow it in the file (truncated file or not safetensors)`);
  }
  if (headerLen > BigInt(MAX_HEADER_BYTES)) fail('header length', `${headerLen} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const n = Number(headerLen);
  const raw = Buffer.alloc(n);
  readFully(fd, raw, 8, path, 'header');
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch (e) {
    fail('header', `not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (!isObject(header)) fail('header', `must be a JSON object, found ${describe(header)}`);

  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;
  const tensors: SafetensorsTensor[] = [];
  const spans: Array<{ name: string; begin: number; end: number }> = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue; // free-form strings (format, creator); nothing to use
    const field = `tensor "${name}"`;
    if (!isObject(entry)) fail(field, `header entry must be an object, found ${describe(entry)}`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;

    if (typeof dtype !== 'string') fail(`${field} dtype`, `must be a string, found ${describe(dtype)}`);
    const size = SAFETENSORS_DTYPE_SIZES[dtype as SafetensorsDtype];
    if (size === undefined) {
      const supported = Object.keys(SAFETENSORS_DTYPE_SIZES).join(', ');
      fail(
        `${field} dtype`,
        UNSUPPORTED_DTYPES.has(dtype as string)
          ? `dtype ${dtype} is not supported (supported: ${supported})`
          : `unknown dtype "${dtype}" (supported: ${supported})`,
      );
    }

    if (!Array.isArray(shape)) fail(`${field} shape`, `must be an array, found ${describe(shape)}`);
    let count = 1;
    for (const [d, dim] of (shape as unknown[]).entries()) {
      if (!isIndex(dim)) fail(`${field} shape`, `dimension ${d} is ${JSON.stringify(dim)}; expected a non-negative integer`);
      count *= dim as number;
      if (!Number.isSafeInteger(count * size)) fail(`${field} shape`, `${JSON.stringify(shape)} is too large`);
    }

    if (!Array.isArray(offsets) || offsets.length !== 2 || !isIndex(offsets[0]) || !isIndex(offsets[1])) {
      fail(`${field} data_offsets`, `must be [begin, end] with non-negative integers, found ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) fail(`${field} data_offsets`, `begin ${begin} is after end ${end}`);
    const nbytes = count * size;
    if (end - begin !== nbytes) {
      fail(
        `${field} data_offsets`,
        `span ${end - begin} bytes does not match shape ${JSON.stringify(shape)} × ${size} bytes (${dtype}) = ${nbytes} bytes`,
      );
    }
    if (end > dataSize) {
      fail(`${field} data_offsets`, `[${begin}, ${end}] ends past the data section (${dataSize} bytes; file truncated?)`);
    }
    spans.push({ name, begin, end });
    tensors.push({
      name,
      dtype: dtype as SafetensorsDtype,
      shape: shape as number[],
      nElements: count,
      nbytes,
      file: path,
      offset: dataStart + begin,
    });
  }

  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1];
    const cur = spans[i];
    // Empty tensors occupy no bytes and cannot overlap anything.
    if (cur.begin < prev.end && cur.end > cur.begin) {
      fail(`tensor "${cur.name}" data_offsets`, `[${cur.begin}, ${cur.end}] overlaps tensor "${prev.name}" [${prev.begin}, ${prev.end}]`);
    }
  }
  return tensors;
}

/**
 * A sharded checkpoint: the index's weight_map names, for every tensor, the shard (a file beside
 * the index) that holds it. The shards must hold exactly the tensors the index assigns them.
 */
export function readShardedSafetensors(indexPath: string): SafetensorsCheckpoint {
  const fail = (field: string, problem: string): never => {
    throw new ModelFormatError(indexPath, field, problem);
  };
  let index: unknown;
  try {
    index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    fail('path', code === 'ENOENT' ? 'no such file' : `not readable JSON: ${(e as Error).message}`);
  }
  const weightMap = isObject(index) ? (index as Record<string, unknown>).weight_map : undefined;
  if (!isObject(weightMap)) fail('weight_map', `must be an object mapping tensor names to shard files, found ${describe(weightMap)}`);

  const shards = new Map<string, string[]>(); // shard file -> tensors the index puts there
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    const field = `weight_map["${name}"]`;
    if (typeof shard !== 'string') fail(field, `must be a shard file name, found ${describe(shard)}`);
    const s = shard as string;
    // Shards live beside the index; a path would let the index read any file on the machine.
    if (s === '' || s === '.' || s === '..' || s !== basename(s) || s.includes('\\')) {
      fail(field, `"${s}" is not a plain file name beside the index`);
    }
    let list = shards.get(s);
    if (!list) shards.set(s, (list = []));
    list.push(name);
  }
  if (shards.size === 0) fail('weight_map', 'is empty');

  const dir = dirname(indexPath);
  const heldBy = new Map<string, string>();
  const tensors: SafetensorsTensor[] = [];
  for (const [shard, listed] of [...shards].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const path = join(dir, shard);
    if (!fs.existsSync(path)) {
      fail(`weight_map["${listed[0]}"]`, `shard "${shard}" does not exist (it holds ${listed.length} tensor(s))`);
    }
    const file = readSafetensors(path);
    for (const t of file.tensors) {
      const other = heldBy.get(t.name);
      if (other !== undefined) {
        throw new ModelFormatError(path, `tensor "${t.name}"`, `listed twice: also in shard "${other}"`);
      }
      heldBy.set(t.name, shard);
      const assigned = (weightMap as Record<string, string>)[t.name];
      if (assigned === undefined) {
        throw new ModelFormatError(path, `tensor "${t.name}"`, `is not in the index's weight_map`);
      }
      if (assigned !== shard) {
        throw new ModelFormatError(path, `tensor "${t.name}"`, `the index puts it in shard "${assigned}"`);
      }
      tensors.push(t);
    }
    for (const name of listed) {
      if (!file.tensor(name)) {
        throw new ModelFormatError(path, `tensor "${name}"`, `missing: the index lists it in this shard`);
      }
    }
  }
  return checkpoint(indexPath, [...shards.keys()].map((s) => join(dir, s)), tensors);
}

/** A tensor's bytes, read from its file into a fresh buffer. */
export function readSafetensorsData(t: SafetensorsTensor): Uint8Array {
  return withFile(t.file, (fd) => {
    const out = Buffer.alloc(t.nbytes);
    readFully(fd, out, t.offset, t.file, `tensor "${t.name}"`);
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  });
}

function readFully(fd: number, dst: Buffer, position: number, path: string, field: string): void {
  let done = 0;
  while (done < dst.length) {
    const got = fs.readSync(fd, dst, done, dst.length - done, position + done);
    if (got === 0) throw new ModelFormatError(path, field, `truncated: read stopped at byte ${position + done}`);
    done += got;
  }
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isIndex(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}
