/**
 * Coupled Quantization, "KV Cache is 1 Bit Per Channel" (methods.md §5): the channels of each
 * head are cut into groups of c contiguous channels, and each group of each token is stored as a
 * b-bit index into a learned codebook of 2^b c-dimensional centroids — one codebook per layer,
 * role and channel group, learned offline by k-means on calibration activations.
 *
 * Spec: `cq:<c>c<b>b,calib=FILE`, 1 ≤ c ≤ 64, 1 ≤ b ≤ 12 (e.g. cq:4c8b = 2 bits/value,
 * cq:8c8b = 1 bit/value). FILE comes from `lowkv calibrate --method cq:<c>c<b>b`.
 *
 * Choices where §5 is silent or [uncertain]:
 *   - Keys are stored before RoPE (preRope): a channel pair's post-RoPE distribution is its
 *     pre-RoPE one smeared by a position-dependent rotation, so one fixed codebook fits the
 *     pre-RoPE keys far better; calibration samples are pre-RoPE too, so no positions are needed.
 *     scores() rotates each dequantized key to its position with the forward pass's float32
 *     cos/sin (see rope-table.ts).
 *   - Groups never straddle heads: a head is split into ceil(head_dim/c) groups, the last one
 *     narrower (head_dim mod c channels) with its own 2^b-entry codebook of that width.
 *   - Plain k-means (k-means++ seeding from the calibration seed, ≤ 50 Lloyd steps), no Fisher weighting: the
 *     engine has no gradients, so every calibration token weighs 1.
 *   - Centroids are fp16, so inputs with |x| > 65504 are refused (RangeError), not clipped.
 *   - No sink and no full-precision window here: §5's 128-token window is the window wrapper's
 *     job (`window(recent=128):cq:…`).
 *
 * Bytes (T tokens, W = nKvHeads·head_dim, G = nKvHeads·ceil(head_dim/c) groups per token):
 *   2·W·2^b once (the fp16 codebooks of this layer and role, counted when T > 0) + ceil(T·G·b/8).
 * Bits/value: b·ceil(head_dim/c)/head_dim (= b/c when c divides head_dim) plus the codebook share
 * 16·2^b/T — large for small models at short contexts (cq:4c8b at T = 512: 2 + 8 bits/value).
 *
 * Error: each group is replaced by its nearest centroid, so the error is the distance to it —
 * data dependent through the codebook; the tests state measured bounds.
 */
import { getCode, packedWords, setCode } from '../../numeric/bitpack.js';
import { roundF16 } from '../../numeric/f16.js';
import { kmeans, nearestCentroid } from '../../numeric/kmeans.js';
import { calibrationFor } from '../calibration-file.js';
import { assertFinite, CodecSpecError, type CalibrationSamples, type CodecContext, type CodecFactory, type KvCodec, type ParsedSpec } from '../codec.js';
import { ropeTableFor } from '../rope-table.js';
import { checkF16Range } from './kvquant.js';
import { RowDecodingCodec } from './row-codec.js';

const F16_MAX = 65504;

interface Options {
  /** Channels per group. */
  readonly c: number;
  /** Bits per group index. */
  readonly b: number;
}

function parseOptions(spec: ParsedSpec): Options {
  for (const key of spec.params.keys()) {
    if (key !== 'calib') throw new CodecSpecError(`cq: unknown parameter "${key}" (valid: calib)`);
  }
  const m = /^(\d+)c(\d+)b$/.exec(spec.arg ?? '');
  if (!m) throw new CodecSpecError(`cq: expected cq:<c>c<b>b, e.g. cq:4c8b (4 channels per 8-bit code) or cq:8c8b (got "${spec.text}")`);
  const c = Number(m[1]);
  const b = Number(m[2]);
  if (c < 1 || c > 64) throw new CodecSpecError(`cq: channels per group must be 1 to 64 (got ${c})`);
  if (b < 1 || b > 12) throw new CodecSpecError(`cq: bits per code must be 1 to 12 (got ${b})`);
  return { c, b };
}

/** The widths of one head's channel groups: c each, the last one what is left. */
function groupWidths(headDim: number, c: number): number[] {
  return Array.from({ length: Math.ceil(headDim / c) }, (_, g) => Math.min(c, headDim - g * c));
}

/** What calibrate() returns for one layer and role (plain JSON). */
interface Artifact {
  readonly channels: number;
  readonly bits: number;
  /** Per group (head-major: head h's group g at h·groupsPerHead + g): 2^b centroids of its width, fp16. */
  readonly centroids: number[][];
}

function calibrateCq(spec: ParsedSpec, s: CalibrationSamples, seed: number): Artifact {
  const { c, b } = parseOptions(spec);
  const W = s.nKvHeads * s.headDim;
  const widths = groupWidths(s.headDim, c);
  const centroids: number[][] = [];
  for (let h = 0; h < s.nKvHeads; h++) {
    for (let g = 0, ch = h * s.headDim; g < widths.length; ch += widths[g], g++) {
      const w = widths[g];
      const points = new Float64Array(s.nRows * w);
      for (let r = 0; r < s.nRows; r++) for (let e = 0; e < w; e++) points[r * w + e] = s.rows[r * W + ch + e];
      const cents = kmeans(points, w, { k: 1 << b, seed, maxIter: 50 }).centroids;
      centroids.push(Array.from(cents, (v) => {
        const r = roundF16(v);
        if (!Number.isFinite(r)) throw new RangeError(`cq calibration of layer ${s.layer} ${s.role}: centroid value ${v} exceeds the fp16 range`);
        return r;
      }));
    }
  }
  return { channels: c, bits: b, centroids };
}

