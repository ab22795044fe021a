import { detailForSender } from '../domain/held-back.js';
import { answerEntries } from '../domain/recipient-answer.js';
import { MSG } from '../domain/response-codes.js';
import type { AcceptedBatch } from '../ports/message-log.js';
import type { DeadLetterEvent } from './queue-worker.js';
import type { StatusMessages } from './status.js';

/**
 * Return to Sender (spec 5.5.9, 5.5.13 D): each dead letter's sender gets a status message, relaying the
 * refusing recipient's own StandardResponse code when it answered with one.
 */
export function returnToSender(status: Pick<StatusMessages, 'fromDip'>): (events: DeadLetterEvent[]) => Promise<AcceptedBatch | undefined> {
  return (events) =>
    status.fromDip(
      events.map((e) => {
        const relayed = e.answer === null ? undefined : recipientVerdict(e.answer);
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

/** The first entry of a StandardResponse a recipient answered with, if that is what it sent. */
export function recipientVerdict(answer: string): { message: string; help: string | null } | undefined {
  const first = answerEntries(answer)?.[0];
  return first ? { message: first.message, help: first.help } : undefined;
}
