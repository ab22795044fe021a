/**
 * Time for a test that runs the `dip` command line as processes of its own (node --import tsx
 * src/cli/main.ts): each start compiles and loads the CLI through tsx, about 3 s of CPU, and took 21 s of
 * wall time on a 2-core machine at load 12. A budget for slow work, not a wait for something to happen:
 * at the suite's 60 s, tests that started three or more timed out on loaded machines (maintenance in
 * clean-clone CI; activity-log's three `dip audit` under two CPU hogs, at 60.5 s).
 */
const CLI_RUN_MS = 40_000;
/** The suite's own test timeout (vitest.config.ts), for the rest of the test's work. */
const SUITE_TIMEOUT_MS = 60_000;

/** Test options for a test that starts the CLI `runs` times (one after another, or at once: CPU is what they share). */
export const cliRuns = (runs: number): { timeout: number } => ({ timeout: SUITE_TIMEOUT_MS + runs * CLI_RUN_MS });
