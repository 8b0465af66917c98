// The WASM attention kernels of DecoQuant (assembly/attn-decoquant.ts) and the MX/NV block formats
// (assembly/attn-mx.ts) against their plain-TS twins (the same codecs with kernel=ts): both
// compute the same formulas in the same order (integer sums, then f64 scale products; f32 sums in
// a fixed order), so scores and accumulated values must be identical, bit for bit.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CodecContext, KvCodec } from '../src/kv/codec.js';
import { withPlainStorage } from '../src/kv/codecs/attn-wasm.js';
import { createCodec } from '../src/kv/registry.js';
import { wasmHeap } from '../src/kernels/wasm/runtime.js';
import { kvRows, randn } from './helpers/codec-conformance.js';

const DECOQUANT = [
  'decoquant:4,l=64', // Path A, n = 2, c = 16
  'decoquant:2,l=64',
  'decoquant:8,l=64',
  'decoquant:4', // L = 1024: one block at 1100 tokens
  'decoquant:4,l=64,path=b',
  'decoquant:2,l=64,path=b,group=16,mode=asym',
  'decoquant:4,l=64,n=3',
  'decoquant:4,l=64,c=8,basis=head',
  'decoquant:8,l=64,group=16,mode=asym', // several scale groups (pieces) per head, zero points
  'decoquant:4,l=64,dot=f32', // blocks on the TS float path, the tail on the kernel
];

const MX = ['mxint8', 'mxfp8', 'mxfp4', 'nvfp4', 'nvint4'].flatMap((f) => [f, `${f},hadamard`]).concat('mxfp4,scale=ocp');

/** 1: tail or one row only; 100: a partial second block (l = 64); 1100: many blocks, 1000+. */
const TOKENS = [1, 100, 1100];

interface Case {
  readonly spec: string;
  readonly headDim: number;
  readonly nKvHeads: number;
  readonly tokens: number;
}

const cases = (specs: readonly string[], headDims: readonly number[]): Case[] =>
  specs.flatMap((spec) => headDims.flatMap((headDim) => TOKENS.map((tokens) => ({ spec, headDim, nKvHeads: 2, tokens }))));

// Chunks that straddle head boundaries (c neither divides nor is a multiple of head_dim).
const STRADDLING: Case[] = [
  { spec: 'decoquant:4,l=64,c=48', headDim: 64, nKvHeads: 3, tokens: 200 },
  { spec: 'decoquant:2,l=64,c=12', headDim: 8, nKvHeads: 3, tokens: 200 },
];

/** A codec and its kernel=ts twin holding the same rows. */
function twins(c: Case, role: 'k' | 'v'): { wasm: KvCodec; ts: KvCodec } {
  const ctx: CodecContext = { role, layer: 0, nKvHeads: c.nKvHeads, headDim: c.headDim, capacity: c.tokens + 64 };
  const wasm = createCodec(c.spec, ctx);
  const ts = createCodec(`${c.spec},kernel=ts`, ctx);
  const x = kvRows(c.tokens, c.nKvHeads, c.headDim, 7 + c.headDim + c.tokens);
  wasm.append(x, c.tokens);
  ts.append(x, c.tokens);
  return { wasm, ts };
}

/** A copy of a in the WASM heap, or in ordinary memory. */
function place(a: Float32Array, inHeap: boolean): Float32Array {
  const out = inHeap ? wasmHeap().f32(a.length) : new Float32Array(a.length);
  out.set(a);
  return out;
}

/**
 * scores() and accumulate() of both codecs for every head, nq ∈ {1, 4}, all tokens and a prefix,
 * with q/w/out in ordinary memory (offset, strided, gaps that must survive) and in the heap.
 */
function expectSameProducts(c: Case, wasm: KvCodec, ts: KvCodec): void {
  const T = wasm.length;
  const D = c.headDim;
  for (const nq of [1, 4]) {
    for (const nTokens of new Set([T, Math.max(1, T - 37)])) {
      for (const inHeap of [false, true]) {
        for (let h = 0; h < c.nKvHeads; h++) {
          const seed = 100 * h + 10 * nq + nTokens + (inHeap ? 1 : 0);
          const q = place(Float32Array.from(randn(3 + nq * D, seed)), inHeap);
          const stride = nTokens + 5;
          const s = (codec: KvCodec): Float32Array => {
            const out = place(new Float32Array(2 + nq * stride).fill(7), inHeap);
            codec.scores(h, q, 3, nq, nTokens, out, 2, stride);
            return out;
          };
          const sw = s(wasm);
          expect(sw).toEqual(s(ts));
          expect(sw[0]).toBe(7); // before outOffset
          if (nq > 1) expect(sw[2 + nTokens]).toBe(7); // the gap between two query rows

          const w = place(Float32Array.from(randn(1 + nq * stride, seed + 1)), inHeap);
          const start = randn(4 + nq * D, seed + 2);
          const a = (codec: KvCodec): Float32Array => {
            const out = place(start, inHeap);
            codec.accumulate(h, w, 1, stride, nq, nTokens, out, 4);
            return out;
          };
          const aw = a(wasm);
          expect(aw).toEqual(a(ts));
          expect(aw.subarray(0, 4)).toEqual(start.subarray(0, 4));
        }
      }
    }
  }
}

