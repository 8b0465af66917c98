// GGUF reader (versions 1-3, little-endian). The header is parsed through a small buffered
// positional reader, and every count, length, shape and offset is checked against the file size
// before it is used, so a corrupt or hostile file fails with a ModelFormatError naming the field
// instead of allocating gigabytes or reading garbage.

import * as fs from 'node:fs';
import { ModelFormatError } from './errors.js';
import { withFile } from './file.js';
import {
  DEQUANTIZABLE_TYPES,
  GgmlType,
  REMOVED_GGML_TYPES,
  dequantizeToF32,
  ggmlTypeInfo,
  isDequantizable,
} from './ggml-types.js';

export type GgufTypedArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | BigUint64Array
  | BigInt64Array
  | Float64Array;

/**
 * A metadata value. 64-bit integers are numbers when they fit exactly, else bigints; numeric
 * arrays are typed arrays, bool and string arrays plain arrays.
 */
export type GgufValue = number | bigint | boolean | string | GgufValue[] | GgufTypedArray;

/** GGUF value type names, indexed by their id in the file. */
export const GGUF_VALUE_TYPES = [
  'uint8',
  'int8',
  'uint16',
  'int16',
  'uint32',
  'int32',
  'float32',
  'bool',
  'string',
  'array',
  'uint64',
  'int64',
  'float64',
] as const;

export type GgufValueTypeName = (typeof GGUF_VALUE_TYPES)[number];
export type GgufScalarTypeName = Exclude<GgufValueTypeName, 'array'>;

/**
 * The GGUF type of a metadata value, kept so a value can be written back with its original type.
 * An array of arrays records its inner arrays' type (they must all agree); an empty array of
 * arrays stores no inner type, hence `{ array: 'array' }`.
 */
export type GgufTypeDescriptor = GgufScalarTypeName | { readonly array: GgufTypeDescriptor | 'array' };

export interface GgufTensorInfo {
  readonly name: string;
  readonly type: GgmlType;
  /** Dimensions, fastest-varying first (a matrix is [in, out]). */
  readonly ne: readonly number[];
  readonly nElements: number;
  readonly nbytes: number;
  /** Absolute file offset of the tensor data. */
  readonly offset: number;
  /** The file holding the data when it is not the GgufFile's own path (a safetensors shard). */
  readonly file?: string;
  /** Produces the data instead of a read at `offset` (a tensor transformed on its way in). */
  readonly data?: () => Uint8Array;
}

export interface GgufFile {
  readonly path: string;
  readonly version: number;
  readonly fileSize: number;
  readonly alignment: number;
  readonly dataOffset: number;
  readonly metadata: Map<string, GgufValue>;
  readonly metadataTypes: Map<string, GgufTypeDescriptor>;
  /** In file order. */
  readonly tensors: readonly GgufTensorInfo[];
  tensor(name: string): GgufTensorInfo | undefined;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
const DEFAULT_ALIGNMENT = 32;
const MAX_DIMS = 4;
const MAX_ARRAY_DEPTH = 4;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const INITIAL_WINDOW = 64 * 1024;

const SCALAR_SIZES: Record<Exclude<GgufScalarTypeName, 'string'>, number> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  bool: 1,
  uint64: 8,
  int64: 8,
  float64: 8,
};

/** Human-readable type: "uint32", "array<string>", "array<array<int32>>". */
export function describeType(t: GgufTypeDescriptor | 'array'): string {
  return typeof t === 'string' ? t : `array<${describeType(t.array)}>`;
}

/** A field name, built only when an error needs it (array elements are read by the thousand). */
type Field = string | (() => string);
const fieldName = (f: Field): string => (typeof f === 'string' ? f : f());

/** Reads sequentially through a growable window over a file descriptor. */
class Cursor {
  private buf = Buffer.allocUnsafe(INITIAL_WINDOW);
  private start = 0;
  private len = 0;
  pos = 0;

