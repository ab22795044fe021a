import type { ReceivedCall } from '../client/webhook-receiver.js';
import type { LruMap } from '../domain/lru-map.js';

/** Transaction IDs `dip listen` remembers for its duplicate check: a bound, so a long run does not grow without end. */
export const SEEN_TRANSACTION_IDS = 100_000;

/**
 * What `dip listen` prints of one call it accepted, one JSON value a line: each message of a delivery
 * with its queue position and whether its transaction ID was seen before (`seen` is updated; it holds
 * the most recent SEEN_TRANSACTION_IDS, so a redelivery of one older than that is not flagged), or the
 * alarm or maintenance notice the call carried. The signature is "verified" or why it failed (a receiver
 * run with --answer takes calls whatever their signature).
 */
export function listenOutput(call: ReceivedCall, seen: LruMap<string, true>): unknown[] {
  const signature = call.signature.ok ? 'verified' : call.signature;
  if (call.notice !== null) return [{ notice: `${call.notice.type} ${call.notice.kind}`, signature, body: call.notice.body }];
  return call.messages.map((m, i) => {
    const d0 = (m as { payload?: { CommonBlock?: { D0?: { transactionID?: string } } } }).payload?.CommonBlock?.D0;
    const id = d0?.transactionID ?? '?';
    const seq = call.firstSeq === null ? '?' : call.firstSeq + i;
    // A recipient acts once per transaction ID: a redelivery after a crash repeats the same ID and seq.
    const duplicate = seen.has(id);
    seen.set(id, true);
    return { seq, signature, duplicate, message: m };
  });
}
