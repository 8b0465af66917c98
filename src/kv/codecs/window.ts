import type { CodecFactory } from '../codec.js';

export const windowCodecs: CodecFactory[] = [];
