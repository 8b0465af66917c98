/**
 * The KV codec contract: the one interface every cache compression method implements.
 *
 * A codec holds one layer's keys or values for all KV heads of one sequence, in token order
 * (row t = token t, nKvHeads·headDim values, head-major). Attention never asks it for the
 * full-precision vectors: it asks for the two products attention needs, so a codec can run
 * them on its compressed form (see design.md). `decode` exists for tests and debugging only.
 *
 * Query layout: under grouped-query attention the query heads that share KV head h are
 * contiguous (llama.cpp's mapping, query head j reads KV head floor(j / group)), so one call
 * serves the whole group and reads the stored codes once.
 */
export type KvRole = 'k' | 'v';

/**
 * Which two elements of a head RoPE rotates together as pair i < dim/2: 'norm' (x[2i], x[2i+1]),
 * the layout of llama2.c and GGUF llama (llama.cpp's rope mode NORM); 'neox' (x[i], x[i + dim/2]),
 * the layout of Qwen, Phi-3 and Gemma (GPT-NeoX's, llama.cpp's mode NEOX).
 */
export type RopePairing = 'norm' | 'neox';

export interface RopeParams {
  /** Base frequency θ; pair i of a head turns by pos·θ^(−2i/dim) / freqFactors[i]. */
  readonly theta: number;
  /** Leading head dimensions rotated. */
  readonly dim: number;
  /** Default 'norm'. */
  readonly pairing?: RopePairing;
  /** dim/2 divisors of the pair frequencies (Llama 3.1's rope_freqs); absent: all 1. */
  readonly freqFactors?: readonly number[];
}

export interface CodecContext {
  readonly role: KvRole;
  readonly layer: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  /** Most tokens this store will ever hold; storage may be preallocated to it. */
  readonly capacity: number;
  /** The model's RoPE, for codecs that store keys before it (preRope) and rotate in scores(). */
  readonly rope?: RopeParams;
  /** Absolute position of this store's token 0 (non-zero for a codec nested in a window). */
  readonly firstPosition?: number;
}

export interface KvCodec {
  /** The spec string this codec was created from, in canonical form. */
  readonly spec: string;
  /**
   * True when append() must receive keys before RoPE; scores() then rotates each stored key to
   * its position (firstPosition + t) itself. Queries are always post-RoPE.
   */
  readonly preRope?: boolean;
  /** Tokens held. */
  readonly length: number;
  /** Encodes `count` new tokens: src[r·rowWidth …] for r < count, rowWidth = nKvHeads·headDim. */
  append(src: Float32Array, count: number): void;
  /**
   * out[outOffset + i·outStride + t] = q_i · k_t for the nq query vectors
   * q_i = q[qOffset + i·headDim …] against KV head `head`, tokens t < nTokens.
   */
  scores(
    head: number,
    q: Float32Array,
    qOffset: number,
    nq: number,
    nTokens: number,
    out: Float32Array,
    outOffset: number,
    outStride: number,
  ): void;
  /**
   * out[outOffset + i·headDim + d] += Σ_t w[wOffset + i·wStride + t] · v_t[d] for the nq weight
   * rows against KV head `head`, tokens t < nTokens.
   */
  accumulate(
    head: number,
    w: Float32Array,
    wOffset: number,
    wStride: number,
    nq: number,
    nTokens: number,
    out: Float32Array,
    outOffset: number,
  ): void;
  /** Exact bytes held: codes plus every scale, codebook share, outlier and residual. */
  bytes(): number;
  /** Materialises tokens [t0, t1) (all heads, row-major) into out. Tests and debugging only. */
  decode(t0: number, t1: number, out: Float32Array): void;
  /** Forgets tokens from `length` on (rollback, or reuse of the cache for a new sequence). */
  truncate(length: number): void;
}

/** Builds a nested codec (window wrappers): the registry's createCodec. */
export type CodecBuilder = (spec: string, ctx: CodecContext) => KvCodec;

