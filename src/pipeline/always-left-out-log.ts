import { ThrottledLog } from '../logging/throttled-log.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';

/** How often the same channel's same unregistered always participant is logged again, with a count. */
export const ALWAYS_LEFT_OUT_LOG_EVERY_MS = 10 * 60_000;

/**
 * The operators' warning that a channel names a participant to always receive who is not registered
 * (MSG1035), so accepted messages went without its copy. The setting stays wrong until an operator
 * corrects it, and at IF-021's volume (thousands of batches a minute) a warning per batch buried the rest
 * of the log: each (channel, DIP ID) is a ThrottledLog key, logged when first met, then at most once per
 * interval with how many messages were left out since.
 */
export class AlwaysLeftOutLog {
  private readonly log: ThrottledLog;

  constructor(clock: Clock, logger: Logger, everyMs: number = ALWAYS_LEFT_OUT_LOG_EVERY_MS) {
    this.log = new ThrottledLog(clock, logger, everyMs);
  }

  /** One accepted batch's messages that left out an always participant (IngestResult.alwaysLeftOut). */
  record(channel: string, leftOut: ReadonlyArray<{ transactionId: string; dipId: string }>): void {
    const messages = new Map<string, { count: number; transactionId: string }>();
    for (const { dipId, transactionId } of leftOut) {
      const m = messages.get(dipId);
      if (m) m.count += 1;
      else messages.set(dipId, { count: 1, transactionId });
    }
    const every = Math.round(this.log.everyMs / 60_000);
    for (const [dipId, { count, transactionId }] of messages) {
      this.log.warn(`${channel}\u0000${dipId}`, count, ({ count: total, previousAt, at }) => [
        { channel, dipId, messages: total, transactionId, code: 'MSG1035' },
        `accepted messages whose channel names a participant to always receive that is not registered (MSG1035): no copy went to it; register it or correct channels.<id>.alwaysParticipants${previousAt === undefined ? '' : ` (${total} message(s) in the last ${Math.round((at - previousAt) / 60_000)} min)`}. Logged again at most every ${every} min while it lasts`,
      ]);
    }
  }
}
