import { describe, expect, it } from 'vitest';
import { CodecSpecError, type CodecContext, type KvCodec } from '../src/kv/codec.js';
import { f16Down, f16Up, GroupQuantCodec, IntQuantizer, rint } from '../src/kv/codecs/int-quant.js';
import { createCodec } from '../src/kv/registry.js';
import { f16ToF32, roundF16 } from '../src/numeric/f16.js';
import { codecConformance, kvRows } from './helpers/codec-conformance.js';

interface RtnShape {
  bits: number;
  sym: boolean;
  axis: 'token' | 'channel';
  g: number | 'row';
}

/** bytes() from the layout: packed codes, fp16 scale (+ zero), fp16 pending tokens. */
function rtnBytes(T: number, c: CodecContext, s: RtnShape): number {
  const W = c.nKvHeads * c.headDim;
  const meta = s.sym ? 2 : 4;
  if (s.axis === 'token') {
    const groupsPerRow = s.g === 'row' ? 1 : c.nKvHeads * Math.ceil(c.headDim / Math.min(s.g as number, c.headDim));
    return Math.ceil((T * W * s.bits) / 8) + T * groupsPerRow * meta;
  }
  const g = s.g as number;
  const nq = T - (T % g);
  return Math.ceil((nq * W * s.bits) / 8) + (nq / g) * W * meta + (T - nq) * W * 2;
}

// Bounds on ‖x̂ − x‖/‖x‖ for the harness's data (gaussian, one 10× channel per head, 300 tokens),
// keyed by head_dim. They are the measured errors plus ~10%: for a uniform grid the error is
// s/√12 per value (s the group's step), so the ratio is fixed by the data; the hard per-value
// bound |x − x̂| ≤ s/2 is checked exactly below ("stays within half a step").
const byHeadDim = (b: Record<number, number>) => (c: CodecContext) => b[c.headDim];
const cases: [string, RtnShape, Record<number, number>][] = [
  ['rtn:2', { bits: 2, sym: false, axis: 'token', g: 32 }, { 8: 0.28, 64: 0.6, 128: 0.57 }],
  ['rtn:3', { bits: 3, sym: false, axis: 'token', g: 32 }, { 8: 0.125, 64: 0.25, 128: 0.235 }],
  ['rtn:4', { bits: 4, sym: false, axis: 'token', g: 32 }, { 8: 0.057, 64: 0.113, 128: 0.107 }],
  ['rtn:8', { bits: 8, sym: false, axis: 'token', g: 32 }, { 8: 0.0034, 64: 0.0067, 128: 0.0064 }],
  ['rtn:4,mode=sym', { bits: 4, sym: true, axis: 'token', g: 32 }, { 8: 0.113, 64: 0.195, 128: 0.176 }],
  ['rtn:2,mode=sym', { bits: 2, sym: true, axis: 'token', g: 32 }, { 8: 0.255, 64: 0.55, 128: 0.6 }],
  ['rtn:4,g=48', { bits: 4, sym: false, axis: 'token', g: 48 }, { 8: 0.057, 64: 0.136, 128: 0.126 }],
  ['rtn:4,g=head', { bits: 4, sym: false, axis: 'token', g: Infinity }, { 8: 0.057, 64: 0.157, 128: 0.194 }],
  ['rtn:4,g=row,mode=sym', { bits: 4, sym: true, axis: 'token', g: 'row' }, { 8: 0.147, 64: 0.346, 128: 0.417 }],
  ['rtn:8,g=row,mode=sym', { bits: 8, sym: true, axis: 'token', g: 'row' }, { 8: 0.0086, 64: 0.02, 128: 0.024 }],
  ['rtn:2,axis=channel', { bits: 2, sym: false, axis: 'channel', g: 32 }, { 8: 0.426, 64: 0.425, 128: 0.418 }],
  ['rtn:4,axis=channel,g=16,mode=sym', { bits: 4, sym: true, axis: 'channel', g: 16 }, { 8: 0.094, 64: 0.094, 128: 0.093 }],
];
for (const [spec, shape, bound] of cases) {
  codecConformance({ spec, relError: byHeadDim(bound), bytes: (T, c) => rtnBytes(T, c, shape) });
}

const ctx = (headDim: number, nKvHeads = 1, capacity = 64): CodecContext => ({ role: 'k', layer: 0, nKvHeads, headDim, capacity });

