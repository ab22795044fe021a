import type { Archive, ArchivedMessage, ArchiveQuery, MpanArchivedMessage, MpanArchiveQuery, DeliveryAttempt, ReceivedRequest, RecordedAttempt, TransactionParties } from '../../ports/archive.js';
import type { QueueRef } from '../../ports/message-log.js';
import { archivedCopy, FIRST_ENTRY_ONLY, mpanIndexed, openedOrNull, partiesOf, sentOrQueuedTo, type StoredParties } from '../archive-sql.js';
import { openReceivedRequest, type StoredRequest } from '../../security/seal-batch.js';
import { asStored, damaged, type SqliteDatabase, type Stored } from './database.js';

/**
 * An MPAN's archived consumption that a party may view, a page after an id (Archive.findForMpan). Served by
 * messages_mpan: the index's condition is in the query as written (mpanIndexed), the requested channels within it.
 */
export const FIND_FOR_MPAN = `SELECT m.id AS id, m.transaction_id AS transactionId, m.channel AS channel, m.event_code AS eventCode,
       m.sender_dip_id AS senderDipId, m.sender_role AS senderRole, m.correlation_id AS correlationId,
       m.received_at AS receivedAt, m.outbound AS outbound
  FROM messages m
 WHERE m.mpan = @mpan AND ${mpanIndexed('m.')} AND m.channel IN (SELECT value FROM json_each(@channels)) AND m.id > @afterId
   AND ${sentOrQueuedTo('@party')}
 ORDER BY m.id LIMIT @limit`;

export class SqliteArchive implements Archive {
  private readonly s;

  constructor(private readonly d: SqliteDatabase) {
    const db = d.db;
    this.s = {
      insertAttempt: db.prepare(
        // A record already stored under its attempt ID is a retry of a write that went through: kept as it is.
        `INSERT INTO delivery_attempts (attempt_id, queue_id, first_seq, last_seq, url, started_at, latency_ms, status, verdict, error)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (attempt_id) WHERE attempt_id IS NOT NULL DO NOTHING`,
      ),
      attempts: db.prepare<[number, number], Omit<RecordedAttempt, 'queue'>>(
        `SELECT attempt_id AS attemptId, first_seq AS firstSeq, last_seq AS lastSeq, url, started_at AS startedAt, latency_ms AS latencyMs, status, verdict, error
           FROM delivery_attempts WHERE queue_id = ? ORDER BY id DESC LIMIT ?`,
      ),
      transaction: db.prepare<[string], StoredParties>(
        `SELECT m.id AS id, m.replay_of AS replayOfId, m.replay_for AS replayFor, o.transaction_id AS replayOf, m.sender_dip_id AS senderDipId, m.channel AS channel,
                COALESCE(m.sender_ref, o.sender_ref) AS senderUniqueReference, m.correlation_id AS correlationId
           FROM messages m LEFT JOIN messages o ON o.id = m.replay_of WHERE m.transaction_id = ?`,
      ),
      request: db.prepare<[string], StoredRequest>(
        `SELECT b.channel AS channel, b.sender_dip_id AS senderDipId, b.received_at AS receivedAt, b.raw AS raw, b.signature AS signature
           FROM messages m JOIN batches b ON b.id = m.batch_id WHERE m.transaction_id = ?`,
      ),
      recipientsOf: db.prepare<[number, number], { recipient: string }>(
        'SELECT DISTINCT q.recipient_dip_id AS recipient FROM queue_entries e JOIN queues q ON q.id = e.queue_id WHERE e.message_id IN (?, ?)',
      ),
      purgeable: db.prepare<[string, number, number], { id: number }>(
        `SELECT m.id AS id FROM messages m WHERE m.channel = ? AND m.received_at < ?
            AND NOT EXISTS (SELECT 1 FROM queue_entries e JOIN queues q ON q.id = e.queue_id
                             WHERE e.message_id = m.id AND e.seq > q.acked_seq)
          ORDER BY m.received_at LIMIT ?`,
      ),
      deleteEntriesOf: db.prepare('DELETE FROM queue_entries WHERE message_id = ?'),
      deleteDeadLettersOf: db.prepare('DELETE FROM dead_letters WHERE message_id = ?'),
      deleteMessage: db.prepare('DELETE FROM messages WHERE id = ?'),
      deleteOldBatches: db.prepare(
        `DELETE FROM batches WHERE rowid IN (SELECT b.id FROM batches b WHERE b.channel = ? AND b.received_at < ?
            AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.batch_id = b.id) LIMIT ?)`,
      ),
      deleteOldAttempts: db.prepare('DELETE FROM delivery_attempts WHERE id IN (SELECT id FROM delivery_attempts WHERE started_at < ? LIMIT ?)'),
      channels: db.prepare<[], { channel: string }>('SELECT DISTINCT channel FROM messages'),
    };
  }

