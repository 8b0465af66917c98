// GGUF writer: typed metadata plus F32/F16/BF16/Q8_0 tensors converted from float32 the way
// ggml does it, so files round-trip through llama.cpp and through readGguf with types intact.

import * as fs from 'node:fs';
import { f32ToBf16, f32ToF16 } from '../numeric/f16.js';
import { quantizeBlock } from '../numeric/ggml-blocks.js';
import { ModelFormatError } from './errors.js';
import { GgmlType, ggmlByteSize, ggmlTypeInfo } from './ggml-types.js';
import {
  GGUF_VALUE_TYPES,
  type GgufArray,
  type GgufFile,
  type GgufScalarTypeName,
  type GgufTypeDescriptor,
  type GgufValue,
  describeType,
} from './gguf.js';

/** A metadata value with its GGUF type stated, so a uint32 stays a uint32 through a round trip. */
export type GgufTypedValue =
  | {
      readonly type: 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';
      readonly value: number;
    }
  | { readonly type: 'uint64' | 'int64'; readonly value: number | bigint }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'array'; readonly itemType: GgufTypeDescriptor | 'array'; readonly value: GgufArray };

export type WritableTensorType = GgmlType.F32 | GgmlType.F16 | GgmlType.BF16 | GgmlType.Q8_0;

export interface GgufTensorToWrite {
  readonly name: string;
  readonly type: WritableTensorType;
  /** Fastest-varying first: a [rows][cols] matrix is ne = [cols, rows]. */
  readonly ne: readonly number[];
  readonly data: Float32Array;
}

export interface GgufWriteOptions {
  /** Default 3. Version 1 (uint32 counts and lengths) exists to test readers of old files. */
  readonly version?: 1 | 2 | 3;
  /** Default: the metadata's general.alignment, else 32. Written to the metadata when not 32. */
  readonly alignment?: number;
  readonly metadata: ReadonlyArray<readonly [string, GgufTypedValue]>;
  readonly tensors: readonly GgufTensorToWrite[];
}

const ALIGNMENT_KEY = 'general.alignment';
const CHUNK = 1 << 20;

/** Write a GGUF file. Invalid input throws a ModelFormatError naming the field and leaves no file. */
export function writeGguf(path: string, options: GgufWriteOptions): void {
  const version = options.version ?? 3;
  const metadata = withAlignment(path, options);
  const alignment = metadata.alignment;
  const tensors = options.tensors.map((t) => checkTensor(path, t));
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new ModelFormatError(path, `tensor "${t.name}"`, 'duplicate tensor name');
    names.add(t.name);
  }
  let end = 0;
  const offsets = tensors.map((t) => {
    const at = alignUp(end, alignment);
    end = at + t.nbytes;
    return at;
  });

  const fd = fs.openSync(path, 'w');
  let complete = false;
  try {
    const out = new Sink(fd, version === 1 ? 4 : 8, path);
    out.u32(0x46554747);
    out.u32(version);
    out.len(tensors.length, 'header.tensor_count');
    out.len(metadata.entries.length, 'header.metadata_kv_count');
    for (const [key, tv] of metadata.entries) {
      out.string(key, `metadata["${key}"] key`);
      writeTypedValue(out, tv, `metadata["${key}"]`);
    }
    tensors.forEach((t, i) => {
      out.string(t.name, `tensor "${t.name}" name`);
      out.u32(t.ne.length);
      for (const n of t.ne) out.len(n, `tensor "${t.name}" ne`);
      out.u32(t.type);
      out.u64(BigInt(offsets[i]));
    });
    // Padding only precedes tensor data, so a file without tensors ends at its header, as
    // llama.cpp's vocab-only files do. The data section starts aligned, so padding each tensor
    // to the alignment puts it at dataOffset + offsets[i].
    for (const t of tensors) {
      out.pad(alignment);
      out.bytes(encodeTensorData(t.type, t.data));
    }
    out.flush();
    complete = true;
  } finally {
    fs.closeSync(fd);
    // Metadata values are checked as they are encoded; a half-written file must not remain.
    if (!complete) fs.rmSync(path, { force: true });
  }
}

/** Convert float32 values to the bytes of a ggml type (F32, F16, BF16 or Q8_0), as ggml would. */
export function encodeTensorData(type: WritableTensorType, data: Float32Array): Uint8Array {
  const out = new Uint8Array(ggmlByteSize(type, data.length));
  const view = new DataView(out.buffer);
  switch (type) {
    case GgmlType.F32:
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      break;
    case GgmlType.F16:
      for (let i = 0; i < data.length; i++) view.setUint16(2 * i, f32ToF16(data[i]), true);
      break;
    case GgmlType.BF16:
      for (let i = 0; i < data.length; i++) view.setUint16(2 * i, f32ToBf16(data[i]), true);
      break;
    case GgmlType.Q8_0:
      quantizeQ8_0(data, out);
      break;
  }
  return out;
}

