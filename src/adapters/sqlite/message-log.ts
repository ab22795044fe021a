import type Database from 'better-sqlite3';
import { sealOutbound, sealParts } from '../../security/seal-batch.js';
import { headDamage, missingMessage, sameSettlement, settingAsidePassed, toldRecipient, type AcceptedBatch, type AppendOutcome, type MessageLog, type QueueBacklogState, type QueueEntry, type QueueRef, type QueueState, type ReplayCopy, type SettleOutcome, type Settlement } from '../../ports/message-log.js';
import { jobMoved } from '../../ports/errors.js';
import type { JobProgress } from '../../ports/requeue-jobs.js';
import type { SecurityPattern } from '../../domain/channel.js';
import { damaged, type PendingHead, type RecentMessage, type SqliteDatabase, type Stored } from './database.js';
import { openedOrWhy } from '../archive-sql.js';

/**
 * The message log and recipient queues on SQLite. A recipient queue is a tiny (queue, seq) → message
 * index over the single message log: fan-out to four recipients costs four 3-integer rows, not four
 * copies of the message.
 */
export class SqliteMessageLog implements MessageLog {
  private readonly s;
  /** Writes a batch in a savepoint of its own, so a duplicate reference undoes what it had written. */
  private readonly tryWriteBatch: Database.Transaction<(batch: AcceptedBatch) => void>;

