// `lowkv info` against what llama.cpp's tooling recorded for the golden models (manifest.json):
// matrix counts per stored type, and the architecture's traits from the golden README.
import { describe, expect, it } from 'vitest';
import { lowkv } from './helpers/cli.js';
import { dataPath, hasShared, readJson } from './helpers/shared-data.js';

interface Manifest {
  models: Record<string, { tensors: [string, string, number[]][] }>;
}

const arch = (m: string): string => dataPath(`golden/arch/${m}/${m}.gguf`);

describe.skipIf(!hasShared)('lowkv info', () => {
  const manifest = hasShared ? readJson<Manifest>('golden/arch/manifest.json') : undefined!;

  it.each(['llama2k-q4_k_m', 'llama2k-q2_k', 'llama2-q4_0', 'phi3-f32'])('counts the matrices of each stored type (%s)', (m) => {
    const r = lowkv(['info', '--model', arch(m)]);
    expect(r.code, r.stderr).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith('weights'))!;
    const counts = new Map<string, number>();
    for (const [name, type, ne] of manifest.models[m].tensors) {
      if (ne.length !== 2) continue;
      // phi3's fused tensors are split into q, k, v and gate, up at load.
      const parts = name.endsWith('attn_qkv.weight') ? 3 : m.startsWith('phi3') && name.endsWith('ffn_up.weight') ? 2 : 1;
      counts.set(type.toLowerCase(), (counts.get(type.toLowerCase()) ?? 0) + parts);
    }
    for (const [type, n] of counts) expect(line).toMatch(new RegExp(`\\b${type} ×${n} \\(`, 'i'));
  });

  it('names what an architecture adds to Llama', () => {
    const features = (m: string): string => lowkv(['info', '--model', arch(m)]).stdout.split('\n').find((l) => l.startsWith('features'))!;
    expect(features('gemma2-f32')).toMatch(/NEOX rope pairing.*GELU FFN.*attention soft-cap 5, logit soft-cap 3, sliding window 8 on 13 of 26 layers/);
    expect(features('qwen2-f32')).toMatch(/q\/k\/v biases, NEOX rope pairing/);
    expect(features('llama3-f32')).toMatch(/rope frequency factors/);
    expect(features('llama2-f32')).toMatch(/none beyond Llama 2/);
    expect(lowkv(['info', '--model', arch('qwen2-f32')]).stdout).toMatch(/tokenizer  byte-level BPE, 1024 tokens/);
  });
});
