import type pg from 'pg';
import type { AcceptedBatch, QueueRef } from '../../ports/message-log.js';
import { sealRawRequest } from '../../security/seal-batch.js';
import type { SecurityPattern } from '../../domain/channel.js';
import { queueKey } from '../../ports/queue-ref.js';
import { storedForm, type LockedQueue, type PgDatabase } from './database.js';
import { dayOf, idFor } from './partitions.js';

/** One message row as inserted (new messages, and replay copies of archived ones). */
export interface MessageRow {
  id: number;
  batchId: number | null;
  transactionId: string;
  channel: string;
  eventCode: string;
  senderDipId: string;
  senderRole: string;
  senderRef: string | null;
  correlationId: string | null;
  /** Already indexed (a keyed hash when encryption at rest is on). */
  mpan: string | null;
  receivedAt: number;
  replayOf: number | null;
  /** A replay copy's recipient (ReplayCopy.recipientDipId); absent for any other message. */
  replayFor?: string;
  /** The pattern it was accepted under (AcceptedMessage.securityPattern; a replay copy: its original's). */
  securityPattern: SecurityPattern | null;
  outbound: string;
  /** The outbound copy as stored, when it was sealed beforehand (AcceptedBatch.sealed, on an ingest thread). */
  stored?: Buffer | string;
}

/** `n` fresh ids in the day of each time, from a sequence (one round trip for all). */
export async function takeIds(c: pg.PoolClient, sequence: 'message_ids' | 'batch_ids', times: number[]): Promise<number[]> {
  if (times.length === 0) return [];
  const { rows } = await c.query<{ v: number }>(`SELECT nextval('${sequence}') AS v FROM generate_series(1, $1)`, [times.length]);
  return times.map((t, i) => idFor(dayOf(t), rows[i]!.v));
}

export async function insertMessages(d: PgDatabase, c: pg.PoolClient, rows: MessageRow[]): Promise<void> {
  if (rows.length === 0) return;
  const sealed = rows.map((r) => (r.stored === undefined ? d.sealText(r.outbound, r.transactionId) : storedForm(r.stored)));
  await c.query(
    `INSERT INTO messages (id, batch_id, transaction_id, channel, event_code, sender_dip_id, sender_role, sender_ref,
                           correlation_id, mpan, received_at, replay_of, outbound, sealed, replay_for, security_pattern)
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                          $9::text[], $10::text[], $11::bigint[], $12::bigint[], $13::bytea[], $14::boolean[], $15::text[], $16::smallint[])`,
    [
      rows.map((r) => r.id),
      rows.map((r) => r.batchId),
      rows.map((r) => r.transactionId),
      rows.map((r) => r.channel),
      rows.map((r) => r.eventCode),
      rows.map((r) => r.senderDipId),
      rows.map((r) => r.senderRole),
      rows.map((r) => r.senderRef),
      rows.map((r) => r.correlationId),
      rows.map((r) => r.mpan),
      rows.map((r) => r.receivedAt),
      rows.map((r) => r.replayOf),
      sealed.map((s) => s.bytes),
      sealed.map((s) => s.sealed),
      rows.map((r) => r.replayFor ?? null),
      rows.map((r) => r.securityPattern),
    ],
  );
}

/** Appends entries to locked queues, each taking the queue's next position. */
export async function insertEntries(
  c: pg.PoolClient,
  locked: Map<string, LockedQueue>,
  entries: Array<{ queue: QueueRef; messageId: number; enqueuedAt: number | null; capacity: string | null }>,
): Promise<void> {
  if (entries.length === 0) return;
  const queueIds: number[] = [];
  const seqs: number[] = [];
  for (const e of entries) {
    const q = locked.get(queueKey(e.queue));
    if (!q) throw new Error(`queue ${e.queue.recipientDipId}/${e.queue.channel} was not locked before appending to it`);
    q.head += 1;
    queueIds.push(q.id);
    seqs.push(q.head);
  }
  await c.query('INSERT INTO queue_entries (queue_id, seq, message_id, enqueued_at, capacity) SELECT * FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[])', [
    queueIds,
    seqs,
    entries.map((e) => e.messageId),
    entries.map((e) => e.enqueuedAt),
    entries.map((e) => e.capacity),
  ]);
}

/** Every recipient queue the batches fan out to. */
export function queuesOfBatches(batches: AcceptedBatch[]): QueueRef[] {
  return batches.flatMap((b) => b.messages.flatMap((m) => m.recipients.map((recipientDipId) => ({ recipientDipId, channel: m.channel }))));
}

/** The days a write of these batches puts rows in (their partitions must exist first). */
export function daysOfBatches(batches: AcceptedBatch[]): number[] {
  return batches.flatMap((b) => [dayOf(b.receivedAt), ...b.messages.map((m) => dayOf(m.receivedAt))]);
}

/**
 * Writes accepted batches (already checked for duplicates) with their messages and queue entries, inside
 * the caller's transaction, the queues already locked. Returns the channels written.
 */
export async function writeBatches(d: PgDatabase, c: pg.PoolClient, batches: AcceptedBatch[], locked: Map<string, LockedQueue>): Promise<void> {
  if (batches.length === 0) return;
  const batchIds = await takeIds(c, 'batch_ids', batches.map((b) => b.receivedAt));
  // A batch sealed beforehand brings each copy's stored form and MPAN index; the others are sealed here.
  const messages = batches.flatMap((b, i) => b.messages.map((m, j) => ({ m, batchId: batchIds[i]!, sealed: b.sealed ? { outbound: b.sealed.outbound[j]!, mpan: b.sealed.mpan[j] ?? null } : undefined })));
  const messageIds = await takeIds(c, 'message_ids', messages.map(({ m }) => m.receivedAt));
  await c.query(
    'INSERT INTO batches (id, channel, sender_dip_id, received_at, raw, signature) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bytea[], $6::text[])',
    [
      batchIds,
      batches.map((b) => b.channel),
      batches.map((b) => b.senderDipId),
      batches.map((b) => b.receivedAt),
      batches.map((b) => storedForm(b.sealed?.raw ?? sealRawRequest(b, d.sealer)).bytes),
      batches.map((b) => b.signatureHeaders),
    ],
  );
  await insertMessages(
    d,
    c,
    messages.map(({ m, batchId, sealed }, i) => ({
      id: messageIds[i]!,
      batchId,
      transactionId: m.transactionId,
      channel: m.channel,
      eventCode: m.eventCode,
      senderDipId: m.senderDipId,
      senderRole: m.senderRole,
      senderRef: m.senderUniqueReference,
      correlationId: m.correlationId,
      mpan: sealed ? sealed.mpan : m.mpan === null ? null : d.sealer.index(m.mpan),
      receivedAt: m.receivedAt,
      replayOf: null,
      outbound: m.outbound,
      securityPattern: m.securityPattern ?? null,
      ...(sealed ? { stored: sealed.outbound } : {}),
    })),
  );
  await insertEntries(
    c,
    locked,
    messages.flatMap(({ m }, i) =>
      m.recipients.map((recipientDipId) => ({ queue: { recipientDipId, channel: m.channel }, messageId: messageIds[i]!, enqueuedAt: null, capacity: m.capacities?.[recipientDipId] ?? null })),
    ),
  );
  await d.noteChannels(c, [...new Set(batches.flatMap((b) => b.messages.map((m) => m.channel)))]);
}
