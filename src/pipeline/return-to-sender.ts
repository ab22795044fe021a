import { detailForSender } from '../domain/held-back.js';
import { refusalOf } from '../domain/recipient-answer.js';
import { MSG } from '../domain/response-codes.js';
import type { AcceptedBatch } from '../ports/message-log.js';
import type { DeadLetterEvent } from './queue-worker.js';
import type { StatusMessages } from './status.js';

/**
 * Return to Sender (spec 5.5.9, 5.5.13 D): each dead letter's sender gets a status message, relaying the
 * refusing recipient's own StandardResponse code when its answer gave one for that message. Otherwise the
 * DIP's MSG1000: relaying an entry saying success (or about another message) would tell the sender its
 * refused message was taken.
 */
export function returnToSender(status: Pick<StatusMessages, 'fromDip'>): (events: DeadLetterEvent[]) => Promise<AcceptedBatch | undefined> {
  return (events) =>
    status.fromDip(
      events.map((e) => {
        const relayed = e.answer === null ? undefined : refusalOf(e.answer, e.entry.transactionId);
        // The sender is not told why the recipient's copies were held back (its certificate revoked, and why).
        const detail = detailForSender(e.detail);
        return {
          transactionId: e.entry.transactionId,
          message: relayed?.message ?? MSG.processingFailed,
          help: relayed?.help ? `${detail}: ${relayed.help}` : detail,
        };
      }),
    );
}
