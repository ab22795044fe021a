import type { Archive, ArchivedMessage, ArchiveQuery, MpanArchivedMessage, MpanArchiveQuery, DeliveryAttempt, ReceivedRequest, RecordedAttempt, TransactionParties } from '../../ports/archive.js';
import type { QueueRef } from '../../ports/message-log.js';
import { archivedCopy, FIRST_ENTRY_ONLY, mpanIndexed, openedOrNull, partiesOf, sentOrQueuedTo, type StoredParties } from '../archive-sql.js';
import { openReceivedRequest, type StoredRequest } from '../../security/seal-batch.js';
import { damaged, type PgDatabase } from './database.js';
import { ARCHIVE_TABLES, dayBase, dayOf, dayStart, daysOf, dropDay, partitionName } from './partitions.js';
import { withConnection } from './pool.js';

/**
 * The archive and delivery journal on PostgreSQL: replay, audit and report queries, and retention. Whole
 * days past retention are detached and dropped (purgeDays); purgeArchive deletes rows only for channels
 * kept shorter than the longest retention.
 */
/**
 * An MPAN's archived consumption that a party may view, a page after an id (Archive.findForMpan). Served by
 * messages_mpan: the index's condition is in the query as written (mpanIndexed), the requested channels within it.
 */
export const FIND_FOR_MPAN = `SELECT m.id, m.transaction_id AS "transactionId", m.channel, m.event_code AS "eventCode", m.sender_dip_id AS "senderDipId",
              m.sender_role AS "senderRole", m.correlation_id AS "correlationId", m.received_at AS "receivedAt", m.outbound, m.sealed
         FROM messages m
        WHERE m.mpan = $2 AND ${mpanIndexed('m.')} AND m.channel = ANY($1::text[]) AND m.id > $3 AND ${sentOrQueuedTo('$5')}
        ORDER BY m.id LIMIT $4`;

export class PgArchive implements Archive {
  constructor(private readonly d: PgDatabase) {}

  async findArchived(query: ArchiveQuery): Promise<ArchivedMessage[]> {
    const found = await this.archiveWhere(query);
    if (!found) return [];
    const { where, args } = found;
    args.push(query.limit);
    const rows = await this.d.query<Omit<ArchivedMessage, 'outbound'> & { outbound: Buffer; sealed: boolean }>(
      `SELECT m.id, e.seq, m.transaction_id AS "transactionId", m.channel, m.event_code AS "eventCode", m.sender_dip_id AS "senderDipId",
              m.sender_role AS "senderRole", m.correlation_id AS "correlationId", m.received_at AS "receivedAt", m.outbound, m.sealed, e.capacity,
              m.security_pattern AS "securityPattern"
         FROM queue_entries e JOIN messages m ON m.id = e.message_id
        WHERE ${where} ORDER BY e.seq LIMIT $${args.length}`,
      args,
    );
    return rows.map(({ sealed, outbound, ...r }) => ({ ...r, ...archivedCopy(() => this.d.reveal(outbound, sealed, r.transactionId)) }));
  }

  async findForMpan(query: MpanArchiveQuery): Promise<MpanArchivedMessage[]> {
    if (query.channels.length === 0) return [];
    const rows = await this.d.query<Omit<MpanArchivedMessage, 'outbound'> & { outbound: Buffer; sealed: boolean }>(
      FIND_FOR_MPAN,
      [[...query.channels], this.d.sealer.index(query.mpan), query.afterId, query.limit, query.party],
    );
    return rows.map(({ sealed, outbound, ...r }) => ({ ...r, outbound: openedOrNull(() => this.d.reveal(outbound, sealed, r.transactionId)) }));
  }

  async countArchived(query: Omit<ArchiveQuery, 'limit'>): Promise<number> {
    const found = await this.archiveWhere(query);
    if (!found) return 0;
    const [row] = await this.d.query<{ n: string }>(`SELECT COUNT(*) AS n FROM queue_entries e JOIN messages m ON m.id = e.message_id WHERE ${found.where}`, found.args);
    return Number(row?.n ?? 0);
  }

