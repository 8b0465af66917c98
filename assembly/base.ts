/** First byte the host may allocate: everything below belongs to this module's static data. */
export function heapBase(): usize {
  return __heap_base;
}
