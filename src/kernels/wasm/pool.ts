/**
 * Kernel threads: worker_threads that instantiate the kernel module over the one shared WASM
 * memory, so a kernel call can be split by output rows (or heads) across threads with no copying.
 * The main thread takes part 0 of every job itself.
 */
import { cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import { CTL, MAX_ARGS, partRange, runPart, waitForChange } from './pool-protocol.js';
import { kernelModule, wasmHeap } from './runtime.js';

/** Which argument of a kernel call is split, over what range, in steps of what size. */
export interface Split {
  /** Index of the argument that receives each part's start … */
  readonly lo: number;
  /** … and of the one that receives its end. */
  readonly hi: number;
  readonly total: number;
  /** Part boundaries are multiples of this (e.g. 4 output rows, or 1 head). */
  readonly align?: number;
  /** An argument (a scratch offset) that each part p receives as value + p·stride. */
  readonly perPart?: { readonly arg: number; readonly stride: number };
}

export class KernelPool {
  readonly threads: number;
  private readonly workers: Worker[] = [];
  private readonly names: string[];
  private readonly index = new Map<string, number>();
  private readonly ctl: Int32Array;
  private readonly args: Float64Array;
  private readonly fns: Array<(...a: number[]) => unknown>;
  /** The main thread's argument array, reused by every job. */
  private readonly own: number[] = [];

  constructor(threads: number) {
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`--threads must be a positive integer (got ${threads})`);
    this.threads = threads;
    const heap = wasmHeap();
    const exports = heap.kernels as unknown as Record<string, unknown>;
    this.names = Object.keys(exports).filter((n) => typeof exports[n] === 'function');
    this.names.forEach((n, i) => this.index.set(n, i));
    this.fns = this.names.map((n) => exports[n] as (...a: number[]) => unknown);
    const ctl = new SharedArrayBuffer(CTL.words * 4);
    const args = new SharedArrayBuffer(MAX_ARGS * 8);
    this.ctl = new Int32Array(ctl);
    this.args = new Float64Array(args);
    // The worker is compiled JS in dist/ (tests run the TS sources, after `npm run build`).
    const script = new URL('../../../dist/kernels/wasm/pool-worker.js', import.meta.url);
    for (let part = 1; part < threads; part++) {
      const w = new Worker(script, { workerData: { module: kernelModule(), memory: heap.memory, names: this.names, ctl, args, part } });
      w.unref();
      this.workers.push(w);
    }
  }

  /**
   * Runs kernel `fn` with `args`, the `split` argument range cut into one part per thread
   * (boundaries on multiples of split.align); returns when every part is done.
   */
  run(fn: string, args: readonly number[], split: Split): void {
    const id = this.index.get(fn);
    if (id === undefined) throw new Error(`no WASM kernel "${fn}"`);
    if (args.length > MAX_ARGS) throw new RangeError(`kernel ${fn}: ${args.length} arguments, at most ${MAX_ARGS}`);
    const align = split.align ?? 1;
    const parts = Math.max(1, Math.min(this.threads, Math.ceil(split.total / align)));
    if (parts === 1) {
      const a = this.own;
      a.length = args.length;
      for (let i = 0; i < args.length; i++) a[i] = args[i];
      a[split.lo] = 0;
      a[split.hi] = split.total;
      this.fns[id].apply(null, a);
      return;
    }
    const ctl = this.ctl;
    this.args.set(args);
    ctl[CTL.fn] = id;
    ctl[CTL.nargs] = args.length;
    ctl[CTL.parts] = parts;
    ctl[CTL.lo] = split.lo;
    ctl[CTL.hi] = split.hi;
    ctl[CTL.total] = split.total;
    ctl[CTL.align] = align;
    ctl[CTL.partArg] = split.perPart?.arg ?? -1;
    ctl[CTL.partStride] = split.perPart?.stride ?? 0;
    Atomics.store(ctl, CTL.remaining, this.workers.length);
    Atomics.add(ctl, CTL.generation, 1);
    Atomics.notify(ctl, CTL.generation);
    runPart(this.fns, ctl, this.args, 0, this.own);
    let left = Atomics.load(ctl, CTL.remaining);
    while (left !== 0) left = waitForChange(ctl, CTL.remaining, left);
  }

  /** Stops the worker threads. */
  async close(): Promise<void> {
    Atomics.store(this.ctl, CTL.stop, 1);
    Atomics.add(this.ctl, CTL.generation, 1);
    Atomics.notify(this.ctl, CTL.generation);
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }
}

export { partRange };

let pool: KernelPool | undefined;

/** Kernel threads to use by default: every core. */
export function defaultThreads(): number {
  return Math.max(1, cpus().length);
}

/** The process's kernel pool; `threads` (re)sizes it. */
export function kernelPool(threads?: number): KernelPool {
  if (!pool || (threads !== undefined && threads !== pool.threads)) {
    void pool?.close();
    pool = new KernelPool(threads ?? defaultThreads());
  }
  return pool;
}
