/**
 * Plain-TS twins of assembly/attn-int.ts's integer-domain products (intScoresI16 / intScoresI8,
 * intAccumulate's integer path), with scales and zero points applied after each group's integer
 * sum (MixPE's factoring).
 *
 * scores: the query is quantized per group to levels ≤ Q in magnitude (int16: Q from queryMax,
 * int8: Q = 127), d = max|q|/Q,
 *   per-token groups   q·k̂ ≈ Σ_g (s_g·d_g)·Σ_c l_c·code_c + z_g·(d_g·Σ_c l_c)
 *   per-channel groups q·k̂ ≈ Σ_c q̃_c·z_c + Σ_g d_g·Σ_c l_c·code_c, l the levels of q⊙s
 *                      (one s per channel, refolded for every group of G tokens), q̃_c = d_g·l_c/s_c
 * so both terms use the query the levels stand for and the result is q̃·k̂: the rounding error
 * is Σ_c (q̃_c − q_c)·k̂_c, independent of the zero points (which can dwarf k̂).
 * accumulate (per-token groups): the weights a_t = p_t·s_t of a tile of ACC_TILE tokens are
 * quantized to int16 per group (σ = max|a|/32767), Σ_t ai_t·code_t,d summed in integers and added
 * as σ·Σ once per tile; the zero term Σ_t p̃_t·z_t over the same weights, p̃_t = σ·ai_t/s_t (p_t
 * where s_t = 0), is summed in float32 and added once at the end: the result is Σ_t p̃_t·v̂_t.
 * Symmetric codes count as code − offset and have no zero term. Each float operation is rounded
 * to float32 in the order the kernel performs it, so kernel and twin agree bit for bit.
 */
import { getCode } from '../../../numeric/bitpack.js';
import { f16Table } from '../../../numeric/f16.js';

const fr = Math.fround;

/** Where a GroupQuantCodec keeps its codes and how it groups them (see int-quant.ts). */
export interface IntLayout {
  readonly codes: Uint32Array;
  readonly scales: Uint16Array;
  /** Undefined for symmetric codes. */
  readonly zeros: Uint16Array | undefined;
  readonly bits: number;
  /** Symmetric: the code of 0 (levels are code − offset); asymmetric: 0. */
  readonly offset: number;
  readonly headDim: number;
  readonly axis: 'token' | 'channel';
  /** Code index of token t, value d of head h: h·headCodes + t·headDim + d (head-major). */
  readonly headCodes: number;
  /**
   * Scale (and zero point) index: per-token groups, group g of token t in head h:
   * h·headScales + t·tokenScales + g (headScales 0 for one group over the whole row);
   * per-channel groups, token group j, value d of head h: h·headScales + j·tokenScales + d.
   */
  readonly headScales: number;
  readonly tokenScales: number;
  /** Per-token: channels per scale group within a head; per-channel: channels per query group. */
  readonly span: number;
  /** Per-channel: tokens per group. */
  readonly tokensPerGroup: number;
}

/** Channels per query group of the folded query on per-channel codes. */
export const CHANNEL_QUERY_GROUP = 32;

/** nearest(x), ties to even (f32x4.nearest). */
function roundEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/**
 * The largest query level: 127 for int8 (wide false); for int16 32767, or less where
 * Σ level·(code − off) over a group of `span` channels could pass 2^31 (the kernel sums in int32).
 */
export function queryMax(L: IntLayout, wide: boolean): number {
  if (!wide) return 127;
  const code = L.offset !== 0 ? L.offset : 2 ** L.bits - 1;
  return Math.min(32767, Math.floor(0x7fffffff / (code * L.span)));
}

/** x[xo … xo + n) to levels at dst[dOff …]: level = nearest(x·Q/amax); returns d = amax/Q. */
export function quantizeQueryGroup(x: Float32Array, xo: number, n: number, dst: Int32Array, dOff: number, Q: number): number {
  let amax = 0;
  for (let j = 0; j < n; j++) amax = Math.max(amax, Math.abs(x[xo + j]));
  const id = amax !== 0 ? fr(Q / amax) : 0;
  for (let j = 0; j < n; j++) dst[dOff + j] = roundEven(fr(x[xo + j] * id));
  return fr(amax / Q);
}