  constructor(private readonly d: SqliteDatabase) {
    const db = d.db;
    this.tryWriteBatch = db.transaction((batch: AcceptedBatch) => this.writeBatch(batch));
    this.s = {
      refSeen: db.prepare<[string, string], { transactionId: string }>('SELECT transaction_id AS transactionId FROM messages WHERE sender_dip_id = ? AND sender_ref = ?'),
      insertBatch: db.prepare('INSERT INTO batches (channel, sender_dip_id, received_at, raw, signature) VALUES (?, ?, ?, ?, ?)'),
      insertMessage: db.prepare(
        `INSERT INTO messages (batch_id, transaction_id, channel, event_code, sender_dip_id, sender_role, sender_ref,
           correlation_id, mpan, received_at, replay_of, outbound, security_pattern) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      insertEntry: db.prepare<[number, number, number | bigint, string | null]>('INSERT INTO queue_entries (queue_id, seq, message_id, capacity) VALUES (?, ?, ?, ?)'),
      // The transaction ID (stored before the outbound copy: no overflow page is read) tells whether a
      // cached message is still the one under that id (see readQueue).
      readEntries: db.prepare<[number, number, number], { seq: number; messageId: number; enqueuedAt: number | null; capacity: string | null; transactionId: string | null; securityPattern: SecurityPattern | null }>(
        `SELECT e.seq, e.message_id AS messageId, e.enqueued_at AS enqueuedAt, e.capacity, m.transaction_id AS transactionId, m.security_pattern AS securityPattern
           FROM queue_entries e LEFT JOIN messages m ON m.id = e.message_id WHERE e.queue_id = ? AND e.seq > ? ORDER BY e.seq LIMIT ?`,
      ),
      messageById: db.prepare<[number], { transactionId: string; receivedAt: number; outbound: Stored }>(
        'SELECT transaction_id AS transactionId, received_at AS receivedAt, outbound FROM messages WHERE id = ?',
      ),
      positions: db.prepare<[number], { acked: number; pulled: number }>('SELECT acked_seq AS acked, pulled_seq AS pulled FROM queues WHERE id = ?'),
      // A queue's settled position and its oldest unsettled entry's receipt (as readQueue gives it: a
      // requeued entry's enqueue time), without reading the message itself (queueBacklog).
      // The oldest unsettled entry is read on its own as well, with whether its message is there: the inner
      // join alone passed over one whose message is missing, hiding the damage (see QueueBacklogState.damage).
      backlog: db.prepare<[number], { acked: number; oldest: number | null; firstSeq: number | null; firstMessage: number | null; found: number | null }>(
        `SELECT q.acked_seq AS acked,
                (SELECT coalesce(e.enqueued_at, m.received_at) FROM queue_entries e JOIN messages m ON m.id = e.message_id
                  WHERE e.queue_id = q.id AND e.seq > q.acked_seq ORDER BY e.seq LIMIT 1) AS oldest,
                f.seq AS firstSeq, f.message_id AS firstMessage, (SELECT m.id FROM messages m WHERE m.id = f.message_id) AS found
           FROM queues q
           LEFT JOIN queue_entries f ON f.queue_id = q.id AND f.seq = (SELECT min(seq) FROM queue_entries WHERE queue_id = q.id AND seq > q.acked_seq)
          WHERE q.id = ?`,
      ),
      ack: db.prepare('UPDATE queues SET acked_seq = max(acked_seq, ?) WHERE id = ?'),
      // A delivery (a webhook's, the DIP's own consumer's), or a webhook answer's refusals (toldRecipient):
      // nothing before it is left for a pull's acknowledgement to name.
      delivered: db.prepare<[{ upTo: number; id: number }]>('UPDATE queues SET acked_seq = max(acked_seq, @upTo), told_from = CASE WHEN told_seq < @upTo THEN @upTo ELSE told_from END, told_seq = max(told_seq, @upTo) WHERE id = @id'),
      told: db.prepare<[number], { told: number; from: number }>('SELECT told_seq AS told, told_from AS "from" FROM queues WHERE id = ?'),
      acknowledged: db.prepare<[{ upTo: number; id: number }]>('UPDATE queues SET acked_seq = max(acked_seq, @upTo), told_from = told_seq, told_seq = @upTo WHERE id = @id'),
      pulled: db.prepare('UPDATE queues SET pulled_seq = max(pulled_seq, ?) WHERE id = ?'),
      pending: db.prepare<[], { recipient: string; channel: string }>(
        `SELECT q.recipient_dip_id AS recipient, q.channel AS channel FROM queues q
          WHERE EXISTS (SELECT 1 FROM queue_entries e WHERE e.queue_id = q.id AND e.seq > q.acked_seq)`,
      ),
      // The dead letters already at a settlement's positions: whether a settlement recorded again is its own earlier commit (sameSettlement).
      deadLetterAt: db.prepare<[number, number], { messageId: number }>('SELECT message_id AS messageId FROM dead_letters WHERE queue_id = ? AND seq = ?'),
      insertDeadLetter: db.prepare(
        'INSERT OR IGNORE INTO dead_letters (queue_id, seq, message_id, reason, status, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      replayFor: db.prepare('UPDATE messages SET replay_for = ? WHERE id = ?'),
      // A requeued copy answers its original's dead letter in that queue (DeadLetterRecord: no longer dead).
      requeuedDead: db.prepare("UPDATE dead_letters SET state = 'requeued' WHERE queue_id = ? AND message_id = ? AND state = 'dead'"),
      progress: db.prepare("UPDATE requeue_jobs SET cursor = ?, requeued = requeued + ?, updated_at = ? WHERE id = ? AND state = 'running' AND cursor = ?"),
      original: db.prepare<[number], { channel: string; eventCode: string; senderDipId: string; senderRole: string; correlationId: string | null; mpan: string | null; securityPattern: SecurityPattern | null }>(
        `SELECT channel, event_code AS eventCode, sender_dip_id AS senderDipId, sender_role AS senderRole,
                correlation_id AS correlationId, mpan, security_pattern AS securityPattern FROM messages WHERE id = ?`,
      ),
    };
  }

  async append(batch: AcceptedBatch): Promise<AppendOutcome> {
    return this.d.write((): AppendOutcome => {
      // The unique index on (sender, reference) is the duplicate check: looking each reference up first
      // cost one more index search per message on every batch, for the rare batch that repeats one.
      try {
        this.tryWriteBatch(batch);
        return { ok: true as const };
      } catch (error) {
        if ((error as { code?: unknown }).code !== 'SQLITE_CONSTRAINT_UNIQUE') throw error;
        // Rolled back to before the batch: name every reference stored before, and what it was stored as.
        const found = batch.messages.flatMap((m) => {
          const stored = m.senderUniqueReference === null ? undefined : this.s.refSeen.get(m.senderDipId, m.senderUniqueReference);
          return stored ? [[m.senderUniqueReference!, stored.transactionId] as const] : [];
        });
        // None stored before: the batch repeats a reference (or a transaction ID) within itself.
        if (found.length === 0) throw error;
        return { ok: false as const, duplicates: found.map(([ref]) => ref), originals: Object.fromEntries(found) };
      }
    });
  }

  /** Writes a batch and its queue entries inside the caller's write. */
  private writeBatch(batch: AcceptedBatch): void {
    const heads = new Map<string, PendingHead>();
    const sealed = batch.sealed ?? sealParts(batch, this.d.sealer);
    if (sealed.outbound.length !== batch.messages.length || sealed.mpan.length !== batch.messages.length) {
      throw new Error(`a presealed batch of ${batch.messages.length} messages carries ${sealed.outbound.length} sealed copies and ${sealed.mpan.length} indexed MPANs`);
    }
    const batchId = this.s.insertBatch.run(batch.channel, batch.senderDipId, batch.receivedAt, sealed.raw, batch.signatureHeaders).lastInsertRowid;
    // Heads reach the shared cache only once the whole batch is written: a failure part way through rolls
    // back its savepoint and must leave the cached heads untouched.
    const appended: Array<[number, RecentMessage]> = [];
    for (const [i, m] of batch.messages.entries()) {
      const messageId = this.s.insertMessage.run(
        batchId,
        m.transactionId,
        m.channel,
        m.eventCode,
        m.senderDipId,
        m.senderRole,
        m.senderUniqueReference,
        m.correlationId,
        sealed.mpan[i],
        m.receivedAt,
        null,
        sealed.outbound[i],
        m.securityPattern ?? null,
      ).lastInsertRowid;
      for (const recipient of m.recipients) {
        const q = this.d.nextSeq(heads, recipient, m.channel);
        this.s.insertEntry.run(q.id, q.head, messageId, m.capacities?.[recipient] ?? null);
      }
      appended.push([Number(messageId), { transactionId: m.transactionId, receivedAt: m.receivedAt, outbound: m.outbound }]);
    }
    this.d.publishHeads(heads);
    this.d.remember(appended);
  }

  async readQueue(queue: QueueRef, afterSeq: number, limit: number, maxBytes: number): Promise<QueueEntry[]> {
    const q = this.d.queueRow(queue.recipientDipId, queue.channel, false);
    if (!q) return [];
    let bytes = 0;
    const out: QueueEntry[] = [];
    const visible = this.d.visibleHead(q.id);
    for (const e of this.s.readEntries.all(q.id, afterSeq, limit)) {
      if (e.seq > visible) break; // committed, but its disk sync has not reported yet
      const cached = this.d.recent.get(e.messageId);
      // A message kept from a read (a delivery process appends nothing, so nothing overwrites it) may outlive
      // its row: purged, its id can be given to a new message (SQLite reuses the largest rowid once deleted).
      const message = cached && cached.transactionId === e.transactionId ? cached : this.load(e.messageId);
      // Purging removes settled entries with their messages, so this means a damaged database: say so
      // (the queue stops and an operator is alerted) rather than skip a message silently.
      if (!message) throw damaged(missingMessage(queue, e.seq, e.messageId));
      bytes += message.outbound.length + 1;
      if (out.length > 0 && bytes > maxBytes) break;
      // A requeued dead letter's staleness clock starts at its requeue.
      out.push({ seq: e.seq, messageId: e.messageId, ...message, receivedAt: e.enqueuedAt ?? message.receivedAt, capacity: e.capacity, securityPattern: e.securityPattern });
    }
    return out;
  }

  private load(id: number): (RecentMessage & { unreadable?: string }) | undefined {
    const row = this.s.messageById.get(id);
    if (!row) return undefined;
    const opened = openedOrWhy(() => this.d.reveal(row.outbound, row.transactionId));
    // A copy that cannot be opened is not kept: what the reader gets says so (QueueEntry.unreadable).
    if (typeof opened !== 'string') return { transactionId: row.transactionId, receivedAt: row.receivedAt, outbound: '', unreadable: opened.unreadable };
    const message = { transactionId: row.transactionId, receivedAt: row.receivedAt, outbound: opened };
    this.d.keep(id, message);
    return message;
  }

  async queueState(queue: QueueRef): Promise<QueueState> {
    const q = this.d.queueRow(queue.recipientDipId, queue.channel, false);
    if (!q) return { ackedSeq: 0, headSeq: 0, pulledSeq: 0 };
    const row = this.s.positions.get(q.id);
    return { ackedSeq: row?.acked ?? 0, headSeq: q.head, pulledSeq: row?.pulled ?? 0 };
  }

  async queueBacklog(queue: QueueRef): Promise<QueueBacklogState> {
    const q = this.d.queueRow(queue.recipientDipId, queue.channel, false);
    if (!q) return { ackedSeq: 0, headSeq: 0, oldestReceivedAt: null, damage: null };
    const row = this.s.backlog.get(q.id);
    return { ackedSeq: row?.acked ?? 0, headSeq: q.head, oldestReceivedAt: row?.oldest ?? null, damage: headDamage(queue, row) };
  }

  async pendingQueues(): Promise<QueueRef[]> {
    return this.s.pending.all().map((r) => ({ recipientDipId: r.recipient, channel: r.channel }));
  }

  settle(queue: QueueRef, settlement: Settlement): Promise<SettleOutcome> {
    return this.d.write((): SettleOutcome => {
      const q = this.d.queueRow(queue.recipientDipId, queue.channel, false);
      if (!q) throw damaged(`no queue for ${queue.recipientDipId} on ${queue.channel}`);
      // Read inside the write: an acknowledgement that landed since the caller read the position is seen.
      // Only then are the dead letters looked up (the rare path): passed by this very settlement, committed
      // before, it is settled and nothing is written twice.
      if (settingAsidePassed(settlement, this.s.positions.get(q.id)?.acked ?? 0)) {
        const found = new Map((settlement.deadLetters ?? []).flatMap((d) => {
          const at = this.s.deadLetterAt.get(q.id, d.seq);
          return at === undefined ? [] : [[d.seq, at.messageId] as const];
        }));
        return sameSettlement(settlement, found) ? 'settled' : 'superseded';
      }
      const now = this.d.options.clock.now();
      for (const dl of settlement.deadLetters ?? []) this.s.insertDeadLetter.run(q.id, dl.seq, dl.messageId, dl.reason, dl.status, dl.detail, now);
      if (settlement.notices && settlement.notices.messages.length > 0) this.writeBatch(settlement.notices);
      if (toldRecipient(settlement)) this.s.delivered.run({ upTo: settlement.upTo, id: q.id });
      else this.s.ack.run(settlement.upTo, q.id);
      return 'settled';
    });
  }

  async acknowledge(queue: QueueRef, sequence: number): Promise<number | null> {
    const q = this.d.queueRow(queue.recipientDipId, queue.channel, false);
    if (!q) return null;
    // A repeat, or one behind, is answered from the row as it is: no write.
    const unmoved = (told: { told: number; from: number } | undefined): number | null => (told === undefined || told.told > sequence ? null : told.from);
    const before = this.s.told.get(q.id);
    if (before === undefined || before.told >= sequence) return unmoved(before);
    // Read again inside the write: another acknowledgement may have moved it meanwhile.
    return this.d.write(() => {
      const now = this.s.told.get(q.id);
      if (now === undefined || now.told >= sequence) return unmoved(now);
      this.s.acknowledged.run({ upTo: sequence, id: q.id });
      return now.told;
    });
  }

  markPulled(queue: QueueRef, upTo: number): Promise<void> {
    return this.d.write(() => {
      const q = this.d.queueRow(queue.recipientDipId, queue.channel, false);
      if (!q) throw damaged(`no queue for ${queue.recipientDipId} on ${queue.channel}`);
      this.s.pulled.run(upTo, q.id);
    });
  }

  async appendReplayCopies(copies: ReplayCopy[], enqueueFor?: QueueRef, progress?: JobProgress): Promise<void> {
    await this.d.write(() => {
      const heads = new Map<string, PendingHead>();
      for (const c of copies) {
        const original = this.s.original.get(c.originalId);
        if (!original) throw damaged(`replay of unknown message ${c.originalId}`);
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
          sealOutbound(c.outbound, c.transactionId, this.d.sealer),
          // A copy keeps its original's pattern: requeued, it is made for that again.
          original.securityPattern,
        ).lastInsertRowid;
        this.s.replayFor.run(c.recipientDipId, id);
        if (enqueueFor) {
          const q = this.d.nextSeq(heads, enqueueFor.recipientDipId, enqueueFor.channel);
          this.s.insertEntry.run(q.id, q.head, id, c.capacity);
          this.s.requeuedDead.run(q.id, c.originalId);
        }
      }
      this.d.publishHeads(heads);
      if (progress) {
        const updated = this.s.progress.run(progress.cursor, progress.added, progress.at, progress.jobId, progress.from).changes;
        if (updated === 0) throw jobMoved(progress.jobId);
      }
    });
  }
}
