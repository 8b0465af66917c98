import * as fs from 'node:fs';
import { ModelFormatError } from './errors.js';

/**
 * Opens a regular file for positional reads, runs `use` with its descriptor and size, and closes
 * it; a missing or unreadable path, or a directory, is a ModelFormatError naming the path.
 */
export function withFile<T>(path: string, use: (fd: number, size: number) => T): T {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelFormatError(path, 'path', code === 'ENOENT' ? 'no such file' : `cannot open: ${(e as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new ModelFormatError(path, 'path', 'not a regular file');
    return use(fd, st.size);
  } finally {
    fs.closeSync(fd);
  }
}
