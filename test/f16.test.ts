import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../src/numeric/f16.js';
import { dataPath, hasShared, readF32 } from './helpers/shared-data.js';

describe('f16 / bf16 conversion', () => {
  it('round-trips every finite half exactly', () => {
    for (let h = 0; h < 65536; h++) {
      const x = f16ToF32(h);
      if (Number.isNaN(x)) continue;
      expect(f32ToF16(x)).toBe(h);
    }
  });

  it('rounds to nearest even, including subnormals and overflow', () => {
    // 1 + 2^-11 is halfway between 1 and the next half (1 + 2^-10): ties go to even (1).
    expect(f16ToF32(f32ToF16(1 + 2 ** -11))).toBe(1);
    expect(f16ToF32(f32ToF16(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9);
    expect(f32ToF16(2 ** -25)).toBe(0); // halfway to the smallest subnormal: even = 0
    expect(f32ToF16(2 ** -25 * 1.5)).toBe(1);
    expect(f32ToF16(65520)).toBe(0x7c00); // rounds past the max half (65504)
    expect(f32ToF16(65519)).toBe(0x7bff);
    expect(f32ToF16(-0)).toBe(0x8000);
    expect(Number.isNaN(f16ToF32(f32ToF16(NaN)))).toBe(true);
    expect(bf16ToF32(f32ToBf16(1 + 2 ** -8))).toBe(1); // tie to even
    expect(bf16ToF32(f32ToBf16(1 + 3 * 2 ** -8))).toBe(1 + 2 ** -6);
  });

  it.skipIf(!hasShared)('matches ggml byte for byte on the golden block inputs', () => {
    const input = readF32('golden/ggml-blocks/input.f32');
    for (const [type, conv] of [
      ['f16', f32ToF16],
      ['bf16', f32ToBf16],
    ] as const) {
      const ref = readFileSync(dataPath(`golden/ggml-blocks/${type}.ref.bin`));
      const ours = new Uint16Array(input.length);
      for (let i = 0; i < input.length; i++) ours[i] = conv(input[i]);
      expect(Buffer.from(ours.buffer).equals(ref)).toBe(true);
      const deq = readF32(`golden/ggml-blocks/${type}.deq.f32`);
      const back = Float32Array.from(ours, type === 'f16' ? f16ToF32 : bf16ToF32);
      expect(Buffer.from(back.buffer).equals(Buffer.from(deq.buffer))).toBe(true);
    }
  });
});
