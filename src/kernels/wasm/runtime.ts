/**
 * The WASM kernel module and the one shared memory it works in.
 *
 * Kernels read and write only that memory, so everything they touch (weights, activations,
 * KV codes) is allocated from it here. The memory is a shared WebAssembly.Memory, so worker
 * threads can instantiate the same module over it, and growing it never detaches a view: views
 * made before a grow stay valid for the bytes they cover.
 *
 * wasm32 addresses stop at 4 GiB. Weights and caches that do not fit stay in ordinary JS memory
 * and run on the plain-TS kernels (kernels/ref); see docs/performance.md.
 */
import { readFileSync } from 'node:fs';

export interface Kernels {
  heapBase(): number;
  dotF32(a: number, b: number, n: number): number;
  matmulF32(out: number, outStride: number, x: number, w: number, n: number, inDim: number, j0: number, j1: number): void;
}

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB, wasm32's limit
const ALIGN = 64; // a cache line: kernels load 16-byte vectors, and rows never share a line

interface FreeRange {
  offset: number;
  bytes: number;
}

/**
 * First-fit allocator over the shared memory, with coalescing free ranges. Blocks are freed
 * explicitly or when their owner object is garbage-collected.
 */
export class WasmHeap {
  readonly memory: WebAssembly.Memory;
  readonly kernels: Kernels;
  private readonly free: FreeRange[] = [];
  private readonly sizes = new Map<number, number>();
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  private top: number;
  private readonly registry = new FinalizationRegistry<number>((offset) => this.release(offset));

  constructor(module: WebAssembly.Module) {
    this.memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    const instance = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    this.kernels = instance.exports as unknown as Kernels;
    this.top = roundUp(this.kernels.heapBase(), ALIGN);
  }

  /** Bytes allocated and not yet freed. */
  get allocated(): number {
    let n = 0;
    for (const b of this.sizes.values()) n += b;
    return n;
  }

  /**
   * Reserves `bytes` (rounded up to 64) and returns the offset. With an owner, the block is
   * freed when the owner is collected; otherwise call release().
   */
  alloc(bytes: number, owner?: object): number {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`wasm heap: cannot allocate ${bytes} bytes`);
    const size = Math.max(ALIGN, roundUp(bytes, ALIGN));
    let offset = -1;
    const i = this.free.findIndex((r) => r.bytes >= size);
    if (i >= 0) {
      const r = this.free[i];
      offset = r.offset;
      if (r.bytes === size) this.free.splice(i, 1);
      else {
        r.offset += size;
        r.bytes -= size;
      }
    } else {
      offset = this.top;
      const end = offset + size;
      if (end > MAX_PAGES * PAGE) {
        throw new RangeError(`wasm heap: ${size} more bytes would pass wasm32's 4 GiB (${this.allocated} bytes in use)`);
      }
      const have = this.memory.buffer.byteLength;
      if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
      this.top = end;
    }
    this.sizes.set(offset, size);
    if (owner) this.registry.register(owner, offset, owner);
    return offset;
  }

  /** Ties a block from alloc() to `owner`: it is freed when the owner is garbage-collected. */
  adopt(offset: number, owner: object): void {
    if (!this.sizes.has(offset)) throw new RangeError(`wasm heap: no block at ${offset}`);
    this.registry.register(owner, offset, owner);
  }

  /** Frees a block from alloc(); its views must not be used afterwards. */
  release(offset: number, owner?: object): void {
    const size = this.sizes.get(offset);
    if (size === undefined) return;
    if (owner) this.registry.unregister(owner);
    this.sizes.delete(offset);
    new Uint8Array(this.memory.buffer, offset, size).fill(0);
    // Insert sorted, then merge with the neighbours.
    let i = 0;
    while (i < this.free.length && this.free[i].offset < offset) i++;
    this.free.splice(i, 0, { offset, bytes: size });
    if (i + 1 < this.free.length && offset + size === this.free[i + 1].offset) {
      this.free[i].bytes += this.free[i + 1].bytes;
      this.free.splice(i + 1, 1);
    }
    if (i > 0 && this.free[i - 1].offset + this.free[i - 1].bytes === offset) {
      this.free[i - 1].bytes += this.free[i].bytes;
      this.free.splice(i, 1);
    }
  }

  /** The current buffer (a new object after each grow; all of them stay valid). */
  buffer(): SharedArrayBuffer {
    const b = this.memory.buffer as unknown as SharedArrayBuffer;
    this.buffers.add(b);
    return b;
  }

  /** True when `a` lives in this memory, so kernels can read it by its byte offset. */
  holds(a: ArrayBufferView): boolean {
    return this.buffers.has(a.buffer);
  }

  /**
   * The byte offset at which kernels can read a[from … from + n): the array itself when it lives
   * in this memory, else a copy in staging slot `slot` (slots are reused between calls, so use a
   * different slot for each argument of one call).
   */
  input(a: Float32Array, from: number, n: number, slot: number): number {
    if (this.holds(a)) return a.byteOffset + from * 4;
    const s = this.staging(slot, n);
    s.set(a.subarray(from, from + n));
    return s.byteOffset;
  }

  /**
   * Where a kernel writes n floats meant for out[from …]: out itself when it lives in this memory,
   * else staging slot `slot`, copied back by `flush`. Pass `load` when the kernel accumulates
   * into what out already holds.
   */
  output(out: Float32Array, from: number, n: number, slot: number, load = false): number {
    if (this.holds(out)) return out.byteOffset + from * 4;
    const s = this.staging(slot, n);
    if (load) s.set(out.subarray(from, from + n));
    return s.byteOffset;
  }

  /** Copies staging slot `slot` back into out[from …] when output() had to stage it. */
  flush(out: Float32Array, from: number, n: number, slot: number): void {
    if (!this.holds(out)) out.set(this.staging(slot, n).subarray(0, n), from);
  }

  private readonly slots: Float32Array[] = [];

  /** Staging slot `slot`, at least n floats. */
  staging(slot: number, n: number): Float32Array {
    let s = this.slots[slot];
    if (!s || s.length < n) {
      if (s) this.release(s.byteOffset);
      s = this.slots[slot] = this.f32(Math.max(n, 1024));
    }
    return s;
  }

  f32(n: number, owner?: object): Float32Array {
    const offset = this.alloc(n * 4, owner); // first: it may grow the memory
    return new Float32Array(this.buffer(), offset, n);
  }

  u8(n: number, owner?: object): Uint8Array {
    const offset = this.alloc(n, owner); // first: it may grow the memory
    return new Uint8Array(this.buffer(), offset, n);
  }

  u16(n: number, owner?: object): Uint16Array {
    const offset = this.alloc(n * 2, owner); // first: it may grow the memory
    return new Uint16Array(this.buffer(), offset, n);
  }
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

// build/kernels.wasm sits at the package root; this file is src/kernels/wasm (tests) or
// dist/kernels/wasm (the built package), three levels down either way.
const WASM_FILE = new URL('../../../build/kernels.wasm', import.meta.url);

let heap: WasmHeap | undefined;
let module: WebAssembly.Module | undefined;

/** The compiled kernel module (for workers that instantiate it over the same memory). */
export function kernelModule(): WebAssembly.Module {
  if (!module) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(WASM_FILE);
    } catch (e) {
      throw new Error(`WASM kernels not built (${(e as Error).message}): run \`npm run build\``);
    }
    module = new WebAssembly.Module(bytes);
  }
  return module;
}

/** The process's WASM heap, made on first use. */
export function wasmHeap(): WasmHeap {
  heap ??= new WasmHeap(kernelModule());
  return heap;
}
