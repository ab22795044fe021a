import { describe, expect, it } from 'vitest';
import { listenOutput } from '../src/cli/listen-output.js';
import type { ReceivedCall } from '../src/client/webhook-receiver.js';
import { LruMap } from '../src/domain/lru-map.js';
import { gapBefore } from '../src/domain/sequence.js';

/**
 * Gaps at a webhook receiver: a call may start above the receiver's last position + 1 when the DIP set the
 * messages between aside (stale, refused: their senders told). Its X-OpenDIP-Acknowledged says so (as a pull
 * answer's does); only a first position above max(last, acknowledged) + 1 is a gap. Before, a webhook call
 * carried no such header and a stale dead letter looked like a lost message.
 */
describe('gapBefore', () => {
  it('no gap when the positions between were settled by the DIP; a gap only past what it settled', () => {
    expect(gapBefore(1, 2, 1)).toBeNull();
    expect(gapBefore(0, 2, 1)).toBeNull(); // 1 set aside by the DIP
    expect(gapBefore(0, 3, 1)).toEqual({ first: 2, last: 2 });
    expect(gapBefore(0, 3, null)).toEqual({ first: 1, last: 2 }); // no header: the old rule
    expect(gapBefore(5, 3, 2)).toBeNull(); // a repeat
  });
});

describe('dip listen', () => {
  const call = (id: string, first: number, acknowledged: number | null): ReceivedCall => ({
    messages: [{ payload: { CommonBlock: { S0: { interfaceID: 'IF-021' }, D0: { transactionID: id } } } }],
    notice: null,
    firstSeq: first,
    lastSeq: first,
    acknowledgedSeq: acknowledged,
    signature: { ok: true } as unknown as ReceivedCall['signature'],
    receivedAt: 0,
  });

  it('says which positions the DIP settled before a call, and reports a gap only past them', () => {
    const seen = new LruMap<string, true>(10);
    const last = new LruMap<string, number>(10);
    const line = (c: ReceivedCall) => listenOutput(c, seen, last)[0] as Record<string, unknown>;
    expect(line(call('a', 1, 0))).not.toHaveProperty('gap');
    // 2 went stale at the DIP (a dead letter, its sender told): the next call is 3-3, acknowledged 2.
    const after = line(call('b', 3, 2));
    expect([after['settledByDip'], after['gap']]).toEqual(['2-2', undefined]);
    // 4 and 5 missing, the DIP saying only 4 was settled: 5 is a gap.
    expect(line(call('c', 6, 4))).toMatchObject({ settledByDip: '4-4', gap: '5-5' });
  });
});
