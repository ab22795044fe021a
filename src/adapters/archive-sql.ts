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