/** ggml's quantize_row_q8_0_ref, block by block (src/numeric/ggml-blocks.ts, golden-tested). */
function quantizeQ8_0(x: Float32Array, out: Uint8Array): void {
  for (let i = 0, o = 0; i < x.length; i += 32, o += 34) quantizeBlock('q8_0', x, i, out, o);
}

/** A metadata entry of a parsed file with its original GGUF type, ready for writeGguf. */
export function copyMetadataEntry(file: GgufFile, key: string): GgufTypedValue {
  const value = file.metadata.get(key);
  const type = file.metadataTypes.get(key);
  if (value === undefined || type === undefined) {
    throw new ModelFormatError(file.path, `metadata["${key}"]`, 'missing');
  }
  // The reader produced value and type together, so they agree.
  if (typeof type === 'string') return { type, value } as GgufTypedValue;
  return { type: 'array', itemType: type.array, value: value as GgufArray };
}

// ---- internals ----

interface CheckedTensor extends GgufTensorToWrite {
  readonly nbytes: number;
}

function checkTensor(path: string, t: GgufTensorToWrite): CheckedTensor {
  const field = `tensor "${t.name}"`;
  const info = ggmlTypeInfo(t.type);
  const writable = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0];
  if (!info || !writable.includes(t.type)) {
    throw new ModelFormatError(path, field, `cannot write tensor type ${info?.name ?? t.type}`);
  }
  if (t.ne.length < 1 || t.ne.length > 4 || !t.ne.every((n) => Number.isSafeInteger(n) && n >= 1)) {
    throw new ModelFormatError(path, field, `invalid shape [${t.ne.join(', ')}]`);
  }
  const n = t.ne.reduce((a, b) => a * b, 1);
  if (n !== t.data.length) {
    throw new ModelFormatError(path, field, `shape [${t.ne.join(', ')}] has ${n} elements, data has ${t.data.length}`);
  }
  if (t.ne[0] % info.blockSize !== 0) {
    throw new ModelFormatError(path, field, `ne[0] = ${t.ne[0]} is not a multiple of the ${info.name} block size`);
  }
  return { ...t, nbytes: ggmlByteSize(t.type, n) };
}

function withAlignment(
  path: string,
  options: GgufWriteOptions,
): { alignment: number; entries: ReadonlyArray<readonly [string, GgufTypedValue]> } {
  const keys = new Set<string>();
  let stated: number | undefined;
  for (const [key, tv] of options.metadata) {
    if (keys.has(key)) throw new ModelFormatError(path, `metadata["${key}"]`, 'duplicate key');
    keys.add(key);
    if (key === ALIGNMENT_KEY) {
      if (tv.type !== 'uint32') throw new ModelFormatError(path, `metadata["${key}"]`, `must be uint32, is ${tv.type}`);
      stated = tv.value;
    }
  }
  const alignment = options.alignment ?? stated ?? 32;
  if (!Number.isInteger(alignment) || alignment < 1 || alignment > 2 ** 31 || (alignment & (alignment - 1)) !== 0) {
    throw new ModelFormatError(path, ALIGNMENT_KEY, `alignment ${alignment} is not a power of two`);
  }
  if (stated !== undefined && stated !== alignment) {
    throw new ModelFormatError(path, ALIGNMENT_KEY, `metadata says ${stated}, options say ${alignment}`);
  }
  const entries = [...options.metadata];
  if (stated === undefined && alignment !== 32) entries.push([ALIGNMENT_KEY, { type: 'uint32', value: alignment }]);
  return { alignment, entries };
}

function writeTypedValue(out: Sink, tv: GgufTypedValue, field: string): void {
  if (tv.type === 'array') {
    out.u32(typeId('array'));
    writeArray(out, tv.itemType, tv.value, field);
  } else {
    out.u32(typeId(tv.type));
    writeScalar(out, tv.type, tv.value, field);
  }
}

function writeArray(out: Sink, item: GgufTypeDescriptor | 'array', values: GgufArray, field: string): void {
  const itemName = typeof item === 'string' ? item : 'array';
  out.u32(typeId(itemName));
  out.len(values.length, field);
  if (item === 'array') {
    if (values.length > 0) out.fail(field, 'an array of arrays needs its inner item type');
    return;
  }
  for (let j = 0; j < values.length; j++) {
    const v: GgufValue = values[j];
    if (typeof item === 'string') writeScalar(out, item, v, `${field}[${j}]`);
    else if (Array.isArray(v) || ArrayBuffer.isView(v)) writeArray(out, item.array, v as GgufArray, `${field}[${j}]`);
    else out.fail(`${field}[${j}]`, `expected an array for ${describeType(item)}`);
  }
}