/** Token t's codes of head h (code − offset) to dst. */
function unpack(L: IntLayout, t: number, h: number, dst: Int32Array): void {
  const idx = h * L.headCodes + t * L.headDim;
  for (let c = 0; c < L.headDim; c++) dst[c] = getCode(L.codes, idx + c, L.bits) - L.offset;
}

function dotInt(a: Int32Array, ao: number, b: Int32Array, bo: number, n: number): number {
  let s = 0;
  for (let j = 0; j < n; j++) s += a[ao + j] * b[bo + j];
  return s;
}

/** out[outOffset + i·outStride + t] for tokens t < nTokens, all held as codes; Q: queryMax(L, …). */
export function scoresIntRef(L: IntLayout, Q: number, head: number, q: Float32Array, qOffset: number, nq: number, nTokens: number, out: Float32Array, outOffset: number, outStride: number): void {
  const { headDim: hd, span } = L;
  const nG = Math.ceil(hd / span);
  const row = new Int32Array(hd);
  const ql = new Int32Array(nq * hd);
  const qd = new Float32Array(nq * nG);
  const qz = new Float32Array(nq * nG);

  if (L.axis === 'token') {
    for (let i = 0; i < nq; i++) {
      const qo = qOffset + i * hd;
      for (let g = 0; g < nG; g++) {
        const a = g * span;
        const len = Math.min(span, hd - a);
        qd[i * nG + g] = quantizeQueryGroup(q, qo + a, len, ql, i * hd + a, Q);
        let sum = 0;
        for (let c = 0; c < len; c++) sum += ql[i * hd + a + c];
        qz[i * nG + g] = fr(fr(sum) * qd[i * nG + g]);
      }
    }
    for (let t = 0; t < nTokens; t++) {
      unpack(L, t, head, row);
      const sk = head * L.headScales + t * L.tokenScales;
      for (let i = 0; i < nq; i++) {
        let acc = 0;
        for (let g = 0; g < nG; g++) {
          const a = g * span;
          const isum = dotInt(row, a, ql, i * hd + a, Math.min(span, hd - a));
          acc = fr(acc + fr(fr(f16Table[L.scales[sk + g]] * qd[i * nG + g]) * fr(isum)));
          if (L.zeros) acc = fr(acc + fr(f16Table[L.zeros[sk + g]] * qz[i * nG + g]));
        }
        out[outOffset + i * outStride + t] = acc;
      }
    }
    return;
  }

  const G = L.tokensPerGroup;
  const folded = new Float32Array(hd);
  for (let t0 = 0; t0 < nTokens; t0 += G) {
    const base = head * L.headScales + (t0 / G) * L.tokenScales;
    for (let i = 0; i < nq; i++) {
      const qo = qOffset + i * hd;
      for (let c = 0; c < hd; c++) folded[c] = q[qo + c] * f16Table[L.scales[base + c]];
      for (let g = 0; g < nG; g++) qd[i * nG + g] = quantizeQueryGroup(folded, g * span, Math.min(span, hd - g * span), ql, i * hd + g * span, Q);
      // Σ_c q̃_c·z_c in four lanes by c mod 4, then (l0 + l1) + (l2 + l3).
      const lanes = [0, 0, 0, 0];
      if (L.zeros) {
        for (let c = 0; c < hd; c++) {
          const s = f16Table[L.scales[base + c]];
          const qt = s !== 0 ? fr(fr(qd[i * nG + Math.floor(c / span)] * ql[i * hd + c]) / s) : q[qo + c];
          lanes[c & 3] = fr(lanes[c & 3] + fr(qt * f16Table[L.zeros[base + c]]));
        }
      }
      qz[i] = fr(fr(lanes[0] + lanes[1]) + fr(lanes[2] + lanes[3]));
    }
    for (let t = t0; t < Math.min(t0 + G, nTokens); t++) {
      unpack(L, t, head, row);
      for (let i = 0; i < nq; i++) {
        let acc = qz[i];
        for (let g = 0; g < nG; g++) {
          const a = g * span;
          acc = fr(acc + fr(qd[i * nG + g] * fr(dotInt(row, a, ql, i * hd + a, Math.min(span, hd - a)))));
        }
        out[outOffset + i * outStride + t] = acc;
      }
    }
  }
}

