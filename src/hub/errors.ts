/**
 * What went wrong talking to the hub, so callers can react by kind (retry a network failure,
 * keep a partial file after an interruption) and users read one line naming the problem.
 */
export type HubErrorKind =
  | 'bad-ref' // the owner/repo[:file] the user typed is malformed
  | 'not-found' // repository, revision or file absent (or not in the local cache)
  | 'auth' // 401/403: private repo, bad token
  | 'gated' // the repo needs its conditions accepted and a token
  | 'choice' // several candidate files and no way to pick one
  | 'network' // connection refused, dropped mid-download, DNS…
  | 'interrupted' // the caller's AbortSignal fired
  | 'checksum' // the bytes do not hash to what the hub lists
  | 'bad-response'; // the server answered something that does not fit its own API

export class HubError extends Error {
  constructor(
    readonly kind: HubErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'HubError';
  }
}
