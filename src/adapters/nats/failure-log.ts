import type { Clock } from '../../ports/clock.js';
import type { Logger } from '../../ports/logger.js';

/** While a failure lasts, how often it is logged again (with how many failures came meanwhile). */
export const FAILURE_LOG_EVERY_MS = 60_000;

/**
 * The log of one kind of failure that repeats while its cause lasts (NATS out of reach: every claim of
 * every queue lease fails, every claim pass): a warning when it starts, then at most one a minute saying
 * how many failed since, and one line when it works again. Logged at each failure, a NATS outage wrote a
 * warning per queue per claim pass, burying what else the log said.
 */
export class FailureLog {
  private failing: { since: number; failures: number; loggedAt: number; unlogged: number } | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly logger: Logger | undefined,
    /** What failed, as the first warning says it. */
    private readonly what: string,
    /** What works again, as the recovery line says it. */
    private readonly recovered: string,
    private readonly everyMs: number = FAILURE_LOG_EVERY_MS,
  ) {}

  failed(err: unknown, fields: object = {}): void {
    const now = this.clock.now();
    const f = this.failing;
    if (!f) {
      this.failing = { since: now, failures: 1, loggedAt: now, unlogged: 0 };
      this.logger?.warn({ err, ...fields }, this.what);
      return;
    }
    f.failures += 1;
    f.unlogged += 1;
    if (now - f.loggedAt < this.everyMs) return;
    this.logger?.warn(
      { err, ...fields, failures: f.unlogged, failingSince: f.since },
      `${this.what}: still failing, ${f.unlogged} more failure(s) in the last ${Math.round((now - f.loggedAt) / 1000)} s (since ${new Date(f.since).toISOString()})`,
    );
    f.loggedAt = now;
    f.unlogged = 0;
  }

  /** An answer came: logged once if it had been failing. */
  succeeded(): void {
    const f = this.failing;
    if (!f) return;
    this.failing = null;
    this.logger?.info({ failures: f.failures, failingSince: f.since }, `${this.recovered}, after ${f.failures} failure(s) over ${Math.round((this.clock.now() - f.since) / 1000)} s`);
  }
}
