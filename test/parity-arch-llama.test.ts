import { describe, expect, it } from 'vitest';
import { allLogits, maxAbsDiff, model } from './helpers/models.js';
import { dataPath, hasShared, readF32, readJson } from './helpers/shared-data.js';

// llama.cpp's logits for a random-weight Llama-2-style GGUF v3 model (golden/arch/README.md).
describe.skipIf(!hasShared)('llama.cpp golden logits, llama2-f32', () => {
  const ids = hasShared ? readJson<{ models: Record<string, { token_ids: number[] }> }>('golden/arch/manifest.json').models['llama2-f32'].token_ids : [];
  const path = dataPath('golden/arch/llama2-f32/llama2-f32.gguf');

  it('batched logits at every position match (1e-4)', async () => {
    const m = await model(path);
    expect(maxAbsDiff(allLogits(m, ids), readF32('golden/arch/llama2-f32/llama2-f32.logits.f32'))).toBeLessThan(1e-4);
  });

  it('one token at a time matches the incremental run (1e-4)', async () => {
    const m = await model(path);
    const cache = m.llama.newCache(ids.length);
    const ours = new Float32Array(ids.length * m.config.vocabSize);
    ids.forEach((t, i) => ours.set(m.llama.forward([t], cache), i * m.config.vocabSize));
    expect(maxAbsDiff(ours, readF32('golden/arch/llama2-f32/llama2-f32.logits-incr.f32'))).toBeLessThan(1e-4);
  });

  it('an f16 cache tracks llama.cpp f16-cache logits closer than the f32 ones', async () => {
    const m = await model(path);
    const ref16 = readF32('golden/arch/llama2-f32/llama2-f32.logits-kvf16.f32');
    const ref32 = readF32('golden/arch/llama2-f32/llama2-f32.logits.f32');
    const ours16 = allLogits(m, ids, { k: 'f16', v: 'f16' });
    // llama.cpp also rounds q and the attention weights to f16 on this path, so agreement is
    // to f16 rounding, not exact; the f16 effect itself (f32 vs f16 cache) is ~2e-3.
    expect(maxAbsDiff(ours16, ref16)).toBeLessThan(maxAbsDiff(ref32, ref16));
    expect(maxAbsDiff(ours16, ref16)).toBeLessThan(2e-3);
  });
});
