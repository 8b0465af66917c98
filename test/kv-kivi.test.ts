import { describe, expect, it } from 'vitest';
import { CodecSpecError, type CodecContext, type KvRole } from '../src/kv/codec.js';
import { GroupQuantCodec, IntQuantizer } from '../src/kv/codecs/int-quant.js';
import { createCodec } from '../src/kv/registry.js';
import { roundF16 } from '../src/numeric/f16.js';
import { codecConformance, kvRows } from './helpers/codec-conformance.js';

interface Kivi {
  bits: number;
  g: number;
  r: number;
}

/** Tokens held as codes after T tokens (methods.md §2): keys T − T mod R, values T − R. */
const quantizedTokens = (T: number, role: KvRole, k: Kivi): number => (role === 'k' ? T - (T % k.r) : Math.max(0, T - k.r));

/** bytes(): packed codes + fp16 scale and zero per group + fp16 residual. */
function kiviBytes(T: number, c: CodecContext, k: Kivi): number {
  const W = c.nKvHeads * c.headDim;
  const nq = quantizedTokens(T, c.role, k);
  const groups = c.role === 'k' ? (nq / k.g) * W : nq * c.nKvHeads * Math.ceil(c.headDim / k.g);
  return (nq * W * k.bits) / 8 + groups * 4 + (T - nq) * W * 2;
}

// Measured ‖x̂ − x‖/‖x‖ on the harness's data plus ~10% (the error is s/√12 per quantized value,
// fixed by the data; the per-value bound |x − x̂| ≤ s/2 is checked in kv-rtn.test.ts and the
// exact codes against the §2 reference below). Keyed by role and head_dim.
const specs: [string, Kivi, Record<KvRole, Record<number, number>>][] = [
  ['kivi:2', { bits: 2, g: 32, r: 128 }, { k: { 8: 0.404, 64: 0.398, 128: 0.394 }, v: { 8: 0.214, 64: 0.455, 128: 0.443 } }],
  ['kivi:4', { bits: 4, g: 32, r: 128 }, { k: { 8: 0.078, 64: 0.082, 128: 0.081 }, v: { 8: 0.045, 64: 0.084, 128: 0.083 } }],
  ['kivi:2,g=16,r=64', { bits: 2, g: 16, r: 64 }, { k: { 8: 0.323, 64: 0.336, 128: 0.334 }, v: { 8: 0.247, 64: 0.373, 128: 0.356 } }],
  ['kivi:4,g=32,r=32', { bits: 4, g: 32, r: 32 }, { k: { 8: 0.084, 64: 0.087, 128: 0.086 }, v: { 8: 0.054, 64: 0.107, 128: 0.101 } }],
];
for (const [spec, k, bound] of specs) {
  codecConformance({ spec, relError: (c) => bound[c.role][c.headDim], bytes: (T, c) => kiviBytes(T, c, k) });
}

/**
 * §2 written out directly for a whole sequence: keys — the first T − T mod R tokens in groups of
 * G tokens per channel, the rest fp16; values — all but the last R tokens per token in groups of
 * G channels within each head (the last group of a head shorter), the last R fp16. Quantization
 * reads the fp16 form of each value, as the paper's fp16 model does.
 */
function kiviReference(x: Float32Array, T: number, role: KvRole, H: number, d: number, k: Kivi): Float32Array {
  const W = H * d;
  const src = x.subarray(0, T * W).map(roundF16);
  const out = Float32Array.from(src);
  const q = new IntQuantizer(k.bits, false);
  const quantize = (idx: number[]): void => {
    const v = idx.map((i) => src[i]);
    q.fit(Math.min(...v), Math.max(...v));
    for (const i of idx) out[i] = q.decode(q.encode(src[i]), q.scaleBits, q.zeroBits);
  };
  const nq = quantizedTokens(T, role, k);
  if (role === 'k') {
    for (let t0 = 0; t0 < nq; t0 += k.g) for (let c = 0; c < W; c++) quantize(Array.from({ length: k.g }, (_, i) => (t0 + i) * W + c));
  } else {
    for (let t = 0; t < nq; t++)
      for (let h = 0; h < H; h++)
        for (let a = 0; a < d; a += k.g) quantize(Array.from({ length: Math.min(k.g, d - a) }, (_, i) => t * W + h * d + a + i));
  }
  return out;
}

