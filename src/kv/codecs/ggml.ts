import type { CodecFactory } from '../codec.js';

export const ggmlCodecs: CodecFactory[] = [];