  constructor(
    private readonly fd: number,
    readonly fileSize: number,
    readonly path: string,
  ) {}

  get remaining(): number {
    return this.fileSize - this.pos;
  }

  fail(field: Field, problem: string): never {
    throw new ModelFormatError(this.path, fieldName(field), problem);
  }

  private needLeft(n: number, field: Field): void {
    if (n > this.remaining) {
      this.fail(
        field,
        `truncated: the field needs ${n} bytes at offset ${this.pos}, but the file ends at byte ${this.fileSize}`,
      );
    }
  }

  /** Makes [pos, pos+n) readable, advances past it and returns its index in buf. */
  private take(n: number, field: Field): number {
    this.needLeft(n, field);
    if (this.pos < this.start || this.pos + n > this.start + this.len) {
      if (n > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(n, 2 * this.buf.length));
      const want = Math.min(this.buf.length, this.remaining);
      readFully(this.fd, this.buf, want, this.pos, this.path, fieldName(field));
      this.start = this.pos;
      this.len = want;
    }
    const i = this.pos - this.start;
    this.pos += n;
    return i;
  }

  u8(field: Field): number {
    return this.buf[this.take(1, field)];
  }
  u32(field: Field): number {
    return this.buf.readUInt32LE(this.take(4, field));
  }
  u64(field: Field): bigint {
    return this.buf.readBigUInt64LE(this.take(8, field));
  }

  scalar(type: Exclude<GgufScalarTypeName, 'string' | 'bool'>, field: Field): number | bigint {
    const i = this.take(SCALAR_SIZES[type], field);
    const b = this.buf;
    switch (type) {
      case 'uint8':
        return b.readUInt8(i);
      case 'int8':
        return b.readInt8(i);
      case 'uint16':
        return b.readUInt16LE(i);
      case 'int16':
        return b.readInt16LE(i);
      case 'uint32':
        return b.readUInt32LE(i);
      case 'int32':
        return b.readInt32LE(i);
      case 'float32':
        return b.readFloatLE(i);
      case 'float64':
        return b.readDoubleLE(i);
      case 'uint64':
        return exactNumber(b.readBigUInt64LE(i));
      case 'int64':
        return exactNumber(b.readBigInt64LE(i));
    }
  }

  utf8(n: number, field: Field): string {
    const i = this.take(n, field);
    return this.buf.toString('utf8', i, i + n);
  }

  /** Fills dst with the next dst.length bytes. */
  copyInto(dst: Uint8Array, field: Field): void {
    if (dst.length <= this.buf.length) {
      const i = this.take(dst.length, field);
      dst.set(this.buf.subarray(i, i + dst.length));
      return;
    }
    // Bigger than the window: read straight into dst instead of growing the window to match.
    this.needLeft(dst.length, field);
    readFully(this.fd, dst, dst.length, this.pos, this.path, fieldName(field));
    this.pos += dst.length;
  }
}

function exactNumber(v: bigint): number | bigint {
  return v >= -MAX_SAFE && v <= MAX_SAFE ? Number(v) : v;
}

function readFully(fd: number, dst: Uint8Array, n: number, position: number, path: string, field: string): void {
  let done = 0;
  while (done < n) {
    const got = fs.readSync(fd, dst, done, n - done, position + done);
    if (got === 0) {
      throw new ModelFormatError(path, field, `truncated: read stopped at byte ${position + done} of ${position + n}`);
    }
    done += got;
  }
}

/** Width-dependent parts of the format: v1 stores counts, lengths and dims as uint32. */
interface Layout {
  readonly lenSize: 4 | 8;
  length(c: Cursor, field: Field): bigint;
}

function layoutFor(version: number): Layout {
  return version === 1
    ? { lenSize: 4, length: (c, f) => BigInt(c.u32(f)) }
    : { lenSize: 8, length: (c, f) => c.u64(f) };
}

