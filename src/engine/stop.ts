/**
 * Streams generated text while watching for stop strings: text that could still turn out to be
 * the start of a stop string is held back until it is known not to be.
 */
export class StopMatcher {
  private pending = '';
  stopped = false;

  constructor(private readonly stops: readonly string[]) {
    for (const s of stops) if (s.length === 0) throw new RangeError('stop strings must not be empty');
  }

  /** Adds generated text; returns what can be shown now. Sets `stopped` on a match. */
  push(text: string): string {
    if (this.stopped) return '';
    this.pending += text;
    let cut = -1;
    for (const s of this.stops) {
      const i = this.pending.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stopped = true;
      const out = this.pending.slice(0, cut);
      this.pending = '';
      return out;
    }
    const hold = this.heldBack();
    const out = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return out;
  }

  /** The rest, once generation ends without a match. */
  flush(): string {
    const out = this.stopped ? '' : this.pending;
    this.pending = '';
    return out;
  }

  /** Length of the longest suffix of pending that is a proper prefix of a stop string. */
  private heldBack(): number {
    let best = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, this.pending.length); n > best; n--) {
        if (this.pending.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
