// q8_0 weight products the way llama.cpp's CPU backend computes them: each activation row is
// quantized once to q8_0 (x86 from_float: d = amax/127 stored as fp16,
// q = round-half-even(x·127/amax)), then per 32-value block the int8·int8 products are summed exactly in integers and the block
// adds isum·(d_w·d_x) to a float32 sum, block after block (ggml_vec_dot_q8_0_q8_0's generic order).
// Four weight rows run side by side, one per f32 lane, so every lane keeps that scalar order and
// the result equals the plain-TS twin (kernels/ref/weights.ts) bit for bit.
//
// Weights: ggml blocks of 34 bytes (fp16 d, int8 qs[32]), rows of inDim/32 blocks, no padding.
// Quantized activations (q8ActivationBytes): the levels of all n·nb blocks as i16 (64 bytes per
// block, sign-extended once here instead of once per weight row), then the n·nb scales as f32,
// then the n·nb q8_1 sums s = fp16(d·Σq) as f32 (what q4_1/q5_1 multiply their minimum with;
// the x86 q8_1 from_float is this quantizer plus s, so one layout serves both).
import { f16ToF32Scalar, f16x4, f32ToF16Scalar } from './f16';
import { tileRows } from './matmul';

// @ts-ignore: decorator
@lazy const BLOCK_BYTES: usize = 34;
// @ts-ignore: decorator
@lazy const LEVEL_BYTES: usize = 64;

/** Bytes quantizeQ8Rows writes for n rows of inDim values. */
export function q8ActivationBytes(n: i32, inDim: i32): i32 {
  return n * (inDim >> 5) * <i32>(LEVEL_BYTES + 8);
}

/**
 * Quantizes n rows of inDim (a multiple of 32) f32 values at x into dst (layout above). Returns
 * how many blocks got a non-finite fp16 scale (|x| beyond fp16·127, inf or NaN): their products
 * are meaningless and the caller must refuse them.
 */
export function quantizeQ8Rows(dst: usize, x: usize, n: i32, inDim: i32): i32 {
  const blocks = n * (inDim >> 5); // rows are contiguous, so the blocks are too
  const scales = dst + <usize>blocks * LEVEL_BYTES;
  const sums = scales + (<usize>blocks << 2);
  let bad = 0;
  for (let b = 0; b < blocks; b++) {
    const src = x + (<usize>b << 7);
    const v0 = v128.load(src);
    const v1 = v128.load(src, 16);
    const v2 = v128.load(src, 32);
    const v3 = v128.load(src, 48);
    const v4 = v128.load(src, 64);
    const v5 = v128.load(src, 80);
    const v6 = v128.load(src, 96);
    const v7 = v128.load(src, 112);
    const m = f32x4.max(
      f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3))),
      f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7))),
    );
    const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    const h = f32ToF16Scalar(amax / 127);
    if ((h & 0x7c00) == 0x7c00) bad++;
    store<f32>(scales + (<usize>b << 2), f16ToF32Scalar(h));
    // ggml's 127/amax overflows for amax below ~3.7e-37 and its levels then come out 0 (the
    // int8 of ±inf/NaN); its fp16 scale is 0 either way.
    let id: f32 = amax != 0 ? 127 / amax : 0;
    if (!isFinite<f32>(id)) id = 0;
    const s = f32x4.splat(id);
    const lv = dst + <usize>b * LEVEL_BYTES;
    const l0 = level4(v0, s);
    const l1 = level4(v1, s);
    const l2 = level4(v2, s);
    const l3 = level4(v3, s);
    const l4 = level4(v4, s);
    const l5 = level4(v5, s);
    const l6 = level4(v6, s);
    const l7 = level4(v7, s);
    v128.store(lv, i16x8.narrow_i32x4_s(l0, l1));
    v128.store(lv, i16x8.narrow_i32x4_s(l2, l3), 16);
    v128.store(lv, i16x8.narrow_i32x4_s(l4, l5), 32);
    v128.store(lv, i16x8.narrow_i32x4_s(l6, l7), 48);
    const t = i32x4.add(i32x4.add(i32x4.add(l0, l1), i32x4.add(l2, l3)), i32x4.add(i32x4.add(l4, l5), i32x4.add(l6, l7)));
    const sum = i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1) + i32x4.extract_lane(t, 2) + i32x4.extract_lane(t, 3);
    store<f32>(sums + (<usize>b << 2), f16ToF32Scalar(f32ToF16Scalar(<f32>sum * (amax / 127))));
  }
  return bad;
}

/** round-half-even(v·id) in i32 lanes (_mm256_round_ps's nearest, as x86 from_float). */
// @ts-ignore: decorator
@inline function level4(v: v128, id: v128): v128 {
  return i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v, id)));
}

/** [p0₀ + p0₂, p1₀ + p1₂, p0₁ + p0₃, p1₁ + p1₃]: half of the lane sums of p0 and p1. */
// @ts-ignore: decorator
@inline export function pairSum(p0: v128, p1: v128): v128 {
  return i32x4.add(i32x4.shuffle(p0, p1, 0, 4, 1, 5), i32x4.shuffle(p0, p1, 2, 6, 3, 7));
}

