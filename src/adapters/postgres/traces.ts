import type { MessageTraces, TracedMessage, TraceQuery } from '../../ports/traces.js';
import { foldTraces, routingRead, type AttemptRow, type CopyRow, type MessageRow } from '../trace-rows.js';
import type { PgDatabase } from './database.js';

/** Traces over the archive and delivery journal on PostgreSQL (the same rows as the embedded store). */
export class PgTraces implements MessageTraces {
  constructor(private readonly d: PgDatabase) {}

  async trace(q: TraceQuery): Promise<TracedMessage[]> {
    const params: unknown[] = [q.fromMs, q.toMs];
    const where = ['m.received_at >= $1', 'm.received_at < $2'];
    const eq = (col: string, v: string | undefined) => {
      if (v === undefined) return;
      params.push(v);
      where.push(`${col} = $${params.length}`);
    };
    if (q.channels?.length) {
      params.push([...q.channels]);
      where.push(`m.channel = ANY($${params.length}::text[])`);
    }
    eq('m.sender_dip_id', q.sender);
    eq('m.transaction_id', q.transactionId);
    eq('m.correlation_id', q.correlationId);
    eq('m.mpan', q.mpan === undefined ? undefined : this.d.sealer.index(q.mpan));
    if (q.recipient !== undefined) {
      params.push(q.recipient);
      where.push(`EXISTS (SELECT 1 FROM queue_entries e JOIN queues qq ON qq.id = e.queue_id WHERE e.message_id = m.id AND qq.recipient_dip_id = $${params.length})`);
    }
    params.push(q.limit);
    const { rows: messages } = await this.d.pool.query<MessageRow & { outbound: Buffer | null; sealed: boolean | null; mpan: string | null }>(
      `SELECT m.id, m.transaction_id, m.channel, m.event_code, m.sender_dip_id, m.sender_role, m.sender_ref, m.correlation_id, m.received_at,
              o.transaction_id AS replay_of_tx, ${q.withRouting ? 'm.outbound, m.sealed' : 'NULL::bytea AS outbound, NULL::boolean AS sealed'}, ${q.withMpan ? 'm.mpan' : 'NULL::text AS mpan'}
         FROM messages m LEFT JOIN messages o ON o.id = m.replay_of
        WHERE ${where.join(' AND ')} ORDER BY m.received_at, m.id LIMIT $${params.length}`,
      params,
    );
    if (messages.length === 0) return [];
    const { rows: copies } = await this.d.pool.query<CopyRow>(
      `SELECT e.message_id, e.queue_id, q.recipient_dip_id, e.seq, q.acked_seq,
              dl.reason AS dl_reason, dl.status AS dl_status, dl.detail AS dl_detail, dl.at AS dl_at, dl.state AS dl_state
         FROM queue_entries e JOIN queues q ON q.id = e.queue_id LEFT JOIN dead_letters dl ON dl.queue_id = e.queue_id AND dl.seq = e.seq
        WHERE e.message_id = ANY($1::bigint[])`,
      [messages.map((m) => m.id)],
    );
    const { rows: attempts } = copies.length === 0 ? { rows: [] as AttemptRow[] } : await this.d.pool.query<AttemptRow>(
      `SELECT DISTINCT a.queue_id, a.first_seq, a.last_seq, a.url, a.started_at, a.latency_ms, a.status, a.verdict, a.error
         FROM delivery_attempts a JOIN unnest($1::int[], $2::bigint[]) AS c(queue_id, seq) ON a.queue_id = c.queue_id AND a.first_seq <= c.seq AND a.last_seq >= c.seq
        WHERE a.started_at >= $3`,
      [copies.map((c) => c.queue_id), copies.map((c) => c.seq), q.fromMs],
    );
    const traced = await foldTraces(messages, copies, attempts);
    if (q.withRouting) traced.forEach((t, i) => Object.assign(t, messages[i]!.outbound ? routingRead(() => this.d.reveal(messages[i]!.outbound!, messages[i]!.sealed === true, messages[i]!.transaction_id)) : { routing: null }));
    if (q.withMpan) traced.forEach((t, i) => (t.mpan = messages[i]!.mpan));
    return traced;
  }
}