const INT_RANGES: Partial<Record<GgufScalarTypeName, readonly [number, number]>> = {
  uint8: [0, 0xff],
  int8: [-0x80, 0x7f],
  uint16: [0, 0xffff],
  int16: [-0x8000, 0x7fff],
  uint32: [0, 0xffffffff],
  int32: [-0x80000000, 0x7fffffff],
};

function writeScalar(out: Sink, type: GgufScalarTypeName, v: GgufValue, field: string): void {
  const bad = (): never => out.fail(field, `${String(v)} is not a valid ${type}`);
  switch (type) {
    case 'string':
      return typeof v === 'string' ? out.string(v, field) : bad();
    case 'bool':
      return typeof v === 'boolean' ? out.u8(v ? 1 : 0) : bad();
    case 'float32':
      return typeof v === 'number' ? out.f32(v) : bad();
    case 'float64':
      return typeof v === 'number' ? out.f64(v) : bad();
    case 'uint64':
    case 'int64': {
      const signed = type === 'int64';
      const b = typeof v === 'bigint' ? v : typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : bad();
      if (b !== BigInt.asIntN(64, b) && signed) bad();
      if (b !== BigInt.asUintN(64, b) && !signed) bad();
      return signed ? out.i64(b) : out.u64(b);
    }
    default: {
      const [lo, hi] = INT_RANGES[type] ?? bad();
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) bad();
      return out.int(type, v as number);
    }
  }
}

function typeId(name: (typeof GGUF_VALUE_TYPES)[number]): number {
  return GGUF_VALUE_TYPES.indexOf(name);
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Buffered sequential writer over a file descriptor. */
class Sink {
  private buf = Buffer.allocUnsafe(CHUNK);
  private used = 0;
  written = 0;

  constructor(
    private readonly fd: number,
    private readonly lenSize: 4 | 8,
    private readonly path: string,
  ) {}

  fail(field: string, problem: string): never {
    throw new ModelFormatError(this.path, field, problem);
  }

  private room(n: number): number {
    if (this.used + n > this.buf.length) this.flush();
    const at = this.used;
    this.used += n;
    this.written += n;
    return at;
  }

  flush(): void {
    let done = 0;
    while (done < this.used) done += fs.writeSync(this.fd, this.buf, done, this.used - done);
    this.used = 0;
  }

  u8(v: number): void {
    this.buf.writeUInt8(v, this.room(1));
  }
  u32(v: number): void {
    this.buf.writeUInt32LE(v, this.room(4));
  }
  u64(v: bigint): void {
    this.buf.writeBigUInt64LE(v, this.room(8));
  }
  i64(v: bigint): void {
    this.buf.writeBigInt64LE(v, this.room(8));
  }
  f32(v: number): void {
    this.buf.writeFloatLE(v, this.room(4));
  }
  f64(v: number): void {
    this.buf.writeDoubleLE(v, this.room(8));
  }

  int(type: GgufScalarTypeName, v: number): void {
    switch (type) {
      case 'uint8':
        return void this.buf.writeUInt8(v, this.room(1));
      case 'int8':
        return void this.buf.writeInt8(v, this.room(1));
      case 'uint16':
        return void this.buf.writeUInt16LE(v, this.room(2));
      case 'int16':
        return void this.buf.writeInt16LE(v, this.room(2));
      case 'uint32':
        return void this.buf.writeUInt32LE(v, this.room(4));
      default:
        return void this.buf.writeInt32LE(v, this.room(4));
    }
  }

  /** A count or length: uint32 in GGUF v1, uint64 after. */
  len(n: number, field: string): void {
    if (this.lenSize === 4) {
      if (n > 0xffffffff) this.fail(field, `${n} does not fit GGUF v1's uint32`);
      this.u32(n);
    } else {
      this.u64(BigInt(n));
    }
  }

  string(s: string, field: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.len(bytes.length, field);
    this.bytes(bytes);
  }

  bytes(b: Uint8Array): void {
    if (b.length > this.buf.length) {
      this.flush();
      let done = 0;
      while (done < b.length) done += fs.writeSync(this.fd, b, done, b.length - done);
      this.written += b.length;
      return;
    }
    this.buf.set(b, this.room(b.length));
  }

  pad(alignment: number): void {
    const n = alignUp(this.written, alignment) - this.written;
    this.buf.fill(0, this.room(n), this.used);
  }
}
