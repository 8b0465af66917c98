// Writes safetensors files for tests: well-formed ones from tensors, and raw ones from a header
// object and data bytes, so that each kind of corruption can be produced on purpose.

import { writeFileSync } from 'node:fs';
import { f32ToBf16, f32ToF16 } from '../../src/numeric/f16.js';

export type Dtype = 'F32' | 'F16' | 'BF16';

export interface TensorToWrite {
  readonly name: string;
  readonly dtype: Dtype;
  /** PyTorch order (slowest first). */
  readonly shape: readonly number[];
  readonly values: Float32Array;
}

/** float32 values stored as dtype (F16/BF16 round to nearest even). */
export function encodeValues(values: Float32Array, dtype: Dtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.slice().buffer);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = dtype === 'F16' ? f32ToF16(values[i]) : f32ToBf16(values[i]);
  return new Uint8Array(out.buffer);
}

/** A file from an arbitrary header object and data section; the header is space-padded to 8 bytes as the format's writer does. */
export function writeRawSafetensors(path: string, header: unknown, data: Uint8Array = new Uint8Array(0), headerLength?: bigint): void {
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, data]));
}

/** A well-formed file holding the tensors in order. */
export function writeSafetensors(path: string, tensors: readonly TensorToWrite[]): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const t of tensors) {
    const bytes = encodeValues(t.values, t.dtype);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + bytes.length] };
    parts.push(bytes);
    at += bytes.length;
  }
  writeRawSafetensors(path, header, Buffer.concat(parts));
}
