import { MSG } from '../domain/response-codes.js';
import { clipHelp, type EntryFields } from '../domain/standard-response.js';
import { dipDateTime } from '../domain/time.js';
import type { DeadLetter, DeadLetters } from '../ports/dead-letters.js';
import type { QueueRef } from '../ports/queue-ref.js';

/** How many dead letters one read takes while the runs are gathered (memory holds the runs, not the letters). */
const PAGE = 500;

/**
 * Consecutive positions set aside for the same reason: one answer entry. A recipient that left hundreds of
 * pulled messages to go stale is told of every one, in a few entries it can read, rather than of the
 * first twenty (the rest were then never named: the next acknowledgement's range began past them).
 */
export interface SetAsideRun {
  first: DeadLetter;
  last: DeadLetter;
  count: number;
}

/** Adds `d` (the next position, ascending) to `runs`: to the last run when it follows it for the same reason. */
export function addToRuns(runs: SetAsideRun[], d: DeadLetter): void {
  const run = runs.at(-1);
  if (run && run.last.seq + 1 === d.seq && run.last.detail === d.detail) {
    run.last = d;
    run.count += 1;
  } else runs.push({ first: d, last: d, count: 1 });
}

/**
 * The messages a pull's acknowledgement accounts for (the positions after `from` up to `sequence`, `from`
 * as MessageLog.acknowledge gives it) that the DIP set aside before it (gone stale while the recipient held
 * them, or refused: dead letters, their senders told "not delivered"), as runs, ascending. The DIP settles such
 * positions itself, so the acknowledgement changes nothing for them; answered only "acknowledged", the
 * recipient's adapter believed it had delivered what its sender was told it had not, and the business data
 * was processed twice once the sender sent it again.
 *
 * Each is named by exactly one acknowledgement (and its repeats): `from` is the position the one before
 * it reached, kept in the queue's row. So all of the range is named, however many: nothing carries it to a
 * later answer. Read after the acknowledgement is recorded, when the queue is settled up to `sequence`:
 * nothing in the range can be set aside later. None for an acknowledgement behind the position (`from`
 * null, or an empty range).
 */
export async function setAsideUnseen(deadLetters: Pick<DeadLetters, 'deadLetters'>, queue: QueueRef, from: number | null, sequence: number): Promise<SetAsideRun[]> {
  const runs: SetAsideRun[] = [];
  if (from === null || from >= sequence) return runs;
  for (let after = from; ; ) {
    const page = await deadLetters.deadLetters({ recipientDipId: queue.recipientDipId, channel: queue.channel, after, upTo: sequence, limit: PAGE });
    page.forEach((d) => addToRuns(runs, d));
    if (page.length < PAGE) return runs;
    after = page.at(-1)!.seq;
  }
}

const positions = (r: SetAsideRun): string => (r.count === 1 ? String(r.first.seq) : `${r.first.seq}-${r.last.seq}`);

/** The acknowledgement's own help (`said`), and what it adds about the messages set aside. */
export function setAsideHelp(said: string, runs: readonly SetAsideRun[]): string {
  if (runs.length === 0) return said;
  const count = runs.reduce((n, r) => n + r.count, 0);
  const top = runs.at(-1)!.last.seq;
  return `${said}; but ${count} message(s) up to ${top} were set aside by the DIP before this acknowledgement, not delivered (their senders were told so): positions ${runs.map(positions).join(', ')}, named in the entries that follow`;
}

const AFTERWARDS = 'its sender may send it again (under a new transaction ID), or an operator requeue it (at a new position)';

/**
 * One answer entry per run: a single message as its transaction ID, MSG1000 and why; consecutive ones
 * set aside for the same reason as the first one's transaction ID, with the positions, how many, the last
 * one's transaction ID and why.
 */
export function setAsideEntries(runs: readonly SetAsideRun[]): EntryFields[] {
  return runs.map(({ first, last, count }) => ({
    transactionID: first.transactionId,
    message: MSG.processingFailed,
    help: clipHelp(count === 1
      ? `position ${first.seq} was set aside at ${dipDateTime(new Date(first.at))} (${first.detail}): it counts as not delivered and its sender was told so; ${AFTERWARDS}`
      : `positions ${first.seq}-${last.seq} (${count} messages, transaction IDs ${first.transactionId} to ${last.transactionId}) were set aside from ${dipDateTime(new Date(first.at))} to ${dipDateTime(new Date(last.at))} (${first.detail}): each counts as not delivered and its sender was told so; each sender may send its message again (under a new transaction ID), or an operator requeue them (at new positions)`),
  }));
}
