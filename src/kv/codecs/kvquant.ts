import type { CodecFactory } from '../codec.js';

export const kvquantCodecs: CodecFactory[] = [];
