/**
 * KIVI (methods.md §2): keys per-channel, values per-token, asymmetric min/max, 2 or 4 bits,
 * with an fp16 residual of the newest tokens.
 *
 * Spec: `kivi[:B][,g=G][,r=R][,dot=int|i8|f32]`, B ∈ {2, 4} (default 2), G = 32, R = 128 (paper
 * defaults); R must be a positive multiple of G. dot: how attention multiplies, int (default): in
 * integers, keys against an int16 query (the per-channel key scales folded into it first),
 * values with int16 weights; i8: the same with an int8 query (opt-in, coarser); f32: float query
 * and weights, exact (see int-quant.ts).
 *
 * Streaming, exactly as §2 (the codec knows its role from ctx.role):
 *   keys   (ctx.role 'k') new tokens join the fp16 residual; when it holds R tokens they are
 *          quantized together, R/G groups of G tokens per channel, and the residual empties.
 *          A bulk append of T tokens therefore quantizes the first T − (T mod R) and keeps
 *          T mod R in fp16 — §2's prefill rule.
 *   values (ctx.role 'v') the residual is a FIFO of the newest R tokens; each token pushed out
 *          is quantized on its own, in groups of G channels. A bulk append of T tokens quantizes
 *          all but the last R — §2's prefill rule.
 * Both rules make the quantized set a function of the token count alone, and quantization always
 * reads the fp16 residual form, so prefill and decode store the same bits (streaming = bulk).
 *
 * Deviation (engine, not codec): §2's prefill attends with exact K/V and its decode step attends
 * the new token before the residual is flushed; here attention always reads the store, after
 * append(), so those tokens are seen in their stored (quantized) form.
 *
 * Values when G does not divide head_dim: groups never cross heads; each head is split into
 * ceil(head_dim/G) groups of G channels, the last one shorter (head_dim 8 with G = 32: one group
 * of 8 per head and token). The paper's code requires G | head_dim; this is the nearest rule.
 *
 * Storage (paper's code): B-bit packed codes, fp16 scale and fp16 zero point per group, fp16
 * residual. Bits/value: keys B + 32/G on quantized tokens; values B + 32·ceil(head_dim/G)/head_dim
 * (= B + 32/G when G divides head_dim); 16 for residual tokens (keys hold T mod R of them, values
 * min(T, R)).
 *
 * Error bound: |x − x̂| ≤ s/2 per value, s = (max − min)/(2^B − 1) of its group; residual tokens
 * carry only fp16 rounding (relative 2^−11).
 */
import { CodecSpecError, type CodecContext, type CodecFactory, type KvCodec, type ParsedSpec } from '../codec.js';
import { bitsArg, checkParamNames, dotSuffix, GroupQuantCodec, parseIntDot, positiveInt } from './int-quant.js';

function createKivi(spec: ParsedSpec, ctx: CodecContext): KvCodec {
  checkParamNames(spec, ['g', 'r', 'dot']);
  const bits = bitsArg(spec, [2, 4], 2);
  const g = positiveInt(spec, 'g', spec.params.get('g')) ?? 32;
  const r = positiveInt(spec, 'r', spec.params.get('r')) ?? 128;
  if (r % g !== 0) throw new CodecSpecError(`kivi: the residual length r must be a multiple of the group size g (got r=${r}, g=${g})`);
  const dot = parseIntDot(spec);
  const axis = ctx.role === 'k' ? 'channel' : 'token';
  return new GroupQuantCodec(`kivi:${bits},g=${g},r=${r}${dotSuffix(dot)}`, ctx, { bits, sym: false, axis, group: g, residual: r, dot });
}

export const kiviCodecs: CodecFactory[] = [
  {
    name: 'kivi',
    summary: 'KIVI: keys per-channel, values per-token, asym int, fp16 residual; kivi:B[,g=G][,r=R][,dot=int|i8|f32] (B = 2/4, default kivi:2,g=32,r=128,dot=int)',
    create: createKivi,
  },
];
