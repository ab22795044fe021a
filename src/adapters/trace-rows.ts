import { PULL_ACKNOWLEDGED } from '../ports/archive.js';
import { openedOrSkipped } from './archive-sql.js';
import type { TracedDelivery, TracedMessage } from '../ports/traces.js';
import { deliveringCall } from '../domain/delivered-by.js';
import { Slices } from '../domain/slices.js';

/** Rows both SQL engines answer, folded into traced messages the same way. */
export interface MessageRow {
  id: number;
  transaction_id: string;
  channel: string;
  event_code: string;
  sender_dip_id: string;
  sender_role: string;
  sender_ref: string | null;
  correlation_id: string | null;
  received_at: number;
  replay_of_tx: string | null;
}

export interface CopyRow {
  message_id: number;
  queue_id: number;
  recipient_dip_id: string;
  seq: number;
  acked_seq: number;
  dl_reason: string | null;
  dl_status: number | null;
  dl_detail: string | null;
  dl_at: number | null;
  dl_state: string | null;
}

export interface AttemptRow {
  queue_id: number;
  first_seq: number;
  last_seq: number;
  url: string;
  started_at: number;
  latency_ms: number;
  status: number | null;
  verdict: string;
  error: string | null;
}

/**
 * Traced messages from their rows, in slices (src/domain/slices.ts): up to 200,000 messages and their
 * copies' calls, folded whole on the main thread, held the event loop for seconds.
 */
export async function foldTraces(messages: MessageRow[], copies: CopyRow[], attempts: AttemptRow[]): Promise<TracedMessage[]> {
  const slices = new Slices();
  const byQueue = new Map<number, AttemptRow[]>();
  for (const a of attempts) {
    const q = Number(a.queue_id);
    const of = byQueue.get(q);
    if (of) of.push(a);
    else byQueue.set(q, [a]);
    if (slices.due()) await slices.pause();
  }
  const calls = new Map<number, QueueCalls>();
  for (const [q, of] of byQueue) {
    calls.set(q, queueCalls(of));
    if (slices.due()) await slices.pause();
  }
  const copiesOf = new Map<number, TracedDelivery[]>();
  for (const c of copies) {
    const mine = carrying(calls.get(Number(c.queue_id)), Number(c.seq));
    const delivered = deliveringCall(
      mine.map((a) => ({ ...a, startedAt: Number(a.started_at) })),
      c.dl_state === null || c.dl_at === null ? null : { state: c.dl_state, at: Number(c.dl_at) },
    );
    const state: TracedDelivery['state'] = c.dl_state ? (c.dl_state as TracedDelivery['state']) : Number(c.acked_seq) >= Number(c.seq) ? 'delivered' : 'pending';
    const d: TracedDelivery = {
      recipient: c.recipient_dip_id,
      seq: Number(c.seq),
      state: c.dl_state === 'requeued' && Number(c.acked_seq) >= Number(c.seq) && delivered ? 'delivered' : state,
      deliveredAt: delivered ? Number(delivered.started_at) + Number(delivered.latency_ms) : null,
      firstAttemptAt: mine[0] ? Number(mine[0].started_at) : null,
      attempts: mine.map((a) => ({ startedAt: Number(a.started_at), latencyMs: Number(a.latency_ms), status: a.status, verdict: a.verdict, error: a.error, pulled: a.url === PULL_ACKNOWLEDGED })),
      deadLetter: c.dl_reason === null ? null : { reason: c.dl_reason, status: c.dl_status, detail: c.dl_detail ?? '', at: Number(c.dl_at) },
    };
    const m = Number(c.message_id);
    const of = copiesOf.get(m);
    if (of) of.push(d);
    else copiesOf.set(m, [d]);
    if (slices.due()) await slices.pause();
  }
  return slices.map(messages, (m) => ({
    transactionId: m.transaction_id,
    channel: m.channel,
    eventCode: m.event_code,
    sender: m.sender_dip_id,
    senderRole: m.sender_role,
    senderUniqueReference: m.sender_ref,
    correlationId: m.correlation_id,
    receivedAt: Number(m.received_at),
    replayOf: m.replay_of_tx,
    deliveries: copiesOf.get(Number(m.id)) ?? [],
  }));
}

/** A queue's calls by first position, with the furthest position any call up to each reaches. */
interface QueueCalls {
  byFirst: Array<{ a: AttemptRow; i: number; first: number; last: number; at: number }>;
  reach: number[];
}

function queueCalls(of: AttemptRow[]): QueueCalls {
  const byFirst = of.map((a, i) => ({ a, i, first: Number(a.first_seq), last: Number(a.last_seq), at: Number(a.started_at) })).sort((x, y) => x.first - y.first);
  const reach: number[] = [];
  for (const c of byFirst) reach.push(Math.max(reach.at(-1) ?? -Infinity, c.last));
  return { byFirst, reach };
}

/**
 * The calls that carried position `seq`, by start (the rows' order among calls that started together):
 * found from the last call starting at or before it, back while an earlier one may still reach it. Each
 * copy scanned every call of its queue (copies × calls: minutes at 200,000 messages).
 */
function carrying(calls: QueueCalls | undefined, seq: number): AttemptRow[] {
  if (!calls) return [];
  const { byFirst, reach } = calls;
  let lo = 0;
  let hi = byFirst.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (byFirst[mid]!.first <= seq) lo = mid + 1;
    else hi = mid;
  }
  const found: QueueCalls['byFirst'] = [];
  for (let j = lo - 1; j >= 0 && reach[j]! >= seq; j--) if (byFirst[j]!.last >= seq) found.push(byFirst[j]!);
  return found.sort((x, y) => x.at - y.at || x.i - y.i).map((c) => c.a);
}

/**
 * A message's routing from its stored outbound copy, opened by `open`; a copy that does not open
 * (openedOrSkipped) leaves the routing null and says why, so that one such row fails no report read with it.
 */
export function routingRead(open: () => string): Pick<TracedMessage, 'routing' | 'unreadable'> {
  const opened = openedOrSkipped(open);
  return typeof opened === 'string' ? { routing: routingOf(opened) } : { routing: null, unreadable: opened.unreadable };
}

/** Whom routing chose, from the outbound copy's A0 block. */
export function routingOf(outbound: string): TracedMessage['routing'] {
  try {
    const a0 = (JSON.parse(outbound) as { payload?: { CommonBlock?: { A0?: { primaryRecipients?: string[]; secondaryRecipients?: string[]; always?: string[] } } } }).payload?.CommonBlock?.A0;
    return a0 ? { primary: a0.primaryRecipients ?? [], secondary: a0.secondaryRecipients ?? [], always: a0.always ?? [] } : null;
  } catch {
    return null;
  }
}
