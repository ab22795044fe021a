import type { DeadLetter, DeadLetterQuery, DeadLetters } from '../../ports/dead-letters.js';
import type { QueueRef } from '../../ports/message-log.js';
import type { PendingHead, SqliteDatabase } from './database.js';

export class SqliteDeadLetters implements DeadLetters {
  private readonly s;

  constructor(private readonly d: SqliteDatabase) {
    const db = d.db;
    this.s = {
      // With the capacity its entry was routed in: the requeued entry keeps it (src/domain/channel.ts capacityCode).
      deadLetterMessage: db.prepare<[number, number], { messageId: number; capacity: string | null }>(
        `SELECT d.message_id AS messageId, e.capacity FROM dead_letters d LEFT JOIN queue_entries e ON e.queue_id = d.queue_id AND e.seq = d.seq
          WHERE d.queue_id = ? AND d.seq = ? AND d.state = 'dead'`,
      ),
      setState: db.prepare("UPDATE dead_letters SET state = ? WHERE queue_id = ? AND seq = ? AND state = 'dead'"),
      insertRequeuedEntry: db.prepare<[number, number, number, number, string | null]>('INSERT INTO queue_entries (queue_id, seq, message_id, enqueued_at, capacity) VALUES (?, ?, ?, ?, ?)'),
    };
  }

  async deadLetters(query: DeadLetterQuery): Promise<DeadLetter[]> {
    const where: string[] = [];
    const args: Array<string | number> = [];
    const add = (clause: string, value: string | number | undefined): void => {
      if (value === undefined) return;
      where.push(clause);
      args.push(value);
    };
    add('q.recipient_dip_id = ?', query.recipientDipId);
    add('q.channel = ?', query.channel);
    add('d.state = ?', query.state);
    // One parameter however many positions (SQLite caps a statement's parameters).
    add('d.seq IN (SELECT value FROM json_each(?))', query.seqs && JSON.stringify(query.seqs));
    add('d.seq > ?', query.after);
    add('d.seq <= ?', query.upTo);
    args.push(query.limit);
    const rows = this.d.db
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

  async requeueDeadLetters(queue: QueueRef, seqs: number[]): Promise<number[] | null> {
    return this.d.write(() => {
      const q = this.d.queueRow(queue.recipientDipId, queue.channel, false);
      if (!q) return null;
      const heads = new Map<string, PendingHead>();
      const now = this.d.options.clock.now();
      const requeued: number[] = [];
      for (const seq of [...seqs].sort((a, b) => a - b)) {
        const dead = this.s.deadLetterMessage.get(q.id, seq);
        if (!dead) continue;
        const next = this.d.nextSeq(heads, queue.recipientDipId, queue.channel);
        this.s.insertRequeuedEntry.run(next.id, next.head, dead.messageId, now, dead.capacity);
        this.s.setState.run('requeued', q.id, seq);
        requeued.push(seq);
      }
      this.d.publishHeads(heads);
      return requeued;
    });
  }

  discardDeadLetters(queue: QueueRef, seqs: number[]): Promise<number[] | null> {
    return this.d.write(() => {
      const q = this.d.queueRow(queue.recipientDipId, queue.channel, false);
      if (!q) return null;
      return [...new Set(seqs)].sort((a, b) => a - b).filter((seq) => this.s.setState.run('discarded', q.id, seq).changes > 0);
    });
  }
}
