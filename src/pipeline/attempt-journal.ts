import type { DeliveryAttempt } from '../ports/archive.js';
import type { Cancel, Clock } from '../ports/clock.js';
import { storeFailureKind } from '../ports/errors.js';
import type { Logger } from '../ports/logger.js';

type Journal = { recordAttempt(a: DeliveryAttempt): Promise<void> };

export interface KeptJournalOptions {
  /** Records held while the store is out of reach; beyond it the oldest are given up (and counted). */
  maxPending?: number;
  /** The first wait before writing held records again; doubled after each failed try, up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
}

export interface KeptJournal extends Journal {
  /** Records waiting for the store (for metrics and tests). */
  pending(): number;
  /** Tries once more to write what it holds, then stops; records still held are logged as not written. */
  stop(): Promise<void>;
}

/**
 * The delivery journal (one record per webhook call or pull acknowledgement) with the records the store
 * could not take kept and written once it answers again, in their order.
 *
 * Why: a call's record is written after the call, off the queue's path, so that a slow store never slows
 * delivery; before this, a record refused while the store was out of reach (a PostgreSQL failover, a
 * node cut off from it, a full disk) was logged and lost, and the audit trail showed a gap exactly where
 * an operator looks first. Only `unavailable` refusals are kept: a `permanent` one would fail the same way
 * forever and is logged and dropped, as before. Held records live in memory: a crash while the store is
 * out of reach loses them (the deliveries themselves are unaffected: their positions are in the queues).
 */
export function keptJournal(journal: Journal, clock: Clock, logger: Logger, options: KeptJournalOptions = {}): KeptJournal {
  const maxPending = options.maxPending ?? 10_000;
  const firstWait = options.retryMs ?? 1_000;
  const maxWait = options.maxRetryMs ?? 15_000;
  const held: DeliveryAttempt[] = [];
  let wait = firstWait;
  let timer: Cancel | null = null;
  let flushing = false;
  let given = 0;
  let stopped = false;

  const hold = (a: DeliveryAttempt): void => {
    held.push(a);
    if (held.length > maxPending) {
      held.shift();
      given += 1;
    }
    schedule();
  };
  const schedule = (): void => {
    if (timer !== null || flushing || stopped) return;
    timer = clock.after(wait, () => {
      timer = null;
      void flush();
    });
  };
  const cancel = (): void => {
    timer?.();
    timer = null;
  };
  const refused = (a: DeliveryAttempt, err: unknown): boolean => {
    if (storeFailureKind(err) === 'unavailable') return true;
    logger.error({ err, queue: a.queue, firstSeq: a.firstSeq, lastSeq: a.lastSeq }, 'could not record a delivery attempt');
    return false;
  };
  /** Writes the held records oldest first; stops at the first the store refuses for now. */
  const flush = async (): Promise<void> => {
    flushing = true;
    try {
      if (given > 0) {
        logger.error({ given }, 'delivery attempt records given up: the store was out of reach longer than the journal holds');
        given = 0;
      }
      while (held.length > 0 && !stopped) {
        const a = held[0]!;
        try {
          await journal.recordAttempt(a);
        } catch (err) {
          if (refused(a, err)) {
            wait = Math.min(maxWait, wait * 2);
            return;
          }
        }
        held.shift();
      }
      wait = firstWait;
    } finally {
      flushing = false;
      if (held.length > 0) schedule();
    }
  };

  return {
    async recordAttempt(a) {
      // Behind held records: written after them, so the journal keeps the calls' order.
      if (held.length > 0 || flushing) return hold(a);
      try {
        await journal.recordAttempt(a);
      } catch (err) {
        if (refused(a, err)) hold(a);
      }
    },
    pending: () => held.length,
    async stop() {
      cancel();
      if (held.length > 0 && !flushing) await flush();
      stopped = true;
      cancel();
      if (held.length > 0 || given > 0) logger.error({ notWritten: held.length + given }, 'stopping with delivery attempt records the store has not taken');
    },
  };
}
