import { readFileSync } from 'node:fs';
import { ModelFormatError } from './errors.js';

/** A JSON object from a file; a missing, unreadable or malformed file is a ModelFormatError naming it. */
export function readJsonFile(path: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelFormatError(path, 'path', code === 'ENOENT' ? `missing: ${what}` : `cannot read: ${(e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(path, 'json', `not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ModelFormatError(path, 'json', 'must be a JSON object');
  return v as Record<string, unknown>;
}
