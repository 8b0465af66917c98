// Plain-TypeScript reference kernels: the math, written for clarity and exactness.
// Fast (WASM SIMD) twins will live in kernels/wasm with the same signatures.

/**
 * out[outOff + i·outDim + o] = Σ_j x[xOff + i·inDim + j] · w[o·inDim + j] for i < n: x·Wᵀ, W row-major
 * [outDim][inDim]. A block of weight rows stays in cache while the activation rows sweep it,
 * and 4 activation rows × 2 weight rows share each load (8 independent sums for the JIT).
 */
export function matmul(
  out: Float32Array,
  x: Float32Array,
  w: Float32Array,
  n: number,
  inDim: number,
  outDim: number,
  xOff = 0,
  outOff = 0,
): void {
  const OB = Math.max(2, Math.floor(16384 / inDim)) & ~1;
  for (let o0 = 0; o0 < outDim; o0 += OB) {
    const o1 = Math.min(outDim, o0 + OB);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const x0 = xOff + i * inDim;
      const x1 = x0 + inDim;
      const x2 = x1 + inDim;
      const x3 = x2 + inDim;
      let o = o0;
      for (; o + 2 <= o1; o += 2) {
        const wa = o * inDim;
        const wb = wa + inDim;
        let a0 = 0;
        let a1 = 0;
        let a2 = 0;
        let a3 = 0;
        let b0 = 0;
        let b1 = 0;
        let b2 = 0;
        let b3 = 0;
        for (let j = 0; j < inDim; j++) {
          const va = w[wa + j];
          const vb = w[wb + j];
          const y0 = x[x0 + j];
          const y1 = x[x1 + j];
          const y2 = x[x2 + j];
          const y3 = x[x3 + j];
          a0 += va * y0;
          a1 += va * y1;
          a2 += va * y2;
          a3 += va * y3;
          b0 += vb * y0;
          b1 += vb * y1;
          b2 += vb * y2;
          b3 += vb * y3;
        }
        const oo = outOff + i * outDim + o;
        out[oo] = a0;
        out[oo + outDim] = a1;
        out[oo + 2 * outDim] = a2;
        out[oo + 3 * outDim] = a3;
        out[oo + 1] = b0;
        out[oo + 1 + outDim] = b1;
        out[oo + 1 + 2 * outDim] = b2;
        out[oo + 1 + 3 * outDim] = b3;
      }
      for (; o < o1; o++) {
        for (let r = 0; r < 4; r++) out[outOff + (i + r) * outDim + o] = dot(x, x0 + r * inDim, w, o * inDim, inDim);
      }
    }
    for (; i < n; i++) {
      const xo = xOff + i * inDim;
      for (let o = o0; o < o1; o++) out[outOff + i * outDim + o] = dot(x, xo, w, o * inDim, inDim);
    }
  }
}

/** Σ_j a[ao + j] · b[bo + j] with four independent partial sums. */
export function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    s0 += a[ao + j] * b[bo + j];
    s1 += a[ao + j + 1] * b[bo + j + 1];
    s2 += a[ao + j + 2] * b[bo + j + 2];
    s3 += a[ao + j + 3] * b[bo + j + 3];
  }
  for (; j < n; j++) s0 += a[ao + j] * b[bo + j];
  return s0 + s1 + (s2 + s3);
}

/** RMSNorm of n rows: out = x / sqrt(mean(x²) + eps) · weight (x read from row offset xOff). */
export function rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, n: number, dim: number, eps: number, xOff = 0): void {
  for (let i = 0; i < n; i++) {
    const o = i * dim;
    const xo = xOff + o;
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[xo + j] * x[xo + j];
    const scale = 1 / Math.sqrt(ss / dim + eps);
    for (let j = 0; j < dim; j++) out[o + j] = x[xo + j] * scale * weight[j];
  }
}

