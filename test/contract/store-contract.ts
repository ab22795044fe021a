import { describe, expect, it, beforeEach, afterEach } from 'vitest';
import type { AcceptedBatch, AcceptedMessage, Store } from '../../src/ports/store.js';

/**
 * The behaviour every storage adapter must show. Each adapter's test file calls this with a factory
 * that opens a fresh, empty store (and may reopen the same one, to prove durability).
 */
export function storeContract(name: string, open: () => Promise<{ store: Store; reopen: () => Promise<Store> }>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let reopen: () => Promise<Store>;
    let n = 0;

    beforeEach(async () => {
      ({ store, reopen } = await open());
    });
    afterEach(async () => {
      await store.close();
    });

    function message(recipients: string[], over: Partial<AcceptedMessage> = {}): AcceptedMessage {
      n += 1;
      return {
        transactionId: `T-IF-021-SDS0000001-SDS-20260101-${String(n).padStart(16, '0')}`,
        channel: 'IF-021',
        eventCode: 'ActivePower',
        senderDipId: 'SDS0000001',
        senderRole: 'SDS',
        senderUniqueReference: `ref-${n}`,
        correlationId: null,
        mpan: '1200000000001',
        receivedAt: Date.now(),
        outbound: JSON.stringify({ n }),
        recipients,
        ...over,
      };
    }
    function batch(messages: AcceptedMessage[]): AcceptedBatch {
      return { channel: 'IF-021', senderDipId: 'SDS0000001', receivedAt: Date.now(), rawRequest: Buffer.from('[]'), signatureHeaders: '{}', messages };
    }
    const sup = { recipientDipId: 'SUP0000001', channel: 'IF-021' };
    const mds = { recipientDipId: 'MDS0000001', channel: 'IF-021' };

    it('appends a batch and fans it out to each recipient queue in order', async () => {
      const a = message(['SUP0000001', 'MDS0000001']);
      const b = message(['SUP0000001']);
      expect(await store.append(batch([a, b]))).toEqual({ ok: true });
      const supEntries = await store.readQueue(sup, 0, 10, 1 << 20);
      expect(supEntries.map((e) => [e.seq, e.transactionId])).toEqual([
        [1, a.transactionId],
        [2, b.transactionId],
      ]);
      expect(supEntries[0]!.outbound).toBe(a.outbound);
      expect((await store.readQueue(mds, 0, 10, 1 << 20)).map((e) => e.seq)).toEqual([1]);
      expect(await store.queueState(sup)).toEqual({ ackedSeq: 0, headSeq: 2 });
    });

    it('refuses a whole batch when any sender unique reference was seen before, storing nothing', async () => {
      const first = message(['SUP0000001']);
      await store.append(batch([first]));
      const fresh = message(['SUP0000001']);
      const repeat = message(['SUP0000001'], { senderUniqueReference: first.senderUniqueReference });
      expect(await store.append(batch([fresh, repeat]))).toEqual({ ok: false, duplicates: [first.senderUniqueReference] });
      expect((await store.readQueue(sup, 0, 10, 1 << 20)).length).toBe(1);
      // The same reference from another sender is a different message.
      const other = message(['SUP0000001'], { senderDipId: 'SDS0000002', senderUniqueReference: first.senderUniqueReference });
      expect(await store.append(batch([other]))).toEqual({ ok: true });
    });

    it('concurrent appends each get their own contiguous sequence numbers', async () => {
      const results = await Promise.all(Array.from({ length: 50 }, () => store.append(batch([message(['SUP0000001']), message(['SUP0000001'])]))));
      expect(results.every((r) => r.ok)).toBe(true);
      const seqs = (await store.readQueue(sup, 0, 1000, 1 << 24)).map((e) => e.seq);
      expect(seqs).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    });

    it('reads bounded by count and bytes, always at least one entry', async () => {
      const big = 'x'.repeat(1000);
      await store.append(batch([1, 2, 3, 4, 5].map(() => message(['SUP0000001'], { outbound: big }))));
      expect((await store.readQueue(sup, 0, 3, 1 << 20)).length).toBe(3);
      expect((await store.readQueue(sup, 0, 10, 2500)).length).toBe(2);
      expect((await store.readQueue(sup, 0, 10, 10)).length).toBe(1);
      expect((await store.readQueue(sup, 4, 10, 1 << 20)).map((e) => e.seq)).toEqual([5]);
    });

    it('acknowledges durably and lists only queues with undelivered entries', async () => {
      await store.append(batch([message(['SUP0000001', 'MDS0000001']), message(['SUP0000001'])]));
      await store.ack(sup, 2);
      expect((await store.queueState(sup)).ackedSeq).toBe(2);
      expect(await store.pendingQueues()).toEqual([mds]);
      await store.close();
      store = await reopen();
      expect(await store.queueState(sup)).toEqual({ ackedSeq: 2, headSeq: 2 });
      expect(await store.pendingQueues()).toEqual([mds]);
      // Sequence numbers carry on after a reopen.
      await store.append(batch([message(['SUP0000001'])]));
      expect((await store.queueState(sup)).headSeq).toBe(3);
    });

    it('finds archived messages only through the asking recipient, with filters', async () => {
      const a = message(['SUP0000001'], { eventCode: 'ActivePower', mpan: '1111111111111' });
      const b = message(['SUP0000001', 'MDS0000001'], { eventCode: 'ReactivePower', mpan: '2222222222222' });
      await store.append(batch([a, b]));
      const q = { recipientDipId: 'SUP0000001', channel: 'IF-021', limit: 100 };
      expect((await store.findArchived(q)).map((m) => m.transactionId)).toEqual([a.transactionId, b.transactionId]);
      expect((await store.findArchived({ ...q, eventCode: 'ReactivePower' })).map((m) => m.transactionId)).toEqual([b.transactionId]);
      expect((await store.findArchived({ ...q, mpan: '1111111111111' })).map((m) => m.transactionId)).toEqual([a.transactionId]);
      expect((await store.findArchived({ ...q, transactionIds: [b.transactionId] })).length).toBe(1);
      expect((await store.findArchived({ ...q, recipientDipId: 'MDS0000001' })).map((m) => m.transactionId)).toEqual([b.transactionId]);
      expect(await store.findArchived({ ...q, recipientDipId: 'LDSO000001' })).toEqual([]);
    });

    it('archives replay copies and, for a requeue, appends them to the queue', async () => {
      const a = message(['SUP0000001']);
      await store.append(batch([a]));
      const [original] = await store.findArchived({ recipientDipId: 'SUP0000001', channel: 'IF-021', limit: 1 });
      await store.appendReplayCopies([{ originalId: original!.id, transactionId: 'R-copy-1', receivedAt: Date.now(), outbound: '{"r":1}' }]);
      expect((await store.queueState(sup)).headSeq).toBe(1);
      await store.appendReplayCopies([{ originalId: original!.id, transactionId: 'R-copy-2', receivedAt: Date.now(), outbound: '{"r":2}' }], sup);
      const entries = await store.readQueue(sup, 1, 10, 1 << 20);
      expect(entries.map((e) => [e.seq, e.transactionId, e.outbound])).toEqual([[2, 'R-copy-2', '{"r":2}']]);
    });

    it('records delivery attempts, newest first', async () => {
      await store.append(batch([message(['SUP0000001'])]));
      const base = { queue: sup, firstSeq: 1, lastSeq: 1, url: 'https://x', startedAt: Date.now(), latencyMs: 3, error: null };
      await store.recordAttempt({ ...base, status: 503, verdict: 'retry' });
      await store.recordAttempt({ ...base, status: 200, verdict: 'delivered' });
      expect((await store.attempts(sup, 10)).map((a) => a.verdict)).toEqual(['delivered', 'retry']);
    });

    it('keeps participants and webhooks, and bumps the registry version on change', async () => {
      const v0 = await store.registryVersion();
      const p = { dipId: 'SUP0000001', roles: ['SUP'], organisation: 'Acme', certificatePem: 'PEM', certificateFingerprint: 'AB', createdAt: 1, connectionProvider: null };
      await store.upsertParticipant(p, 'hash-1');
      await store.upsertParticipant({ ...p, roles: ['SUP', 'LDSO'] }, null);
      expect(await store.participants()).toEqual([{ participant: { ...p, roles: ['SUP', 'LDSO'] }, apiKeyHash: 'hash-1' }]);
      await expect(store.upsertParticipant({ ...p, dipId: 'NEW0000001' }, null)).rejects.toThrow(/API key/);
      // A rotation keeps the replaced certificate until the end of its overlap, and the API key.
      const rotated = { ...p, certificatePem: 'PEM2', certificateFingerprint: 'CD', previous: { certificatePem: 'PEM', certificateFingerprint: 'AB', validUntil: 1_000 } };
      await store.upsertParticipant(rotated, null);
      expect(await store.participants()).toEqual([{ participant: rotated, apiKeyHash: 'hash-1' }]);
      await store.upsertParticipant({ ...p, roles: ['SUP', 'LDSO'] }, null);
      expect((await store.participants())[0]?.participant).not.toHaveProperty('previous');
      await store.putWebhook({ recipientDipId: 'SUP0000001', channel: 'IF-021', url: 'https://a', maxMessageCount: 10, maxPayloadKb: 100 });
      await store.putWebhook({ recipientDipId: 'SUP0000001', channel: 'IF-021', url: 'https://b', maxMessageCount: 5, maxPayloadKb: 50 });
      expect(await store.webhooks()).toEqual([{ recipientDipId: 'SUP0000001', channel: 'IF-021', url: 'https://b', maxMessageCount: 5, maxPayloadKb: 50 }]);
      expect(await store.deleteWebhook('SUP0000001', 'IF-021')).toBe(true);
      expect(await store.deleteWebhook('SUP0000001', 'IF-021')).toBe(false);
      expect(await store.registryVersion()).toBeGreaterThan(v0);
    });

    it('keeps dead letters, requeues them to the tail of their queue (same message) and discards them', async () => {
      const a = message(['SUP0000001']);
      const b = message(['SUP0000001']);
      await store.append(batch([a, b]));
      const [ea, eb] = await store.readQueue(sup, 0, 10, 1 << 20);
      await store.recordDeadLetter(sup, ea!, 'rejected', 400, 'recipient answered 400');
      await store.recordDeadLetter(sup, eb!, 'stale', null, 'stale');
      await store.ack(sup, 2);
      const dead = await store.deadLetters({ recipientDipId: 'SUP0000001', state: 'dead', limit: 10 });
      expect(dead.map((d) => [d.seq, d.reason, d.status, d.transactionId, d.senderDipId])).toEqual([
        [1, 'rejected', 400, a.transactionId, 'SDS0000001'],
        [2, 'stale', null, b.transactionId, 'SDS0000001'],
      ]);
      expect(await store.requeueDeadLetters(sup, [2, 99])).toBe(1);
      expect(await store.requeueDeadLetters(sup, [2])).toBe(0); // already requeued
      expect(await store.discardDeadLetters(sup, [1])).toBe(1);
      expect((await store.readQueue(sup, 2, 10, 1 << 20)).map((e) => [e.seq, e.transactionId])).toEqual([[3, b.transactionId]]);
      expect((await store.deadLetters({ limit: 10 })).map((d) => d.state)).toEqual(['discarded', 'requeued']);
    });

    it('tells who sent a transaction and to whom, for status messages', async () => {
      const a = message(['SUP0000001', 'MDS0000001']);
      await store.append(batch([a]));
      const parties = await store.transactionParties(a.transactionId);
      expect(parties?.senderDipId).toBe('SDS0000001');
      expect(parties?.channel).toBe('IF-021');
      expect([...parties!.recipients].sort()).toEqual(['MDS0000001', 'SUP0000001']);
      expect(parties?.senderUniqueReference).toBe(a.senderUniqueReference);
      expect(parties?.correlationId).toBeNull();
      expect(await store.transactionParties('T-unknown')).toBeUndefined();
    });

    it('keeps MPAN appointment history per slot, folding changes in order', async () => {
      const mpan = '1200000000009';
      await store.applyAppointments([
        { kind: 'appoint', mpan, slot: 'SUP', dipId: 'OLD', fromMs: 1000, toMs: null },
        { kind: 'appoint', mpan, slot: 'LDSO', dipId: 'L1', fromMs: 0, toMs: null },
        { kind: 'appoint', mpan, slot: 'SUP', dipId: 'NEW', fromMs: 5000, toMs: null },
      ]);
      expect(await store.mpanHistory(mpan)).toEqual([
        { mpan, slot: 'LDSO', dipId: 'L1', fromMs: 0, toMs: null },
        { mpan, slot: 'SUP', dipId: 'OLD', fromMs: 1000, toMs: 4999 },
        { mpan, slot: 'SUP', dipId: 'NEW', fromMs: 5000, toMs: null },
      ]);
      await store.applyAppointments([{ kind: 'end', mpan, slot: 'SUP', dipId: 'NEW', toMs: 9000 }]);
      expect((await store.mpanHistory(mpan)).at(-1)).toEqual({ mpan, slot: 'SUP', dipId: 'NEW', fromMs: 5000, toMs: 9000 });
      expect(await store.mpanHistory('1200000000010')).toEqual([]);
    });
  });
}