  /** The conditions findArchived and countArchived share; undefined when the recipient has no queue on the channel. */
  private async archiveWhere(query: Omit<ArchiveQuery, 'limit'>): Promise<{ where: string; args: unknown[] } | undefined> {
    const queueId = await this.d.queueId({ recipientDipId: query.recipientDipId, channel: query.channel });
    if (queueId === undefined) return undefined;
    const args: unknown[] = [queueId];
    const where = ['e.queue_id = $1', 'm.replay_of IS NULL', FIRST_ENTRY_ONLY];
    const add = (clause: string, value: unknown) => {
      args.push(value);
      where.push(clause.replaceAll('?', `$${args.length}`));
    };
    // Time bounds also bound the message ids, so only the days asked for are read.
    if (query.fromMs !== undefined) {
      add('m.received_at >= ?', query.fromMs);
      add('e.message_id >= ?', dayBase(dayOf(query.fromMs)));
    }
    if (query.toMs !== undefined) {
      add('m.received_at <= ?', query.toMs);
      // An open end (a replay's null datetimeTo is Number.MAX_SAFE_INTEGER) lies past every id a bigint
      // holds: no id bound then, rather than a parameter PostgreSQL refuses.
      const upTo = dayBase(dayOf(query.toMs) + 1);
      if (Number.isSafeInteger(upTo)) add('e.message_id < ?', upTo);
    }
    if (query.eventCode !== undefined) add('m.event_code = ?', query.eventCode);
    if (query.mpan !== undefined) add('m.mpan = ?', this.d.sealer.index(query.mpan));
    if (query.transactionIds !== undefined) add('m.transaction_id = ANY(?::text[])', query.transactionIds);
    if (query.afterSeq !== undefined) add('e.seq > ?', query.afterSeq);
    if (query.upToSeq !== undefined) add('e.seq <= ?', query.upToSeq);
    return { where: where.join(' AND '), args };
  }

  async transactionParties(transactionId: string): Promise<TransactionParties | undefined> {
    const [m] = await this.d.query<StoredParties>(
      `SELECT m.id, m.replay_of AS "replayOfId", m.replay_for AS "replayFor", o.transaction_id AS "replayOf", m.sender_dip_id AS "senderDipId", m.channel,
              COALESCE(m.sender_ref, o.sender_ref) AS "senderUniqueReference", m.correlation_id AS "correlationId"
         FROM messages m LEFT JOIN messages o ON o.id = m.replay_of WHERE m.transaction_id = $1 LIMIT 1`,
      [transactionId],
    );
    if (!m) return undefined;
    const recipients = m.replayFor === null ? await this.d.query<{ r: string }>(
      'SELECT DISTINCT q.recipient_dip_id AS r FROM queue_entries e JOIN queues q ON q.id = e.queue_id WHERE e.message_id IN ($1, $2)',
      [m.id, m.replayOfId ?? m.id],
    ) : [];
    return partiesOf(m, recipients.map((r) => r.r));
  }

  async receivedRequest(transactionId: string): Promise<ReceivedRequest | undefined> {
    const [row] = await this.d.query<StoredRequest>(
      `SELECT b.channel, b.sender_dip_id AS "senderDipId", b.received_at AS "receivedAt", b.raw, b.signature
         FROM messages m JOIN batches b ON b.id = m.batch_id WHERE m.transaction_id = $1 LIMIT 1`,
      [transactionId],
    );
    return row ? openReceivedRequest(row, this.d.sealer) : undefined;
  }

  async recordAttempt(a: DeliveryAttempt): Promise<void> {
    const id = await this.d.queueId(a.queue);
    if (id === undefined) throw damaged(`no queue for ${a.queue.recipientDipId} on ${a.queue.channel}`);
    await this.d.tx(
      (c) =>
        c.query(
          // A record already stored under its attempt ID is a retry of a write that went through: kept as it is.
          `INSERT INTO delivery_attempts (attempt_id, queue_id, first_seq, last_seq, url, started_at, latency_ms, status, verdict, error)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (attempt_id, started_at) DO NOTHING`,
          [a.attemptId, id, a.firstSeq, a.lastSeq, a.url, a.startedAt, Math.round(a.latencyMs), a.status, a.verdict, a.error],
        ),
      [dayOf(a.startedAt)],
    );
  }