/** Activations a method calibrates on: rows of one layer's K or V, as the model produced them. */
export interface CalibrationSamples {
  readonly layer: number;
  readonly role: KvRole;
  readonly nKvHeads: number;
  readonly headDim: number;
  /** Rows of nKvHeads·headDim values. Keys are pre-RoPE here; use rope to rotate if needed. */
  readonly rows: Float32Array;
  readonly nRows: number;
  readonly rope: RopeParams;
  /** Rows come from consecutive chunks of this many tokens, each starting at position 0. */
  readonly chunkLength: number;
}

export interface CodecFactory {
  /** Name used in specs, e.g. "f16". */
  readonly name: string;
  /** One line for help texts and error messages. */
  readonly summary: string;
  create(spec: ParsedSpec, ctx: CodecContext, build: CodecBuilder): KvCodec;
  /**
   * Methods that learn from data (codebooks, ranges) turn one layer's samples into a
   * JSON-serialisable artifact; `lowkv calibrate` stores them, and create() reads them back
   * through the spec's calib=FILE parameter (see kv/calibration.ts). `seed` fixes every random
   * choice (k-means seeding), so the same samples and seed give the same artifact.
   */
  calibrate?(spec: ParsedSpec, samples: CalibrationSamples, opts: { readonly seed: number }): unknown;
}

/**
 * A spec like `kivi:2,g=32,r=128` split into its parts (values stay strings). A wrapper spec
 * `window(sink=4,recent=64):kivi:2` has its parameters in parentheses and the wrapped spec in
 * `inner`.
 */
export interface ParsedSpec {
  readonly name: string;
  readonly arg: string | undefined;
  readonly params: ReadonlyMap<string, string>;
  readonly inner?: string;
  readonly text: string;
}

/** Thrown for an unknown method, bad parameter or impossible combination. */
export class CodecSpecError extends Error {
  override name = 'CodecSpecError';
}

export function parseSpec(text: string): ParsedSpec {
  const trimmed = text.trim();
  const wrapper = /^([a-z][a-z0-9_]*)\(([^()]*)\):(.+)$/i.exec(trimmed);
  if (wrapper) {
    return { name: wrapper[1].toLowerCase(), arg: undefined, params: parseParams(wrapper[2] ? wrapper[2].split(',') : [], text), inner: wrapper[3], text: trimmed };
  }
  const m = /^([a-z][a-z0-9_]*)(?::([^,]*))?((?:,[^,]*)*)$/i.exec(trimmed);
  if (!m) throw new CodecSpecError(`malformed KV cache spec "${text}" (expected name[:arg][,key=value…])`);
  return { name: m[1].toLowerCase(), arg: m[2], params: parseParams(m[3].split(',').slice(1), text), text: trimmed };
}

function parseParams(parts: string[], text: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const part of parts) {
    // A bare word is a flag (`nvfp4,hadamard`); factories reject names they do not know.
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).trim();
    if (!/^[a-z][a-z0-9_]*$/i.test(key)) throw new CodecSpecError(`malformed parameter "${part}" in KV cache spec "${text}" (expected key=value or a flag)`);
    if (params.has(key)) throw new CodecSpecError(`parameter "${key}" given twice in KV cache spec "${text}"`);
    params.set(key, eq < 0 ? 'true' : part.slice(eq + 1).trim());
  }
  return params;
}

/** Rejects NaN and ±Inf before they poison scales: n values of src, for `count` rows. */
export function assertFinite(src: Float32Array, n: number, ctx: CodecContext, firstToken: number): void {
  const width = ctx.nKvHeads * ctx.headDim;
  for (let i = 0; i < n; i++) {
    const x = src[i];
    // x − x is NaN exactly for NaN and ±Inf, and keeps this loop cheap.
    if (x - x !== 0) throw new RangeError(`non-finite value ${x} in ${ctx.role} of layer ${ctx.layer} (token ${firstToken + Math.floor(i / width)})`);
  }
}