describe('WASM attention kernels equal their plain-TS twins', () => {
  it.each([...cases(DECOQUANT, [8, 64, 128]), ...STRADDLING])('$spec, head_dim $headDim, $nKvHeads KV heads, $tokens tokens', (c) => {
    for (const role of ['k', 'v'] as const) {
      const { wasm, ts } = twins(c, role);
      expectSameProducts(c, wasm, ts);
    }
  });

  it.each(cases(MX, [8, 64, 128]))('$spec, head_dim $headDim, $tokens tokens', (c) => {
    const { wasm, ts } = twins(c, 'k');
    expectSameProducts(c, wasm, ts);
  });

  it('NV formats: the per-tensor scale reaches the kernels (a second append after the first fixed it)', () => {
    for (const spec of ['nvfp4', 'nvint4,hadamard']) {
      const c: Case = { spec, headDim: 64, nKvHeads: 2, tokens: 60 };
      const { wasm, ts } = twins(c, 'v');
      const more = kvRows(20, 2, 64, 3).map((v) => v * 3);
      wasm.append(more, 20);
      ts.append(more, 20);
      expectSameProducts(c, wasm, ts);
    }
  });
});

describe('storage in the WASM heap', () => {
  const ctx: CodecContext = { role: 'k', layer: 0, nKvHeads: 2, headDim: 64, capacity: 4096 };

  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** Bytes each owner asked the heap for while fn ran (u8/u16 calls, passed through). */
  function heapRequests(fn: () => void): Map<object | undefined, number> {
    const heap = wasmHeap();
    const asked = new Map<object | undefined, number>();
    const count = (size: number) => (n: number, owner?: object) => asked.set(owner, (asked.get(owner) ?? 0) + n * size);
    const u8 = heap.u8.bind(heap);
    const u16 = heap.u16.bind(heap);
    vi.spyOn(heap, 'u8').mockImplementation((n, owner) => (count(1)(n, owner), u8(n, owner)));
    vi.spyOn(heap, 'u16').mockImplementation((n, owner) => (count(2)(n, owner), u16(n, owner)));
    fn();
    vi.restoreAllMocks();
    return asked;
  }

  it.each(['decoquant:4,l=64', 'decoquant:4,l=64,path=b', 'mxfp4', 'nvint4', 'mxint8'])('%s keeps its codes in the heap, owned by the codec; kernel=ts stays out', (spec) => {
    let held: KvCodec | undefined;
    const asked = heapRequests(() => (held = createCodec(spec, ctx)));
    // Codes alone: 4096 tokens × 128 values at ≥ 2 bits, all of it owned by the codec.
    expect(asked.get(held)).toBeGreaterThanOrEqual((4096 * 128 * 2) / 8);
    expect([...asked.keys()]).toEqual([held]);
    expect(heapRequests(() => createCodec(`${spec},kernel=ts`, ctx)).size).toBe(0);
    // withPlainStorage (and LOWKV_KERNELS=ref, the same switch) keeps every codec out of the heap.
    expect(heapRequests(() => withPlainStorage(() => createCodec(spec, ctx))).size).toBe(0);
  });

  it.each(['decoquant:4,l=64', 'decoquant:2,l=64,path=b,mode=asym', 'mxfp4', 'nvint4,hadamard'])(
    '%s: when the heap refuses part way, what it took is freed and the codec runs on the TS path',
    (spec) => {
      const heap = wasmHeap();
      const u8 = heap.u8.bind(heap);
      const u16 = heap.u16.bind(heap);
      const taken: number[] = [];
      // The second allocation fails, as past wasm32's 4 GiB.
      const refuse = <T extends Uint8Array | Uint16Array>(real: (n: number, owner?: object) => T) => (n: number, owner?: object): T => {
        if (taken.length === 1) throw new RangeError('wasm heap: would pass wasm32’s 4 GiB (test)');
        const a = real(n, owner);
        taken.push(a.byteOffset);
        return a;
      };
      vi.spyOn(heap, 'u8').mockImplementation(refuse(u8));
      vi.spyOn(heap, 'u16').mockImplementation(refuse(u16));
      const release = vi.spyOn(heap, 'release');
      const c: Case = { spec, headDim: 64, nKvHeads: 2, tokens: 150 };
      const { wasm: fallback, ts } = twins(c, 'k');
      vi.restoreAllMocks();
      expect(taken).toHaveLength(1);
      expect(release.mock.calls.map((call) => call[0])).toEqual(taken);
      expectSameProducts(c, fallback, ts);
    },
  );
});