/** Smallest encoding of one value of a type, for checking counts against the bytes left. */
function minValueSize(type: GgufValueTypeName, layout: Layout): number {
  if (type === 'string') return layout.lenSize;
  if (type === 'array') return 4 + layout.lenSize;
  return SCALAR_SIZES[type];
}

class HeaderParser {
  constructor(
    private readonly c: Cursor,
    private readonly layout: Layout,
  ) {}

  /** A count of `unit`-byte items: must fit in the bytes left, which also keeps it a safe number. */
  count(field: Field, unit: number, what: string): number {
    const n = this.layout.length(this.c, field);
    const left = this.c.remaining;
    if (n * BigInt(unit) > BigInt(left)) {
      const need = unit === 1 ? '' : ` × ${unit} bytes`;
      this.c.fail(field, `${what} ${n}${need} exceeds the ${left} bytes left in the file`);
    }
    return Number(n);
  }

  string(field: Field): string {
    return this.c.utf8(this.count(field, 1, 'string length'), field);
  }

  valueType(field: Field): GgufValueTypeName {
    const id = this.c.u32(field);
    const name = GGUF_VALUE_TYPES[id];
    if (name === undefined) {
      this.c.fail(field, `unknown value type ${id} (known: 0..${GGUF_VALUE_TYPES.length - 1})`);
    }
    return name;
  }

  value(type: GgufValueTypeName, field: Field, depth: number): { value: GgufValue; type: GgufTypeDescriptor } {
    switch (type) {
      case 'string':
        return { value: this.string(field), type };
      case 'bool':
        return { value: this.bool(field), type };
      case 'array':
        return this.array(field, depth + 1);
      default:
        return { value: this.c.scalar(type, field), type };
    }
  }

  private bool(field: Field): boolean {
    const b = this.c.u8(field);
    if (b > 1) this.c.fail(field, `bool byte is ${b}, expected 0 or 1`);
    return b === 1;
  }

  private array(field: Field, depth: number): { value: GgufValue; type: GgufTypeDescriptor } {
    if (depth > MAX_ARRAY_DEPTH) this.c.fail(field, `arrays nested deeper than ${MAX_ARRAY_DEPTH} levels`);
    const item = this.valueType(() => `${fieldName(field)} array item type`);
    const n = this.count(field, minValueSize(item, this.layout), `array length`);
    const at = (j: number): Field => () => `${fieldName(field)}[${j}]`;
    switch (item) {
      case 'string': {
        const out: string[] = new Array(n);
        for (let j = 0; j < n; j++) out[j] = this.string(at(j));
        return { value: out, type: { array: item } };
      }
      case 'bool': {
        const out: boolean[] = new Array(n);
        for (let j = 0; j < n; j++) out[j] = this.bool(at(j));
        return { value: out, type: { array: item } };
      }
      case 'array': {
        const out: GgufValue[] = new Array(n);
        let inner: GgufTypeDescriptor | undefined;
        for (let j = 0; j < n; j++) {
          const v = this.array(at(j), depth + 1);
          if (inner !== undefined && describeType(inner) !== describeType(v.type)) {
            this.c.fail(at(j), `is ${describeType(v.type)} but earlier elements are ${describeType(inner)}`);
          }
          inner = v.type;
          out[j] = v.value;
        }
        return { value: out, type: { array: inner ?? 'array' } };
      }
      default: {
        const arr = newTypedArray(item, n);
        this.c.copyInto(new Uint8Array(arr.buffer), field);
        return { value: arr, type: { array: item } };
      }
    }
  }
}

// Typed arrays are filled by byte copy: GGUF and every platform Node runs on are little-endian.
function newTypedArray(type: Exclude<GgufScalarTypeName, 'string' | 'bool'>, n: number): GgufTypedArray {
  switch (type) {
    case 'uint8':
      return new Uint8Array(n);
    case 'int8':
      return new Int8Array(n);
    case 'uint16':
      return new Uint16Array(n);
    case 'int16':
      return new Int16Array(n);
    case 'uint32':
      return new Uint32Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'float32':
      return new Float32Array(n);
    case 'float64':
      return new Float64Array(n);
    case 'uint64':
      return new BigUint64Array(n);
    case 'int64':
      return new BigInt64Array(n);
  }
}

