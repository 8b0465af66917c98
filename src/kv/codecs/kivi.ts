import type { CodecFactory } from '../codec.js';

export const kiviCodecs: CodecFactory[] = [];
