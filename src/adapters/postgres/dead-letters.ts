import type { DeadLetter, DeadLetterQuery, DeadLetters } from '../../ports/dead-letters.js';
import type { QueueRef } from '../../ports/message-log.js';
import type { PgDatabase } from './database.js';
import { insertEntries } from './write-batches.js';

export class PgDeadLetters implements DeadLetters {
  constructor(private readonly d: PgDatabase) {}

  async deadLetters(query: DeadLetterQuery): Promise<DeadLetter[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const add = (clause: string, value: unknown) => {
      args.push(value);
      where.push(clause.replace('?', `$${args.length}`));
    };
    if (query.recipientDipId !== undefined) add('q.recipient_dip_id = ?', query.recipientDipId);
    if (query.channel !== undefined) add('q.channel = ?', query.channel);
    if (query.state !== undefined) add('d.state = ?', query.state);
    if (query.seqs !== undefined) add('d.seq = ANY(?::bigint[])', query.seqs);
    if (query.after !== undefined) add('d.seq > ?', query.after);
    if (query.upTo !== undefined) add('d.seq <= ?', query.upTo);
    args.push(query.limit);
    const rows = await this.d.query<Omit<DeadLetter, 'queue'> & { recipient: string; channel: string }>(
      `SELECT q.recipient_dip_id AS recipient, q.channel, d.seq, d.message_id AS "messageId", m.transaction_id AS "transactionId",
              m.sender_dip_id AS "senderDipId", m.sender_ref AS "senderUniqueReference", m.received_at AS "receivedAt",
              d.reason, d.status, d.detail, d.at, d.state
         FROM dead_letters d JOIN queues q ON q.id = d.queue_id JOIN messages m ON m.id = d.message_id
        ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY q.id, d.seq LIMIT $${args.length}`,
      args,
    );
    return rows.map(({ recipient, channel, ...rest }) => ({ queue: { recipientDipId: recipient, channel }, ...rest }));
  }

  async requeueDeadLetters(queue: QueueRef, seqs: number[]): Promise<number[] | null> {
    if ((await this.d.queueId(queue)) === undefined) return null;
    return this.d.tx(async (c) => {
      const locked = await this.d.lockQueues(c, [queue]);
      const id = locked.values().next().value!.id;
      // Taken and marked in one statement: a dead letter is requeued once, whoever asks at the same time.
      // With the capacity its entry was routed in: the requeued entry keeps it (src/domain/channel.ts capacityCode).
      const { rows } = await c.query<{ seq: number; messageId: number; capacity: string | null }>(
        `UPDATE dead_letters d SET state = 'requeued' WHERE d.queue_id = $1 AND d.seq = ANY($2::bigint[]) AND d.state = 'dead'
         RETURNING d.seq, d.message_id AS "messageId",
                   (SELECT e.capacity FROM queue_entries e WHERE e.queue_id = d.queue_id AND e.seq = d.seq AND e.message_id = d.message_id) AS capacity`,
        [id, seqs],
      );
      rows.sort((a, b) => a.seq - b.seq);
      const now = this.d.options.clock.now();
      await insertEntries(c, locked, rows.map((r) => ({ queue, messageId: r.messageId, enqueuedAt: now, capacity: r.capacity })));
      await this.d.saveHeads(c, locked);
      return rows.map((r) => r.seq);
    });
  }

  async discardDeadLetters(queue: QueueRef, seqs: number[]): Promise<number[] | null> {
    const id = await this.d.queueId(queue);
    if (id === undefined) return null;
    return this.d.tx(async (c) => {
      const r = await c.query<{ seq: number }>("UPDATE dead_letters SET state = 'discarded' WHERE queue_id = $1 AND seq = ANY($2::bigint[]) AND state = 'dead' RETURNING seq", [id, seqs]);
      return r.rows.map((row) => Number(row.seq)).sort((a, b) => a - b);
    });
  }
}
