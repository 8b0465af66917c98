/**
 * Integer round-to-nearest (RTN), the plain uniform quantizer of methods.md §0.
 *
 * Spec: `rtn[:B][,axis=token|channel][,g=N|head|row][,mode=asym|sym][,dot=int|i8|f32]`
 *   B     2, 3, 4 or 8 bits (default 4).
 *   axis  token (default): scale/zero per token and group of g channels; channel: per channel
 *         and group of g consecutive tokens.
 *   g     token axis: channels per group, default 32; a group never crosses a head, so g is
 *         capped at head_dim (head_dim 8 → one group per head) and a head whose dim g does not
 *         divide ends in a shorter group. `g=head` is one group per head, `g=row` one group over
 *         the whole row (all heads). Channel axis: tokens per group, default 32.
 *   mode  asym (default): min/max with an fp16 zero point; sym: absmax, levels ±(2^(B−1) − 1).
 *   dot   int (default): products in integers, scores() with the query quantized to int16 per
 *         group, accumulate() with int16 weights per tile of tokens; i8: the same with an int8
 *         query (faster to quantize, coarser: opt-in); f32: float query and weights times the
 *         decoded codes (exact; see int-quant.ts).
 *
 * DecoQuant's RTN baseline (methods.md §1.7: per-token symmetric absmax over the entire hidden
 * dimension, all heads, no groups) is `rtn:B,g=row,mode=sym`.
 *
 * Per-channel grouping needs g tokens before a group can be quantized: the incomplete group is
 * kept in fp16 (counted in bytes()) and quantized when its g-th token arrives; truncate() may cut
 * inside that pending group or at a multiple of g (see GroupQuantCodec).
 *
 * Bits/value: B + 32/g (asym) or B + 16/g (sym) with g the effective group size (channels or
 * tokens), plus 16 bits for each pending token on the channel axis.
 *
 * Error bound: every value lies within the span of its group's grid (fp16 zero rounded down,
 * scale up), so |x − x̂| ≤ s/2 with s = (max − min)/(2^B − 1) (asym) or max|x|/(2^(B−1) − 1) (sym).
 */
import { CodecSpecError, type CodecContext, type CodecFactory, type KvCodec, type ParsedSpec } from '../codec.js';
import { bitsArg, checkParamNames, dotSuffix, GroupQuantCodec, parseIntDot } from './int-quant.js';

const DEFAULT_GROUP = 32;

function createRtn(spec: ParsedSpec, ctx: CodecContext): KvCodec {
  checkParamNames(spec, ['axis', 'g', 'mode', 'dot']);
  const bits = bitsArg(spec, [2, 3, 4, 8], 4);
  const axis = spec.params.get('axis') ?? 'token';
  if (axis !== 'token' && axis !== 'channel') throw new CodecSpecError(`rtn: axis must be token or channel (got "${axis}")`);
  const mode = spec.params.get('mode') ?? 'asym';
  if (mode !== 'asym' && mode !== 'sym') throw new CodecSpecError(`rtn: mode must be asym or sym (got "${mode}")`);
  const gText = spec.params.get('g') ?? String(DEFAULT_GROUP);
  const dot = parseIntDot(spec);
  const canonical = `rtn:${bits},axis=${axis},g=${gText},mode=${mode}${dotSuffix(dot)}`;
  const sym = mode === 'sym';
  const g = /^[1-9][0-9]*$/.test(gText) ? Number(gText) : undefined;
  if (axis === 'channel') {
    if (g === undefined) throw new CodecSpecError(`rtn: g must be a positive integer (tokens per group on axis=channel; got "${gText}")`);
    return new GroupQuantCodec(canonical, ctx, { bits, sym, axis, group: g, residual: g, dot });
  }
  const group = gText === 'row' ? 'row' : gText === 'head' ? ctx.headDim : g;
  if (group === undefined) throw new CodecSpecError(`rtn: g must be a positive integer, "head" or "row" (got "${gText}")`);
  return new GroupQuantCodec(canonical, ctx, { bits, sym, axis, group, residual: 0, dot });
}

export const rtnCodecs: CodecFactory[] = [
  {
    name: 'rtn',
    summary: 'integer round-to-nearest, rtn:B[,axis=token|channel][,g=N|head|row][,mode=asym|sym][,dot=int|i8|f32] (B = 2/3/4/8, default rtn:4,axis=token,g=32,mode=asym,dot=int)',
    create: createRtn,
  },
];
