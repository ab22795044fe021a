import { ThrottledLog } from '../logging/throttled-log.js';
import type { AlarmCondition } from '../ports/alarms.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';

/** How long after the last refused connection `connections-exhausted` still holds (it resolves after as long without one). */
export const EXHAUSTED_QUIET_MS = 5 * 60_000;
/** At most one log line per listener and cause this often, saying how many came since the last. */
const LOG_EVERY_MS = 60_000;

interface Spell {
  why: string;
  first: number;
  last: number;
  count: number;
}

/**
 * A listener that could take no more connections: its overall cap (`http.maxConnections`) was reached, or
 * accepting one failed for want of file descriptors (EMFILE, ENFILE). Either way new clients, /health's
 * probes among them, meet a closed connection and nothing said why: this logs it (throttled) and holds the
 * `connections-exhausted` alarm until EXHAUSTED_QUIET_MS pass without another.
 */
export class ConnectionsExhausted {
  private readonly spells = new Map<string, Spell>();
  private readonly log: ThrottledLog;

  constructor(
    private readonly clock: Pick<Clock, 'now'>,
    logger: Logger | undefined,
    private readonly node?: string,
  ) {
    this.log = new ThrottledLog(clock, logger, LOG_EVERY_MS);
  }

  /** `listener` refused a connection: `why` says how (the cap reached, EMFILE). */
  refused(listener: string, why: string): void {
    const now = this.clock.now();
    const was = this.spells.get(listener);
    const current = was && this.holds(was, now) ? was : undefined;
    this.spells.set(listener, { why, first: current?.first ?? now, last: now, count: (current?.count ?? 0) + 1 });
    this.log.warn(`${listener}:${why}`, 1, (o) => [
      { listener, refused: o.count, since: new Date(o.since).toISOString() },
      `the ${listener} listener refuses new connections: ${why} (${o.count} refused since the last line); alarm connections-exhausted`,
    ]);
  }

  /** The alarm's conditions now (src/pipeline/alarms.ts ConditionSource). */
  conditions(): AlarmCondition[] {
    const now = this.clock.now();
    return [...this.spells].flatMap(([listener, s]): AlarmCondition[] => {
      if (!this.holds(s, now)) {
        this.spells.delete(listener);
        return [];
      }
      return [{
        key: this.node === undefined ? `connections-exhausted:${listener}` : `connections-exhausted:${listener}:${this.node}`,
        rule: 'connections-exhausted',
        participant: null,
        summary: `the ${listener} listener refused ${s.count} new connections (${s.why}), the last at ${new Date(s.last).toISOString()}`,
        since: s.first,
      }];
    });
  }

  // A wall clock stepped back keeps it holding (last in the future) until a reading past the quiet period.
  private holds(s: Spell, now: number): boolean {
    return now - s.last < EXHAUSTED_QUIET_MS;
  }
}
