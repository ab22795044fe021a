/**
 * The condition both SQL engines add to a replay query (findArchived, countArchived) on `queue_entries e`.
 *
 * An operator's requeue of a dead letter appends a second entry for the same message to the same queue.
 * Matching only the message's first (original) entry makes a replay or requeue re-issue each message once,
 * at its original position; and since paging is by that position, a page boundary falling between the two
 * entries neither skips the message nor repeats it.
 */
export const FIRST_ENTRY_ONLY =
  'NOT EXISTS (SELECT 1 FROM queue_entries f WHERE f.message_id = e.message_id AND f.queue_id = e.queue_id AND f.seq < e.seq)';
