import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    // Model-parity tests are CPU-heavy; two forks match the 2-core CI machine.
    pool: 'forks',
    maxWorkers: 2,
  },
});
