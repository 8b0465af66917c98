// llama.cpp's block KV cache types: bit-exact blocks against ggml's own output (golden data),
// the codec battery, the zero-padding rule for head dims that are not multiples of 32, and the
// quantized-query scores.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CodecSpecError, type CodecContext } from '../src/kv/codec.js';
import { ggmlHeadBytes } from '../src/kv/codecs/ggml.js';
import { createCodec } from '../src/kv/registry.js';
import {
  BLOCK_FORMATS,
  blockCodes,
  dequantizeBlock,
  Q8_BYTES,
  QK,
  quantizeBlock,
  quantizeQ8Block,
  readF16,
  vecDot,
  type GgmlBlockType,
  type Q8Path,
} from '../src/numeric/ggml-blocks.js';
import { codecConformance, kvRows, randn } from './helpers/codec-conformance.js';
import { dataPath, hasShared, readF32 } from './helpers/shared-data.js';

const TYPES: readonly GgmlBlockType[] = ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl'];
const GOLDEN = 'golden/ggml-blocks';
const EPS = 2 ** -11; // relative rounding of a scale stored as fp16
const SLACK = 1e-4; // float32 rounding of x·(1/d), in units of one step

function readBytes(name: string): Uint8Array {
  return new Uint8Array(readFileSync(dataPath(GOLDEN, name)));
}

function quantizeRow(type: GgmlBlockType, x: Float32Array, path: Q8Path = 'x86'): Uint8Array {
  const f = BLOCK_FORMATS[type];
  const out = new Uint8Array((x.length / QK) * f.bytes);
  for (let b = 0; b < x.length / QK; b++) expect(quantizeBlock(type, x, b * QK, out, b * f.bytes, path)).toBe(true);
  return out;
}

function mismatchedBlocks(a: Uint8Array, b: Uint8Array, blockBytes: number): number[] {
  const bad: number[] = [];
  for (let i = 0; i < a.length; i += blockBytes) {
    if (a.subarray(i, i + blockBytes).some((v, j) => v !== b[i + j])) bad.push(i / blockBytes);
  }
  return bad;
}

/** The query converted to `type`'s vec_dot_type, zero-padded per head as the codec does. */
function quantizeQuery(type: GgmlBlockType, q: Float32Array, headDim: number): Uint8Array {
  const kind = BLOCK_FORMATS[type].vecDotType;
  const nb = Math.ceil(headDim / QK);
  const padded = new Float32Array(nb * QK);
  padded.set(q.subarray(0, headDim));
  const out = new Uint8Array(nb * Q8_BYTES[kind]);
  for (let b = 0; b < nb; b++) quantizeQ8Block(kind, padded, b * QK, out, b * Q8_BYTES[kind], 'x86');
  return out;
}

/** One head's vector zero-padded to whole blocks, quantized by the block function as the codec does. */
function paddedBlocks(type: GgmlBlockType, x: Float32Array, off: number, headDim: number): Uint8Array {
  const nb = Math.ceil(headDim / QK);
  const padded = new Float32Array(nb * QK);
  padded.set(x.subarray(off, off + headDim));
  return quantizeRow(type, padded);
}