  async attempts(queue: QueueRef, limit: number): Promise<RecordedAttempt[]> {
    const id = await this.d.queueId(queue);
    if (id === undefined) return [];
    const rows = await this.d.query<Omit<RecordedAttempt, 'queue'>>(
      `SELECT attempt_id AS "attemptId", first_seq AS "firstSeq", last_seq AS "lastSeq", url, started_at AS "startedAt", latency_ms AS "latencyMs", status, verdict, error
         FROM delivery_attempts WHERE queue_id = $1 ORDER BY id DESC LIMIT $2`,
      [id, limit],
    );
    return rows.map((r) => ({ ...r, queue }));
  }

  async archivedChannels(): Promise<string[]> {
    return (await this.d.query<{ channel: string }>('SELECT channel FROM archived_channels ORDER BY channel')).map((r) => r.channel);
  }

  async purgeArchive(channel: string, beforeMs: number, limit: number): Promise<number> {
    return this.d.tx(async (c) => {
      const { rows } = await c.query<{ id: number }>(
        `SELECT m.id FROM messages m WHERE m.channel = $1 AND m.received_at < $2
            AND NOT EXISTS (SELECT 1 FROM queue_entries e JOIN queues q ON q.id = e.queue_id WHERE e.message_id = m.id AND e.seq > q.acked_seq)
          ORDER BY m.received_at LIMIT $3 FOR UPDATE OF m SKIP LOCKED`,
        [channel, beforeMs, limit],
      );
      const ids = rows.map((r) => r.id);
      if (ids.length > 0) {
        await c.query('DELETE FROM queue_entries WHERE message_id = ANY($1::bigint[])', [ids]);
        await c.query('DELETE FROM dead_letters WHERE message_id = ANY($1::bigint[])', [ids]);
        await c.query('DELETE FROM messages WHERE id = ANY($1::bigint[])', [ids]);
      }
      await c.query(
        `DELETE FROM batches WHERE id IN (SELECT b.id FROM batches b WHERE b.channel = $1 AND b.received_at < $2
            AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.batch_id = b.id) LIMIT $3)`,
        [channel, beforeMs, limit],
      );
      return ids.length;
    });
  }

  /**
   * Detaches and drops every whole day of the archive before `beforeMs` that no queue still waits on
   * (an unsettled entry, e.g. a requeued dead letter, keeps its day). Returns about how many messages went
   * (the planner's row estimate: counting would read the day).
   */
  async purgeDays(beforeMs: number): Promise<number> {
    let dropped = 0;
    // As the owner: only it may detach a partition (roles.ts).
    await withConnection(this.d.ownerPool, async (client) => {
      for (const day of await daysOf(client, 'messages')) {
        if (dayStart(day + 1) > beforeMs) break;
        const waiting = await client.query(
          `SELECT 1 FROM queues q WHERE EXISTS (SELECT 1 FROM queue_entries e WHERE e.queue_id = q.id AND e.seq > q.acked_seq
              AND e.message_id >= $1 AND e.message_id < $2) LIMIT 1`,
          [dayBase(day), dayBase(day + 1)],
        );
        if (waiting.rowCount) continue;
        const estimate = await client.query<{ n: number }>('SELECT greatest(reltuples, 0)::bigint AS n FROM pg_class WHERE relname = $1', [partitionName('messages', day)]);
        await client.query('DELETE FROM dead_letters WHERE message_id >= $1 AND message_id < $2', [dayBase(day), dayBase(day + 1)]);
        await dropDay(client, ARCHIVE_TABLES, day);
        this.d.forgetDay(day);
        dropped += estimate.rows[0]?.n ?? 0;
      }
    });
    return dropped;
  }

  async purgeAttempts(beforeMs: number, limit: number): Promise<number> {
    await withConnection(this.d.ownerPool, async (client) => {
      for (const day of await daysOf(client, 'delivery_attempts')) {
        if (dayStart(day + 1) > beforeMs) break;
        await dropDay(client, ['delivery_attempts'], day);
        this.d.forgetDay(day);
      }
    });
    return this.d.tx(async (c) => {
      const r = await c.query('DELETE FROM delivery_attempts WHERE id IN (SELECT id FROM delivery_attempts WHERE started_at < $1 LIMIT $2)', [beforeMs, limit]);
      return r.rowCount ?? 0;
    });
  }
}