interface RawTensor {
  name: string;
  type: GgmlType;
  ne: number[];
  nElements: number;
  nbytes: bigint;
  relOffset: bigint;
}

/** Parse a GGUF file's header (metadata and tensor table); tensor data stays on disk. */
export function readGguf(path: string): GgufFile {
  return withFile(path, (fd, size) => parse(new Cursor(fd, size, path)));
}

function parse(c: Cursor): GgufFile {
  const magic = c.u32('header.magic');
  if (magic !== GGUF_MAGIC) {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32LE(magic);
    const shown = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    c.fail('header.magic', `not a GGUF file: expected "GGUF" (47 47 55 46), found ${shown}`);
  }
  const version = c.u32('header.version');
  if (version < 1 || version > 3) {
    const hint = (version & 0xffff) === 0 ? ' (a big-endian GGUF? only little-endian files are supported)' : '';
    c.fail('header.version', `unsupported GGUF version ${version}${hint}; supported: 1, 2, 3`);
  }
  const layout = layoutFor(version);
  const p = new HeaderParser(c, layout);

  const minTensorInfo = layout.lenSize + 4 + layout.lenSize + 4 + 8; // empty name, one dim
  const minKv = layout.lenSize + 4 + 1;
  const rawTensorCount = layout.length(c, 'header.tensor_count');
  const rawKvCount = layout.length(c, 'header.metadata_kv_count');
  // Each entry takes at least a few bytes, so counts the rest of the file cannot hold are
  // refused before anything is read or allocated for them.
  const implausible = (field: string, what: string, need: bigint): never =>
    c.fail(field, `${what} need at least ${need} bytes, but only ${c.remaining} are left (truncated file or corrupt count)`);
  if (rawTensorCount * BigInt(minTensorInfo) > BigInt(c.remaining)) {
    implausible('header.tensor_count', `${rawTensorCount} tensor infos`, rawTensorCount * BigInt(minTensorInfo));
  }
  const need = rawTensorCount * BigInt(minTensorInfo) + rawKvCount * BigInt(minKv);
  if (need > BigInt(c.remaining)) {
    implausible('header.metadata_kv_count', `${rawKvCount} metadata entries and ${rawTensorCount} tensor infos`, need);
  }
  const tensorCount = Number(rawTensorCount);
  const kvCount = Number(rawKvCount);

  const metadata = new Map<string, GgufValue>();
  const metadataTypes = new Map<string, GgufTypeDescriptor>();
  for (let i = 0; i < kvCount; i++) {
    const key = p.string(() => `metadata entry #${i} key`);
    const field = `metadata["${key}"]`;
    if (metadata.has(key)) c.fail(field, 'duplicate key');
    const type = p.valueType(`${field} value type`);
    const v = p.value(type, field, 0);
    metadata.set(key, v.value);
    metadataTypes.set(key, v.type);
  }
  const alignment = alignmentOf(c, metadata, metadataTypes);

  const raw: RawTensor[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = p.string(() => `tensor #${i} name`);
    const field = `tensor "${name}"`;
    if (seen.has(name)) c.fail(field, 'duplicate tensor name');
    seen.add(name);
    raw.push(readTensorInfo(c, layout, field, name));
  }
  const dataOffset = alignUp(c.pos, alignment);
  const tensors = placeTensors(c, raw, dataOffset, alignment);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  return {
    path: c.path,
    version,
    fileSize: c.fileSize,
    alignment,
    dataOffset,
    metadata,
    metadataTypes,
    tensors,
    tensor: (name) => byName.get(name),
  };
}

