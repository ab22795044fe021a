import { defineConfig } from 'vitest/config';

/** Failover tests on the 3-node topology (`npm run test:faults`): minutes, not part of `npm test`. */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.fault.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 400_000,
    hookTimeout: 300_000,
  },
});
