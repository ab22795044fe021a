import { ThrottledLog } from '../../logging/throttled-log.js';
import type { Clock } from '../../ports/clock.js';
import type { Logger } from '../../ports/logger.js';

/** While a failure lasts, how often it is logged again (with how many failures came meanwhile). */
export const FAILURE_LOG_EVERY_MS = 60_000;

/**
 * The wording of one kind of NATS failure that repeats while its cause lasts (NATS out of reach: every
 * claim of every queue lease fails, every claim pass), logged as a ThrottledLog: a warning when it starts,
 * then at most one a minute saying how many failed since, and one line when it works again.
 */
export class FailureLog {
  private readonly log: ThrottledLog;

  constructor(
    clock: Clock,
    logger: Logger | undefined,
    /** What failed, as the first warning says it. */
    private readonly what: string,
    /** What works again, as the recovery line says it. */
    private readonly recovered: string,
    everyMs: number = FAILURE_LOG_EVERY_MS,
  ) {
    this.log = new ThrottledLog(clock, logger, everyMs);
  }

  failed(err: unknown, fields: object = {}): void {
    this.log.warn('', 1, ({ count, since, previousAt, at }) =>
      previousAt === undefined
        ? [{ err, ...fields }, this.what]
        : [{ err, ...fields, failures: count, failingSince: since }, `${this.what}: still failing, ${count} more failure(s) in the last ${Math.round((at - previousAt) / 1000)} s (since ${new Date(since).toISOString()})`],
    );
  }

  /** An answer came: logged once if it had been failing. */
  succeeded(): void {
    this.log.ended('', ({ total, since, at }) => [{ failures: total, failingSince: since }, `${this.recovered}, after ${total} failure(s) over ${Math.round((at - since) / 1000)} s`]);
  }
}