function alignmentOf(c: Cursor, metadata: Map<string, GgufValue>, types: Map<string, GgufTypeDescriptor>): number {
  const key = 'general.alignment';
  const v = metadata.get(key);
  if (v === undefined) return DEFAULT_ALIGNMENT;
  const t = types.get(key);
  if (t !== 'uint32' || typeof v !== 'number') {
    c.fail(`metadata["${key}"]`, `expected uint32, found ${t === undefined ? 'nothing' : describeType(t)}`);
  }
  const a = v;
  if (a === 0 || (a & (a - 1)) !== 0) c.fail(`metadata["${key}"]`, `alignment ${a} is not a power of two`);
  return a;
}

function readTensorInfo(c: Cursor, layout: Layout, field: string, name: string): RawTensor {
  const nDims = c.u32(`${field} n_dims`);
  if (nDims < 1 || nDims > MAX_DIMS) c.fail(`${field} n_dims`, `n_dims ${nDims} is outside 1..${MAX_DIMS}`);
  const ne: number[] = [];
  let count = 1n;
  for (let d = 0; d < nDims; d++) {
    const f = `${field} ne[${d}]`;
    const n = layout.length(c, f);
    if (n < 1n) c.fail(f, `dimension ${d} is ${n}; every dimension must be at least 1`);
    count *= n;
    if (count > MAX_SAFE) c.fail(f, `the element count exceeds 2^53`);
    ne.push(Number(n));
  }
  const typeId = c.u32(`${field} type`);
  const info = ggmlTypeInfo(typeId);
  if (!info) {
    const removed = REMOVED_GGML_TYPES.get(typeId);
    c.fail(
      `${field} type`,
      removed !== undefined
        ? `tensor type ${removed} (id ${typeId}) was removed from ggml; re-convert the model`
        : `unknown tensor type id ${typeId}`,
    );
  }
  if (ne[0] % info.blockSize !== 0) {
    c.fail(field, `ne[0] = ${ne[0]} is not a multiple of the ${info.name} block size ${info.blockSize}`);
  }
  const relOffset = c.u64(`${field} offset`);
  const nElements = Number(count);
  const nbytes = (count / BigInt(info.blockSize)) * BigInt(info.typeSize);
  return { name, type: info.type, ne, nElements, nbytes, relOffset };
}

function placeTensors(c: Cursor, raw: RawTensor[], dataOffset: number, alignment: number): GgufTensorInfo[] {
  const size = BigInt(c.fileSize);
  const base = BigInt(dataOffset);
  const out = raw.map((t): GgufTensorInfo => {
    const field = `tensor "${t.name}"`;
    if (t.relOffset % BigInt(alignment) !== 0n) {
      c.fail(`${field} offset`, `offset ${t.relOffset} is not a multiple of the alignment ${alignment}`);
    }
    const start = base + t.relOffset;
    if (start >= size) {
      c.fail(
        `${field} offset`,
        `data offset ${t.relOffset} (file byte ${start}) is past the end of the file (${c.fileSize} bytes)`,
      );
    }
    if (start + t.nbytes > size) {
      c.fail(
        field,
        `truncated tensor data: ${t.nbytes} bytes at file byte ${start} end at ${start + t.nbytes}, ` +
          `but the file has ${c.fileSize} bytes`,
      );
    }
    return {
      name: t.name,
      type: t.type,
      ne: t.ne,
      nElements: t.nElements,
      nbytes: Number(t.nbytes),
      offset: Number(start),
    };
  });
  const sorted = [...out].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    if (sorted[i].offset < prev.offset + prev.nbytes) {
      c.fail(`tensor "${sorted[i].name}" offset`, `its data overlaps tensor "${prev.name}"`);
    }
  }
  return out;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/**
 * The raw bytes of one tensor into `dst` (its first nbytes bytes: e.g. the tensor's final place
 * in the WASM heap, so loading needs no temporary copy), or into a fresh buffer. The data is
 * held by the tensor itself (info.data, e.g. a permuted HF tensor), or read at its offset in
 * info.file (a safetensors shard) or the GGUF file.
 */
