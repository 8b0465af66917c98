// A kernel thread: the same WASM module over the same shared memory, running its share of each
// job the main thread posts (see pool.ts for the protocol).
import { workerData } from 'node:worker_threads';
import { CTL, runPart, waitForChange, type PoolShared } from './pool-protocol.js';

const shared = workerData as PoolShared & { module: WebAssembly.Module; memory: WebAssembly.Memory; part: number };
const instance = new WebAssembly.Instance(shared.module, { env: { memory: shared.memory } });
const fns = shared.names.map((n) => instance.exports[n] as (...a: number[]) => unknown);
const ctl = new Int32Array(shared.ctl);
const args = new Float64Array(shared.args);

const a: number[] = [];
let seen = 0;
for (;;) {
  seen = waitForChange(ctl, CTL.generation, seen);
  if (Atomics.load(ctl, CTL.stop)) break;
  if (shared.part < Atomics.load(ctl, CTL.parts)) runPart(fns, ctl, args, shared.part, a);
  if (Atomics.sub(ctl, CTL.remaining, 1) === 1) Atomics.notify(ctl, CTL.remaining);
}
