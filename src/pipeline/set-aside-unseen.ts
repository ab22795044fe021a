import { MSG } from '../domain/response-codes.js';
import { clipHelp, type EntryFields } from '../domain/standard-response.js';
import { dipDateTime } from '../domain/time.js';
import type { DeadLetter, DeadLetters } from '../ports/dead-letters.js';
import type { QueueRef } from '../ports/queue-ref.js';

/** The most an answer names (one entry each); the help says when there may be more. */
export const SET_ASIDE_NAMED = 20;

/**
 * The messages a pull's acknowledgement accounts for (the positions after `from` up to `sequence`, `from`
 * as MessageLog.acknowledge gives it) that the DIP set aside before it (gone stale while the recipient held
 * them, or refused: dead letters, their senders told "not delivered"), ascending. The DIP settles such
 * positions itself, so the acknowledgement changes nothing for them; answered only "acknowledged", the
 * recipient's adapter believed it had delivered what its sender was told it had not, and the business data
 * was processed twice once the sender sent it again.
 *
 * Each is named by exactly one acknowledgement (and its repeats): `from` is the position the one before
 * it reached, kept in the queue's row. Read after the acknowledgement is recorded, when the queue is settled
 * up to `sequence`: nothing in the range can be set aside later. One read of the queue's dead letters by
 * position (none for an acknowledgement behind the position: `from` null, or an empty range).
 */
export async function setAsideUnseen(deadLetters: Pick<DeadLetters, 'deadLetters'>, queue: QueueRef, from: number | null, sequence: number): Promise<DeadLetter[]> {
  if (from === null || from >= sequence) return [];
  return deadLetters.deadLetters({ recipientDipId: queue.recipientDipId, channel: queue.channel, after: from, upTo: sequence, limit: SET_ASIDE_NAMED });
}

/** The acknowledgement's own help (`said`), and what it adds about the messages set aside. */
export function setAsideHelp(said: string, setAside: readonly DeadLetter[]): string {
  if (setAside.length === 0) return said;
  const count = setAside.length === SET_ASIDE_NAMED ? `at least ${SET_ASIDE_NAMED} messages` : `${setAside.length} message(s)`;
  const top = setAside.at(-1)!.seq;
  return `${said}; but ${count} up to ${top} were set aside by the DIP before this acknowledgement, not delivered (their senders were told so): positions ${setAside.map((d) => d.seq).join(', ')}, named in the entries that follow`;
}

/** One answer entry per message set aside: its transaction ID, MSG1000 and why. */
export function setAsideEntries(setAside: readonly DeadLetter[]): EntryFields[] {
  return setAside.map((d) => ({
    transactionID: d.transactionId,
    message: MSG.processingFailed,
    help: clipHelp(`position ${d.seq} was set aside at ${dipDateTime(new Date(d.at))} (${d.detail}): it counts as not delivered and its sender was told so; its sender may send it again (under a new transaction ID), or an operator requeue it (at a new position)`),
  }));
}
