import type { CodecFactory } from '../codec.js';

export const cqCodecs: CodecFactory[] = [];