describe('ggml blocks against llama.cpp (golden/ggml-blocks)', () => {
  if (!hasShared) it.skip('reference data absent: golden/ggml-blocks not found beside the checkout', () => {});
  else {
    const input = readF32(GOLDEN, 'input.f32');

    it.each(TYPES)('%s: quantizing input.f32 gives the reference quantizer’s bytes, and the x86 cache write’s', (type) => {
      const f = BLOCK_FORMATS[type];
      const ref = readBytes(`${type}.ref.bin`);
      const cpu = readBytes(`${type}.cpu.bin`);
      expect(ref.length).toBe(256 * f.bytes);
      expect(mismatchedBlocks(quantizeRow(type, input, 'ref'), ref, f.bytes)).toEqual([]);
      expect(mismatchedBlocks(quantizeRow(type, input, 'x86'), cpu, f.bytes)).toEqual([]);
      // The two paths differ in q8_0 only (one block: x·id one ulp from a half, ties to even).
      expect(mismatchedBlocks(ref, cpu, f.bytes)).toEqual(type === 'q8_0' ? [5] : []);
    });

    it.each(TYPES)('%s: dequantizing the reference bytes gives <type>.deq.f32 exactly', (type) => {
      const f = BLOCK_FORMATS[type];
      const ref = readBytes(`${type}.ref.bin`);
      const out = new Float32Array(input.length);
      for (let b = 0; b < 256; b++) dequantizeBlock(type, ref, b * f.bytes, out, b * QK);
      expect(out).toEqual(readF32(GOLDEN, `${type}.deq.f32`));
    });

    it.each(TYPES)('%s: vec_dot with the quantized query gives dot_<type>.f32 bit for bit', (type) => {
      const f = BLOCK_FORMATS[type];
      const K = readF32(GOLDEN, 'dot_k.f32');
      const q = readF32(GOLDEN, 'dot_q.f32');
      const want = readF32(GOLDEN, `dot_${type}.f32`);
      const qb = quantizeQuery(type, q, 128);
      const got = new Float32Array(64);
      for (let r = 0; r < 64; r++) got[r] = vecDot(type, quantizeRow(type, K.subarray(r * 128, (r + 1) * 128)), 0, qb, 0, 4);
      // The contract asks for 1e-5 relative; the x86 kernels' float order makes it exact.
      expect(got).toEqual(want);
    });

    it.each(TYPES)('%s codec: stores llama.cpp’s cache bytes, decodes them exactly, scores like its attention', (type) => {
      const K = readF32(GOLDEN, 'dot_k.f32');
      const q = readF32(GOLDEN, 'dot_q.f32');
      const codec = createCodec(type, { role: 'k', layer: 0, nKvHeads: 1, headDim: 128, capacity: 64 });
      codec.append(input, 64);
      expect(codec.bytes()).toBe(256 * BLOCK_FORMATS[type].bytes);
      const dec = new Float32Array(input.length);
      codec.decode(0, 64, dec);
      const cpu = readBytes(`${type}.cpu.bin`);
      const cpuDec = new Float32Array(input.length);
      for (let b = 0; b < 256; b++) dequantizeBlock(type, cpu, b * BLOCK_FORMATS[type].bytes, cpuDec, b * QK);
      expect(dec).toEqual(cpuDec);

      const keys = createCodec(type, { role: 'k', layer: 0, nKvHeads: 1, headDim: 128, capacity: 64 });
      keys.append(K, 64);
      const s = new Float32Array(64);
      keys.scores(0, q, 0, 1, 64, s, 0, 64);
      expect(s).toEqual(readF32(GOLDEN, `dot_${type}.f32`));
    });
  }
});

/**
 * ‖x̂ − x‖/‖x‖ bound of one block holding n real values (the codec's doc comment derives it).
 * Symmetric types (A = max|x| sits at level L, d = A/L): the element at A is off by at most
 * L·d·ε (fp16 scale), every other one by d·(1/2 + L·ε), and ‖x‖ ≥ L·d. Min/max types (T steps
 * over [min, max]): each error ≤ d·(1/2 + T·ε) + |min|·ε, ‖x‖ ≥ T·d/√2 and ‖x‖ ≥ |min|. iq4_nl:
 * nearest of its codebook at d₀ = A/127, half the widest gap 12, before a least-squares refit of
 * d that this bound does not cover. Over many blocks the ratio is at most the worst block's.
 * At 32 values: q8_0 0.025, q4_0 0.351, q4_1 0.273, q5_0 0.177, q5_1 0.136, iq4_nl 0.529
 * (measured on the battery's data: 0.010, 0.158, 0.102, 0.081, 0.050, 0.121).
 */
