/** Resolves on the next macrotask turn, so signal handlers (Ctrl-C) and I/O get to run. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