function checkArtifact(a: unknown, o: Options, ctx: CodecContext, widths: number[]): Float32Array[] {
  const where = `cq calibration of layer ${ctx.layer} ${ctx.role === 'k' ? 'keys' : 'values'}`;
  const fail = (why: string): never => {
    throw new CodecSpecError(`${where}: ${why}; recalibrate with \`lowkv calibrate --method cq:${o.c}c${o.b}b\``);
  };
  if (typeof a !== 'object' || a === null) return fail('missing');
  const r = a as Record<string, unknown>;
  if (r.channels !== o.c || r.bits !== o.b) fail(`made for cq:${String(r.channels)}c${String(r.bits)}b, the spec asks for cq:${o.c}c${o.b}b`);
  const groups = ctx.nKvHeads * widths.length;
  if (!Array.isArray(r.centroids) || r.centroids.length !== groups) fail(`centroids must hold ${groups} codebooks (got ${Array.isArray(r.centroids) ? r.centroids.length : typeof r.centroids})`);
  return (r.centroids as unknown[]).map((book, g) => {
    const n = (1 << o.b) * widths[g % widths.length];
    if (!Array.isArray(book) || book.length !== n) return fail(`codebook ${g} must hold ${n} numbers (got ${Array.isArray(book) ? book.length : typeof book})`);
    book.forEach((x, i) => {
      if (typeof x !== 'number' || !Number.isFinite(x) || Math.abs(x) > F16_MAX) fail(`codebook ${g} entry ${i} = ${String(x)} is not a finite fp16 number`);
    });
    return Float32Array.from(book as number[], roundF16);
  });
}

class CqCodec extends RowDecodingCodec implements KvCodec {
  length = 0;
  readonly preRope: boolean;
  private readonly W: number;
  private readonly hd: number;
  private readonly b: number;
  private readonly k: number;
  /** Groups per head and per token. */
  private readonly gph: number;
  private readonly gpt: number;
  private readonly codes: Uint32Array;

  constructor(
    readonly spec: string,
    ctx: CodecContext,
    o: Options,
    private readonly widths: number[],
    private readonly books: Float32Array[],
  ) {
    super(ctx, ctx.role === 'k' ? ropeTableFor('cq', ctx) : undefined);
    this.preRope = ctx.role === 'k';
    this.W = ctx.nKvHeads * ctx.headDim;
    this.hd = ctx.headDim;
    this.b = o.b;
    this.k = 1 << o.b;
    this.gph = widths.length;
    this.gpt = ctx.nKvHeads * widths.length;
    this.codes = new Uint32Array(packedWords(ctx.capacity * this.gpt, this.b));
  }

  append(src: Float32Array, count: number): void {
    const { ctx, W } = this;
    if (this.length + count > ctx.capacity) {
      throw new RangeError(`KV cache full: layer ${ctx.layer} ${ctx.role} holds ${this.length} of ${ctx.capacity} tokens, cannot append ${count}`);
    }
    assertFinite(src, count * W, ctx, this.length);
    checkF16Range('cq', src, count * W, ctx, this.length);
    const { widths, books, gph, gpt, k, b, hd } = this;
    for (let r = 0; r < count; r++) {
      const t = this.length + r;
      for (let h = 0; h < ctx.nKvHeads; h++) {
        for (let g = 0, ch = r * W + h * hd; g < gph; ch += widths[g], g++) {
          setCode(this.codes, t * gpt + h * gph + g, b, nearestCentroid(books[h * gph + g], k, widths[g], src, ch));
        }
      }
    }
    this.length += count;
  }

  /** Stored (pre-RoPE for keys) values of token t, head h, into dst[dOff …]. */
  protected decodeHeadRow(t: number, h: number, dst: Float32Array, dOff: number): void {
    const { widths, books, gph, gpt, b } = this;
    for (let g = 0, d = dOff; g < gph; d += widths[g], g++) {
      const w = widths[g];
      const book = books[h * gph + g];
      const co = getCode(this.codes, t * gpt + h * gph + g, b) * w;
      for (let e = 0; e < w; e++) dst[d + e] = book[co + e];
    }
  }

  bytes(): number {
    const T = this.length;
    return T === 0 ? 0 : 2 * this.W * this.k + Math.ceil((T * this.gpt * this.b) / 8);
  }

  decode(t0: number, t1: number, out: Float32Array): void {
    this.checkRange(t1);
    for (let t = t0; t < t1; t++) for (let h = 0; h < this.ctx.nKvHeads; h++) this.decodeHeadRow(t, h, out, (t - t0) * this.W + h * this.hd);
  }

  truncate(length: number): void {
    if (length < 0 || length > this.length) throw new RangeError(`cannot truncate ${this.length} tokens to ${length}`);
    this.length = length;
  }
}

function createCq(spec: ParsedSpec, ctx: CodecContext): KvCodec {
  const o = parseOptions(spec);
  if (ctx.role === 'k') ropeTableFor('cq', ctx);
  const widths = groupWidths(ctx.headDim, o.c);
  const books = checkArtifact(calibrationFor(spec, ctx), o, ctx, widths);
  const calib = spec.params.get('calib');
  return new CqCodec(`cq:${o.c}c${o.b}b${calib ? `,calib=${calib}` : ''}`, ctx, o, widths, books);
}

export const cqCodecs: CodecFactory[] = [
  {
    name: 'cq',
    summary: 'Coupled Quantization: c-channel groups coded by a b-bit index into calibrated k-means codebooks, pre-RoPE keys; cq:<c>c<b>b,calib=FILE (e.g. cq:4c8b = 2 bits/value)',
    create: createCq,
    calibrate: (spec: ParsedSpec, samples: CalibrationSamples, { seed }: { readonly seed: number }): unknown => calibrateCq(spec, samples, seed),
  },
];
