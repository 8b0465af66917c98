// The WASM kernels: every export takes byte offsets into the one shared memory that the host
// (src/kernels/wasm/runtime.ts) owns and allocates from. Nothing here allocates.
export { heapBase } from './base';
export { dotF32, matmulF32 } from './matmul';