/** [Σ p0, Σ p1, Σ p2, Σ p3] from t01 = pairSum(p0, p1) and t23 = pairSum(p2, p3). */
// @ts-ignore: decorator
@inline export function quadSum(t01: v128, t23: v128): v128 {
  return i32x4.add(i32x4.shuffle(t01, t23, 0, 1, 4, 5), i32x4.shuffle(t01, t23, 2, 3, 6, 7));
}

/** The fp16 scales of the block at wb in four consecutive weight rows, as f32x4. */
// @ts-ignore: decorator
@inline function scales4(wb: usize, rowBytes: usize): v128 {
  let h = i32x4.splat(0);
  h = v128.load16_lane(wb, h, 0);
  h = v128.load16_lane(wb + rowBytes, h, 2);
  h = v128.load16_lane(wb + 2 * rowBytes, h, 4);
  h = v128.load16_lane(wb + 3 * rowBytes, h, 6);
  return f16x4(i32x4.shr_s(i32x4.shl(h, 16), 16));
}

/** One activation row × four weight rows → out[0…3]. */
function q8Kernel4x1(out: usize, xa: usize, da: usize, w: usize, rowBytes: usize, nb: i32): void {
  let acc = f32x4.splat(0);
  const w1 = w + rowBytes;
  const w2 = w1 + rowBytes;
  const w3 = w2 + rowBytes;
  for (let b = 0; b < nb; b++) {
    const o = <usize>b * BLOCK_BYTES + 2;
    const la = xa + <usize>b * LEVEL_BYTES;
    const x0 = v128.load(la);
    const x1 = v128.load(la, 16);
    const x2 = v128.load(la, 32);
    const x3 = v128.load(la, 48);
    const p0 = rowDot(w + o, x0, x1, x2, x3);
    const p1 = rowDot(w1 + o, x0, x1, x2, x3);
    const p2 = rowDot(w2 + o, x0, x1, x2, x3);
    const p3 = rowDot(w3 + o, x0, x1, x2, x3);
    const dw = scales4(w + o - 2, rowBytes);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(quadSum(pairSum(p0, p1), pairSum(p2, p3))), f32x4.mul(dw, f32x4.splat(load<f32>(da + (<usize>b << 2))))));
  }
  v128.store(out, acc);
}

/** Partial sums of one block: the int8 at q × levels x0…x3 (already loaded). */
// @ts-ignore: decorator
@inline function rowDot(q: usize, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(v128.load8x8_s(q), x0), i32x4.dot_i16x8_s(v128.load8x8_s(q, 8), x1)),
    i32x4.add(i32x4.dot_i16x8_s(v128.load8x8_s(q, 16), x2), i32x4.dot_i16x8_s(v128.load8x8_s(q, 24), x3)),
  );
}

/** One activation row × one weight row, the same per-block order in scalar form. */
function q8Dot(xa: usize, da: usize, w: usize, nb: i32): f32 {
  let sum: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const wb = w + <usize>b * BLOCK_BYTES;
    const la = xa + <usize>b * LEVEL_BYTES;
    const p = rowDot(wb + 2, v128.load(la), v128.load(la, 16), v128.load(la, 32), v128.load(la, 48));
    const isum = i32x4.extract_lane(p, 0) + i32x4.extract_lane(p, 1) + i32x4.extract_lane(p, 2) + i32x4.extract_lane(p, 3);
    sum += <f32>isum * (f16ToF32Scalar(load<u16>(wb)) * load<f32>(da + (<usize>b << 2)));
  }
  return sum;
}

/**
 * out[r·outStride + j] = x_r · W_j for rows r < n and output columns j ∈ [j0, j1), W q8_0
 * [out][inDim], x given as quantizeQ8Rows(…, n, inDim) wrote it at xq, one activation row at a
 * time (quant.ts matmulQuant takes batches of rows to quant-tiles.ts, with the same bits).
 */
export function matmulQ8(out: usize, outStride: i32, xq: usize, w: usize, n: i32, inDim: i32, j0: i32, j1: i32): void {
  const nb = inDim >> 5;
  const rowBytes = <usize>nb * BLOCK_BYTES;
  const lRow = <usize>nb * LEVEL_BYTES;
  const dRow = <usize>nb << 2;
  const scales = xq + <usize>n * lRow;
  const oRow = <usize>outStride << 2;
  const tile = tileRows(<i32>rowBytes);
  for (let t0 = j0; t0 < j1; t0 += tile) {
    const t1 = min(j1, t0 + tile);
    for (let r = 0; r < n; r++) {
      const xa = xq + <usize>r * lRow;
      const da = scales + <usize>r * dRow;
      const o = out + <usize>r * oRow;
      let j = t0;
      for (; j + 4 <= t1; j += 4) q8Kernel4x1(o + (<usize>j << 2), xa, da, w + <usize>j * rowBytes, rowBytes, nb);
      for (; j < t1; j++) store<f32>(o + (<usize>j << 2), q8Dot(xa, da, w + <usize>j * rowBytes, nb));
    }
  }
}
