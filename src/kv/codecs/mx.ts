import type { CodecFactory } from '../codec.js';

export const mxCodecs: CodecFactory[] = [];