export function readTensorBytes(file: GgufFile, info: GgufTensorInfo, dst?: Uint8Array): Uint8Array {
  if (dst && dst.length < info.nbytes) throw new RangeError(`tensor "${info.name}": ${info.nbytes} bytes do not fit a ${dst.length}-byte destination`);
  if (info.data) {
    const data = info.data();
    if (!dst) return data;
    dst.set(data.subarray(0, info.nbytes));
    return dst;
  }
  const path = info.file ?? file.path;
  const out = dst ?? new Uint8Array(info.nbytes);
  const fd = fs.openSync(path, 'r');
  try {
    readFully(fd, out, info.nbytes, info.offset, path, `tensor "${info.name}"`);
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** A tensor decoded to float32 (row-major in GGUF order: ne[0] fastest). */
export function readTensor(file: GgufFile, name: string): Float32Array {
  const info = file.tensor(name);
  const field = `tensor "${name}"`;
  if (!info) throw new ModelFormatError(file.path, field, 'not found in the file');
  if (!isDequantizable(info.type)) {
    const supported = DEQUANTIZABLE_TYPES.map((t) => GgmlType[t]).join(', ');
    throw new ModelFormatError(
      file.path,
      field,
      `tensor type ${GgmlType[info.type]} is not supported yet (supported: ${supported})`,
    );
  }
  const bytes = readTensorBytes(file, info);
  if (info.type === GgmlType.F32) return new Float32Array(bytes.buffer, 0, info.nElements);
  return dequantizeToF32(info.type, bytes, info.nElements);
}

// ---- typed metadata getters ----

function lookup(file: GgufFile, key: string, required: boolean): GgufValue | undefined {
  const v = file.metadata.get(key);
  if (v === undefined && required) throw new ModelFormatError(file.path, `metadata["${key}"]`, 'missing (required)');
  return v;
}

function wrongType(file: GgufFile, key: string, expected: string): never {
  const found = file.metadataTypes.get(key);
  throw new ModelFormatError(
    file.path,
    `metadata["${key}"]`,
    `expected ${expected}, found ${found === undefined ? 'nothing' : describeType(found)}`,
  );
}

export function getString(file: GgufFile, key: string, required?: true): string;
export function getString(file: GgufFile, key: string, required: false): string | undefined;
export function getString(file: GgufFile, key: string, required = true): string | undefined {
  const v = lookup(file, key, required);
  if (v === undefined || typeof v === 'string') return v;
  return wrongType(file, key, 'string');
}

/** Any integer or float scalar, as an exact number (64-bit values beyond 2^53 are refused). */
export function getNumber(file: GgufFile, key: string, required?: true): number;
export function getNumber(file: GgufFile, key: string, required: false): number | undefined;
export function getNumber(file: GgufFile, key: string, required = true): number | undefined {
  const v = lookup(file, key, required);
  if (v === undefined || typeof v === 'number') return v;
  if (typeof v === 'bigint') {
    throw new ModelFormatError(file.path, `metadata["${key}"]`, `value ${v} is too large to be exact as a number`);
  }
  return wrongType(file, key, 'a number');
}

export function getBool(file: GgufFile, key: string, required?: true): boolean;
export function getBool(file: GgufFile, key: string, required: false): boolean | undefined;
export function getBool(file: GgufFile, key: string, required = true): boolean | undefined {
  const v = lookup(file, key, required);
  if (v === undefined || typeof v === 'boolean') return v;
  return wrongType(file, key, 'bool');
}

export type GgufArray = GgufValue[] | GgufTypedArray;

export function getArray(file: GgufFile, key: string, required?: true): GgufArray;
export function getArray(file: GgufFile, key: string, required: false): GgufArray | undefined;
export function getArray(file: GgufFile, key: string, required = true): GgufArray | undefined {
  const v = lookup(file, key, required);
  if (v === undefined || Array.isArray(v) || ArrayBuffer.isView(v)) return v as GgufArray | undefined;
  return wrongType(file, key, 'an array');
}