function relBound(type: GgmlBlockType, headDim: number): number {
  const n = Math.min(QK, headDim);
  const symmetric = (L: number, halfStep: number): number => (Math.sqrt(n - 1) * (halfStep + SLACK + L * EPS) + L * EPS) / L;
  const minMax = (T: number): number => Math.sqrt(n) * (((0.5 + SLACK + T * EPS) * Math.SQRT2) / T + EPS);
  switch (type) {
    case 'q8_0':
      return symmetric(127, 0.5);
    case 'q4_0':
      return symmetric(8, 0.5);
    case 'q5_0':
      return symmetric(16, 0.5);
    case 'iq4_nl':
      return symmetric(127, 12);
    case 'q4_1':
      return minMax(15);
    case 'q5_1':
      return minMax(31);
  }
}

// The battery's products must equal decode-then-multiply within 1e-4, which llama.cpp's own
// scores (query rounded to 8 bits, ~1e-2 off) cannot; dot=f32 runs the same storage with a float
// query. The quantized-query path is checked against golden scores and the bound further down.
for (const type of TYPES) {
  codecConformance({
    spec: `${type},dot=f32`,
    relError: (ctx: CodecContext) => relBound(type, ctx.headDim),
    bytes: (T, ctx) => T * ctx.nKvHeads * ggmlHeadBytes(type, ctx.headDim),
  });
}

describe('ggml block math', () => {
  // The per-element bound behind them is attained: each uniform type rounds to the nearest
  // level, so its worst error over many gaussian blocks is half a step (plus the fp16 rounding of
  // d and m), not less. Values beyond the last positive level (q4_0/q5_0 clamp x/d > L − 1/2)
  // are excluded.
  it.each(TYPES.filter((t) => t !== 'iq4_nl'))('%s: every value is within half a step, and some are at it', (type) => {
    const f = BLOCK_FORMATS[type];
    const nBlocks = 400;
    const x = randn(nBlocks * QK, 41);
    const scale = randn(nBlocks, 43);
    for (let i = 0; i < x.length; i++) x[i] *= Math.exp(2 * scale[Math.floor(i / QK)]);
    const bytes = quantizeRow(type, x);
    const y = new Float32Array(x.length);
    const codes = new Int32Array(QK);
    let worst = 0;
    for (let b = 0; b < nBlocks; b++) {
      const o = b * f.bytes;
      dequantizeBlock(type, bytes, o, y, b * QK);
      blockCodes(type, bytes, o, codes);
      const d = Math.abs(readF16(bytes, o));
      const m = f.hasMin ? Math.abs(readF16(bytes, o + 2)) : 0;
      const top = f.levels[f.levels.length - 1];
      for (let j = 0; j < QK; j++) {
        const i = b * QK + j;
        const level = f.levels[codes[j]];
        if (!f.hasMin && level === top && Math.abs(x[i]) > (top + 0.5) * d) continue;
        const allowed = d * (1 + EPS) * (0.5 + SLACK + Math.abs(level) * EPS) + m * EPS * (1 + EPS);
        worst = Math.max(worst, Math.abs(y[i] - x[i]) / allowed);
      }
    }
    expect(worst).toBeLessThanOrEqual(1);
    expect(worst).toBeGreaterThan(0.95);
  });
});

