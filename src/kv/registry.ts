import { CodecSpecError, parseSpec, type CodecContext, type CodecFactory, type KvCodec } from './codec.js';
import { cqCodecs } from './codecs/cq.js';
import { decoquantCodecs } from './codecs/decoquant.js';
import { fpCodecs } from './codecs/fp.js';
import { ggmlCodecs } from './codecs/ggml.js';
import { kiviCodecs } from './codecs/kivi.js';
import { kvquantCodecs } from './codecs/kvquant.js';
import { mxCodecs } from './codecs/mx.js';
import { rtnCodecs } from './codecs/rtn.js';
import { windowCodecs } from './codecs/window.js';

// Adding a method: one file under codecs/ and one entry here.
const FACTORIES: readonly CodecFactory[] = [
  ...fpCodecs,
  ...ggmlCodecs,
  ...rtnCodecs,
  ...kiviCodecs,
  ...decoquantCodecs,
  ...kvquantCodecs,
  ...cqCodecs,
  ...mxCodecs,
  ...windowCodecs,
];

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

/**
 * Validates a spec's grammar and method name without a model at hand (CLI arguments, policy
 * files); its parameters are checked against the real shapes when a cache is built.
 */
export function checkSpec(spec: string): void {
  const parsed = parseSpec(spec);
  codecFactory(parsed.name);
  if (parsed.inner !== undefined) checkSpec(parsed.inner);
}
