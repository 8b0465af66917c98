// f32 matrix products x·Wᵀ, W row-major [out][in]. Matrix-matrix work is tiled: a tile of
// weight rows (about TILE_BYTES) stays in L1/L2 while every activation row sweeps it, and the
// 4×2 kernel reuses each loaded weight vector for four activation rows and each activation
// vector for two weight rows, so prefill runs on arithmetic rather than on memory.
//
// Every output is summed in one order whichever kernel computes it: lane k of one f32x4
// accumulates the products j ≡ k (mod 4) of the first inDim & ~3 in sequence, the lanes are
// added as (l0 + l1) + (l2 + l3), then the remaining products one by one. So a result does not
// depend on n, on the column range, or on how threads split the columns.

// @ts-ignore: decorator
@lazy const TILE_BYTES: i32 = 32768;

/** Weight rows per tile for rows of rowBytes: a multiple of 8, at least 8. */
export function tileRows(rowBytes: i32): i32 {
  return max(8, TILE_BYTES / rowBytes) & ~7;
}

/** (l0 + l1) + (l2 + l3) of an f32x4. */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** Σ a[i]·b[i] over n f32 values (4 lanes × 2 accumulators; the matmuls sum in dotOrdered's order instead). */
export function dotF32(a: usize, b: usize, n: i32): f32 {
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    acc1 = f32x4.add(acc1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/**
 * Four activation rows (x, stride xStride bytes) × weight rows wa and wb → out (columns a, a+1)
 * of four output rows (stride oStride bytes).
 */
function f32Kernel4x2(out: usize, oStride: usize, x: usize, xStride: usize, wa: usize, wb: usize, n: i32): void {
  const x1 = x + xStride;
  const x2 = x1 + xStride;
  const x3 = x2 + xStride;
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0);
  let b1 = f32x4.splat(0);
  let b2 = f32x4.splat(0);
  let b3 = f32x4.splat(0);
  const end = <usize>(n & ~3) << 2;
  for (let p: usize = 0; p < end; p += 16) {
    const va = v128.load(wa + p);
    const vb = v128.load(wb + p);
    let v = v128.load(x + p);
    a0 = f32x4.add(a0, f32x4.mul(va, v));
    b0 = f32x4.add(b0, f32x4.mul(vb, v));
    v = v128.load(x1 + p);
    a1 = f32x4.add(a1, f32x4.mul(va, v));
    b1 = f32x4.add(b1, f32x4.mul(vb, v));
    v = v128.load(x2 + p);
    a2 = f32x4.add(a2, f32x4.mul(va, v));
    b2 = f32x4.add(b2, f32x4.mul(vb, v));
    v = v128.load(x3 + p);
    a3 = f32x4.add(a3, f32x4.mul(va, v));
    b3 = f32x4.add(b3, f32x4.mul(vb, v));
  }
  let sa0 = hsum(a0);
  let sa1 = hsum(a1);
  let sa2 = hsum(a2);
  let sa3 = hsum(a3);
  let sb0 = hsum(b0);
  let sb1 = hsum(b1);
  let sb2 = hsum(b2);
  let sb3 = hsum(b3);
  for (let p = end; p < (<usize>n << 2); p += 4) {
    const va = load<f32>(wa + p);
    const vb = load<f32>(wb + p);
    let v = load<f32>(x + p);
    sa0 += va * v;
    sb0 += vb * v;
    v = load<f32>(x1 + p);
    sa1 += va * v;
    sb1 += vb * v;
    v = load<f32>(x2 + p);
    sa2 += va * v;
    sb2 += vb * v;
    v = load<f32>(x3 + p);
    sa3 += va * v;
    sb3 += vb * v;
  }
  store<f32>(out, sa0);
  store<f32>(out, sb0, 4);
  out += oStride;
  store<f32>(out, sa1);
  store<f32>(out, sb1, 4);
  out += oStride;
  store<f32>(out, sa2);
  store<f32>(out, sb2, 4);
  out += oStride;
  store<f32>(out, sa3);
  store<f32>(out, sb3, 4);
}

/** x · w over n values in the order every kernel here uses (see the top of the file). */
function dotOrdered(x: usize, w: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  const end = <usize>(n & ~3) << 2;
  for (let p: usize = 0; p < end; p += 16) acc = f32x4.add(acc, f32x4.mul(v128.load(w + p), v128.load(x + p)));
  let s = hsum(acc);
  for (let p = end; p < (<usize>n << 2); p += 4) s += load<f32>(w + p) * load<f32>(x + p);
  return s;
}

/**
 * out[r·oStride + c] = x_r · W_c for every row r < n and the `cols` consecutive f32 weight
 * rows at w (out points at the first of these columns).
 */
export function f32Columns(out: usize, oStride: usize, x: usize, n: i32, inDim: i32, w: usize, cols: i32): void {
  const row = <usize>inDim << 2;
  let r = 0;
  for (; r + 4 <= n; r += 4) {
    const xr = x + <usize>r * row;
    const o = out + <usize>r * oStride;
    let c = 0;
    for (; c + 2 <= cols; c += 2) {
      const wc = w + <usize>c * row;
      f32Kernel4x2(o + (<usize>c << 2), oStride, xr, row, wc, wc + row, inDim);
    }
    if (c < cols) {
      for (let k = 0; k < 4; k++) store<f32>(o + <usize>k * oStride + (<usize>c << 2), dotOrdered(xr + <usize>k * row, w + <usize>c * row, inDim));
    }
  }
  for (; r < n; r++) {
    const xr = x + <usize>r * row;
    const o = out + <usize>r * oStride;
    // One weight row at a time: a single sequential stream through memory. Reading eight rows
    // side by side (eight short streams) ran at half the bandwidth (12 vs 23 GB/s on 2 KB rows);
    // consecutive rows' accumulator chains still overlap in the out-of-order core.
    for (let c = 0; c < cols; c++) store<f32>(o + (<usize>c << 2), dotOrdered(xr, w + <usize>c * row, inDim));
  }
}

/** out[r·outStride + j] = x_r · W_j for rows r < n and output columns j ∈ [j0, j1); W is [out][inDim]. */
export function matmulF32(out: usize, outStride: i32, x: usize, w: usize, n: i32, inDim: i32, j0: i32, j1: i32): void {
  const row = <usize>inDim << 2;
  const tile = tileRows(<i32>row);
  for (let t0 = j0; t0 < j1; t0 += tile) {
    f32Columns(out + (<usize>t0 << 2), <usize>outStride << 2, x, n, inDim, w + <usize>t0 * row, min(j1, t0 + tile) - t0);
  }
}