const mk = (spec: string, role: KvRole, headDim: number, nKvHeads = 1, capacity = 64): GroupQuantCodec => {
  const c = createCodec(spec, { role, layer: 0, nKvHeads, headDim, capacity });
  expect(c).toBeInstanceOf(GroupQuantCodec);
  return c as GroupQuantCodec;
};

function decodeAll(c: GroupQuantCodec, width: number): Float32Array {
  const out = new Float32Array(c.length * width);
  c.decode(0, c.length, out);
  return out;
}

describe('kivi streaming (methods.md §2)', () => {
  it('residual length after each one-token append: keys fill to R then flush, values keep the last R', () => {
    const x = kvRows(11, 1, 8, 1);
    const K = mk('kivi:2,g=2,r=4', 'k', 8);
    const V = mk('kivi:2,g=2,r=4', 'v', 8);
    const seenK: number[] = [];
    const seenV: number[] = [];
    for (let t = 0; t < 11; t++) {
      K.append(x.subarray(t * 8, (t + 1) * 8), 1);
      V.append(x.subarray(t * 8, (t + 1) * 8), 1);
      seenK.push(K.residualLength);
      seenV.push(V.residualLength);
    }
    expect(seenK).toEqual([1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
    expect(seenV).toEqual([1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4]);
  });

  it('prefill keeps T mod R keys and the last R values in fp16', () => {
    for (const T of [1, 3, 4, 5, 8, 10, 11]) {
      const x = kvRows(T, 1, 8, T);
      const K = mk('kivi:2,g=2,r=4', 'k', 8);
      const V = mk('kivi:2,g=2,r=4', 'v', 8);
      K.append(x, T);
      V.append(x, T);
      expect([K.quantizedLength, K.residualLength]).toEqual([T - (T % 4), T % 4]);
      expect([V.quantizedLength, V.residualLength]).toEqual([Math.max(0, T - 4), Math.min(T, 4)]);
    }
  });

  it.each([
    ['kivi:2,g=2,r=4', 8, 1],
    ['kivi:4,g=4,r=8', 8, 2],
    ['kivi:2', 8, 2], // values: G = 32 > head_dim 8, one group per head
    ['kivi:2,g=32,r=64', 64, 2],
    ['kivi:4,g=16,r=32', 48, 1], // values: head_dim 48 = 16·3
    ['kivi:2,g=32,r=32', 48, 2], // values: groups of 32 and 16 per head
  ])('%s (head_dim %i, %i KV heads): prefill, decode and mixed streams all store §2 exactly', (spec, d, H) => {
    const W = H * d;
    const k = /kivi:(\d)(?:,g=(\d+),r=(\d+))?/.exec(spec)!;
    const shape: Kivi = { bits: Number(k[1]), g: Number(k[2] ?? 32), r: Number(k[3] ?? 128) };
    const Tmax = 2 * shape.r + shape.g + 3;
    const x = kvRows(Tmax, H, d, 7 * d + H);
    for (const role of ['k', 'v'] as const) {
      for (const T of [1, shape.g, shape.r - 1, shape.r, shape.r + 1, 2 * shape.r, Tmax]) {
        const want = kiviReference(x, T, role, H, d, shape);
        const bulk = mk(spec, role, d, H, Tmax);
        bulk.append(x, T);
        expect(decodeAll(bulk, W)).toEqual(want);
        expect(bulk.bytes()).toBe(kiviBytes(T, { role, layer: 0, nKvHeads: H, headDim: d, capacity: Tmax }, shape));
        // Prefill of about half, then one token at a time (the decode path).
        const stream = mk(spec, role, d, H, Tmax);
        const p = T >> 1;
        stream.append(x.subarray(0, p * W), p);
        for (let t = p; t < T; t++) stream.append(x.subarray(t * W, (t + 1) * W), 1);
        expect(decodeAll(stream, W)).toEqual(want);
        expect(stream.bytes()).toBe(bulk.bytes());
      }
    }
  });

  it('hand-computed: a key channel group and a value token group', () => {
    // Keys, G = R = 4: channel 0 over four tokens is {−1, 0, 0.5, 2} → z = −1, s = 1.
    const K = mk('kivi:2,g=4,r=4', 'k', 8);
    const V = mk('kivi:2,g=4,r=4', 'v', 8);
    const rowsK = [-1, 0, 0.5, 2].map((v, t) => Float32Array.from({ length: 8 }, (_, c) => (c === 0 ? v : c * t)));
    for (const r of rowsK) K.append(r, 1);
    const k = decodeAll(K, 8);
    expect([0, 1, 2, 3].map((t) => k[t * 8])).toEqual([-1, 0, 1, 2]);
    // 32 two-bit codes = 8 bytes; 8 channels × (fp16 scale + fp16 zero) = 32 bytes.
    expect(K.bytes()).toBe(40);

    // Values, G = 4: token 0's groups {−1, 0, 0.5, 2} and {8, 8, 8, 8}; it is quantized once
    // R = 4 newer tokens have arrived.
    const first = Float32Array.from([-1, 0, 0.5, 2, 8, 8, 8, 8]);
    V.append(first, 1);
    for (let t = 0; t < 3; t++) V.append(new Float32Array(8), 1);
    expect(decodeAll(V, 8).subarray(0, 8)).toEqual(first);
    expect(V.bytes()).toBe(4 * 8 * 2);
    V.append(new Float32Array(8), 1);
    expect(Array.from(decodeAll(V, 8).subarray(0, 8))).toEqual([-1, 0, 1, 2, 8, 8, 8, 8]);
    // One quantized token: 8 codes = 2 bytes + 2 groups × 4 bytes; four fp16 residual tokens.
    expect(V.bytes()).toBe(2 + 8 + 4 * 8 * 2);
  });

  it('truncate: keys into the residual or to a multiple of G; values anywhere, quantized tokens stay quantized', () => {
    const x = kvRows(10, 1, 8, 5);
    const K = mk('kivi:2,g=2,r=4', 'k', 8);
    K.append(x, 10);
    K.truncate(9);
    expect([K.quantizedLength, K.residualLength]).toEqual([8, 1]);
    expect(() => K.truncate(5)).toThrow(/multiple of 2/);
    K.truncate(6);
    expect([K.quantizedLength, K.residualLength]).toEqual([6, 0]);
    K.truncate(0);
    expect(K.bytes()).toBe(0);

    const V = mk('kivi:2,g=2,r=4', 'v', 8);
    V.append(x, 10);
    const before = decodeAll(V, 8);
    V.truncate(8);
    expect([V.quantizedLength, V.residualLength]).toEqual([6, 2]);
    V.truncate(3);
    expect([V.quantizedLength, V.residualLength]).toEqual([3, 0]);
    expect(decodeAll(V, 8)).toEqual(before.subarray(0, 24));
    // The FIFO refills to R before quantizing again.
    V.append(x.subarray(24, 56), 4);
    expect([V.quantizedLength, V.residualLength]).toEqual([3, 4]);
  });
});

describe('kivi specs', () => {
  it('defaults and canonical form', () => {
    expect(mk('kivi', 'k', 8).spec).toBe('kivi:2,g=32,r=128');
    expect(mk('kivi:4,r=64', 'v', 8).spec).toBe('kivi:4,g=32,r=64');
    expect(mk('kivi:2,dot=int', 'k', 8).spec).toBe('kivi:2,g=32,r=128');
    expect(mk('kivi:2,dot=i8', 'k', 8).spec).toBe('kivi:2,g=32,r=128,dot=i8');
  });

  it('rejects bad specs by name', () => {
    const bad: [string, RegExp][] = [
      ['kivi:3', /bits must be 2 or 4 \(got "3"\)/],
      ['kivi:2,g=32,r=100', /r must be a multiple of the group size g \(got r=100, g=32\)/],
      ['kivi:2,r=0', /r must be a positive integer/],
      ['kivi:2,g=x', /g must be a positive integer/],
      ['kivi:2,mode=sym', /unknown parameter "mode".*valid: g, r/],
      ['kivi:2,dot=fp32', /dot must be int .*, i8 .* or f32 .* \(got "fp32"\)/],
    ];
    for (const [spec, msg] of bad) {
      expect(() => createCodec(spec, { role: 'k', layer: 0, nKvHeads: 1, headDim: 8, capacity: 8 })).toThrow(CodecSpecError);
      expect(() => createCodec(spec, { role: 'k', layer: 0, nKvHeads: 1, headDim: 8, capacity: 8 })).toThrow(msg);
    }
  });

  it('refuses values beyond fp16 before storing anything', () => {
    const V = mk('kivi:4', 'v', 8);
    const x = new Float32Array(16).fill(1);
    x[9] = -1e5;
    expect(() => V.append(x, 2)).toThrow(/exceeds the fp16 range/);
    expect(V.length).toBe(0);
  });
});
