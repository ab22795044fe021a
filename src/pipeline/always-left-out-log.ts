import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';

/** How often the same channel's same unregistered always participant is logged again, with a count. */
export const ALWAYS_LEFT_OUT_LOG_EVERY_MS = 10 * 60_000;

interface Logged {
  loggedAt: number;
  /** Messages left out since that warning, not yet in one. */
  unlogged: number;
}

/**
 * The operators' warning that a channel names a participant to always receive who is not registered
 * (MSG1035), so accepted messages went without its copy. The setting stays wrong until an operator
 * corrects it, and at IF-021's volume (thousands of batches a minute) a warning per batch buried the rest
 * of the log: each (channel, DIP ID) is logged when first met, then at most once per interval with how
 * many messages were left out since. Keys are bounded by the configured always participants of known
 * channels, so the map does not grow with traffic.
 */
export class AlwaysLeftOutLog {
  private readonly logged = new Map<string, Logged>();

  constructor(
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly everyMs: number = ALWAYS_LEFT_OUT_LOG_EVERY_MS,
  ) {}

  /** One accepted batch's messages that left out an always participant (IngestResult.alwaysLeftOut). */
  record(channel: string, leftOut: ReadonlyArray<{ transactionId: string; dipId: string }>): void {
    const now = this.clock.now();
    const messages = new Map<string, { count: number; transactionId: string }>();
    for (const { dipId, transactionId } of leftOut) {
      const m = messages.get(dipId);
      if (m) m.count += 1;
      else messages.set(dipId, { count: 1, transactionId });
    }
    for (const [dipId, { count, transactionId }] of messages) {
      const key = `${channel}\u0000${dipId}`;
      const last = this.logged.get(key);
      if (last && now - last.loggedAt < this.everyMs) {
        last.unlogged += count;
        continue;
      }
      const total = count + (last?.unlogged ?? 0);
      const since = last ? ` (${total} message(s) in the last ${Math.round((now - last.loggedAt) / 60_000)} min)` : '';
      this.logger.warn(
        { channel, dipId, messages: total, transactionId, code: 'MSG1035' },
        `accepted messages whose channel names a participant to always receive that is not registered (MSG1035): no copy went to it; register it or correct channels.<id>.alwaysParticipants${since}. Logged again at most every ${Math.round(this.everyMs / 60_000)} min while it lasts`,
      );
      this.logged.set(key, { loggedAt: now, unlogged: 0 });
    }
  }
}
