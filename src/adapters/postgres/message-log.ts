import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { headDamage, missingMessage, sameSettlement, settingAsidePassed, toldRecipient, type AcceptedBatch, type AppendOutcome, type MessageLog, type QueueBacklogState, type QueueEntry, type QueueRef, type QueueState, type ReplayCopy, type SettleOutcome, type Settlement } from '../../ports/message-log.js';
import { jobMoved } from '../../ports/errors.js';
import { queueKey } from '../../ports/queue-ref.js';
import type { JobProgress } from '../../ports/requeue-jobs.js';
import type { SecurityPattern } from '../../domain/channel.js';
import { damaged, type PgDatabase } from './database.js';
import { classifyPgError } from './errors.js';
import { dayOf, dayStart } from './partitions.js';
import { daysOfBatches, insertEntries, insertMessages, queuesOfBatches, takeIds, writeBatches } from './write-batches.js';
import { ACKNOWLEDGED_BEFORE, openedOrWhy, toldBefore } from '../archive-sql.js';

/**
 * A sender reference used in the first minutes of a day is also written under the day before: a writer
 * whose clock still says yesterday (clock skew between nodes, a transaction straddling midnight) then
 * meets it in yesterday's unique index. Five minutes is far beyond NTP-kept skew and any transaction.
 */
const DAY_BOUNDARY_GRACE_MS = 5 * 60_000;
/**
 * A queue's acknowledged position and the one before it, as its row holds them, or (a row the upgrade's
 * backfill has not reached: NULL) as the delivery journal says (ACKNOWLEDGED_BEFORE). COALESCE evaluates
 * the journal's subquery only for such a row: a filled one costs nothing more.
 */
const TOLD = `coalesce(told_seq, ${ACKNOWLEDGED_BEFORE})`;
const TOLD_FROM = `coalesce(told_from, ${ACKNOWLEDGED_BEFORE})`;
/** Queues the acknowledged-position backfill fills per transaction (each row's journal read before, unlocked). */
const BACKFILL_BATCH = 200;

/** Appends one group carries at most (bounds a transaction's size and lock time). */
const MAX_GROUP = 256;

interface PendingAppend {
  batch: AcceptedBatch;
  resolve(outcome: AppendOutcome): void;
  reject(error: unknown): void;
}

const refKey = (sender: string, ref: string): string => `${sender}\u0000${ref}`;

/**
 * The message log and recipient queues on PostgreSQL. A queue is a (queue, seq) → message index over
 * one message log, as on SQLite; positions come from the queue's row, locked for the transaction, so
 * they are consecutive across every node appending at once, and visible all together at COMMIT.
 *
 * Appends arriving together share one transaction (group commit): one WAL flush and one lock of each
 * queue row carry a whole group, instead of one per request. A duplicate sender reference refuses only
 * its own batch: duplicates are found before anything is written, so no savepoint is needed.
 */
export class PgMessageLog implements MessageLog {
  private pending: PendingAppend[] = [];
  private scheduled = false;
  private inFlight = 0;
  private readonly idle = new Set<() => void>();

  constructor(private readonly d: PgDatabase) {}

  append(batch: AcceptedBatch): Promise<AppendOutcome> {
    return new Promise((resolve, reject) => {
      this.pending.push({ batch, resolve, reject });
      this.schedule();
    });
  }

  /** Waits for every append in flight (shutdown). */
  async drain(): Promise<void> {
    while (this.inFlight > 0 || this.pending.length > 0) await new Promise<void>((r) => this.idle.add(r));
  }