/**
 * RoPE of n rows of nHeads heads. Row r of x (n rows of nHeads·headDim) sits at position pos0 + r;
 * pair i turns by pos·invFreq[i], i < invFreq.length. The pair is (x[2i], x[2i+1]) — the layout
 * llama2.c and GGUF llama (rope mode NORM) store — or, when neox, (x[i], x[i + half]) (mode
 * NEOX: Qwen, Phi-3, Gemma). cos/sin are scratch of invFreq.length values.
 */
export function rope(
  x: Float32Array,
  n: number,
  nHeads: number,
  headDim: number,
  pos0: number,
  invFreq: Float64Array,
  cos: Float32Array,
  sin: Float32Array,
  neox = false,
): void {
  const half = invFreq.length;
  const width = nHeads * headDim;
  const step = neox ? 1 : 2; // pair i starts at step·i …
  const span = neox ? half : 1; // … and its partner is span further on
  for (let r = 0; r < n; r++) {
    const pos = pos0 + r;
    for (let i = 0; i < half; i++) {
      const a = pos * invFreq[i];
      cos[i] = Math.cos(a);
      sin[i] = Math.sin(a);
    }
    for (let h = 0; h < nHeads; h++) {
      const o = r * width + h * headDim;
      for (let i = 0; i < half; i++) {
        const p = o + step * i;
        const x0 = x[p];
        const x1 = x[p + span];
        x[p] = x0 * cos[i] - x1 * sin[i];
        x[p + span] = x0 * sin[i] + x1 * cos[i];
      }
    }
  }
}

/** RoPE frequencies θ^(−2i/ropeDim) / factors[i], i < ropeDim/2 (factors absent: 1). */
export function ropeInvFreq(theta: number, ropeDim: number, factors?: readonly number[]): Float64Array {
  const f = new Float64Array(ropeDim / 2);
  if (factors && factors.length !== f.length) throw new RangeError(`RoPE: ${factors.length} frequency factors for ${f.length} pairs`);
  for (let i = 0; i < f.length; i++) f[i] = Math.pow(theta, (-2 * i) / ropeDim) / (factors ? factors[i] : 1);
  return f;
}

/** In-place scaled softmax of x[off … off+n): exp(scale·x − max) / Σ. */
export function softmax(x: Float32Array, off: number, n: number, scale: number): void {
  let max = -Infinity;
  for (let t = 0; t < n; t++) {
    const v = x[off + t] * scale;
    x[off + t] = v;
    if (v > max) max = v;
  }
  let sum = 0;
  for (let t = 0; t < n; t++) {
    const e = Math.exp(x[off + t] - max);
    x[off + t] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let t = 0; t < n; t++) x[off + t] *= inv;
}

/** SwiGLU gate: gate = silu(gate) · up, elementwise over n values. */
export function swiglu(gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    gate[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}

/**
 * GEGLU gate: gate = gelu_tanh(gate) · up over n values, with GELU's tanh approximation
 * 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³))) (Gemma's gelu_pytorch_tanh).
 */
export function geglu(gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    gate[i] = 0.5 * g * (1 + Math.tanh(GELU_K * (g + 0.044715 * g * g * g))) * up[i];
  }
}

/** √(2/π). */
export const GELU_K = Math.sqrt(2 / Math.PI);

/** Soft-capping of x[off … off+n): x = cap·tanh(x·scale), scale folding any prior factor and 1/cap. */
export function softcap(x: Float32Array, off: number, n: number, scale: number, cap: number): void {
  for (let i = off; i < off + n; i++) x[i] = cap * Math.tanh(x[i] * scale);
}

/** x[r·width + j] += b[j] for rows r < n: a bias on each row. */
export function addRows(x: Float32Array, b: Float32Array, n: number, width: number): void {
  for (let r = 0; r < n; r++) {
    const o = r * width;
    for (let j = 0; j < width; j++) x[o + j] += b[j];
  }
}

/** x += y over n values. */
export function addInPlace(x: Float32Array, y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) x[i] += y[i];
}