describe('ggml codecs: llama.cpp’s quantized-query scores', () => {
  const shapes = [
    { headDim: 8, nKvHeads: 2 },
    { headDim: 48, nKvHeads: 2 },
    { headDim: 64, nKvHeads: 2 },
  ];
  const cases = TYPES.flatMap((type) => shapes.map((s) => ({ type, ...s })));

  it.each(cases)('$type at head_dim $headDim: each vector is quantized as if zero-padded to whole blocks', ({ type, headDim, nKvHeads }) => {
    const f = BLOCK_FORMATS[type];
    const T = 40;
    const nq = 3;
    const width = nKvHeads * headDim;
    const x = kvRows(T, nKvHeads, headDim, 5 + headDim);
    const codec = createCodec(type, { role: 'k', layer: 0, nKvHeads, headDim, capacity: T });
    codec.append(x, T);
    const dec = new Float32Array(T * width);
    codec.decode(0, T, dec);
    const q = randn(nq * headDim, 9);
    const nb = Math.ceil(headDim / QK);
    const padded = new Float32Array(nb * QK);
    for (let h = 0; h < nKvHeads; h++) {
      const s = new Float32Array(nq * T);
      codec.scores(h, q, 0, nq, T, s, 0, T);
      for (let t = 0; t < T; t++) {
        const blocks = paddedBlocks(type, x, t * width + h * headDim, headDim);
        for (let b = 0; b < nb; b++) dequantizeBlock(type, blocks, b * f.bytes, padded, b * QK);
        expect(dec.subarray(t * width + h * headDim, t * width + (h + 1) * headDim)).toEqual(padded.subarray(0, headDim));
        for (let i = 0; i < nq; i++) {
          const qb = quantizeQuery(type, q.subarray(i * headDim, (i + 1) * headDim), headDim);
          expect(s[i * T + t]).toBe(Math.fround(vecDot(type, blocks, 0, qb, 0, nb)));
        }
      }
    }
    // Only the real values' codes are stored: a partial block is its fp16 field(s) and
    // ceil(r·bits/8) bytes of codes.
    const r = headDim % QK;
    const perHead = Math.floor(headDim / QK) * f.bytes + (r ? f.headerBytes + Math.ceil((r * f.bits) / 8) : 0);
    expect(codec.bytes()).toBe(T * nKvHeads * perHead);
  });

  it.each(TYPES)('%s: scores differ from the float query’s by no more than the q8 rounding of the query allows', (type) => {
    const f = BLOCK_FORMATS[type];
    const headDim = 64;
    const T = 200;
    const ctx: CodecContext = { role: 'k', layer: 0, nKvHeads: 1, headDim, capacity: T };
    const quantized = createCodec(type, ctx);
    const float = createCodec(`${type},dot=f32`, ctx);
    const x = kvRows(T, 1, headDim, 77);
    quantized.append(x, T);
    float.append(x, T);
    const k = new Float32Array(T * headDim);
    float.decode(0, T, k);
    const q = randn(headDim, 78);
    q[5] *= 8;
    const a = new Float32Array(T);
    const b = new Float32Array(T);
    quantized.scores(0, q, 0, 1, T, a, 0, T);
    float.scores(0, q, 0, 1, T, b, 0, T);
    const qb = quantizeQuery(type, q, headDim);
    const qBytes = Q8_BYTES[f.vecDotType];
    let worst = 0;
    for (let t = 0; t < T; t++) {
      // |q_j − level_j·d_q| ≤ d_q·(1/2 + 127ε) per value, times |k̂_j|; q8_1's s = d·Σlevel, which
      // multiplies the key block's minimum, uses d before its fp16 rounding and is rounded itself.
      // Plus float rounding of the sums.
      let allowed = 0;
      let magnitude = 0;
      for (let blk = 0; blk < 2; blk++) {
        const dq = readF16(qb, blk * qBytes);
        for (let j = 0; j < QK; j++) {
          const kv = Math.abs(k[t * headDim + blk * QK + j]);
          allowed += kv * dq * (1 + EPS) * (0.5 + SLACK + 127 * EPS);
          magnitude += kv * Math.abs(q[blk * QK + j]);
        }
        if (f.vecDotType === 'q8_1') {
          const blocks = paddedBlocks(type, x, t * headDim, headDim);
          const m = Math.abs(readF16(blocks, blk * f.bytes + 2));
          // s is computed from the unrounded d (≤ 32·127 levels) and then rounded itself.
          allowed += m * (Math.abs(readF16(qb, blk * qBytes + 2)) + dq * QK * 127) * EPS;
        }
      }
      allowed += 1e-6 * magnitude;
      const gap = Math.abs(a[t] - b[t]);
      expect(gap).toBeLessThanOrEqual(allowed);
      worst = Math.max(worst, gap / allowed);
    }
    // Not vacuous: the query's rounding shows.
    expect(worst).toBeGreaterThan(0.05);
  });
});

