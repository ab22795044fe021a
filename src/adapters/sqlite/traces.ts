import type { ValueSealer } from '../../ports/backend.js';
import type { MessageTraces, TracedMessage, TraceQuery } from '../../ports/traces.js';
import { Slices } from '../../domain/slices.js';
import { foldTraces, routingRead, type AttemptRow, type CopyRow, type MessageRow } from '../trace-rows.js';
import { asStored, type SqliteDatabase, type Stored } from './database.js';

/**
 * What a trace needs of the store: its reads, and the sealer's index (an MPAN asked for) and opening (a
 * routing asked for). The report thread (src/topology/report-thread.ts) gives its own reads and neither.
 */
export type TraceStore = Pick<SqliteDatabase, 'reads' | 'reveal'> & { readonly sealer: Pick<ValueSealer, 'index'> };

/** Traces over the archive and delivery journal as the embedded store keeps them. */
export class SqliteTraces implements MessageTraces {
  constructor(private readonly d: TraceStore) {}

  async trace(q: TraceQuery): Promise<TracedMessage[]> {
    const where = ['m.received_at >= @from', 'm.received_at < @to'];
    const named = new Map<string, string | number>([['from', q.fromMs], ['to', q.toMs], ['limit', q.limit]]);
    const eq = (col: string, name: string, v: string | undefined) => {
      if (v === undefined) return;
      where.push(`${col} = @${name}`);
      named.set(name, v);
    };
    if (q.channels?.length) {
      where.push(`m.channel IN (${q.channels.map((_, i) => `@channel${i}`).join(', ')})`);
      q.channels.forEach((c, i) => named.set(`channel${i}`, c));
    }
    eq('m.sender_dip_id', 'sender', q.sender);
    eq('m.transaction_id', 'tx', q.transactionId);
    eq('m.correlation_id', 'corr', q.correlationId);
    eq('m.mpan', 'mpan', q.mpan === undefined ? undefined : this.d.sealer.index(q.mpan));
    if (q.recipient !== undefined) {
      where.push('EXISTS (SELECT 1 FROM queue_entries e JOIN queues qq ON qq.id = e.queue_id WHERE e.message_id = m.id AND qq.recipient_dip_id = @recipient)');
      named.set('recipient', q.recipient);
    }
    // The three statements run whole on the reader thread, in one snapshot: up to 200,000 messages took
    // minutes on the writer's connection, with the event loop blocked meanwhile (src/adapters/sqlite/reader.ts).
    const [messages, copies, attempts] = (await this.d.reads.read([
      {
        sql: `SELECT m.id, m.transaction_id, m.channel, m.event_code, m.sender_dip_id, m.sender_role, m.sender_ref, m.correlation_id, m.received_at,
                o.transaction_id AS replay_of_tx, ${q.withRouting ? 'm.outbound' : 'NULL AS outbound'}, ${q.withMpan ? 'm.mpan' : 'NULL AS mpan'}
           FROM messages m LEFT JOIN messages o ON o.id = m.replay_of
          WHERE ${where.join(' AND ')} ORDER BY m.received_at, m.id LIMIT @limit`,
        params: Object.fromEntries(named),
      },
      {
        sql: `SELECT e.message_id, e.queue_id, q.recipient_dip_id, e.seq, q.acked_seq,
                dl.reason AS dl_reason, dl.status AS dl_status, dl.detail AS dl_detail, dl.at AS dl_at, dl.state AS dl_state
           FROM queue_entries e JOIN queues q ON q.id = e.queue_id LEFT JOIN dead_letters dl ON dl.queue_id = e.queue_id AND dl.seq = e.seq
          WHERE e.message_id IN (SELECT value FROM json_each(?))`,
        json: ['id'],
      },
      {
        sql: `SELECT a.queue_id, a.first_seq, a.last_seq, a.url, a.started_at, a.latency_ms, a.status, a.verdict, a.error
           FROM delivery_attempts a JOIN json_each(?) c ON a.queue_id = json_extract(c.value, '$[0]') AND a.first_seq <= json_extract(c.value, '$[1]') AND a.last_seq >= json_extract(c.value, '$[1]')`,
        json: ['queue_id', 'seq'],
      },
    ])) as [Array<MessageRow & { outbound: Stored | Uint8Array | null; mpan: string | null }>, CopyRow[], AttemptRow[]];
    if (messages.length === 0) return [];
    const traced = await foldTraces(messages, copies, await dedupe(attempts));
    // A BLOB crosses the thread as a Uint8Array; the sealer opens Buffers. Unsealing stays on this side (the sealer's keys are here).
    if (q.withRouting) traced.forEach((t, i) => Object.assign(t, routingRead(() => this.d.reveal(asStored(messages[i]!.outbound!), messages[i]!.transaction_id))));
    if (q.withMpan) traced.forEach((t, i) => (t.mpan = messages[i]!.mpan));
    return traced;
  }
}

/** An attempt covering several copies is found once per copy (as many rows as copies: in slices). */
async function dedupe(attempts: AttemptRow[]): Promise<AttemptRow[]> {
  const seen = new Set<string>();
  return new Slices().filter(attempts, (a) => {
    const k = `${a.queue_id}:${a.first_seq}:${a.started_at}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
