// bf16-weight products. A bfloat16 is the top half of a float32, so widening is a 16-bit shift
// (exact, inf/NaN included); the sums follow assembly/matmul.ts's order, so every result equals
// converting the weights first and using the f32 kernels, whatever n or the column range.
import { f32Columns, hsum, tileRows } from './matmul';

/** Four bf16 at p → f32x4. */
// @ts-ignore: decorator
@inline function bf16x4(p: usize): v128 {
  return i32x4.shl(v128.load16x4_u(p), 16);
}

/** x · w over n values, w bf16, in matmul.ts's order (dotOrdered). */
function dotBF16(x: usize, w: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  const end = n & ~3;
  for (let j = 0; j < end; j += 4) acc = f32x4.add(acc, f32x4.mul(bf16x4(w + (<usize>j << 1)), v128.load(x + (<usize>j << 2))));
  let s = hsum(acc);
  for (let j = end; j < n; j++) s += reinterpret<f32>(<u32>load<u16>(w + (<usize>j << 1)) << 16) * load<f32>(x + (<usize>j << 2));
  return s;
}

/** The same widening in bulk: dst[i] = src[i] as f32, i < n. */
function bf16ToF32(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), bf16x4(src + (<usize>i << 1)));
  for (; i < n; i++) store<u32>(dst + (<usize>i << 2), <u32>load<u16>(src + (<usize>i << 1)) << 16);
}

/**
 * out[r·outStride + j] = x_r · W_j for rows r < n and output columns j ∈ [j0, j1), W bf16
 * [out][inDim], with f16ScratchBytes(inDim) bytes of scratch: below 4 rows each weight row is
 * widened on the fly (one memory stream), from 4 rows on each tile once, for the f32 kernels.
 */
export function matmulBF16(out: usize, outStride: i32, x: usize, w: usize, n: i32, inDim: i32, j0: i32, j1: i32, scratch: usize): void {
  const wRow = <usize>inDim << 1;
  const xRow = <usize>inDim << 2;
  const oRow = <usize>outStride << 2;
  if (n < 4) {
    for (let r = 0; r < n; r++) {
      const xr = x + <usize>r * xRow;
      const o = out + <usize>r * oRow;
      for (let j = j0; j < j1; j++) store<f32>(o + (<usize>j << 2), dotBF16(xr, w + <usize>j * wRow, inDim));
    }
    return;
  }
  const tile = tileRows(<i32>xRow);
  for (let t0 = j0; t0 < j1; t0 += tile) {
    const cols = min(j1, t0 + tile) - t0;
    bf16ToF32(scratch, w + <usize>t0 * wRow, cols * inDim);
    f32Columns(out + (<usize>t0 << 2), oRow, x, n, inDim, scratch, cols);
  }
}
