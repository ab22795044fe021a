import { ThrottledLog } from '../logging/throttled-log.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { UnreachedHolder } from './ingest.js';

/** How often the same channel's same left-out participant is logged again for the same reason, with a count. */
export const LEFT_OUT_LOG_EVERY_MS = 10 * 60_000;

/**
 * The operators' warnings that accepted messages went without a copy for someone they should have
 * reached, and not by the sender's fault: a participant the channel names to always receive is not
 * registered (MSG1035: channels.<id>.alwaysParticipants is wrong), or the MPAN lookup names a holder who
 * cannot receive in that capacity (MSG1033: not a participant; MSG1034: without the role). Either stays
 * so until an operator corrects it, and at IF-021's volume (thousands of batches a minute) a warning per
 * batch buried the rest of the log: each (channel, DIP ID, code) is a ThrottledLog key, logged when first
 * met, then at most once per interval with how many messages left it out since. The unreached holders'
 * alarm and counter (alarm-sources.ts, metrics.ts) see every message still.
 */
export class LeftOutLog {
  private readonly log: ThrottledLog;

  constructor(clock: Clock, logger: Logger, everyMs: number = LEFT_OUT_LOG_EVERY_MS) {
    this.log = new ThrottledLog(clock, logger, everyMs);
  }

  /** One accepted batch's messages that left out an always participant (IngestResult.alwaysLeftOut). */
  always(channel: string, leftOut: ReadonlyArray<{ transactionId: string; dipId: string }>): void {
    for (const { first, count } of counted(leftOut, (l) => l.dipId)) {
      const { dipId, transactionId } = first;
      this.warn(channel, dipId, 'MSG1035', count, (messages) => [
        { channel, dipId, messages, transactionId, code: 'MSG1035' },
        'accepted messages whose channel names a participant to always receive that is not registered (MSG1035): no copy went to it; register it or correct channels.<id>.alwaysParticipants',
      ]);
    }
  }

  /** One accepted batch's messages whose MPAN lookup named a holder who got no copy (IngestResult.unreached). */
  unreached(channel: string, unreached: readonly UnreachedHolder[]): void {
    for (const { first, count } of counted(unreached, (u) => `${u.holder}\u0000${u.code}`)) {
      const { holder, slot, code, transactionId } = first;
      this.warn(channel, holder, code, count, (messages) => [
        // The first message's slot and transaction: the count may span both slots a holder is named in.
        { channel, holder, slot, code, messages, transactionId },
        'accepted messages whose MPAN lookup names a holder who cannot receive in that capacity (MSG1033: not a participant; MSG1034: without the role): no copy went to it; correct the lookup entry or register the participant',
      ]);
    }
  }

  /** `count` messages of one batch leaving `dipId` out for `code`: the warning, with how many since the last if it is a repeat. */
  private warn(channel: string, dipId: string, code: string, count: number, line: (messages: number) => readonly [object, string]): void {
    this.log.warn(`${channel}\u0000${dipId}\u0000${code}`, count, ({ count: messages, previousAt, at }) => {
      const [fields, msg] = line(messages);
      const since = previousAt === undefined ? '' : ` (${messages} message(s) in the last ${Math.round((at - previousAt) / 60_000)} min)`;
      return [fields, `${msg}${since}. Logged again at most every ${Math.round(this.log.everyMs / 60_000)} min while it lasts`];
    });
  }
}

/** A batch's items by key, in first-met order: the first of each and how many. */
function counted<T>(items: readonly T[], key: (item: T) => string): Iterable<{ first: T; count: number }> {
  const byKey = new Map<string, { first: T; count: number }>();
  for (const item of items) {
    const k = key(item);
    const c = byKey.get(k);
    if (c) c.count += 1;
    else byKey.set(k, { first: item, count: 1 });
  }
  return byKey.values();
}
