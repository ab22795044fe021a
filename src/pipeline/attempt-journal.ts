import type { DeliveryAttempt } from '../ports/archive.js';
import type { Cancel, Clock } from '../ports/clock.js';
import { storeFailureKind } from '../ports/errors.js';
import type { Logger } from '../ports/logger.js';
import type { DipMetrics } from './metrics.js';

type Journal = { recordAttempt(a: DeliveryAttempt): Promise<void> };

export interface KeptJournalOptions {
  /** Records held while the store is out of reach; beyond it the oldest are given up (and counted). */
  maxPending?: number;
  /** The first wait before writing held records again; doubled after each failed try, up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  /** How long stop() goes on writing what it holds before it gives the rest up (and logs how many). */
  stopWithinMs?: number;
}

export interface KeptJournal extends Journal {
  /** Records waiting for the store (for metrics and tests). */
  pending(): number;
  /**
   * Waits for the writes under way, tries once more to write what it holds (for at most stopWithinMs),
   * then stops: what is still held, and what is refused from then on, is logged as not written.
   */
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
 * forever and is logged and dropped, as before. An `unavailable` refusal may come after the store took
 * the write (the connection went with its answer): the record is written again, and the store keeps one
 * record per attempt ID (DeliveryAttempt.attemptId), so it is not stored twice. Held records live in
 * memory: a crash while the store is out of reach loses them (the deliveries themselves are unaffected:
 * their positions are in the queues).
 * Order: held records are written oldest first and new ones queue behind them; but records written at
 * the moment the store comes back may be stored before one held a moment earlier (the journal's listing,
 * newest stored first, then shows them so); each record carries `startedAt`, when its call was made.
 */
export function keptJournal(journal: Journal, clock: Clock, logger: Logger, options: KeptJournalOptions = {}): KeptJournal {
  const maxPending = options.maxPending ?? 10_000;
  const firstWait = options.retryMs ?? 1_000;
  const maxWait = options.maxRetryMs ?? 15_000;
  const stopWithin = options.stopWithinMs ?? 5_000;
  const held: DeliveryAttempt[] = [];
  /** Writes under way that did not pass through `held` (stop waits for them). */
  const writing = new Set<Promise<void>>();
  let wait = firstWait;
  let timer: Cancel | null = null;
  let flushing: Promise<void> | null = null;
  let given = 0;
  let stopped = false;
  /** Set when stop's time is up: a flush under way ends after the record it is writing. */
  let late = false;
  /** A held record is being written (off the list meanwhile, still counted as held). */
  let writingHeld = false;

  /** What a log line says of the record it concerns. */
  const which = (a: DeliveryAttempt) => ({ attemptId: a.attemptId, queue: a.queue, firstSeq: a.firstSeq, lastSeq: a.lastSeq });
  const notWritten = (a: DeliveryAttempt): void =>
    logger.error(which(a), 'delivery attempt record not written: the store refused it after the journal stopped');
  const hold = (a: DeliveryAttempt): void => {
    if (stopped) return notWritten(a);
    held.push(a);
    if (held.length > maxPending) {
      held.shift();
      given += 1;
    }
    schedule();
  };
  const schedule = (): void => {
    if (timer !== null || flushing !== null || stopped) return;
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
    logger.error({ err, ...which(a) }, 'could not record a delivery attempt');
    return false;
  };
  /** Writes the held records oldest first; stops at the first the store refuses for now. */
  const flush = (): Promise<void> => {
    flushing ??= (async () => {
      try {
        if (given > 0) {
          logger.error({ given }, 'delivery attempt records given up: the store was out of reach longer than the journal holds');
          given = 0;
        }
        while (held.length > 0 && !late) {
          // Off the list while it is written: a record held meanwhile may push the oldest out, never this one.
          const a = held.shift()!;
          writingHeld = true;
          try {
            await journal.recordAttempt(a);
          } catch (err) {
            if (refused(a, err)) {
              // Refused after stop gave up waiting for it: nothing would write it any more.
              if (stopped) return notWritten(a);
              held.unshift(a);
              if (held.length > maxPending) {
                held.shift(); // the oldest is given up, as in hold()
                given += 1;
              }
              wait = Math.min(maxWait, wait * 2);
              return;
            }
          } finally {
            writingHeld = false;
          }
        }
        wait = firstWait;
      } finally {
        flushing = null;
        if (held.length > 0) schedule();
      }
    })();
    return flushing;
  };
  const direct = async (a: DeliveryAttempt): Promise<void> => {
    try {
      await journal.recordAttempt(a);
    } catch (err) {
      if (refused(a, err)) hold(a);
    }
  };

  return {
    recordAttempt(a) {
      // Behind held records: written after them, so the journal keeps the calls' order. Once stopped
      // (a worker given up without waiting can still end a call), each is tried once, on its own.
      if (!stopped && (held.length > 0 || flushing !== null)) {
        hold(a);
        return Promise.resolve();
      }
      const w = direct(a);
      writing.add(w);
      void w.finally(() => writing.delete(w));
      return w;
    },
    pending: () => held.length + (writingHeld ? 1 : 0),
    async stop() {
      cancel();
      // A write the store leaves unanswered (up to its query timeout) must not hold the shutdown either.
      let deadline: Cancel = () => {};
      const timeUp = new Promise<void>((resolve) => {
        deadline = clock.after(stopWithin, () => {
          late = true;
          resolve();
        });
      });
      const lastTry = async (): Promise<void> => {
        await Promise.all([...writing]);
        await flushing;
        if (held.length > 0) await flush();
      };
      try {
        await Promise.race([lastTry(), timeUp]);
      } finally {
        deadline();
      }
      stopped = true;
      cancel();
      if (held.length > 0 || given > 0) logger.error({ notWritten: held.length + given }, 'stopping with delivery attempt records the store has not taken');
      held.length = 0;
      given = 0;
    },
  };
}

/**
 * The delivery journal as a node runs it: each webhook call is counted in the metrics (by outcome, and its
 * latency) when its record is handed in, right after the call, by the queue worker or a delivery process;
 * then the record is kept (keptJournal) until the store takes it.
 *
 * Why the count is taken here and not where the record is written: a held record is written again, maybe
 * several times, and so is one whose write went through but whose answer was lost; counted per write,
 * such a call was counted once per try, and dip_delivery_attempts_total over-reported exactly during the
 * outages an operator reads it for. A pull's acknowledgement does not come this way (it is no call).
 */
export function deliveryJournal(store: Journal, metrics: Pick<DipMetrics, 'attempt'>, clock: Clock, logger: Logger, options: KeptJournalOptions = {}): KeptJournal {
  const kept = keptJournal(store, clock, logger, options);
  return {
    ...kept,
    recordAttempt(a) {
      metrics.attempt(a);
      return kept.recordAttempt(a);
    },
  };
}
