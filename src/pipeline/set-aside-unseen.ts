import { MSG } from '../domain/response-codes.js';
import { clipHelp, type EntryFields } from '../domain/standard-response.js';
import { dipDateTime } from '../domain/time.js';
import type { Archive } from '../ports/archive.js';
import type { DeadLetter, DeadLetters } from '../ports/dead-letters.js';
import type { QueueRef } from '../ports/queue-ref.js';

/** How far back from an acknowledgement set-aside messages are looked for: a pull hands out at most 10,000. */
const LOOKBACK = 10_000;
/** The most an answer names (one entry each); the help says when there may be more. */
export const SET_ASIDE_NAMED = 20;

/**
 * The messages a pull's acknowledgement of `sequence` covers that the DIP set aside before it (gone stale
 * while the recipient held them, or refused: dead letters, their senders told "not delivered"), ascending.
 * The DIP settles such positions itself, so the acknowledgement changes nothing for them; answered only
 * "acknowledged", the recipient's adapter believed it had delivered what its sender was told it had not,
 * and the business data was processed twice once the sender sent it again.
 *
 * Set-aside positions lie at or below the settled position (`ackedSeq`). Those at or below the recipient's
 * last delivery (its last acknowledgement that moved the position, or a webhook's delivered call: the
 * journal's newest delivered attempt) were settled before anything it holds now and were told of then; so
 * the range is from there to min(sequence, ackedSeq). An acknowledgement at the settled position therefore
 * names them each time until one moves the position past them. One journal read per acknowledgement, and
 * a dead-letter read only when that range is not empty (a queue the DIP settled no position of: never).
 */
export async function setAsideUnseen(
  journal: Pick<Archive, 'attempts'>,
  deadLetters: Pick<DeadLetters, 'deadLetters'>,
  queue: QueueRef,
  ackedSeq: number,
  sequence: number,
): Promise<DeadLetter[]> {
  const top = Math.min(sequence, ackedSeq);
  if (top < 1) return [];
  const lastDelivered = (await journal.attempts(queue, 20)).find((a) => a.verdict === 'delivered')?.lastSeq ?? 0;
  const from = Math.max(lastDelivered, top - LOOKBACK) + 1;
  if (from > top) return [];
  const seqs = Array.from({ length: top - from + 1 }, (_, i) => from + i);
  const found = await deadLetters.deadLetters({ recipientDipId: queue.recipientDipId, channel: queue.channel, seqs, limit: SET_ASIDE_NAMED });
  return found.sort((a, b) => a.seq - b.seq);
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
