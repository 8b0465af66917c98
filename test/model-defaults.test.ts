// The cache is allocated whole when a session starts, so the default context is the model's
// training context only up to DEFAULT_CTX; a caller asks for more explicitly.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CTX, Model } from '../src/engine/model.js';
import { model, STORIES_GGUF } from './helpers/models.js';
import { hasShared } from './helpers/shared-data.js';

describe.skipIf(!hasShared)('default session context', () => {
  it('is the training context when it is short, DEFAULT_CTX when it is long, the asked size otherwise', async () => {
    const m = await model(STORIES_GGUF);
    expect(m.config.contextLength).toBeLessThan(DEFAULT_CTX);
    expect(m.createSession().capacity).toBe(m.config.contextLength);
    const long = new Model({ ...m.file, config: { ...m.file.config, contextLength: 131072 } });
    expect(long.createSession().capacity).toBe(DEFAULT_CTX);
    expect(long.createSession({ ctx: 8192 }).capacity).toBe(8192);
    expect(() => long.createSession({ ctx: 0 })).toThrow(/context must be a positive integer/);
  });
});
