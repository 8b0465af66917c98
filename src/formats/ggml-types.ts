// The ggml tensor type table (ids as in ggml.h / gguf-py), and dequantization of the types
// lowkv can compute with.

import { bf16ToF32, f16Table } from '../numeric/f16.js';
import { dequantizeRow, QUANT_FORMATS, QUANT_WEIGHT_TYPES, type QuantWeightType } from '../numeric/weight-quants.js';

/** ggml tensor type ids. Ids that ggml has since removed are in REMOVED_GGML_TYPES instead. */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
}

export interface GgmlTypeInfo {
  readonly type: GgmlType;
  readonly name: string;
  /** Values per block. */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
}

const QK_K = 256;

// [type, blockSize, typeSize], sizes from ggml's type_traits (= gguf-py GGML_QUANT_SIZES).
const TABLE: ReadonlyArray<readonly [GgmlType, number, number]> = [
  [GgmlType.F32, 1, 4],
  [GgmlType.F16, 1, 2],
  [GgmlType.Q4_0, 32, 2 + 16],
  [GgmlType.Q4_1, 32, 2 + 2 + 16],
  [GgmlType.Q5_0, 32, 2 + 4 + 16],
  [GgmlType.Q5_1, 32, 2 + 2 + 4 + 16],
  [GgmlType.Q8_0, 32, 2 + 32],
  [GgmlType.Q8_1, 32, 4 + 32],
  [GgmlType.Q2_K, QK_K, 2 + 2 + QK_K / 16 + QK_K / 4],
  [GgmlType.Q3_K, QK_K, 2 + QK_K / 4 + QK_K / 8 + 12],
  [GgmlType.Q4_K, QK_K, 2 + 2 + 12 + QK_K / 2],
  [GgmlType.Q5_K, QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2],
  [GgmlType.Q6_K, QK_K, 2 + QK_K / 16 + (3 * QK_K) / 4],
  [GgmlType.Q8_K, QK_K, 4 + QK_K + QK_K / 8],
  [GgmlType.IQ2_XXS, QK_K, 2 + QK_K / 4],
  [GgmlType.IQ2_XS, QK_K, 2 + QK_K / 4 + QK_K / 32],
  [GgmlType.IQ3_XXS, QK_K, 2 + (3 * QK_K) / 8],
  [GgmlType.IQ1_S, QK_K, 2 + QK_K / 8 + QK_K / 16],
  [GgmlType.IQ4_NL, 32, 2 + 16],
  [GgmlType.IQ3_S, QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4],
  [GgmlType.IQ2_S, QK_K, 2 + QK_K / 4 + QK_K / 16],
  [GgmlType.IQ4_XS, QK_K, 2 + 2 + QK_K / 2 + QK_K / 64],
  [GgmlType.I8, 1, 1],
  [GgmlType.I16, 1, 2],
  [GgmlType.I32, 1, 4],
  [GgmlType.I64, 1, 8],
  [GgmlType.F64, 1, 8],
  [GgmlType.IQ1_M, QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32],
  [GgmlType.BF16, 1, 2],
  [GgmlType.TQ1_0, QK_K, 2 + 4 * 13],
  [GgmlType.TQ2_0, QK_K, 2 + 64],
  [GgmlType.MXFP4, 32, 1 + 16],
  [GgmlType.NVFP4, 64, 4 + 32],
  [GgmlType.Q1_0, 128, 2 + 16],
];

const INFO = new Map<number, GgmlTypeInfo>(
  TABLE.map(([type, blockSize, typeSize]) => [type, { type, name: GgmlType[type], blockSize, typeSize }]),
);

/**
 * Ids ggml once defined and no longer accepts in GGUF files (old Q4_2/Q4_3 and the
 * load-time repacked layouts), kept so a refusal can say what the file contains.
 */