  async findArchived(query: ArchiveQuery): Promise<ArchivedMessage[]> {
    const { where, args } = this.archiveWhere(query);
    const rows = this.d.db
      .prepare<unknown[], Omit<ArchivedMessage, 'outbound'> & { outbound: Stored }>(
        `SELECT m.id AS id, e.seq AS seq, m.transaction_id AS transactionId, m.channel AS channel, m.event_code AS eventCode,
                m.sender_dip_id AS senderDipId, m.sender_role AS senderRole, m.correlation_id AS correlationId,
                m.received_at AS receivedAt, m.outbound AS outbound, e.capacity AS capacity, m.security_pattern AS securityPattern
           FROM queue_entries e JOIN queues q ON q.id = e.queue_id JOIN messages m ON m.id = e.message_id
          WHERE ${where} ORDER BY e.seq LIMIT ?`,
      )
      .all(...args, query.limit);
    return rows.map((r) => ({ ...r, ...archivedCopy(() => this.d.reveal(r.outbound, r.transactionId)) }));
  }

  async findForMpan(query: MpanArchiveQuery): Promise<MpanArchivedMessage[]> {
    if (query.channels.length === 0) return [];
    // On the reader thread, off the writer's connection.
    const [rows] = (await this.d.reads.read([
      {
        sql: FIND_FOR_MPAN,
        params: { channels: JSON.stringify(query.channels), mpan: this.d.sealer.index(query.mpan), party: query.party, afterId: query.afterId, limit: query.limit },
      },
    ])) as [Array<Omit<MpanArchivedMessage, 'outbound'> & { outbound: Stored | Uint8Array }>];
    return rows.map((r) => ({ ...r, outbound: openedOrNull(() => this.d.reveal(asStored(r.outbound), r.transactionId)) }));
  }

  async countArchived(query: Omit<ArchiveQuery, 'limit'>): Promise<number> {
    const { where, args } = this.archiveWhere(query);
    const row = this.d.db
      .prepare<unknown[], { n: number }>(
        `SELECT COUNT(*) AS n FROM queue_entries e JOIN queues q ON q.id = e.queue_id JOIN messages m ON m.id = e.message_id WHERE ${where}`,
      )
      .get(...args);
    return row?.n ?? 0;
  }

  /** The conditions findArchived and countArchived share. */
  private archiveWhere(query: Omit<ArchiveQuery, 'limit'>): { where: string; args: Array<string | number> } {
    const where = ['q.recipient_dip_id = ?', 'q.channel = ?'];
    const args: Array<string | number> = [query.recipientDipId, query.channel];
    const add = (clause: string, ...values: Array<string | number>) => {
      where.push(clause);
      args.push(...values);
    };
    if (query.fromMs !== undefined) add('m.received_at >= ?', query.fromMs);
    if (query.toMs !== undefined) add('m.received_at <= ?', query.toMs);
    if (query.eventCode !== undefined) add('m.event_code = ?', query.eventCode);
    if (query.mpan !== undefined) add('m.mpan = ?', this.d.sealer.index(query.mpan));
    if (query.transactionIds !== undefined) add(`m.transaction_id IN (${query.transactionIds.map(() => '?').join(',') || 'NULL'})`, ...query.transactionIds);
    if (query.afterSeq !== undefined) add('e.seq > ?', query.afterSeq);
    if (query.upToSeq !== undefined) add('e.seq <= ?', query.upToSeq);
    where.push('m.replay_of IS NULL', FIRST_ENTRY_ONLY);
    return { where: where.join(' AND '), args };
  }

  async transactionParties(transactionId: string): Promise<TransactionParties | undefined> {
    const m = this.s.transaction.get(transactionId);
    if (!m) return undefined;
    return partiesOf(m, m.replayFor === null ? this.s.recipientsOf.all(m.id, m.replayOfId ?? m.id).map((r) => r.recipient) : []);
  }

  async receivedRequest(transactionId: string): Promise<ReceivedRequest | undefined> {
    const row = this.s.request.get(transactionId);
    return row ? openReceivedRequest(row, this.d.sealer) : undefined;
  }

  recordAttempt(a: DeliveryAttempt): Promise<void> {
    return this.d.write(() => {
      const q = this.d.queueRow(a.queue.recipientDipId, a.queue.channel, false);
      if (!q) throw damaged(`no queue for ${a.queue.recipientDipId} on ${a.queue.channel}`);
      this.s.insertAttempt.run(a.attemptId, q.id, a.firstSeq, a.lastSeq, a.url, a.startedAt, Math.round(a.latencyMs), a.status, a.verdict, a.error);
    });
  }

  async attempts(queue: QueueRef, limit: number): Promise<RecordedAttempt[]> {
    const q = this.d.queueRow(queue.recipientDipId, queue.channel, false);
    if (!q) return [];
    return this.s.attempts.all(q.id, limit).map((r) => ({ ...r, queue }));
  }

  async archivedChannels(): Promise<string[]> {
    return this.s.channels.all().map((r) => r.channel);
  }

  purgeArchive(channel: string, beforeMs: number, limit: number): Promise<number> {
    return this.d.write(() => {
      const ids = this.s.purgeable.all(channel, beforeMs, limit);
      for (const { id } of ids) {
        this.s.deleteEntriesOf.run(id);
        this.s.deleteDeadLettersOf.run(id);
        this.s.deleteMessage.run(id);
      }
      this.s.deleteOldBatches.run(channel, beforeMs, limit);
      return ids.length;
    });
  }

  /** One file, no partitions: purgeArchive deletes row by row. */
  async purgeDays(): Promise<number> {
    return 0;
  }

  purgeAttempts(beforeMs: number, limit: number): Promise<number> {
    return this.d.write(() => this.s.deleteOldAttempts.run(beforeMs, limit).changes);
  }
}
