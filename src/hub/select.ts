import type { RepoFile } from './api.js';
import { HubError } from './errors.js';

// Split GGUFs (…-00001-of-00003.gguf) need all their parts; vision projectors (mmproj) are not models.
const SPLIT_PART = /-\d{5}-of-\d{5}\.gguf$/i;
const GGUF_DEFAULT_QUANT = /(^|[^a-z0-9])q4_k_m([^a-z0-9]|$)/i;

export const SAFETENSORS_INDEX = 'model.safetensors.index.json';
/** Beside the weights, what an HF folder needs to load and chat (config.json first among them). */
export const FOLDER_REQUIRED = ['config.json'];
export const FOLDER_OPTIONAL = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'];

export function isGguf(path: string): boolean {
  return path.toLowerCase().endsWith('.gguf');
}

/**
 * The GGUF to fetch when the user named none: the only one, else the single Q4_K_M (the usual
 * size/quality choice); anything else is the user's call, so the error lists what there is.
 */
export function defaultGguf(repo: string, files: readonly RepoFile[]): RepoFile {
  const models = files.filter((f) => isGguf(f.path) && !/(^|\/)mmproj/i.test(f.path));
  const whole = models.filter((f) => !SPLIT_PART.test(f.path));
  if (whole.length === 1 && models.length === 1) return whole[0];
  const q4km = whole.filter((f) => GGUF_DEFAULT_QUANT.test(f.path.split('/').pop() ?? ''));
  if (q4km.length === 1) return q4km[0];
  const why = q4km.length > 1 ? 'several Q4_K_M files' : whole.length === 0 ? 'only split GGUF files' : 'no Q4_K_M file';
  throw new HubError(
    'choice',
    `${repo} has ${models.length} GGUF files and ${why}; name one: lowkv pull ${repo}:FILE\n` + models.map((f) => `  ${f.path}  (${formatSize(f.size)})`).join('\n'),
  );
}

/** The single-file weights of a folder without an index: model.safetensors, else the only *.safetensors. */
export function unshardedWeights(repo: string, files: readonly RepoFile[]): RepoFile {
  const top = files.filter((f) => !f.path.includes('/') && f.path.endsWith('.safetensors'));
  const pick = top.find((f) => f.path === 'model.safetensors') ?? (top.length === 1 ? top[0] : undefined);
  if (pick) return pick;
  throw new HubError(
    top.length === 0 ? 'not-found' : 'choice',
    top.length === 0
      ? `${repo} has neither GGUF files nor *.safetensors weights with a config.json`
      : `${repo} has several *.safetensors files and no ${SAFETENSORS_INDEX}: ${top.map((f) => f.path).join(', ')}`,
  );
}

/** The shards a safetensors index names (its weight_map values), each of which must be listed. */
export function shardsFromIndex(repo: string, indexText: string, files: readonly RepoFile[]): RepoFile[] {
  const where = `${repo}:${SAFETENSORS_INDEX}`;
  let index: unknown;
  try {
    index = JSON.parse(indexText);
  } catch (e) {
    throw new HubError('bad-response', `${where}: not JSON (${(e as Error).message})`);
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new HubError('bad-response', `${where}: no weight_map object`);
  const names = new Set<string>();
  for (const v of Object.values(map)) {
    if (typeof v !== 'string') throw new HubError('bad-response', `${where}: weight_map value ${JSON.stringify(v)} is not a file name`);
    names.add(v);
  }
  if (names.size === 0) throw new HubError('bad-response', `${where}: weight_map is empty`);
  const byPath = new Map(files.map((f) => [f.path, f]));
  return [...names].sort().map((n) => byPath.get(n) ?? fail(new HubError('bad-response', `${where}: names shard "${n}", which the repository does not have`)));
}

function fail(e: Error): never {
  throw e;
}

function formatSize(n: number): string {
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(2)} GiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`;
}
