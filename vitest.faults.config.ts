import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { defineConfig } from 'vitest/config';

/**
 * The standby file first, then the others by name. standby.fault.ts failed 2 of 2 in clean-clone CI when it
 * ran right after failover.fault.ts in one run ("health naming pg_is_in_recovery" timed out), and passes
 * alone, first, or after failover.fault.ts run separately: an interference between the two files not yet
 * found (the closing note of 2026-12-05 says so). A fixed order also makes a failure reproducible.
 */
class StandbyFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => (f.moduleId.endsWith('standby.fault.ts') ? 0 : 1);
    return [...files].sort((a, b) => rank(a) - rank(b) || a.moduleId.localeCompare(b.moduleId));
  }
}

/** Failover tests on the 3-node topology (`npm run test:faults`): minutes, not part of `npm test`. */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.fault.ts'],
    pool: 'forks',
    fileParallelism: false,
    sequence: { sequencer: StandbyFirst },
    testTimeout: 400_000,
    hookTimeout: 300_000,
  },
});
