import { describe, expect, it } from 'vitest';
import { checkHadamardSize, fwht, isPowerOfTwo } from '../src/numeric/hadamard.js';
import {
  ceilLog2,
  e2m1Decode,
  e2m1Encode,
  e4m3Decode,
  e4m3Encode,
  e8m0Decode,
  e8m0Encode,
  floorLog2,
  roundHalfEven,
} from '../src/numeric/minifloat.js';

const codes = (n: number): number[] => Array.from({ length: n }, (_, c) => c);

describe('E4M3 (OCP FP8 E4M3FN)', () => {
  it('decodes the landmark codes', () => {
    expect(e4m3Decode(0x00)).toBe(0);
    expect(Object.is(e4m3Decode(0x80), -0)).toBe(true);
    expect(e4m3Decode(0x01)).toBe(2 ** -9);
    expect(e4m3Decode(0x07)).toBe(7 * 2 ** -9);
    expect(e4m3Decode(0x08)).toBe(2 ** -6);
    expect(e4m3Decode(0x38)).toBe(1);
    expect(e4m3Decode(0x7e)).toBe(448);
    expect(e4m3Decode(0xfe)).toBe(-448);
    expect(e4m3Decode(0x7f)).toBeNaN();
    expect(e4m3Decode(0xff)).toBeNaN();
    // 0x78 … 0x7E are finite (no infinities in E4M3FN): 256 … 448.
    expect(e4m3Decode(0x78)).toBe(256);
  });

  it('every finite code decodes and re-encodes to itself', () => {
    for (const c of codes(256)) {
      if ((c & 0x7f) === 0x7f) continue;
      expect(e4m3Encode(e4m3Decode(c))).toBe(c);
    }
    expect(e4m3Encode(NaN)).toBe(0x7f);
  });

  it('rounds to nearest, ties to the even code, between every pair of neighbours', () => {
    for (let c = 0; c < 0x7e; c++) {
      const lo = e4m3Decode(c);
      const hi = e4m3Decode(c + 1);
      const mid = (lo + hi) / 2;
      const even = c % 2 === 0 ? c : c + 1;
      expect(e4m3Encode(mid)).toBe(even);
      expect(e4m3Encode(-mid)).toBe(even | 0x80);
      const gap = hi - lo;
      expect(e4m3Encode(mid - gap * 1e-6)).toBe(c);
      expect(e4m3Encode(mid + gap * 1e-6)).toBe(c + 1);
    }
    // Half the smallest subnormal ties to zero; just above it is the smallest subnormal.
    expect(e4m3Encode(2 ** -10)).toBe(0);
    expect(e4m3Encode(2 ** -10 * 1.0001)).toBe(1);
  });

  it('saturates beyond 448 (satfinite), never to NaN', () => {
    for (const x of [448.5, 464, 480, 1e6, 3.4e38, Infinity]) {
      expect(e4m3Encode(x)).toBe(0x7e);
      expect(e4m3Encode(-x)).toBe(0xfe);
    }
  });
});

describe('E2M1 (FP4)', () => {
  it('holds ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}', () => {
    expect(codes(16).map(e2m1Decode)).toEqual([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6]);
  });

  it('every code decodes and re-encodes to itself', () => {
    for (const c of codes(16)) expect(e2m1Encode(e2m1Decode(c))).toBe(c);
  });

  it('rounds ties to the even mantissa and saturates at ±6', () => {
    const cases: [number, number][] = [
      [0.25, 0],
      [0.75, 1],
      [1.25, 1],
      [1.75, 2],
      [2.5, 2],
      [3.5, 4],
      [5, 4],
      [5.0001, 6],
      [4.9999, 4],
      [0.2499, 0],
      [0.2501, 0.5],
      [7, 6],
      [1e30, 6],
    ];
    for (const [x, v] of cases) {
      expect(e2m1Decode(e2m1Encode(x))).toBe(v);
      expect(e2m1Decode(e2m1Encode(-x))).toBe(-v);
    }
    expect(() => e2m1Encode(NaN)).toThrow(RangeError);
  });
});

describe('E8M0 (MX block scale)', () => {
  it('every code decodes to 2^(code−127) and re-encodes to itself under both rounding modes', () => {
    for (const c of codes(255)) {
      expect(e8m0Decode(c)).toBe(2 ** (c - 127));
      expect(e8m0Encode(e8m0Decode(c), 'floor')).toBe(c);
      expect(e8m0Encode(e8m0Decode(c), 'ceil')).toBe(c);
    }
    expect(e8m0Decode(0xff)).toBeNaN();
  });

  it('rounds down (floor) or up (ceil) between powers of two, and saturates', () => {
    expect(e8m0Decode(e8m0Encode(3, 'floor'))).toBe(2);
    expect(e8m0Decode(e8m0Encode(3, 'ceil'))).toBe(4);
    expect(e8m0Decode(e8m0Encode(1 + 2 ** -52, 'ceil'))).toBe(2);
    expect(e8m0Encode(2 ** 200, 'ceil')).toBe(254);
    expect(e8m0Encode(Infinity, 'floor')).toBe(254);
    expect(e8m0Encode(2 ** -200, 'floor')).toBe(0);
    expect(e8m0Encode(0, 'ceil')).toBe(0xff);
    expect(e8m0Encode(-1, 'ceil')).toBe(0xff);
    expect(e8m0Encode(NaN, 'floor')).toBe(0xff);
  });
});

describe('exact helpers', () => {
  it('roundHalfEven, floorLog2 and ceilLog2 are exact at the edges', () => {
    expect([0.5, 1.5, 2.5, 2.4999999, 3.5000001].map(roundHalfEven)).toEqual([0, 2, 2, 2, 4]);
    for (let e = -1074; e <= 1023; e += 7) {
      expect(floorLog2(2 ** e)).toBe(e);
      expect(ceilLog2(2 ** e)).toBe(e);
    }
    expect(floorLog2(2 ** 40 - 1)).toBe(39);
    expect(ceilLog2(2 ** 40 + 2 ** -12)).toBe(41);
    expect(floorLog2(Number.MAX_VALUE)).toBe(1023);
  });
});

describe('normalised Walsh–Hadamard transform', () => {
  it.each([1, 2, 8, 32, 64, 128])('is orthonormal, symmetric and its own inverse (n = %i)', (n) => {
    // Column j of H is H·e_j.
    const H = Array.from({ length: n }, (_, j) => {
      const e = new Float64Array(n);
      e[j] = 1;
      fwht(e, 0, n);
      return e;
    });
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        expect(Math.abs(H[j][i] - H[i][j])).toBe(0);
        expect(Math.abs(Math.abs(H[j][i]) - 1 / Math.sqrt(n))).toBeLessThan(1e-15);
        let dot = 0;
        for (let k = 0; k < n; k++) dot += H[i][k] * H[j][k];
        expect(Math.abs(dot - (i === j ? 1 : 0))).toBeLessThan(1e-12);
      }
    }
    const x = Float64Array.from({ length: n + 3 }, (_, i) => Math.sin(i + 1));
    const y = x.slice();
    fwht(y, 3, n);
    fwht(y, 3, n);
    for (let i = 0; i < n + 3; i++) expect(Math.abs(y[i] - x[i])).toBeLessThan(1e-12);
  });

  it('refuses sizes that are not powers of two', () => {
    expect(isPowerOfTwo(96)).toBe(false);
    expect(() => checkHadamardSize(80)).toThrow(/power-of-two size \(got 80\)/);
    expect(() => fwht(new Float64Array(12), 0, 12)).toThrow(RangeError);
  });
});
