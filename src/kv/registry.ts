import { CodecSpecError, parseSpec, type CodecContext, type CodecFactory, type KvCodec } from './codec.js';
import { fpCodecs } from './codecs/fp.js';

// Adding a method: one file under codecs/ and one entry here.
const FACTORIES: readonly CodecFactory[] = [...fpCodecs];

const byName = new Map(FACTORIES.map((f) => [f.name, f]));

export function codecNames(): string[] {
  return FACTORIES.map((f) => f.name);
}

export function describeCodecs(): string {
  return FACTORIES.map((f) => `  ${f.name.padEnd(10)} ${f.summary}`).join('\n');
}

export function createCodec(spec: string, ctx: CodecContext): KvCodec {
  const parsed = parseSpec(spec);
  const factory = codecFactory(parsed.name);
  return factory.create(parsed, ctx, createCodec);
}

export function codecFactory(name: string): CodecFactory {
  const factory = byName.get(name.toLowerCase());
  if (!factory) throw new CodecSpecError(`unknown KV cache type "${name}"; valid types:\n${describeCodecs()}`);
  return factory;
}

/** Validates a spec without a model at hand (CLI argument checking). */
export function checkSpec(spec: string): void {
  createCodec(spec, { role: 'k', layer: 0, nKvHeads: 1, headDim: 64, capacity: 1 });
}