/** Tokens whose weights share one int16 scale in accumulate (the kernel is passed this). */
export const ACC_TILE = 16;

/**
 * out[outOffset + i·headDim + d] += Σ_t w[wOffset + i·wStride + t]·v̂_t[d] over tokens t < nTokens,
 * all held as codes in per-token groups, with int16 weights per tile (file comment).
 */
export function accumulateI16Ref(L: IntLayout, head: number, w: Float32Array, wOffset: number, wStride: number, nq: number, nTokens: number, out: Float32Array, outOffset: number): void {
  const { headDim: hd, span } = L;
  const nG = Math.ceil(hd / span);
  const rows = new Int32Array(ACC_TILE * hd);
  const a = new Float32Array(ACC_TILE);
  const ai = new Int32Array(ACC_TILE);
  const zAcc = new Float32Array(nq * nG);
  for (let t0 = 0; t0 < nTokens; t0 += ACC_TILE) {
    const n = Math.min(ACC_TILE, nTokens - t0);
    for (let r = 0; r < n; r++) unpack(L, t0 + r, head, rows.subarray(r * hd, (r + 1) * hd));
    for (let i = 0; i < nq; i++) {
      const wo = wOffset + i * wStride + t0;
      const oo = outOffset + i * hd;
      for (let g = 0; g < nG; g++) {
        const si = head * L.headScales + t0 * L.tokenScales + g;
        let amax = 0;
        for (let r = 0; r < n; r++) {
          a[r] = fr(w[wo + r] * f16Table[L.scales[si + r * L.tokenScales]]);
          amax = Math.max(amax, Math.abs(a[r]));
        }
        const k = i * nG + g;
        if (amax === 0) {
          if (L.zeros) for (let r = 0; r < n; r++) zAcc[k] = fr(zAcc[k] + fr(w[wo + r] * f16Table[L.zeros[si + r * L.tokenScales]]));
          continue;
        }
        const inv = fr(32767 / amax);
        const sigma = fr(amax / 32767);
        for (let r = 0; r < n; r++) ai[r] = roundEven(fr(a[r] * inv));
        if (L.zeros) {
          // In four lanes by token mod 4, added once per tile.
          const lanes = [0, 0, 0, 0];
          for (let r = 0; r < n; r++) {
            const s = f16Table[L.scales[si + r * L.tokenScales]];
            const z = f16Table[L.zeros[si + r * L.tokenScales]];
            lanes[r & 3] = fr(lanes[r & 3] + (s !== 0 ? fr(fr(sigma * ai[r]) * fr(z / s)) : fr(w[wo + r] * z)));
          }
          zAcc[k] = fr(zAcc[k] + fr(fr(lanes[0] + lanes[1]) + fr(lanes[2] + lanes[3])));
        }
        for (let c = g * span; c < Math.min((g + 1) * span, hd); c++) {
          let sum = 0;
          for (let r = 0; r < n; r++) sum += ai[r] * rows[r * hd + c];
          out[oo + c] = fr(out[oo + c] + fr(sigma * fr(sum)));
        }
      }
    }
  }
  if (L.zeros && nTokens > 0) {
    for (let i = 0; i < nq; i++) for (let c = 0; c < hd; c++) out[outOffset + i * hd + c] = fr(out[outOffset + i * hd + c] + zAcc[i * nG + Math.floor(c / span)]);
  }
}
