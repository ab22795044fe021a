/**
 * How a traced message's copies read their journal (src/adapters/trace-rows.ts): a call answered 2xx
 * delivered a copy unless that copy was set aside (a 207 naming it with a failure code: the whole call is
 * journalled "delivered", the refused copy dead-lettered), and a requeued copy is delivered by a call since.
 */
import { describe, expect, it } from 'vitest';
import { foldTraces, type AttemptRow, type CopyRow, type MessageRow } from '../src/adapters/trace-rows.js';

const message: MessageRow = { id: 7, transaction_id: 'T-1', channel: 'IF-021', event_code: 'E', sender_dip_id: '2000000001', sender_role: 'HHDC', sender_ref: null, correlation_id: null, received_at: 1_000, replay_of_tx: null };
const copy = (seq: number, dl: Partial<CopyRow> = {}): CopyRow => ({ message_id: 7, queue_id: seq, recipient_dip_id: `100000000${seq}`, seq, acked_seq: seq, dl_reason: null, dl_status: null, dl_detail: null, dl_at: null, dl_state: null, ...dl });
const call = (queue: number, seq: number, startedAt: number, status: number): AttemptRow => ({ queue_id: queue, first_seq: seq, last_seq: seq, url: 'https://r.example/', started_at: startedAt, latency_ms: 5, status, verdict: 'delivered', error: null });

describe('traced deliveries', () => {
  it('a copy refused in a 207 is not delivered though its call was; one requeued is, by the call after', async () => {
    const refused = { dl_reason: 'rejected', dl_status: 207, dl_detail: 'refused in a 207', dl_at: 2_010 };
    const [traced] = await foldTraces(
      [message],
      [copy(1), copy(2, { ...refused, dl_state: 'dead' }), copy(3, { ...refused, dl_state: 'requeued' })],
      [call(1, 1, 2_000, 201), call(2, 2, 2_000, 207), call(3, 3, 2_000, 207), call(3, 3, 5_000, 201)],
    );
    expect(traced!.deliveries.map((d) => [d.recipient, d.state, d.deliveredAt])).toEqual([
      ['1000000001', 'delivered', 2_005],
      ['1000000002', 'dead', null],
      ['1000000003', 'delivered', 5_005],
    ]);
  });

  // Each copy's calls were found by scanning every call of its queue (copies × calls); now by position.
  // The same calls, in the same order (by start, then as the rows came), over random calls that overlap.
  it('finds each copy the calls that carried it, as a scan of every call finds them', async () => {
    let seed = 7;
    const random = (n: number) => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) % n;
    const calls: AttemptRow[] = Array.from({ length: 400 }, (_, i) => {
      const first = 1 + random(300);
      return { queue_id: 1 + random(2), first_seq: first, last_seq: first + random(random(10) === 0 ? 200 : 5), url: 'https://r.example/', started_at: random(50), latency_ms: i, status: 200, verdict: 'delivered', error: null };
    });
    const copies = Array.from({ length: 600 }, (_, i) => copy(1 + (i % 300), { queue_id: 1 + (i % 2), message_id: i }));
    const messages = copies.map((c) => ({ ...message, id: c.message_id }));
    const traced = await foldTraces(messages, copies, calls);
    copies.forEach((c, i) => {
      const scanned = calls.filter((a) => a.queue_id === c.queue_id && a.first_seq <= c.seq && a.last_seq >= c.seq).sort((x, y) => x.started_at - y.started_at);
      expect(traced[i]!.deliveries[0]!.attempts.map((a) => a.latencyMs)).toEqual(scanned.map((a) => a.latency_ms));
    });
  });
});
