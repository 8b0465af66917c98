// Command-line parsing shared by the bench scripts: one-line errors with the usage, never a stack.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** parseArgs, exiting with the usage on --help (0) or on a bad option (2). */
export function benchArgs<O extends NonNullable<ParseArgsConfig['options']>>(name: string, usage: string, options: O): ReturnType<typeof parseArgs<{ options: O }>>['values'] {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(`usage: ${usage}\n`);
    process.exit(0);
  }
  try {
    return parseArgs({ options }).values;
  } catch (e) {
    process.stderr.write(`${name}: ${(e as Error).message}\nusage: ${usage}\n`);
    process.exit(2);
  }
}

/**
 * Splits a codec list. Specs contain commas themselves (decoquant:4,l=64, nvfp4,hadamard), so
 * ';' or spaces separate specs when present; otherwise a comma starts a new spec unless what
 * follows is an option (key=value or a known flag).
 */
export function splitCodecs(list: string): string[] {
  if (/[;\s]/.test(list.trim())) return list.split(/[;\s]+/).filter(Boolean);
  const out: string[] = [];
  for (const part of list.split(',')) {
    if (out.length && /^([a-z_][a-z0-9_]*=|hadamard$)/i.test(part)) out[out.length - 1] += `,${part}`;
    else out.push(part);
  }
  return out.filter(Boolean);
}