function rows(codec: KvCodec, width: number): number[][] {
  const out = new Float32Array(codec.length * width);
  codec.decode(0, codec.length, out);
  return Array.from({ length: codec.length }, (_, t) => Array.from(out.subarray(t * width, (t + 1) * width)));
}

describe('the §0 quantizer on hand-computed groups', () => {
  it('rounds half to even, symmetrically about zero (torch.round)', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, -2.6].map(rint)).toEqual([0, 2, 2, -0, -2, -2, 2, -3]);
  });

  it('rounds fp16 scales up and zero points down', () => {
    // 0.1 is not an fp16 number: its neighbours are 0x2e66 = 0.0999755859375 and 0x2e67.
    expect(f16ToF32(f16Up(0.1))).toBe(0.10003662109375);
    expect(f16ToF32(f16Down(0.1))).toBe(0.0999755859375);
    expect(f16ToF32(f16Down(-0.1))).toBe(-0.10003662109375);
    expect(f16ToF32(f16Up(1e-9))).toBe(2 ** -24);
    expect(f16ToF32(f16Down(-1e-9))).toBe(-(2 ** -24));
    expect(f16ToF32(f16Down(2))).toBe(2);
  });

  const dq = (q: IntQuantizer, x: number): number => q.decode(q.encode(x), q.scaleBits, q.zeroBits);

  it('asymmetric 2-bit: z = min, s = (max − min)/3', () => {
    const q = new IntQuantizer(2, false);
    q.fit(-1, 2); // z = −1, s = 1
    expect([-1, 0, 0.5, 2].map((x) => q.encode(x))).toEqual([0, 1, 2, 3]); // (0.5 + 1)/1 = 1.5 → 2
    expect([-1, 0, 0.5, 2].map((x) => dq(q, x))).toEqual([-1, 0, 1, 2]);
  });

  it('asymmetric 4-bit: s = (max − min)/15', () => {
    const q = new IntQuantizer(4, false);
    q.fit(-1, 14); // s = 1
    expect([-1, 2, 3.5, 14].map((x) => q.encode(x))).toEqual([0, 3, 4, 15]); // 4.5 → 4
    expect([-1, 2, 3.5, 14].map((x) => dq(q, x))).toEqual([-1, 2, 3, 14]);
  });

  it('a scale that is no fp16 number is rounded up, so the maximum stays on the grid', () => {
    const q = new IntQuantizer(2, false);
    q.fit(0, 0.3); // s = 0.1 → 0.10003662109375
    expect([0, 0.1, 0.2, 0.3].map((x) => q.encode(x))).toEqual([0, 1, 2, 3]);
    expect([0, 0.1, 0.2, 0.3].map((x) => dq(q, x))).toEqual([0, 0.10003662109375, 0.2000732421875, 0.30010986328125]);
  });

  it('symmetric 4-bit: s = max|x|/7, levels −7 … 7', () => {
    const q = new IntQuantizer(4, true);
    q.fit(-7, 3.4); // s = 1
    expect([-7, 3.4, 0.5, 1, -1.5, 2.5].map((x) => q.encode(x) - 7)).toEqual([-7, 3, 0, 1, -2, 2]);
    expect([-7, 3.4, 0.5, 1, -1.5, 2.5].map((x) => dq(q, x))).toEqual([-7, 3, 0, 1, -2, 2]);
  });

  it('symmetric 2-bit has the three levels −s, 0, s', () => {
    const q = new IntQuantizer(2, true);
    q.fit(-1, 0.8);
    expect([-1, -0.4, 0.6, 0.8].map((x) => dq(q, x))).toEqual([-1, 0, 1, 1]);
  });

  it('a constant group decodes to its fp16 value (asym) or 7·s (sym); an all-zero group to zeros', () => {
    const asym = new IntQuantizer(4, false);
    asym.fit(3, 3);
    expect(dq(asym, 3)).toBe(3);
    const sym = new IntQuantizer(4, true);
    sym.fit(3, 3); // s = 3/7 → fp16 up 1756·2^−12
    expect(dq(sym, 3)).toBe(7 * 1756 * 2 ** -12);
    for (const q of [asym, sym]) {
      q.fit(0, 0);
      expect(dq(q, 0)).toBe(0);
    }
  });
});

