import { REPLAYED_CONSUMPTION } from '../domain/consumption-replay.js';
import type { TransactionParties } from '../ports/archive.js';
import { DataKeyNotLoaded, storeFailureKind } from '../ports/errors.js';

/**
 * The condition both SQL engines add to a replay query (findArchived, countArchived) on `queue_entries e`.
 *
 * An operator's requeue of a dead letter appends a second entry for the same message to the same queue.
 * Matching only the message's original entry makes a replay or requeue re-issue each message once, at its
 * original position; and since paging is by that position, a page boundary falling between the two
 * entries neither skips the message nor repeats it. The original is the entry without `enqueued_at`: only
 * a requeue sets it (its staleness clock restarts then). A filter on the row itself, not a NOT EXISTS
 * over the message's other entries: PostgreSQL does not push the queue or the day bounds into an
 * anti-join, and for a count over a wide window may hash every queue's entries of every day.
 */
export const FIRST_ENTRY_ONLY = 'e.enqueued_at IS NULL';

/**
 * The messages the archive indexes by MPAN (`messages_mpan`, partial on both engines), `table` the alias
 * their columns are named by: originals (not replay copies) on the channels of the consumption an IF-016
 * replays (src/domain/consumption-replay.ts), the only messages read by MPAN across the archive
 * (Archive.findForMpan). A literal in the index's definition and in the query alike: an engine uses a
 * partial index only for a query whose own conditions imply the index's, and neither can see through a
 * bound list (SQLite's json_each, PostgreSQL's ANY($1)).
 */
export function mpanIndexed(table = ''): string {
  const channels = Object.keys(REPLAYED_CONSUMPTION).sort().map((c) => `'${c}'`).join(', ');
  return `${table}channel IN (${channels}) AND ${table}replay_of IS NULL`;
}

/**
 * The condition on `messages m` that a participant may view the message (spec 5.5.11, "only messages the
 * Participant is entitled to view"): it sent it, or the message has an entry in one of its queues. The
 * second is what a replay (findArchived) reads, one queue at a time, and what transactionParties names as
 * recipients: one definition of what a participant was sent. `party` is the engine's placeholder.
 */
export function sentOrQueuedTo(party: string): string {
  return `(m.sender_dip_id = ${party} OR EXISTS (SELECT 1 FROM queue_entries pe JOIN queues pq ON pq.id = pe.queue_id WHERE pe.message_id = m.id AND pq.recipient_dip_id = ${party}))`;
}

/**
 * A stored copy opened, or null when it cannot be (the sealer's authentication failed, an unknown format
 * or data key): the caller counts the row as unreadable instead of failing every row read with it. A
 * storage failure (StoreError) is not the row's and is thrown on.
 */
export function openedOrNull(open: () => string): string | null {
  const opened = openedOrSkipped(open);
  return typeof opened === 'string' ? opened : null;
}

/**
 * A stored copy opened, or why a reader of many rows (a replay page, a report) skips it: as openedOrWhy, and
 * a row sealed under a key this process has not loaded is skipped too, not a failure of every row read with
 * it (the sealer starts reloading its keys on that miss, so a later read opens it). Only a queue's read must
 * not take such a row for damage (openedOrWhy): it would set it aside for good.
 */
export function openedOrSkipped(open: () => string): string | { unreadable: string; keyNotLoaded?: true } {
  try {
    return openedOrWhy(open);
  } catch (err) {
    if (err instanceof DataKeyNotLoaded) return { unreadable: err.message, keyNotLoaded: true };
    throw err;
  }
}

/** An archived message's outbound copy as ArchivedMessage holds it: opened, or empty with why it was skipped (openedOrSkipped). */
export function archivedCopy(open: () => string): { outbound: string; unreadable?: string; keyNotLoaded?: true } {
  const opened = openedOrSkipped(open);
  return typeof opened === 'string' ? { outbound: opened } : { outbound: '', ...opened };
}

/** A stored copy opened, or why it cannot be (as openedOrNull, keeping the reason: a queue entry's QueueEntry.unreadable). */
export function openedOrWhy(open: () => string): string | { unreadable: string } {
  try {
    return open();
  } catch (err) {
    // A key rotated elsewhere since this process loaded its keys: the row is sound, and a retry after the
    // reload (delivery processes and ingest threads reload on this error) opens it. Set aside as
    // unreadable, sound messages sealed just after a rotation were dead-lettered and their senders told.
    if (storeFailureKind(err) !== null || err instanceof DataKeyNotLoaded) throw err;
    return { unreadable: err instanceof Error ? err.message : String(err) };
  }
}

/** A transaction's parties as both SQL engines read them: the row, joined to the original it may copy. */
export interface StoredParties {
  id: number;
  /** The original's row, for a replay copy. */
  replayOfId: number | null;
  /** The original's transaction ID, for a replay copy. */
  replayOf: string | null;
  /** The copy's recipient; null for any other message, and for copies made before it was kept. */
  replayFor: string | null;
  senderDipId: string;
  channel: string;
  /** The message's own reference, or its original's for a copy (which carries none of its own). */
  senderUniqueReference: string | null;
  correlationId: string | null;
}

/**
 * The parties of a stored transaction. A replay copy was received by the one participant it was made
 * for, and no other recipient of its original may name it in a status message; `queued` (the recipients
 * of the message's queue entries, and of its original's) answers only for the rows that do not say so:
 * every other message, and copies archived before their recipient was kept.
 */
export function partiesOf(m: StoredParties, queued: string[]): TransactionParties {
  return {
    senderDipId: m.senderDipId,
    channel: m.channel,
    recipients: m.replayFor === null ? queued : [m.replayFor],
    senderUniqueReference: m.senderUniqueReference,
    correlationId: m.correlationId,
    replayOf: m.replayOf,
  };
}

/** How far behind the settled position a pull's acknowledgement looked, with no delivery journalled, before 2026-12-06: what a pull hands out at most. */
export const ACKNOWLEDGED_LOOKBACK = 10_000;

/**
 * ACKNOWLEDGED_BEFORE's rule, as SQL over the newest delivered position journalled (`last`, NULL: none) and the
 * settled position (`acked`): PostgreSQL's backfill reads `last` apart from the row it then writes (PgMessageLog.backfillAcknowledged).
 */
export function toldBefore(last: string, acked: string): string {
  return `CASE WHEN ${last} IS NULL THEN (CASE WHEN ${acked} > ${ACKNOWLEDGED_LOOKBACK} THEN ${acked} - ${ACKNOWLEDGED_LOOKBACK} ELSE 0 END)
  WHEN ${last} < ${acked} THEN ${last} ELSE ${acked} END`;
}

/**
 * A queue's acknowledged position (`queues.told_seq`) for a store made before it was kept in the queue's row
 * (2026-12-06), as a pull's acknowledgement read it from the delivery journal until then: the newest delivered
 * attempt's last position, never past the settled one; with none, ACKNOWLEDGED_LOOKBACK behind the settled
 * position. SQLite's migration fills the column with it once, over `queues`; PostgreSQL's leaves it NULL and
 * fills it after the schema, in batches (PgMessageLog.backfillAcknowledged), its readers using this meanwhile.
 */
export const ACKNOWLEDGED_BEFORE = `(SELECT ${toldBefore('max(a.last_seq)', 'queues.acked_seq')}
  FROM delivery_attempts a WHERE a.queue_id = queues.id AND a.verdict = 'delivered')`;
