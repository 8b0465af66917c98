import { codecConformance } from './helpers/codec-conformance.js';

codecConformance({ spec: 'f32', relError: 0, bytes: (T, c) => T * c.nKvHeads * c.headDim * 4 });
codecConformance({ spec: 'f16', relError: 2 ** -11, bytes: (T, c) => T * c.nKvHeads * c.headDim * 2 });
codecConformance({ spec: 'bf16', relError: 2 ** -8, bytes: (T, c) => T * c.nKvHeads * c.headDim * 2 });
