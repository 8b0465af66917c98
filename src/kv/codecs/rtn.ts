import type { CodecFactory } from '../codec.js';

export const rtnCodecs: CodecFactory[] = [];
