import { createHash, type Hash } from 'node:crypto';

/**
 * What the hub's listing promises about a file's bytes: LFS files (the weights) carry the sha256
 * of their content (`lfs.oid`, also sent as X-Linked-Etag); small files kept in git carry their
 * git blob id, sha1 over "blob {size}\0" followed by the content.
 */
export interface Checksum {
  readonly kind: 'sha256' | 'git-blob-sha1';
  readonly hex: string;
}

/** A hash primed so that feeding it the file's bytes yields a value comparable with `c.hex`. */
export function checksumHash(c: Checksum, size: number): Hash {
  if (c.kind === 'sha256') return createHash('sha256');
  return createHash('sha1').update(`blob ${size}\0`);
}

export function describeChecksum(c: Checksum): string {
  return c.kind === 'sha256' ? `sha256 ${c.hex}` : `git blob ${c.hex}`;
}
