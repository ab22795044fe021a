import { defineConfig } from 'vitest/config';

/** Property-based fuzzing of every operation (`npm run test:fuzz`): its own CI gate with a fixed budget. */
export default defineConfig({
  test: {
    include: ['test/fuzz/**/*.fuzz.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
