import Database from 'better-sqlite3';
import { closeSync, fdatasync, mkdirSync, openSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';
import { dirname } from 'node:path';
import { applyChange, isSlot, type Appointment, type AppointmentChange } from '../../domain/mpan-lookup.js';
import type { Participant } from '../../domain/participant.js';
import type {
  AcceptedBatch,
  AppendOutcome,
  ArchivedMessage,
  ArchiveQuery,
  DeadLetter,
  DeadLetterQuery,
  DeadLetterReason,
  DeliveryAttempt,
  QueueEntry,
  QueueRef,
  QueueState,
  ReplayCopy,
  Store,
  TransactionParties,
  Webhook,
} from '../../ports/store.js';
import type { DataKeyStore } from '../../security/at-rest.js';
import { GroupCommit } from './group-commit.js';
import { SCHEMA } from './schema.js';

/** A stored payload: sealed (BLOB) when written with encryption at rest, text when written without. */
type Stored = string | Buffer;

/** How payloads are written: sealed by the at-rest Sealer, or (tests of other concerns) as they are. */
export interface ValueSealer {
  seal(plain: Buffer | string): Buffer | string;
  open(sealed: Buffer): Buffer;
  /** What is stored in place of a searchable personal value (the MPAN): equal inputs, equal outputs. */
  index(value: string): string;
}

const PLAIN: ValueSealer = {
  seal: (plain) => plain,
  open: (sealed) => sealed,
  index: (value) => value,
};

/** About 5 s of traffic at 2,000 IF-021/s (~45 MB): long enough for every recipient's first read. */
const RECENT_MESSAGES = 10_000;

interface QueueRow {
  id: number;
  head: number;
}

const queueKey = (recipient: string, channel: string): string => `${recipient}\u0000${channel}`;

/**
 * The embedded store: one SQLite file in WAL mode; a resolved write has been fsync'd (see GroupCommit). Writes go through group commit (one transaction per event-loop turn); reads are direct.
 * A recipient queue is a tiny (queue, seq) → message index over the single message log: fan-out to
 * four recipients costs four 3-integer rows, not four copies of the message.
 */
export class SqliteStore implements Store, DataKeyStore {
  private sealer: ValueSealer = PLAIN;
  private readonly walFd: number | null;
  private readonly db: Database.Database;
  private readonly writes: GroupCommit;
  /** Queue id and last sequence number per (recipient, channel); dropped when a group commit rolls back. */
  private queues = new Map<string, QueueRow>();
  /**
   * The most recently appended messages: a message is read once per recipient within moments of its
   * arrival, so delivery takes it from here rather than from disk through the at-rest cipher each time.
   */
  private recent = new Map<number, Omit<QueueEntry, 'seq' | 'messageId'>>();
  /**
   * Per queue, the last position whose write has been synced to disk in this process. A group is visible
   * to readers once committed, but its fdatasync runs on the thread pool: nothing past these heads is
   * handed to a recipient until it is durable. Queues absent here have nothing unsynced (all from disk).
   */
  private durableHeads = new Map<number, number>();
  private readonly s;

  constructor(file: string) {
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // NORMAL: COMMIT writes the WAL but does not fsync it on the event loop; GroupCommit then syncs the
    // WAL file on the thread pool before it acknowledges anything (checkpoints still sync as ever).
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 10000');
    this.db.exec(SCHEMA);
    migrate(this.db);
    // SQLite deletes the -wal file only when its last connection closes: this one stays open for the
    // store's lifetime, so the descriptor keeps naming the live WAL.
    this.walFd = file === ':memory:' ? null : openSync(`${file}-wal`, 'r');
    const walFd = this.walFd;
    this.writes = new GroupCommit(
      this.db,
      () => {
        this.queues.clear();
        this.recent.clear();
      },
      walFd === null ? undefined : (done) => fdatasync(walFd, (err) => done(err)),
    );
    const db = this.db;
    this.s = {
      refSeen: db.prepare<[string, string], { n: number }>(
        'SELECT 1 AS n FROM messages WHERE sender_dip_id = ? AND sender_ref = ?',
      ),
      insertBatch: db.prepare(
        'INSERT INTO batches (channel, sender_dip_id, received_at, raw, signature) VALUES (?, ?, ?, ?, ?)',
      ),
      insertMessage: db.prepare(
        `INSERT INTO messages (batch_id, transaction_id, channel, event_code, sender_dip_id, sender_role, sender_ref,
           correlation_id, mpan, received_at, replay_of, outbound) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      findQueue: db.prepare<[string, string], { id: number; head: number | null }>(
        // Purging removes settled entries only (seq <= acked_seq), so the head is the larger of the two.
        `SELECT q.id AS id, max(coalesce((SELECT max(seq) FROM queue_entries e WHERE e.queue_id = q.id), 0), q.acked_seq) AS head
           FROM queues q WHERE recipient_dip_id = ? AND channel = ?`,
      ),
      insertQueue: db.prepare('INSERT INTO queues (recipient_dip_id, channel) VALUES (?, ?)'),
      insertEntry: db.prepare('INSERT INTO queue_entries (queue_id, seq, message_id) VALUES (?, ?, ?)'),
      insertRequeuedEntry: db.prepare('INSERT INTO queue_entries (queue_id, seq, message_id, enqueued_at) VALUES (?, ?, ?, ?)'),
      readEntries: db.prepare<[number, number, number], { seq: number; messageId: number; enqueuedAt: number | null }>(
        'SELECT seq, message_id AS messageId, enqueued_at AS enqueuedAt FROM queue_entries WHERE queue_id = ? AND seq > ? ORDER BY seq LIMIT ?',
      ),
      messageById: db.prepare<[number], { transactionId: string; receivedAt: number; outbound: Stored }>(
        'SELECT transaction_id AS transactionId, received_at AS receivedAt, outbound FROM messages WHERE id = ?',
      ),
      ackedSeq: db.prepare<[number], { acked: number }>('SELECT acked_seq AS acked FROM queues WHERE id = ?'),
      ack: db.prepare('UPDATE queues SET acked_seq = max(acked_seq, ?) WHERE id = ?'),
      pending: db.prepare<[], { recipient: string; channel: string }>(
        `SELECT q.recipient_dip_id AS recipient, q.channel AS channel FROM queues q
          WHERE EXISTS (SELECT 1 FROM queue_entries e WHERE e.queue_id = q.id AND e.seq > q.acked_seq)`,
      ),
      insertAttempt: db.prepare(
        `INSERT INTO delivery_attempts (queue_id, first_seq, last_seq, url, started_at, latency_ms, status, verdict, error)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      attempts: db.prepare<[number, number], { firstSeq: number; lastSeq: number; url: string; startedAt: number; latencyMs: number; status: number | null; verdict: DeliveryAttempt['verdict']; error: string | null }>(
        `SELECT first_seq AS firstSeq, last_seq AS lastSeq, url, started_at AS startedAt, latency_ms AS latencyMs, status, verdict, error
           FROM delivery_attempts WHERE queue_id = ? ORDER BY id DESC LIMIT ?`,
      ),
      insertDeadLetter: db.prepare(
        'INSERT OR REPLACE INTO dead_letters (queue_id, seq, message_id, reason, status, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      deadLetterMessage: db.prepare<[number, number], { messageId: number }>(
        "SELECT message_id AS messageId FROM dead_letters WHERE queue_id = ? AND seq = ? AND state = 'dead'",
      ),
      setDeadLetterState: db.prepare("UPDATE dead_letters SET state = ? WHERE queue_id = ? AND seq = ? AND state = 'dead'"),
      transaction: db.prepare<[string], { id: number; senderDipId: string; channel: string; senderUniqueReference: string | null; correlationId: string | null }>(
        `SELECT id, sender_dip_id AS senderDipId, channel, sender_ref AS senderUniqueReference, correlation_id AS correlationId
           FROM messages WHERE transaction_id = ?`,
      ),
      recipientsOf: db.prepare<[number], { recipient: string }>(
        'SELECT DISTINCT q.recipient_dip_id AS recipient FROM queue_entries e JOIN queues q ON q.id = e.queue_id WHERE e.message_id = ?',
      ),
      upsertParticipant: db.prepare(
        `INSERT INTO participants (dip_id, roles, organisation, certificate_pem, certificate_fingerprint, api_key_hash, created_at, connection_provider,
                                   previous_certificate_pem, previous_certificate_fingerprint, previous_valid_until)
         VALUES (@dipId, @roles, @organisation, @certificatePem, @certificateFingerprint, @apiKeyHash, @createdAt, @connectionProvider,
                 @previousCertificatePem, @previousCertificateFingerprint, @previousValidUntil)
         ON CONFLICT (dip_id) DO UPDATE SET roles = excluded.roles, organisation = excluded.organisation,
           connection_provider = excluded.connection_provider,
           certificate_pem = excluded.certificate_pem, certificate_fingerprint = excluded.certificate_fingerprint,
           previous_certificate_pem = excluded.previous_certificate_pem,
           previous_certificate_fingerprint = excluded.previous_certificate_fingerprint,
           previous_valid_until = excluded.previous_valid_until,
           api_key_hash = coalesce(@newApiKeyHash, participants.api_key_hash)`,
      ),
      participants: db.prepare<[], ParticipantRow>(
        `SELECT dip_id AS dipId, roles, organisation, certificate_pem AS certificatePem, certificate_fingerprint AS certificateFingerprint,
                api_key_hash AS apiKeyHash, created_at AS createdAt, connection_provider AS connectionProvider,
                previous_certificate_pem AS previousCertificatePem, previous_certificate_fingerprint AS previousCertificateFingerprint,
                previous_valid_until AS previousValidUntil FROM participants ORDER BY dip_id`,
      ),
      mpanHistory: db.prepare<[string], { mpan: string; slot: string; dipId: string; fromMs: number; toMs: number | null }>(
        'SELECT mpan, slot, dip_id AS dipId, from_ms AS fromMs, to_ms AS toMs FROM mpan_appointments WHERE mpan = ? ORDER BY slot, from_ms',
      ),
      deleteSlot: db.prepare('DELETE FROM mpan_appointments WHERE mpan = ? AND slot = ?'),
      insertAppointment: db.prepare('INSERT INTO mpan_appointments (mpan, slot, from_ms, to_ms, dip_id) VALUES (?, ?, ?, ?, ?)'),
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
      dataKeys: db.prepare<[], { id: number; wrapped: Buffer }>('SELECT id, wrapped FROM data_keys ORDER BY id'),
      addDataKey: db.prepare('INSERT INTO data_keys (wrapped, created_at) VALUES (?, ?)'),
      bumpVersion: db.prepare('UPDATE registry_version SET version = version + 1 WHERE id = 1'),
      version: db.prepare<[], { version: number }>('SELECT version FROM registry_version WHERE id = 1'),
      putWebhook: db.prepare(
        `INSERT INTO webhooks (recipient_dip_id, channel, url, max_message_count, max_payload_kb) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (recipient_dip_id, channel) DO UPDATE SET url = excluded.url,
           max_message_count = excluded.max_message_count, max_payload_kb = excluded.max_payload_kb`,
      ),
      deleteWebhook: db.prepare('DELETE FROM webhooks WHERE recipient_dip_id = ? AND channel = ?'),
      webhooks: db.prepare<[], Webhook>(
        `SELECT recipient_dip_id AS recipientDipId, channel, url, max_message_count AS maxMessageCount,
                max_payload_kb AS maxPayloadKb FROM webhooks`,
      ),
    };
  }

  async append(batch: AcceptedBatch): Promise<AppendOutcome> {
    const heads = new Map<string, QueueRow>();
    const outcome = await this.writes.submit((): AppendOutcome => {
      const duplicates = batch.messages
        .map((m) => (m.senderUniqueReference !== null && this.s.refSeen.get(m.senderDipId, m.senderUniqueReference) !== undefined ? m.senderUniqueReference : null))
        .filter((r): r is string => r !== null);
      if (duplicates.length > 0) return { ok: false as const, duplicates };
      const batchId = this.s.insertBatch.run(
        batch.channel,
        batch.senderDipId,
        batch.receivedAt,
        // The raw request is kept for non-repudiation and rarely read: deflated, it costs a fraction of
        // the disk bandwidth (JSON batches shrink 5-50x at level 1 for well under 1 ms per 100 messages).
        this.sealer.seal(deflateRawSync(batch.rawRequest, { level: 1 })),
        batch.signatureHeaders,
      ).lastInsertRowid;
      // Sequence numbers are applied to the cache only once the whole batch is written: a failure part
      // way through rolls back its savepoint and must leave the cached heads untouched.
      const appended: Array<[number, Omit<QueueEntry, 'seq' | 'messageId'>]> = [];
      for (const m of batch.messages) {
        const messageId = this.s.insertMessage.run(
          batchId,
          m.transactionId,
          m.channel,
          m.eventCode,
          m.senderDipId,
          m.senderRole,
          m.senderUniqueReference,
          m.correlationId,
          m.mpan === null ? null : this.sealer.index(m.mpan),
          m.receivedAt,
          null,
          this.sealer.seal(m.outbound),
        ).lastInsertRowid;
        for (const recipient of m.recipients) {
          const q = this.nextSeq(heads, recipient, m.channel);
          this.s.insertEntry.run(q.id, q.head, messageId);
        }
        appended.push([Number(messageId), { transactionId: m.transactionId, receivedAt: m.receivedAt, outbound: m.outbound }]);
      }
      for (const [k, q] of heads) this.queues.set(k, q);
      for (const [id, message] of appended) this.remember(id, message);
      return { ok: true as const };
    });
    this.markDurable(heads);
    return outcome;
  }

  /** Bumps the queue's head in the batch-local map (creating the queue row on first use). */
  private nextSeq(heads: Map<string, QueueRow>, recipient: string, channel: string): QueueRow {
    const k = queueKey(recipient, channel);
    let q = heads.get(k);
    if (!q) {
      const known = this.queueRow(recipient, channel, true)!;
      q = { id: known.id, head: known.head };
      heads.set(k, q);
    }
    q.head += 1;
    return q;
  }

  private queueRow(recipient: string, channel: string, create: boolean): QueueRow | undefined {
    const k = queueKey(recipient, channel);
    const cached = this.queues.get(k);
    if (cached) return cached;
    const row = this.s.findQueue.get(recipient, channel);
    let q: QueueRow | undefined;
    if (row) q = { id: row.id, head: row.head ?? 0 };
    else if (create) q = { id: Number(this.s.insertQueue.run(recipient, channel).lastInsertRowid), head: 0 };
    // A queue created inside a transaction is cached only by the caller after success.
    if (q && row) this.queues.set(k, q);
    return q;
  }

  async readQueue(queue: QueueRef, afterSeq: number, limit: number, maxBytes: number): Promise<QueueEntry[]> {
    const q = this.queueRow(queue.recipientDipId, queue.channel, false);
    if (!q) return [];
    let bytes = 0;
    const out: QueueEntry[] = [];
    const durable = this.durableHeads.get(q.id) ?? Number.MAX_SAFE_INTEGER;
    for (const e of this.s.readEntries.all(q.id, afterSeq, limit)) {
      if (e.seq > durable) break; // committed, but its disk sync has not reported yet
      const message = this.recent.get(e.messageId) ?? this.loadMessage(e.messageId);
      // Purging removes settled entries with their messages, so this means a damaged database: say so
      // loudly (the queue stops and the error is logged) rather than skip a message silently.
      if (!message) throw new Error(`queue ${queue.recipientDipId}/${queue.channel} position ${e.seq} refers to message ${e.messageId}, which is missing`);
      bytes += message.outbound.length + 1;
      if (out.length > 0 && bytes > maxBytes) break;
      // A requeued dead letter's staleness clock starts at its requeue.
      out.push({ seq: e.seq, messageId: e.messageId, ...message, receivedAt: e.enqueuedAt ?? message.receivedAt });
    }
    return out;
  }

  async queueState(queue: QueueRef): Promise<QueueState> {
    const q = this.queueRow(queue.recipientDipId, queue.channel, false);
    if (!q) return { ackedSeq: 0, headSeq: 0 };
    return { ackedSeq: this.s.ackedSeq.get(q.id)?.acked ?? 0, headSeq: q.head };
  }

  async pendingQueues(): Promise<QueueRef[]> {
    return this.s.pending.all().map((r) => ({ recipientDipId: r.recipient, channel: r.channel }));
  }

  ack(queue: QueueRef, seq: number): Promise<void> {
    return this.writes.submit(() => {
      const q = this.requireQueue(queue);
      this.s.ack.run(seq, q.id);
    });
  }

  recordAttempt(a: DeliveryAttempt): Promise<void> {
    return this.writes.submit(() => {
      const q = this.requireQueue(a.queue);
      this.s.insertAttempt.run(q.id, a.firstSeq, a.lastSeq, a.url, a.startedAt, Math.round(a.latencyMs), a.status, a.verdict, a.error);
    });
  }

  recordDeadLetter(queue: QueueRef, entry: QueueEntry, reason: DeadLetterReason, status: number | null, detail: string): Promise<void> {
    return this.writes.submit(() => {
      const q = this.requireQueue(queue);
      this.s.insertDeadLetter.run(q.id, entry.seq, entry.messageId, reason, status, detail, Date.now());
    });
  }

  async deadLetters(query: DeadLetterQuery): Promise<DeadLetter[]> {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (query.recipientDipId !== undefined) {
      where.push('q.recipient_dip_id = ?');
      args.push(query.recipientDipId);
    }
    if (query.channel !== undefined) {
      where.push('q.channel = ?');
      args.push(query.channel);
    }
    if (query.state !== undefined) {
      where.push('d.state = ?');
      args.push(query.state);
    }
    args.push(query.limit);
    const rows = this.db
      .prepare<unknown[], Omit<DeadLetter, 'queue'> & { recipient: string; channel: string }>(
        `SELECT q.recipient_dip_id AS recipient, q.channel AS channel, d.seq AS seq, d.message_id AS messageId,
                m.transaction_id AS transactionId, m.sender_dip_id AS senderDipId, m.sender_ref AS senderUniqueReference,
                m.received_at AS receivedAt, d.reason AS reason, d.status AS status, d.detail AS detail, d.at AS at, d.state AS state
           FROM dead_letters d JOIN queues q ON q.id = d.queue_id JOIN messages m ON m.id = d.message_id
          ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY q.id, d.seq LIMIT ?`,
      )
      .all(...args);
    return rows.map(({ recipient, channel, ...rest }) => ({ queue: { recipientDipId: recipient, channel }, ...rest }));
  }

  async requeueDeadLetters(queue: QueueRef, seqs: number[]): Promise<number> {
    const heads = new Map<string, QueueRow>();
    const requeued = await this.writes.submit(() => {
      const q = this.queueRow(queue.recipientDipId, queue.channel, false);
      if (!q) return 0;
      let n = 0;
      for (const seq of [...seqs].sort((a, b) => a - b)) {
        const dead = this.s.deadLetterMessage.get(q.id, seq);
        if (!dead) continue;
        const next = this.nextSeq(heads, queue.recipientDipId, queue.channel);
        this.s.insertRequeuedEntry.run(next.id, next.head, dead.messageId, Date.now());
        this.s.setDeadLetterState.run('requeued', q.id, seq);
        n += 1;
      }
      for (const [k, row] of heads) this.queues.set(k, row);
      return n;
    });
    this.markDurable(heads);
    return requeued;
  }

  discardDeadLetters(queue: QueueRef, seqs: number[]): Promise<number> {
    return this.writes.submit(() => {
      const q = this.queueRow(queue.recipientDipId, queue.channel, false);
      if (!q) return 0;
      return seqs.reduce((n, seq) => n + this.s.setDeadLetterState.run('discarded', q.id, seq).changes, 0);
    });
  }

  async transactionParties(transactionId: string): Promise<TransactionParties | undefined> {
    const m = this.s.transaction.get(transactionId);
    if (!m) return undefined;
    return {
      senderDipId: m.senderDipId,
      channel: m.channel,
      recipients: this.s.recipientsOf.all(m.id).map((r) => r.recipient),
      senderUniqueReference: m.senderUniqueReference,
      correlationId: m.correlationId,
    };
  }

  private requireQueue(queue: QueueRef): QueueRow {
    const q = this.queueRow(queue.recipientDipId, queue.channel, false);
    if (!q) throw new Error(`no queue for ${queue.recipientDipId} on ${queue.channel}`);
    return q;
  }

  async findArchived(query: ArchiveQuery): Promise<ArchivedMessage[]> {
    const where = ['q.recipient_dip_id = ?', 'q.channel = ?'];
    const args: Array<string | number> = [query.recipientDipId, query.channel];
    if (query.fromMs !== undefined) {
      where.push('m.received_at >= ?');
      args.push(query.fromMs);
    }
    if (query.toMs !== undefined) {
      where.push('m.received_at <= ?');
      args.push(query.toMs);
    }
    if (query.eventCode !== undefined) {
      where.push('m.event_code = ?');
      args.push(query.eventCode);
    }
    if (query.mpan !== undefined) {
      where.push('m.mpan = ?');
      args.push(this.sealer.index(query.mpan));
    }
    if (query.transactionIds !== undefined) {
      where.push(`m.transaction_id IN (${query.transactionIds.map(() => '?').join(',') || 'NULL'})`);
      args.push(...query.transactionIds);
    }
    args.push(query.limit);
    const rows = this.db
      .prepare<unknown[], Omit<ArchivedMessage, 'outbound'> & { outbound: Stored }>(
        `SELECT m.id AS id, m.transaction_id AS transactionId, m.channel AS channel, m.event_code AS eventCode,
                m.sender_dip_id AS senderDipId, m.sender_role AS senderRole, m.correlation_id AS correlationId,
                m.received_at AS receivedAt, m.outbound AS outbound
           FROM queue_entries e JOIN queues q ON q.id = e.queue_id JOIN messages m ON m.id = e.message_id
          WHERE ${where.join(' AND ')} ORDER BY e.seq LIMIT ?`,
      )
      .all(...args);
    return rows.map((r) => ({ ...r, outbound: this.reveal(r.outbound) }));
  }

  async appendReplayCopies(copies: ReplayCopy[], enqueueFor?: QueueRef): Promise<void> {
    const heads = new Map<string, QueueRow>();
    await this.writes.submit(() => {
      for (const c of copies) {
        const original = this.db
          .prepare<[number], { channel: string; eventCode: string; senderDipId: string; senderRole: string; correlationId: string | null; mpan: string | null }>(
            `SELECT channel, event_code AS eventCode, sender_dip_id AS senderDipId, sender_role AS senderRole,
                    correlation_id AS correlationId, mpan FROM messages WHERE id = ?`,
          )
          .get(c.originalId);
        if (!original) throw new Error(`replay of unknown message ${c.originalId}`);
        const id = this.s.insertMessage.run(
          null,
          c.transactionId,
          original.channel,
          original.eventCode,
          original.senderDipId,
          original.senderRole,
          null,
          original.correlationId,
          original.mpan,
          c.receivedAt,
          c.originalId,
          this.sealer.seal(c.outbound),
        ).lastInsertRowid;
        if (enqueueFor) {
          const q = this.nextSeq(heads, enqueueFor.recipientDipId, enqueueFor.channel);
          this.s.insertEntry.run(q.id, q.head, id);
        }
      }
      for (const [k, q] of heads) this.queues.set(k, q);
    });
    this.markDurable(heads);
  }

  async attempts(queue: QueueRef, limit: number): Promise<DeliveryAttempt[]> {
    const q = this.queueRow(queue.recipientDipId, queue.channel, false);
    if (!q) return [];
    return this.s.attempts.all(q.id, limit).map((r) => ({ ...r, queue }));
  }

  purgeArchive(channel: string, beforeMs: number, limit: number): Promise<number> {
    return this.writes.submit(() => {
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

  purgeAttempts(beforeMs: number, limit: number): Promise<number> {
    return this.writes.submit(() => this.s.deleteOldAttempts.run(beforeMs, limit).changes);
  }

  async archivedChannels(): Promise<string[]> {
    return this.s.channels.all().map((r) => r.channel);
  }

  upsertParticipant(p: Participant, apiKeyHash: string | null): Promise<void> {
    return this.writes.submit(() => {
      if (apiKeyHash === null && !this.s.participants.all().some((r) => r.dipId === p.dipId)) {
        throw new Error(`participant ${p.dipId} is new: an API key is required`);
      }
      this.s.upsertParticipant.run({
        dipId: p.dipId,
        roles: p.roles.join(','),
        organisation: p.organisation,
        certificatePem: p.certificatePem,
        certificateFingerprint: p.certificateFingerprint,
        apiKeyHash: apiKeyHash ?? '',
        newApiKeyHash: apiKeyHash,
        createdAt: p.createdAt,
        connectionProvider: p.connectionProvider,
        previousCertificatePem: p.previous?.certificatePem ?? null,
        previousCertificateFingerprint: p.previous?.certificateFingerprint ?? null,
        previousValidUntil: p.previous?.validUntil ?? null,
      });
      this.s.bumpVersion.run();
    });
  }

  async participants(): Promise<Array<{ participant: Participant; apiKeyHash: string }>> {
    return this.s.participants.all().map((r) => ({
      participant: {
        dipId: r.dipId,
        roles: r.roles.split(',').filter(Boolean),
        organisation: r.organisation,
        certificatePem: r.certificatePem,
        certificateFingerprint: r.certificateFingerprint,
        createdAt: r.createdAt,
        connectionProvider: r.connectionProvider,
        ...(r.previousCertificatePem !== null && r.previousCertificateFingerprint !== null && r.previousValidUntil !== null
          ? { previous: { certificatePem: r.previousCertificatePem, certificateFingerprint: r.previousCertificateFingerprint, validUntil: r.previousValidUntil } }
          : {}),
      },
      apiKeyHash: r.apiKeyHash,
    }));
  }

  async mpanHistory(mpan: string): Promise<Appointment[]> {
    return this.readHistory(mpan);
  }

  private readHistory(mpan: string): Appointment[] {
    return this.s.mpanHistory.all(mpan).flatMap((r) => (isSlot(r.slot) ? [{ ...r, slot: r.slot }] : []));
  }

  applyAppointments(changes: AppointmentChange[]): Promise<void> {
    return this.writes.submit(() => {
      // Each touched (MPAN, slot) history is read once, folded in memory, and written back once.
      const histories = new Map<string, Appointment[]>();
      for (const c of changes) {
        const k = `${c.mpan}\u0000${c.slot}`;
        const current = histories.get(k) ?? this.readHistory(c.mpan).filter((a) => a.slot === c.slot);
        histories.set(k, applyChange(current, c));
      }
      for (const [k, history] of histories) {
        const [mpan, slot] = k.split('\u0000') as [string, string];
        this.s.deleteSlot.run(mpan, slot);
        for (const a of history) this.s.insertAppointment.run(a.mpan, a.slot, a.fromMs, a.toMs, a.dipId);
      }
    });
  }

  async registryVersion(): Promise<number> {
    return this.s.version.get()?.version ?? 0;
  }

  putWebhook(w: Webhook): Promise<void> {
    return this.writes.submit(() => {
      this.s.putWebhook.run(w.recipientDipId, w.channel, w.url, w.maxMessageCount, w.maxPayloadKb);
      this.s.bumpVersion.run();
    });
  }

  deleteWebhook(recipientDipId: string, channel: string): Promise<boolean> {
    return this.writes.submit(() => {
      const changed = this.s.deleteWebhook.run(recipientDipId, channel).changes > 0;
      if (changed) this.s.bumpVersion.run();
      return changed;
    });
  }

  async webhooks(): Promise<Webhook[]> {
    return this.s.webhooks.all();
  }

  private loadMessage(id: number): Omit<QueueEntry, 'seq' | 'messageId'> | undefined {
    const row = this.s.messageById.get(id);
    return row && { transactionId: row.transactionId, receivedAt: row.receivedAt, outbound: this.reveal(row.outbound) };
  }

  /** Entries up to these heads are on disk: readers may hand them out (see durableHeads). */
  private markDurable(heads: Map<string, QueueRow>): void {
    for (const q of heads.values()) this.durableHeads.set(q.id, Math.max(this.durableHeads.get(q.id) ?? 0, q.head));
  }

  private remember(id: number, message: Omit<QueueEntry, 'seq' | 'messageId'>): void {
    if (this.recent.size >= RECENT_MESSAGES) this.recent.delete(this.recent.keys().next().value!);
    this.recent.set(id, message);
  }

  /** From now on payloads are sealed on write (call before the first write). Reads open either kind. */
  useSealer(sealer: ValueSealer): void {
    this.sealer = sealer;
  }

  private reveal(v: Stored): string {
    return typeof v === 'string' ? v : this.sealer.open(v).toString('utf8');
  }

  dataKeys(): Array<{ id: number; wrapped: Buffer }> {
    return this.s.dataKeys.all();
  }

  addDataKey(wrapped: Buffer): number {
    return Number(this.s.addDataKey.run(wrapped, Date.now()).lastInsertRowid);
  }

  async close(): Promise<void> {
    await this.writes.drain();
    this.db.close();
    if (this.walFd !== null) closeSync(this.walFd);
  }
}

/** Brings a database made by an earlier version up to the current schema. */
function migrate(db: Database.Database): void {
  const columns = db.prepare<[], { name: string }>('PRAGMA table_info(queue_entries)').all();
  if (!columns.some((c) => c.name === 'enqueued_at')) db.exec('ALTER TABLE queue_entries ADD COLUMN enqueued_at INTEGER');
  const participantColumns = db.prepare<[], { name: string }>('PRAGMA table_info(participants)').all();
  if (!participantColumns.some((c) => c.name === 'connection_provider')) db.exec('ALTER TABLE participants ADD COLUMN connection_provider TEXT');
  // Certificate rotation with an overlap: the replaced certificate and the end of its overlap.
  for (const [name, type] of [['previous_certificate_pem', 'TEXT'], ['previous_certificate_fingerprint', 'TEXT'], ['previous_valid_until', 'INTEGER']] as const) {
    if (!participantColumns.some((c) => c.name === name)) db.exec(`ALTER TABLE participants ADD COLUMN ${name} ${type}`);
  }
}

interface ParticipantRow {
  dipId: string;
  roles: string;
  organisation: string;
  certificatePem: string;
  certificateFingerprint: string;
  apiKeyHash: string;
  createdAt: number;
  connectionProvider: string | null;
  previousCertificatePem: string | null;
  previousCertificateFingerprint: string | null;
  previousValidUntil: number | null;
}