  private schedule(): void {
    if (this.scheduled || this.pending.length === 0 || this.inFlight >= (this.d.options.concurrentGroups ?? 2)) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const group = this.pending.splice(0, MAX_GROUP);
      if (group.length === 0) return;
      this.inFlight += 1;
      void this.commit(group).finally(() => {
        this.inFlight -= 1;
        if (this.inFlight === 0 && this.pending.length === 0) {
          for (const r of this.idle) r();
          this.idle.clear();
        }
        this.schedule();
      });
      this.schedule();
    });
  }

  private async commit(group: PendingAppend[]): Promise<void> {
    try {
      const startedAt = performance.now();
      const outcomes = await this.writeGroup(group.map((p) => p.batch));
      this.d.groupCommitted({ writes: group.length, durableMs: performance.now() - startedAt });
      group.forEach((p, i) => p.resolve(outcomes[i]!));
    } catch (error) {
      const e = classifyPgError(error);
      if (e.kind === 'permanent' && group.length > 1) {
        // One batch the server refuses must not fail the others with it: each is tried alone.
        await Promise.all(group.map((p) => this.writeGroup([p.batch]).then((o) => p.resolve(o[0]!), (e: unknown) => p.reject(e))));
        return;
      }
      for (const p of group) p.reject(e);
    }
  }

  private writeGroup(batches: AcceptedBatch[]): Promise<AppendOutcome[]> {
    const refDays = (b: AcceptedBatch): number[] => {
      const day = dayOf(b.receivedAt);
      return b.receivedAt - dayStart(day) < DAY_BOUNDARY_GRACE_MS ? [day, day - 1] : [day];
    };
    const days = [...daysOfBatches(batches), ...batches.flatMap(refDays)];
    /** A message this run of the transaction writes, if any: whether it exists tells whether a COMMIT whose answer was lost committed. */
    let written: string | undefined;
    const isCommitted = async (c: pg.PoolClient): Promise<boolean> => written === undefined || (await messageExists(c, written));
    return this.d.tx(async (c) => {
      const refs = batches.flatMap((b) => b.messages.flatMap((m) => (m.senderUniqueReference === null ? [] : [[m.senderDipId, m.senderUniqueReference] as const])));
      const seen = new Set<string>();
      let foundStored = false;
      /** What each reference stored before was accepted as (by refKey). */
      const storedAs = new Map<string, string>();
      if (refs.length > 0) {
        const { rows } = await c.query<{ s: string; r: string; t: string | null }>(
          `SELECT sender_dip_id AS s, sender_ref AS r, transaction_id AS t FROM sender_refs
            WHERE (sender_dip_id, sender_ref) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
          [refs.map(([s]) => s), refs.map(([, r]) => r)],
        );
        foundStored = rows.length > 0;
        for (const { s, r, t } of rows) {
          seen.add(refKey(s, r));
          if (t !== null) storedAs.set(refKey(s, r), t);
        }
      }
      // In arrival order: a reference used by an earlier batch of this group is a duplicate for a later one.
      const outcomes: AppendOutcome[] = [];
      const accepted: AcceptedBatch[] = [];
      const claims: Array<[number, string, string, string]> = [];
      for (const b of batches) {
        const duplicates: string[] = [];
        const originals: Array<[string, string]> = [];
        const mine: string[] = [];
        for (const m of b.messages) {
          if (m.senderUniqueReference === null) continue;
          const k = refKey(m.senderDipId, m.senderUniqueReference);
          if (seen.has(k) || mine.includes(k)) {
            duplicates.push(m.senderUniqueReference);
            const original = storedAs.get(k);
            if (original !== undefined) originals.push([m.senderUniqueReference, original]);
          } else mine.push(k);
        }
        if (duplicates.length > 0) {
          outcomes.push({ ok: false, duplicates, originals: Object.fromEntries(originals) });
          continue;
        }
        for (const m of b.messages) {
          if (m.senderUniqueReference === null) continue;
          seen.add(refKey(m.senderDipId, m.senderUniqueReference));
          storedAs.set(refKey(m.senderDipId, m.senderUniqueReference), m.transactionId);
          for (const day of refDays(b)) claims.push([day, m.senderDipId, m.senderUniqueReference, m.transactionId]);
        }
        accepted.push(b);
        outcomes.push({ ok: true });
      }
      if (claims.length > 0) {
        const inserted = await c.query(
          'INSERT INTO sender_refs (day, sender_dip_id, sender_ref, transaction_id) SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[]) ON CONFLICT DO NOTHING',
          [claims.map(([d]) => d), claims.map(([, s]) => s), claims.map(([, , r]) => r), claims.map(([, , , t]) => t)],
        );
        // Another node committed one of these references after our look: run the group again, and the
        // look will see it.
        if (inserted.rowCount !== claims.length) throw Object.assign(new Error('a sender reference was claimed concurrently'), { code: '40001' });
      }
      // Any accepted batch's first message, not the first batch's: a batch with no message (nothing to
      // look for) first in the group made a COMMIT that did not commit look committed for the whole group.
      written = accepted.find((b) => b.messages.length > 0)?.messages[0]?.transactionId;
      // Nothing written: the COMMIT waits for no standby, so "already accepted" is said only of what one has.
      // (A write's COMMIT waits for them, and its commit record comes after the duplicates'.)
      if (foundStored && written === undefined) await this.d.confirmOnStandbys(c);
      const locked = await this.d.lockQueues(c, queuesOfBatches(accepted));
      await writeBatches(this.d, c, accepted, locked);
      await this.d.saveHeads(c, locked);
      return outcomes;
    }, days, isCommitted);
  }

  async readQueue(queue: QueueRef, afterSeq: number, limit: number, maxBytes: number): Promise<QueueEntry[]> {
    const id = await this.d.queueId(queue);
    if (id === undefined) return [];
    const rows = await this.d.query<{ seq: number; messageId: number; enqueuedAt: number | null; capacity: string | null; transactionId: string | null; receivedAt: number | null; outbound: Buffer | null; sealed: boolean | null; securityPattern: SecurityPattern | null }>(
      `SELECT e.seq, e.message_id AS "messageId", e.enqueued_at AS "enqueuedAt", e.capacity, m.transaction_id AS "transactionId",
              m.received_at AS "receivedAt", m.outbound, m.sealed, m.security_pattern AS "securityPattern"
         FROM queue_entries e LEFT JOIN messages m ON m.id = e.message_id
        WHERE e.queue_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3`,
      [id, afterSeq, limit],
    );
    let bytes = 0;
    const out: QueueEntry[] = [];
    for (const r of rows) {
      if (r.transactionId === null || r.outbound === null || r.receivedAt === null) {
        // Purging removes settled entries with their messages, so this is damage: say so rather than skip.
        throw damaged(missingMessage(queue, r.seq, r.messageId));
      }
      const stored = r.outbound;
      const transactionId = r.transactionId;
      const opened = openedOrWhy(() => this.d.reveal(stored, r.sealed === true, transactionId));
      const outbound = typeof opened === 'string' ? opened : '';
      bytes += outbound.length + 1;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push({ seq: r.seq, messageId: r.messageId, transactionId: r.transactionId, receivedAt: r.enqueuedAt ?? r.receivedAt, outbound, capacity: r.capacity, securityPattern: r.securityPattern, ...(typeof opened === 'string' ? {} : opened) });
    }
    return out;
  }

  async queueState(queue: QueueRef): Promise<QueueState> {
    const rows = await this.d.query<{ head: number; acked: number; pulled: number }>(
      'SELECT head, acked_seq AS acked, pulled_seq AS pulled FROM queues WHERE recipient_dip_id = $1 AND channel = $2',
      [queue.recipientDipId, queue.channel],
    );
    return { ackedSeq: rows[0]?.acked ?? 0, headSeq: rows[0]?.head ?? 0, pulledSeq: rows[0]?.pulled ?? 0 };
  }

  async queueBacklog(queue: QueueRef): Promise<QueueBacklogState> {
    // One statement: the positions and the oldest unsettled entry's receipt (as readQueue gives it: a
    // requeued entry's enqueue time) from the same snapshot, without fetching the message itself.
    // The oldest unsettled entry is read on its own as well, with whether its message is there: the inner
    // join alone passed over one whose message is missing, hiding the damage (see QueueBacklogState.damage).
    const rows = await this.d.query<{ head: number; acked: number; oldest: number | null; firstSeq: number | null; firstMessage: number | null; found: number | null }>(
      `SELECT q.head, q.acked_seq AS acked,
              (SELECT coalesce(e.enqueued_at, m.received_at) FROM queue_entries e JOIN messages m ON m.id = e.message_id
                WHERE e.queue_id = q.id AND e.seq > q.acked_seq ORDER BY e.seq LIMIT 1) AS oldest,
              f.seq AS "firstSeq", f.message_id AS "firstMessage", (SELECT m.id FROM messages m WHERE m.id = f.message_id) AS found
         FROM queues q
         LEFT JOIN LATERAL (SELECT e.seq, e.message_id FROM queue_entries e WHERE e.queue_id = q.id AND e.seq > q.acked_seq ORDER BY e.seq LIMIT 1) f ON true
        WHERE q.recipient_dip_id = $1 AND q.channel = $2`,
      [queue.recipientDipId, queue.channel],
    );
    return { ackedSeq: rows[0]?.acked ?? 0, headSeq: rows[0]?.head ?? 0, oldestReceivedAt: rows[0]?.oldest ?? null, damage: headDamage(queue, rows[0]) };
  }

  async pendingQueues(): Promise<QueueRef[]> {
    const rows = await this.d.query<{ r: string; c: string }>('SELECT recipient_dip_id AS r, channel AS c FROM queues WHERE head > acked_seq ORDER BY id');
    return rows.map((r) => ({ recipientDipId: r.r, channel: r.c }));
  }

  async settle(queue: QueueRef, settlement: Settlement): Promise<SettleOutcome> {
    const notices = settlement.notices && settlement.notices.messages.length > 0 ? [settlement.notices] : [];
    return this.d.tx(async (c): Promise<SettleOutcome> => {
      const id = await this.d.queueId(queue, c);
      if (id === undefined) throw damaged(`no queue for ${queue.recipientDipId} on ${queue.channel}`);
      // The settled queue is locked with the status queues, in the one order every writer uses.
      const locked = await this.d.lockQueues(c, [queue, ...queuesOfBatches(notices)]);
      const dead = settlement.deadLetters ?? [];
      if (dead.length > 0) {
        // Read under the row's lock (an acknowledgement's UPDATE takes it too): the position as it is now,
        // with any acknowledgement that landed since the caller read it.
        const { rows } = await c.query<{ acked: string | number }>('SELECT acked_seq AS acked FROM queues WHERE id = $1', [id]);
        if (settingAsidePassed(settlement, Number(rows[0]?.acked ?? 0))) {
          // Only then are the dead letters looked up (the rare path): passed by this very settlement, whose
          // COMMIT went unanswered but committed (tx's COMMIT_IN_DOUBT, recorded again), it is settled.
          const { rows: found } = await c.query<{ seq: string | number; m: string | number }>(
            'SELECT seq, message_id AS m FROM dead_letters WHERE queue_id = $1 AND seq = ANY($2::bigint[])',
            [id, dead.map((d) => d.seq)],
          );
          return sameSettlement(settlement, new Map(found.map((r) => [Number(r.seq), Number(r.m)]))) ? 'settled' : 'superseded';
        }
      }
      const now = this.d.options.clock.now();
      if (dead.length > 0) {
        await c.query(
          `INSERT INTO dead_letters (queue_id, seq, message_id, reason, status, detail, at)
           SELECT $1::int, s, m, r, st, dt, $7::bigint FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::int[], $6::text[]) AS t(s, m, r, st, dt)
           ON CONFLICT DO NOTHING`,
          [id, dead.map((x) => x.seq), dead.map((x) => x.messageId), dead.map((x) => x.reason), dead.map((x) => x.status), dead.map((x) => x.detail), now],
        );
      }
      await writeBatches(this.d, c, notices, locked);
      await this.d.saveHeads(c, locked);
      // A delivery (a webhook's, the DIP's own consumer's), or a webhook answer's refusals (toldRecipient):
      // nothing before it is left for a pull's acknowledgement to name.
      const delivered = toldRecipient(settlement) ? `, told_from = CASE WHEN ${TOLD} < $1 THEN $1 ELSE ${TOLD_FROM} END, told_seq = greatest(${TOLD}, $1)` : '';
      await c.query(`UPDATE queues SET acked_seq = greatest(acked_seq, $1)${delivered} WHERE id = $2`, [settlement.upTo, id]);
      return 'settled';
    }, daysOfBatches(notices));
  }

  async acknowledge(queue: QueueRef, sequence: number): Promise<number | null> {
    // One statement, so one round trip and idempotent: run again (its answer lost), it finds the position it
    // wrote and answers the same. Under READ COMMITTED a concurrent acknowledgement's committed row is the one
    // updated (told_from is then that one's position); when this one moves nothing, the row as the statement
    // found it answers: the same position again (its `told_from`), or one behind (none).
    // In a transaction, as every write: the store's generation check and its health see it (reviewB).
    const rows = await this.d.tx(async (c) => (await c.query<{ from: string | number }>(
      `WITH moved AS (
         UPDATE queues SET acked_seq = greatest(acked_seq, $3), told_from = ${TOLD}, told_seq = $3
          WHERE recipient_dip_id = $1 AND channel = $2 AND ${TOLD} < $3
         RETURNING told_from AS "from")
       SELECT "from" FROM moved
       UNION ALL
       SELECT ${TOLD_FROM} FROM queues WHERE recipient_dip_id = $1 AND channel = $2 AND ${TOLD} = $3 AND NOT EXISTS (SELECT 1 FROM moved)`,
      [queue.recipientDipId, queue.channel, sequence],
    )).rows);
    return rows[0] === undefined ? null : Number(rows[0].from);
  }

  private stopping = false;

  /**
   * Fills the acknowledged position of the queues the upgrade of 2026-12-06 left NULL (schema.ts), after the
   * schema and apart from it, as ACKNOWLEDGED_BEFORE reads it: per batch of queues, their journal is read
   * first, with no lock (the scan of a large archive holds no writer), then the rows still NULL are written in
   * a short transaction, from their settled position as it is then. A row an acknowledgement or a delivery
   * wrote meanwhile is left as it is. Safe to interrupt (stop(), a crash) and to run on several nodes at once:
   * the next run goes on with the rows still NULL, whose readers compute the same meanwhile (TOLD). Resolves
   * to how many rows it filled.
   */
  async backfillAcknowledged(batchSize = BACKFILL_BATCH): Promise<number> {
    let filled = 0;
    for (let after = 0; !this.stopping; ) {
      const rows = await this.d.query<{ id: number; last: number | null }>(
        `SELECT q.id, (SELECT max(a.last_seq) FROM delivery_attempts a WHERE a.queue_id = q.id AND a.verdict = 'delivered') AS last
           FROM queues q WHERE q.told_seq IS NULL AND q.id > $1 ORDER BY q.id LIMIT $2`,
        [after, batchSize],
      );
      if (rows.length === 0) break;
      const told = toldBefore('u.last', 'queues.acked_seq');
      const written = await this.d.tx((c) =>
        c.query(`UPDATE queues SET told_seq = ${told}, told_from = coalesce(told_from, ${told}) FROM unnest($1::int[], $2::bigint[]) AS u(id, last) WHERE queues.id = u.id AND queues.told_seq IS NULL`, [
          rows.map((r) => r.id),
          rows.map((r) => r.last),
        ]),
      );
      filled += written.rowCount ?? 0;
      if (rows.length < batchSize) break;
      after = rows.at(-1)!.id;
    }
    return filled;
  }

  /** Stops the backfill at its next batch (closing). */
  stopBackfill(): void {
    this.stopping = true;
  }

  async markPulled(queue: QueueRef, upTo: number): Promise<void> {
    await this.d.tx(async (c) => {
      const id = await this.d.queueId(queue, c);
      if (id === undefined) throw damaged(`no queue for ${queue.recipientDipId} on ${queue.channel}`);
      // The condition leaves the row unwritten when another node's pull recorded as much (or more).
      await c.query('UPDATE queues SET pulled_seq = $1 WHERE id = $2 AND pulled_seq < $1', [upTo, id]);
    });
  }

  async appendReplayCopies(copies: ReplayCopy[], enqueueFor?: QueueRef, progress?: JobProgress): Promise<void> {
    await this.d.tx(
      async (c) => {
        // A copy keeps its original's pattern (securityPattern): requeued, it is made for that again.
        const { rows: originals } = await c.query<{ id: number; channel: string; eventCode: string; senderDipId: string; senderRole: string; correlationId: string | null; mpan: string | null; securityPattern: SecurityPattern | null }>(
          `SELECT id, channel, event_code AS "eventCode", sender_dip_id AS "senderDipId", sender_role AS "senderRole",
                  correlation_id AS "correlationId", mpan, security_pattern AS "securityPattern" FROM messages WHERE id = ANY($1::bigint[])`,
          [[...new Set(copies.map((x) => x.originalId))]],
        );
        const byId = new Map(originals.map((o) => [o.id, o]));
        const ids = await takeIds(c, 'message_ids', copies.map((x) => x.receivedAt));
        const rows = copies.map((x, i) => {
          const o = byId.get(x.originalId);
          if (!o) throw damaged(`replay of unknown message ${x.originalId}`);
          return { ...o, id: ids[i]!, batchId: null, transactionId: x.transactionId, senderRef: null, receivedAt: x.receivedAt, replayOf: x.originalId, replayFor: x.recipientDipId, outbound: x.outbound };
        });
        await insertMessages(this.d, c, rows);
        if (enqueueFor) {
          const locked = await this.d.lockQueues(c, [enqueueFor]);
          await insertEntries(c, locked, ids.map((messageId, i) => ({ queue: enqueueFor, messageId, enqueuedAt: null, capacity: copies[i]!.capacity })));
          await this.d.saveHeads(c, locked);
          // A requeued copy answers its original's dead letter in that queue (DeadLetterRecord: no longer dead).
          const queueId = locked.get(queueKey(enqueueFor))!.id;
          await c.query("UPDATE dead_letters SET state = 'requeued' WHERE queue_id = $1 AND message_id = ANY($2::bigint[]) AND state = 'dead'", [queueId, [...new Set(copies.map((x) => x.originalId))]]);
        }
        if (progress) {
          const updated = await c.query("UPDATE requeue_jobs SET cursor = $1, requeued = requeued + $2, updated_at = $3 WHERE id = $4 AND state = 'running' AND cursor = $5", [
            progress.cursor,
            progress.added,
            progress.at,
            progress.jobId,
            progress.from,
          ]);
          if (updated.rowCount === 0) throw jobMoved(progress.jobId);
        }
      },
      copies.map((x) => dayOf(x.receivedAt)),
      // A page whose COMMIT answer was lost, taken for not written, was run again from the old cursor and
      // met JOB_MOVED: the job then left itself to another node that did not exist, and stalled.
      async (c) => copies.length === 0 || (await messageExists(c, copies[0]!.transactionId)),
    );
  }
}

/** Whether a message row exists (whether a transaction that wrote it committed: settleInDoubt). */
async function messageExists(c: pg.PoolClient, transactionId: string): Promise<boolean> {
  return (await c.query('SELECT 1 FROM messages WHERE transaction_id = $1 LIMIT 1', [transactionId])).rowCount === 1;
}
