/** Σ a[i]·b[i] over n f32 values (4 lanes × 2 accumulators). */
export function dotF32(a: usize, b: usize, n: i32): f32 {
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    acc1 = f32x4.add(acc1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
  }
  const acc = f32x4.add(acc0, acc1);
  let s = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/** out[r·outStride + j] = x_r · W_j for rows r < n and output columns j ∈ [j0, j1); W is [out][inDim]. */
export function matmulF32(out: usize, outStride: i32, x: usize, w: usize, n: i32, inDim: i32, j0: i32, j1: i32): void {
  const rowBytes = <usize>inDim << 2;
  for (let r = 0; r < n; r++) {
    const xr = x + <usize>r * rowBytes;
    const o = out + ((<usize>r * <usize>outStride) << 2);
    for (let j = j0; j < j1; j++) store<f32>(o + (<usize>j << 2), dotF32(xr, w + <usize>j * rowBytes, inDim));
  }
}