describe('ggml codecs: sizes and specs', () => {
  const perValue = (spec: string, headDim: number): number => {
    const codec = createCodec(spec, { role: 'v', layer: 0, nKvHeads: 2, headDim, capacity: 16 });
    codec.append(kvRows(16, 2, headDim, 3), 16);
    return (codec.bytes() * 8) / (16 * 2 * headDim);
  };

  it('bits per value: llama.cpp’s at head_dim 64, the packed partial block at head_dim 8', () => {
    expect(TYPES.map((t) => perValue(t, 64))).toEqual([8.5, 4.5, 5, 5.5, 6, 4.5]);
    expect(TYPES.map((t) => perValue(t, 128))).toEqual([8.5, 4.5, 5, 5.5, 6, 4.5]);
    // (scale bytes + ceil(8·bits/8)) · 8 / 8 values
    expect(TYPES.map((t) => perValue(t, 8))).toEqual([10, 6, 8, 7, 9, 6]);
  });

  it('accumulate is Σ p·dequant(v) in float32', () => {
    const ctx: CodecContext = { role: 'v', layer: 0, nKvHeads: 2, headDim: 8, capacity: 30 };
    const codec = createCodec('q4_1', ctx);
    const x = kvRows(30, 2, 8, 12);
    codec.append(x, 30);
    const dec = new Float32Array(30 * 16);
    codec.decode(0, 30, dec);
    const w = randn(30, 13);
    const out = new Float32Array(8).fill(0.25);
    codec.accumulate(1, w, 0, 30, 1, 30, out, 0);
    const want = new Float32Array(8).fill(0.25);
    for (let t = 0; t < 30; t++) for (let d = 0; d < 8; d++) want[d] += Math.fround(w[t] * dec[t * 16 + 8 + d]); // WASM SIMD has no fused multiply-add: product rounded, then the sum
    expect(out).toEqual(want);
  });

  it('truncate keeps a prefix; appending again equals one run', () => {
    const ctx: CodecContext = { role: 'k', layer: 0, nKvHeads: 2, headDim: 8, capacity: 20 };
    const x = kvRows(20, 2, 8, 21);
    const y = kvRows(20, 2, 8, 22);
    const a = createCodec('q5_1', ctx);
    a.append(x, 20);
    a.truncate(7);
    a.append(y.subarray(0, 13 * 16), 13);
    const b = createCodec('q5_1', ctx);
    b.append(x.subarray(0, 7 * 16), 7);
    b.append(y.subarray(0, 13 * 16), 13);
    const da = new Float32Array(20 * 16);
    const db = new Float32Array(20 * 16);
    a.decode(0, 20, da);
    b.decode(0, 20, db);
    expect(da).toEqual(db);
    expect(() => a.truncate(21)).toThrow(RangeError);
  });

  it('rejects bad specs with the valid choices, and values beyond fp16 by name', () => {
    const ctx: CodecContext = { role: 'k', layer: 0, nKvHeads: 1, headDim: 32, capacity: 4 };
    expect(() => createCodec('q4_0:4', ctx)).toThrow(CodecSpecError);
    expect(() => createCodec('q4_0,dot=f16', ctx)).toThrow(/dot must be q8 .* or f32/);
    expect(() => createCodec('iq4_nl,bits=4', ctx)).toThrow(/unknown parameter "bits" \(valid: dot=q8\|f32\)/);
    expect(createCodec('q5_0,dot=q8', ctx).spec).toBe('q5_0');
    expect(createCodec('Q5_0,dot=f32', ctx).spec).toBe('q5_0,dot=f32');
    const codec = createCodec('q4_0', ctx);
    const big = new Float32Array(32).fill(1);
    big[3] = 1e6; // d = 1e6/8 > 65504
    expect(() => codec.append(big, 1)).toThrow(/exceeds the range/);
    expect(codec.length).toBe(0);
    const full = createCodec('q8_0', ctx);
    full.append(new Float32Array(4 * 32), 4);
    expect(() => full.append(new Float32Array(32), 1)).toThrow(/KV cache full/);
  });
});
