import type { ReceivedCall } from '../client/webhook-receiver.js';
import type { LruMap } from '../domain/lru-map.js';
import { formatSequence, gapBefore } from '../domain/sequence.js';

/** Transaction IDs `dip listen` remembers for its duplicate check: a bound, so a long run does not grow without end. */
export const SEEN_TRANSACTION_IDS = 100_000;

/**
 * What `dip listen` prints of one call it accepted, one JSON value a line: each message of a delivery
 * with its queue position and whether its transaction ID was seen before (`seen` is updated; it holds
 * the most recent SEEN_TRANSACTION_IDS, so a redelivery of one older than that is not flagged), or the
 * alarm or maintenance notice the call carried. The signature is "verified" or why it failed (a receiver
 * run with --answer takes calls whatever their signature).
 */
export function listenOutput(call: ReceivedCall, seen: LruMap<string, true>, last?: LruMap<string, number>): unknown[] {
  const signature = call.signature.ok ? 'verified' : call.signature;
  if (call.notice !== null) return [{ notice: `${call.notice.type} ${call.notice.kind}`, signature, body: call.notice.body }];
  const before = last ? positionsBefore(call, last) : {};
  return call.messages.map((m, i) => {
    const d0 = (m as { payload?: { CommonBlock?: { D0?: { transactionID?: string } } } }).payload?.CommonBlock?.D0;
    const id = d0?.transactionID ?? '?';
    const seq = call.firstSeq === null ? '?' : call.firstSeq + i;
    // A recipient acts once per transaction ID: a redelivery after a crash repeats the same ID and seq.
    const duplicate = seen.has(id);
    seen.set(id, true);
    return { seq, signature, duplicate, ...(i === 0 ? before : {}), message: m };
  });
}

/**
 * What came before a call's first position at this receiver, per channel (the first message's interface ID;
 * `last` keeps the last position seen of each): `settledByDip`, the positions the DIP says it settled
 * (X-OpenDIP-Acknowledged: set aside, their senders told) since the last this receiver saw, and `gap`,
 * positions neither received nor settled. The first call of a channel this receiver sees has neither.
 */
function positionsBefore(call: ReceivedCall, last: LruMap<string, number>): { settledByDip?: string; gap?: string } {
  if (call.firstSeq === null || call.lastSeq === null) return {};
  const s0 = (call.messages[0] as { payload?: { CommonBlock?: { S0?: { interfaceID?: string } } } } | undefined)?.payload?.CommonBlock?.S0;
  const channel = s0?.interfaceID ?? '?';
  const previous = last.get(channel);
  last.set(channel, Math.max(previous ?? 0, call.lastSeq));
  if (previous === undefined) return {};
  const settledTo = Math.min(call.acknowledgedSeq ?? 0, call.firstSeq - 1);
  const gap = gapBefore(previous, call.firstSeq, call.acknowledgedSeq);
  return {
    ...(settledTo > previous ? { settledByDip: formatSequence(previous + 1, settledTo) } : {}),
    ...(gap ? { gap: formatSequence(gap.first, gap.last) } : {}),
  };
}