export const REMOVED_GGML_TYPES: ReadonlyMap<number, string> = new Map([
  [4, 'Q4_2'],
  [5, 'Q4_3'],
  [31, 'Q4_0_4_4'],
  [32, 'Q4_0_4_8'],
  [33, 'Q4_0_8_8'],
  [36, 'IQ4_NL_4_4'],
  [37, 'IQ4_NL_4_8'],
  [38, 'IQ4_NL_8_8'],
]);

/** The table entry for a type id, or undefined when the id is not a current ggml type. */
export function ggmlTypeInfo(id: number): GgmlTypeInfo | undefined {
  return INFO.get(id);
}

/** Name of a type id for messages: "Q4_K", "removed type Q4_0_4_4", or "unknown type 99". */
export function ggmlTypeName(id: number): string {
  const info = INFO.get(id);
  if (info) return info.name;
  const removed = REMOVED_GGML_TYPES.get(id);
  return removed !== undefined ? `removed type ${removed}` : `unknown type ${id}`;
}

/** The block types lowkv computes with, by ggml type id. */
const QUANT_BY_ID = new Map<number, QuantWeightType>(QUANT_WEIGHT_TYPES.map((t) => [QUANT_FORMATS[t].ggmlId, t]));

/** lowkv's name of a ggml type it can keep weights in ('f32', 'f16', 'bf16', 'q4_K', …), or undefined. */
export function weightTypeName(type: GgmlType): 'f32' | 'f16' | 'bf16' | QuantWeightType | undefined {
  if (type === GgmlType.F32) return 'f32';
  if (type === GgmlType.F16) return 'f16';
  if (type === GgmlType.BF16) return 'bf16';
  return QUANT_BY_ID.get(type);
}

/** Types dequantizeToF32 can decode. */
export const DEQUANTIZABLE_TYPES: readonly GgmlType[] = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, ...[...QUANT_BY_ID.keys()].sort((a, b) => a - b)];

export function isDequantizable(type: GgmlType): boolean {
  return weightTypeName(type) !== undefined;
}

/** Bytes that nElements values of a type occupy; nElements must be a multiple of the block size. */
export function ggmlByteSize(type: GgmlType, nElements: number): number {
  const info = INFO.get(type);
  if (!info) throw new Error(`${ggmlTypeName(type)} has no size`);
  if (nElements % info.blockSize !== 0) {
    throw new Error(`${nElements} values of ${info.name} are not a whole number of ${info.blockSize}-value blocks`);
  }
  return (nElements / info.blockSize) * info.typeSize;
}

/**
 * Decode nElements values of a ggml type to float32, bit-identical to ggml's to_float.
 * Throws for types lowkv cannot decode yet (see DEQUANTIZABLE_TYPES).
 */
export function dequantizeToF32(
  type: GgmlType,
  bytes: Uint8Array,
  nElements: number,
  out: Float32Array = new Float32Array(nElements),
): Float32Array {
  if (!isDequantizable(type)) {
    const supported = DEQUANTIZABLE_TYPES.map((t) => GgmlType[t]).join(', ');
    throw new Error(`tensor type ${ggmlTypeName(type)} is not supported yet (supported: ${supported})`);
  }
  const need = ggmlByteSize(type, nElements);
  if (bytes.length < need) {
    throw new Error(`${nElements} ${GgmlType[type]} values need ${need} bytes, got ${bytes.length}`);
  }
  if (out.length < nElements) throw new Error(`output holds ${out.length} values, need ${nElements}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, need);
  if (type === GgmlType.F32) {
    // Copy bytes rather than view: the input may not be 4-byte aligned.
    new Uint8Array(out.buffer, out.byteOffset, need).set(bytes.subarray(0, need));
  } else if (type === GgmlType.F16) {
    for (let i = 0; i < nElements; i++) out[i] = f16Table[view.getUint16(2 * i, true)];
  } else if (type === GgmlType.BF16) {
    for (let i = 0; i < nElements; i++) out[i] = bf16ToF32(view.getUint16(2 * i, true));
  } else {
    dequantizeRow(QUANT_BY_ID.get(type)!, bytes, 0, nElements, out, 0);
  }
  return out;
}