describe('rtn codec', () => {
  it('per-token groups of g channels (rtn:2,g=4): codes, scales and bytes', () => {
    const c = createCodec('rtn:2,g=4', ctx(8));
    c.append(Float32Array.from([-1, 0, 0.5, 2, 3, 3, 3, 3]), 1);
    expect(rows(c, 8)).toEqual([[-1, 0, 1, 2, 3, 3, 3, 3]]);
    // 8 two-bit codes = 2 bytes, two groups of fp16 scale + zero = 8 bytes.
    expect(c.bytes()).toBe(10);
    expect(c.spec).toBe('rtn:2,axis=token,g=4,mode=asym');
  });

  it('groups never cross heads: g is capped at head_dim, and a head g does not divide ends short', () => {
    // head_dim 6, g = 4: groups [0,4) and [4,6) in each head, four groups per token.
    const c = createCodec('rtn:4,g=4', ctx(6, 2));
    c.append(Float32Array.from([-1, 0, 0.5, 14, 8, 0, 1, 1, 1, 1, 5, 6]), 1);
    // [8, 0]: s = 8/15 → fp16 up 1093·2^−11, max → 15·s; [5, 6]: s = 1/15 → 1093·2^−14.
    expect(rows(c, 12)).toEqual([[-1, 0, 1, 14, 15 * 1093 * 2 ** -11, 0, 1, 1, 1, 1, 5, 5 + 15 * 1093 * 2 ** -14]]);
    // 12 four-bit codes = 6 bytes, four groups of fp16 scale + zero.
    expect(c.bytes()).toBe(6 + 4 * 4);
  });

  it('DecoQuant baseline (rtn:4,g=row,mode=sym): one absmax scale per token over all heads', () => {
    const c = createCodec('rtn:4,g=row,mode=sym', ctx(4, 2));
    // max|x| = 14 in head 1 → s = 2; head 0's values round on that coarse grid.
    c.append(Float32Array.from([1, 2.9, -3, 0.2, 14, -14, 7, 5]), 1);
    expect(rows(c, 8)).toEqual([[0, 2, -4, 0, 14, -14, 8, 4]]);
    // 8 four-bit codes = 4 bytes, one fp16 scale.
    expect(c.bytes()).toBe(6);
    expect(c.spec).toBe('rtn:4,axis=token,g=row,mode=sym');
  });

  it('per-channel groups of g tokens keep the incomplete group in fp16 and quantize it when complete', () => {
    const c = createCodec('rtn:2,axis=channel,g=4', ctx(8)) as GroupQuantCodec;
    const tok = (t: number): Float32Array => Float32Array.from({ length: 8 }, (_, ch) => (ch === 0 ? [-1, 0, 0.5, 2, 0.1][t] : ch * t));
    // 16 bytes per pending token; a complete group: 32 two-bit codes (8 bytes) + 8 channels × (scale, zero).
    const expectBytes = [16, 32, 48, 8 + 8 * 4, 8 + 8 * 4 + 16];
    for (let t = 0; t < 5; t++) {
      c.append(tok(t), 1);
      expect(c.residualLength).toBe((t + 1) % 4);
      expect(c.bytes()).toBe(expectBytes[t]);
      if (t === 2) expect(rows(c, 8).map((r) => r[0])).toEqual([-1, 0, 0.5]);
    }
    const r = rows(c, 8);
    expect(r.map((x) => x[0])).toEqual([-1, 0, 1, 2, roundF16(0.1)]);
    // Channel ch holds ch·t for t = 0…3: min 0, max 3ch, s = ch, exact.
    expect(r[3]).toEqual([2, 3, 6, 9, 12, 15, 18, 21]);
  });

  it('truncate: per-token anywhere; per-channel inside the pending group or at a group boundary', () => {
    const x = kvRows(10, 1, 8, 3);
    const tok = createCodec('rtn:4', ctx(8));
    tok.append(x, 10);
    tok.truncate(7);
    expect(tok.length).toBe(7);
    expect(tok.bytes()).toBe(7 * (4 + 4));

    const ch = createCodec('rtn:4,axis=channel,g=4', ctx(8)) as GroupQuantCodec;
    ch.append(x, 10);
    const before = rows(ch, 8);
    ch.truncate(9);
    expect([ch.quantizedLength, ch.residualLength]).toEqual([8, 1]);
    expect(() => ch.truncate(6)).toThrow(/multiple of 4/);
    ch.truncate(4);
    expect([ch.quantizedLength, ch.residualLength]).toEqual([4, 0]);
    expect(rows(ch, 8)).toEqual(before.slice(0, 4));
    ch.append(x.subarray(4 * 8), 6);
    expect(rows(ch, 8)).toEqual(before);
    expect(() => ch.truncate(11)).toThrow(RangeError);
  });

  it('stays within half a step of each group: |x − x̂| ≤ s/2 for every value', () => {
    const H = 2;
    for (const [spec, shape] of cases) {
      for (const d of [8, 64]) {
        const W = H * d;
        const T = 70;
        const x = kvRows(T, H, d, 41 + d);
        const c = createCodec(spec, { ...ctx(d, H, T), role: 'v' });
        c.append(x, T);
        const y = new Float32Array(T * W);
        c.decode(0, T, y);
        // Per-channel groups quantize the fp16 residual form of each value.
        const src = shape.axis === 'channel' ? x.map(roundF16) : x;
        const levels = shape.sym ? 2 ** (shape.bits - 1) - 1 : 2 ** shape.bits - 1;
        const groups: number[][] = [];
        if (shape.axis === 'token') {
          const g = shape.g === 'row' ? W : Math.min(shape.g, d);
          for (let t = 0; t < T; t++)
            for (let h = 0; h < (shape.g === 'row' ? 1 : H); h++)
              for (let a = 0; a < (shape.g === 'row' ? W : d); a += g) {
                const base = t * W + h * d + a;
                groups.push(Array.from({ length: Math.min(g, (shape.g === 'row' ? W : d) - a) }, (_, i) => base + i));
              }
        } else {
          const g = shape.g as number;
          for (let t0 = 0; t0 + g <= T; t0 += g) for (let ch = 0; ch < W; ch++) groups.push(Array.from({ length: g }, (_, i) => (t0 + i) * W + ch));
        }
        for (const idx of groups) {
          const v = idx.map((i) => src[i]);
          const mn = Math.min(...v);
          const mx = Math.max(...v);
          // s from the formula, widened by the fp16 rounding of z (down) and s (up).
          const s = shape.sym ? Math.max(-mn, mx) / levels : (mx - mn + Math.abs(mn) * 2 ** -10 + 2 ** -24) / levels;
          const bound = (s * (1 + 2 ** -10) + 2 ** -24) / 2;
          for (const i of idx) expect(Math.abs(y[i] - src[i])).toBeLessThanOrEqual(bound + Math.abs(src[i]) * 2 ** -23);
        }
      }
    }
  });

  it('rejects bad specs by name', () => {
    const bad: [string, RegExp][] = [
      ['rtn:5', /bits must be 2, 3, 4 or 8 \(got "5"\)/],
      ['rtn:4,axis=head', /axis must be token or channel/],
      ['rtn:4,mode=nf', /mode must be asym or sym/],
      ['rtn:4,g=0', /g must be a positive integer, "head" or "row"/],
      ['rtn:4,axis=channel,g=row', /g must be a positive integer \(tokens per group/],
      ['rtn:4,r=8', /unknown parameter "r".*valid: axis, g, mode/],
      ['rtn:4,dot=i16', /dot must be int .*, i8 .* or f32 .* \(got "i16"\)/],
    ];
    for (const [spec, msg] of bad) {
      expect(() => createCodec(spec, ctx(8))).toThrow(CodecSpecError);
      expect(() => createCodec(spec, ctx(8))).toThrow(msg);
    }
    expect(createCodec('rtn', ctx(8)).spec).toBe('rtn:4,axis=token,g=32,mode=asym');
    expect(createCodec('rtn:2,axis=channel,g=16', ctx(8)).spec).toBe('rtn:2,axis=channel,g=16,mode=asym');
    // dot=int is the default and stays out of the canonical form; the others are kept.
    expect(createCodec('rtn:4,dot=int', ctx(8)).spec).toBe('rtn:4,axis=token,g=32,mode=asym');
    expect(createCodec('rtn:4,dot=i8', ctx(8)).spec).toBe('rtn:4,axis=token,g=32,mode=asym,dot=i8');
    expect(createCodec('rtn:4,dot=f32', ctx(8)).spec).toBe('rtn:4,axis=token,g=32,mode=asym,dot=f32');
  });

  it('refuses values beyond the fp16 range of its scales before storing anything', () => {
    const c = createCodec('rtn:8', ctx(8));
    const x = new Float32Array(16).fill(1);
    x[12] = 70000;
    expect(() => c.append(x, 2)).toThrow(/exceeds the fp16 range/);
    expect(c.length).toBe(0);
  });
});
