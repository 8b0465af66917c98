// The WASM kernels: every export takes byte offsets into the one shared memory that the host
// (src/kernels/wasm/runtime.ts) owns and allocates from. Nothing here allocates.
export { heapBase } from './base';
export { dotF32, matmulF32 } from './matmul';
export { f16ScratchBytes, f16ToF32, matmulF16 } from './f16';
export { q8ActivationBytes, quantizeQ8Rows } from './q8';
export { matmulQuant, q8KActivationBytes, quantizeQ8KRows } from './quant';
export { quantScratchBytes } from './quant-tiles';
export { matmulBF16 } from './bf16';
export { addInPlace, expF32, geglu, rmsnorm, ropeRow, ropeRowNeox, softcap, softmax, swiglu } from './elementwise';
export { dqScores, dqAccumulate, dqF16Dots, dqF16Axpy } from './attn-decoquant';
export { mxScores4, mxScores8, mxAccumulate } from './attn-mx';
export { attnScoresFp, attnAccumulateFp, attnTile, streamSumF32 } from './attn-fp';
export { ggmlQuantizeQuery, ggmlScores, ggmlScoresF32, ggmlAccumulate } from './attn-ggml';
export { intScoresI8, intScoresF32, intAccumulate, intScratchBytes } from './attn-int';
export { intScoresI16 } from './attn-int';
