// The shared-memory protocol between the kernel pool (main thread) and its workers: one job at a
// time, described by a few Int32 words and up to MAX_ARGS float64 arguments.

export const MAX_ARGS = 16;

/** Word offsets in the control Int32Array. */
export const CTL = {
  generation: 0, // bumped once per job; workers wait for it to change
  remaining: 1, // workers still running the current job
  fn: 2, // index into the pool's kernel names
  parts: 3, // how many threads share the job (main thread = part 0)
  lo: 4, // argument index that receives each part's range start
  hi: 5, // … and its end
  total: 6, // the range [0, total) to split
  align: 7, // part boundaries are multiples of this
  stop: 8,
  nargs: 9,
  partArg: 10, // argument that grows by partStride per part (per-thread scratch), or −1
  partStride: 11,
  words: 12,
} as const;

export interface PoolShared {
  readonly names: readonly string[];
  readonly ctl: SharedArrayBuffer;
  readonly args: SharedArrayBuffer;
}

/** [from, to) of part p of P over [0, total), boundaries rounded to `align`. */
export function partRange(total: number, parts: number, p: number, align: number): [number, number] {
  return [partStart(total, parts, p, align), partStart(total, parts, p + 1, align)];
}

function partStart(total: number, parts: number, i: number, align: number): number {
  return i >= parts ? total : Math.min(total, Math.round((total * i) / parts / align) * align);
}

/** Runs part p of the posted job; `a` is the caller's reusable argument array (no allocation per job). */
export function runPart(fns: ReadonlyArray<(...a: number[]) => unknown>, ctl: Int32Array, args: Float64Array, p: number, a: number[]): void {
  const from = partStart(ctl[CTL.total], ctl[CTL.parts], p, ctl[CTL.align]);
  const to = partStart(ctl[CTL.total], ctl[CTL.parts], p + 1, ctl[CTL.align]);
  if (from >= to) return;
  a.length = ctl[CTL.nargs];
  for (let i = 0; i < a.length; i++) a[i] = args[i];
  a[ctl[CTL.lo]] = from;
  a[ctl[CTL.hi]] = to;
  if (ctl[CTL.partArg] >= 0) a[ctl[CTL.partArg]] += p * ctl[CTL.partStride];
  fns[ctl[CTL.fn]].apply(null, a);
}

/**
 * Waits until ctl[i] differs from `seen` and returns the new value: spins briefly first, because
 * decode posts a job every few microseconds and a sleeping thread takes tens of them to wake.
 */
export function waitForChange(ctl: Int32Array, i: number, seen: number): number {
  for (let spin = 0; spin < 20000; spin++) {
    const v = Atomics.load(ctl, i);
    if (v !== seen) return v;
  }
  Atomics.wait(ctl, i, seen);
  return Atomics.load(ctl, i);
}
