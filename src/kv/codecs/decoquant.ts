import type { CodecFactory } from '../codec.js';

export const decoquantCodecs: CodecFactory[] = [];
