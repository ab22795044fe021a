import { describe, expect, it } from 'vitest';
import { MSG } from '../src/domain/response-codes.js';
import type { ReceivedRequest, TransactionParties } from '../src/ports/archive.js';
import type { IngestResult } from '../src/pipeline/ingest.js';
import { withOriginalCorrelations } from '../src/pipeline/resend-answer.js';

// A resend of an accepted batch (an adapter retrying after a lost 201) is refused item by item as MSG1006,
// each naming its own transaction, all of them accepted in one request. Opening that request per item (it is
// decrypted, decompressed and parsed whole) made a 200-item resend take 50 s of the main thread.

const SENDER = '2000000001';
const DIFFERS = '; its content differs from the message accepted under that reference: the new content was not accepted (send it under a new senderUniqueReference)';

const message = (i: number, gsp = '_A') => ({
  CommonMetadata: { Event: 'IF-021' },
  payload: { CommonBlock: { S1: { senderDIPID: SENDER, senderUniqueReference: `REF-${i}`, senderTimestamp: '2026-12-06T00:00:00+00:00' }, M0: { GSPGroupID: gsp } } },
});
const txOf = (i: number) => `T-${String(i).padStart(6, '0')}`;

/** The archive port as the route hands it over, every read counted; each original batch stored under its transactions. */
function archive(batches: Array<{ items: unknown[]; firstIndex: number }>) {
  const calls = { receivedRequest: 0, transactionParties: 0 };
  const byTx = new Map<string, Buffer>();
  for (const b of batches) {
    const body = Buffer.from(JSON.stringify(b.items));
    b.items.forEach((_, j) => byTx.set(txOf(b.firstIndex + j), body));
  }
  const port = {
    calls,
    async receivedRequest(transactionId: string): Promise<ReceivedRequest | undefined> {
      calls.receivedRequest++;
      const body = byTx.get(transactionId);
      return body && { channel: 'IF-021', senderDipId: SENDER, receivedAt: 0, body, signature: { url: null, headers: {} } };
    },
    async transactionParties(transactionId: string): Promise<TransactionParties | undefined> {
      calls.transactionParties++;
      return { senderDipId: SENDER, channel: 'IF-021', recipients: [], senderUniqueReference: null, correlationId: `C-${transactionId}`, replayOf: null };
    },
  };
  return port;
}

/** What the ingest answers a resend of `count` items whose references were all accepted before. */
function refusal(count: number): IngestResult {
  return {
    status: 400,
    response: {
      timestamp: '2026-12-06T00:00:00.000Z',
      messageArray: Array.from({ length: count }, (_, i) => ({
        transactionID: txOf(i),
        senderUniqueReference: `REF-${i}`,
        correlationID: null,
        sentTimestamp: '2026-12-06T00:00:00.000Z',
        senderID: 'DIP',
        recipientID: SENDER,
        DIPConnectionProviderID: null,
        message: MSG.duplicateReference,
        help: `item ${i}: S1.senderUniqueReference REF-${i} was already accepted from ${SENDER}, as transaction ${txOf(i)}`,
        serviceTicketURL: null,
      })),
    },
  };
}

const expected = (count: number, changed: Set<number>) =>
  refusal(count).response.messageArray.map((e, i) => ({ ...e, correlationID: `C-${txOf(i)}`, help: `${e.help}${changed.has(i) ? DIFFERS : ''}` }));

describe('the answer to a resend refused as MSG1006', () => {
  const N = 500;
  const originals = Array.from({ length: N }, (_, i) => message(i));

  it('a resend of one accepted batch of 500 opens its request once; an identical resend (sender timestamps anew) is answered as before', async () => {
    const port = archive([{ items: originals, firstIndex: 0 }]);
    const resent = originals.map((m) => ({ ...m, payload: { CommonBlock: { ...m.payload.CommonBlock, S1: { ...m.payload.CommonBlock.S1, senderTimestamp: '2026-12-06T01:00:00+00:00' } } } }));
    const answer = await withOriginalCorrelations(refusal(N), port, Buffer.from(JSON.stringify(resent)));
    expect(answer.response.messageArray).toEqual(expected(N, new Set()));
    expect(port.calls.receivedRequest).toBe(1);
    expect(port.calls.transactionParties).toBe(N);
  });

  it('with some contents changed: those items say their content differs, the others do not, the request still opened once', async () => {
    const port = archive([{ items: originals, firstIndex: 0 }]);
    const changed = new Set([0, 7, 499]);
    const resent = originals.map((m, i) => (changed.has(i) ? message(i, '_B') : m));
    const answer = await withOriginalCorrelations(refusal(N), port, Buffer.from(JSON.stringify(resent)));
    expect(answer.response.messageArray).toEqual(expected(N, changed));
    expect(port.calls.receivedRequest).toBe(1);
  });

  it('items accepted in two batches: each request opened once, every item compared', async () => {
    const port = archive([
      { items: originals.slice(0, 200), firstIndex: 0 },
      { items: originals.slice(200), firstIndex: 200 },
    ]);
    const changed = new Set([3, 250]);
    const resent = originals.map((m, i) => (changed.has(i) ? message(i, '_B') : m));
    const answer = await withOriginalCorrelations(refusal(N), port, Buffer.from(JSON.stringify(resent)));
    expect(answer.response.messageArray).toEqual(expected(N, changed));
    expect(port.calls.receivedRequest).toBe(2);
  });

  it('past the budget of opened bytes, the remaining items get the plain MSG1006, uncompared', async () => {
    const port = archive([
      { items: originals.slice(0, 200), firstIndex: 0 },
      { items: originals.slice(200), firstIndex: 200 },
    ]);
    const changed = new Set([3, 250]);
    const resent = originals.map((m, i) => (changed.has(i) ? message(i, '_B') : m));
    // A budget the first request alone spends: the second is not opened.
    const answer = await withOriginalCorrelations(refusal(N), port, Buffer.from(JSON.stringify(resent)), 1);
    expect(answer.response.messageArray).toEqual(expected(N, new Set([3])));
    expect(port.calls.receivedRequest).toBe(1);
  });

  it('a store that fails the read: the plain MSG1006, asked once, not once per item', async () => {
    const port = archive([{ items: originals, firstIndex: 0 }]);
    port.receivedRequest = async () => {
      port.calls.receivedRequest++;
      throw new Error('store down');
    };
    const answer = await withOriginalCorrelations(refusal(N), port, Buffer.from(JSON.stringify(originals.map((_, i) => message(i, '_B')))));
    expect(answer.response.messageArray).toEqual(expected(N, new Set()));
    expect(port.calls.receivedRequest).toBe(1);
  });
});
