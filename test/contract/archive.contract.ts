import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/adapters/clock.js';
import { ATTEMPT_ID } from '../../src/domain/attempt-id.js';
import { ORIGINAL_TRANSACTION_FIELD, Replay } from '../../src/pipeline/replay.js';
import type { ArchiveQuery } from '../../src/ports/archive.js';
import { attemptId, batch, message, sup, useBackend, type BackendFactory } from './fixtures.js';

/** Archive and delivery journal: replay queries, parties, attempts, purging. */
export function archiveContract(name: string, open: BackendFactory): void {
  describe(`Archive contract: ${name}`, () => {
    const ctx = useBackend(open);

    it('finds archived messages only through the asking recipient, with filters and paging', async () => {
      const { log, archive } = ctx.backend;
      const a = message(['SUP0000001'], { eventCode: 'ActivePower', mpan: '1111111111111' });
      const b = message(['SUP0000001', 'MDS0000001'], { eventCode: 'ReactivePower', mpan: '2222222222222' });
      const c = message(['SUP0000001'], { eventCode: 'ActivePower', mpan: '1111111111111' });
      await log.append(batch([a, b, c]));
      const q = { recipientDipId: 'SUP0000001', channel: 'IF-021', limit: 100 };
      expect((await archive.findArchived(q)).map((m) => [m.seq, m.transactionId])).toEqual([
        [1, a.transactionId],
        [2, b.transactionId],
        [3, c.transactionId],
      ]);
      expect((await archive.findArchived({ ...q, eventCode: 'ReactivePower' })).map((m) => m.transactionId)).toEqual([b.transactionId]);
      expect((await archive.findArchived({ ...q, mpan: '1111111111111' })).map((m) => m.transactionId)).toEqual([a.transactionId, c.transactionId]);
      expect((await archive.findArchived({ ...q, transactionIds: [b.transactionId] })).length).toBe(1);
      expect((await archive.findArchived({ ...q, recipientDipId: 'MDS0000001' })).map((m) => m.transactionId)).toEqual([b.transactionId]);
      expect(await archive.findArchived({ ...q, recipientDipId: 'LDSO000001' })).toEqual([]);
      expect((await archive.findArchived({ ...q, afterSeq: 1, limit: 1 })).map((m) => m.seq)).toEqual([2]);
      expect((await archive.findArchived({ ...q, afterSeq: 1, upToSeq: 2 })).map((m) => m.seq)).toEqual([2]);
      const now = Date.now();
      expect((await archive.findArchived({ ...q, fromMs: now + 60_000 })).length).toBe(0);
      expect((await archive.findArchived({ ...q, toMs: now + 60_000 })).length).toBe(3);
      // A replay whose datetimeFrom and datetimeTo are null asks for 0 … Number.MAX_SAFE_INTEGER
      // (src/api/schemas.ts replayWindow): an open window, never an id bound past the engine's integers.
      expect((await archive.findArchived({ ...q, fromMs: 0, toMs: Number.MAX_SAFE_INTEGER })).length).toBe(3);
      expect(await archive.countArchived({ ...q, fromMs: 0, toMs: Number.MAX_SAFE_INTEGER })).toBe(3);
      // countArchived counts what findArchived finds, without a limit.
      const { limit: _limit, ...all } = q;
      expect(await archive.countArchived(all)).toBe(3);
      expect(await archive.countArchived({ ...all, mpan: '1111111111111' })).toBe(2);
      expect(await archive.countArchived({ ...all, afterSeq: 1, upToSeq: 2 })).toBe(1);
      expect(await archive.countArchived({ ...all, recipientDipId: 'LDSO000001' })).toBe(0);
      expect(await archive.countArchived({ ...all, fromMs: now + 60_000 })).toBe(0);
    });

    it('finds an MPAN\'s original messages on the channels asked that the party sent or was queued to receive, in archive order and in pages (findForMpan)', async () => {
      const { log, archive } = ctx.backend;
      const site = '1111111111117';
      // ADS0000001 sent a and was sent `defaulted`; b (another data service's, to the LDSO) and early (sent
      // to the supplier only, before ADS0000001 was a recipient of anything) are not its to view.
      const early = message(['SUP0000001'], { mpan: site, senderDipId: 'ADS0000002', senderRole: 'ADS' });
      const a = message(['SUP0000001'], { mpan: site, senderDipId: 'ADS0000001', senderRole: 'ADS', outbound: JSON.stringify({ a: 1 }) });
      const other = message(['SUP0000001'], { mpan: '2222222222222', senderDipId: 'ADS0000001', senderRole: 'ADS' });
      const b = message(['LDSO000001'], { mpan: site, senderDipId: 'ADS0000002', senderRole: 'ADS', eventCode: 'ReactivePower' });
      await log.append(batch([early, a, other, b]));
      const defaulted = message(['ADS0000001', 'SUP0000001'], { channel: 'IF-013', eventCode: 'ActivePowerDefaulted', mpan: site, senderDipId: 'MDS0000001', senderRole: 'MDS', transactionId: `T-IF-013-MDS0000001-MDS-20260101-${Date.now()}` });
      await log.append({ ...batch([defaulted]), channel: 'IF-013' });
      const onStatus = message(['ADS0000001'], { channel: 'IF-001', mpan: site, transactionId: `T-IF-001-REGS000001-REGS-20260101-${Date.now()}` });
      await log.append({ ...batch([onStatus]), channel: 'IF-001' });

      const query = { mpan: site, party: 'ADS0000001', channels: ['IF-021', 'IF-013', 'IF-014'], afterId: 0, limit: 100 };
      const found = await archive.findForMpan(query);
      expect(found.map((m) => [m.channel, m.transactionId])).toEqual([
        ['IF-021', a.transactionId],
        ['IF-013', defaulted.transactionId],
      ]);
      // The copy as archived (opened when sealed at rest), with who sent it.
      expect(found[0]!.outbound).toBe(a.outbound);
      expect(found[1]).toMatchObject({ senderDipId: 'MDS0000001', senderRole: 'MDS', eventCode: 'ActivePowerDefaulted' });
      // Each party sees its own: the other data service what it sent, the supplier what it was sent.
      expect((await archive.findForMpan({ ...query, party: 'ADS0000002' })).map((m) => m.transactionId)).toEqual([early.transactionId, b.transactionId]);
      expect((await archive.findForMpan({ ...query, party: 'SUP0000001' })).map((m) => m.transactionId)).toEqual([early.transactionId, a.transactionId, defaulted.transactionId]);
      expect(await archive.findForMpan({ ...query, party: 'ADS0000003' })).toEqual([]);
      const [first] = await archive.findForMpan({ ...query, limit: 1 });
      expect((await archive.findForMpan({ ...query, afterId: first!.id })).map((m) => m.transactionId)).toEqual([defaulted.transactionId]);
      expect(await archive.findForMpan({ ...query, channels: ['IF-014'] })).toEqual([]);
      expect(await archive.findForMpan({ ...query, channels: [] })).toEqual([]);
      expect(await archive.findForMpan({ ...query, mpan: '3333333333333' })).toEqual([]);
    });

    it('matches a requeued dead letter once, at its first position: in pages, counts, replays and requeues', async () => {
      const { log, archive, deadLetters } = ctx.backend;
      // Replay re-issues what it finds, so each message carries a transaction wrapper to re-issue.
      const wrapped = () => {
        const m = message(['SUP0000001']);
        return { ...m, outbound: JSON.stringify({ payload: { CommonBlock: { D0: { transactionID: m.transactionId } } } }) };
      };
      const [a, b, c] = [wrapped(), wrapped(), wrapped()];
      await log.append(batch([a, b, c]));
      const [ea, eb] = await log.readQueue(sup, 0, 10, 1 << 20);
      await log.settle(sup, {
        upTo: 2,
        deadLetters: [ea!, eb!].map((e) => ({ seq: e.seq, messageId: e.messageId, reason: 'rejected' as const, status: 400, detail: 'recipient answered 400' })),
      });
      // The operator's requeue appends second entries (positions 4 and 5) for the same two messages.
      expect(await deadLetters.requeueDeadLetters(sup, [1, 2])).toEqual([1, 2]);
      expect((await log.queueState(sup)).headSeq).toBe(5);
      const q = { recipientDipId: 'SUP0000001', channel: 'IF-021', limit: 100 };
      const found = (query: ArchiveQuery) => archive.findArchived(query).then((r) => r.map((m) => [m.seq, m.transactionId]));
      expect(await found(q)).toEqual([
        [1, a.transactionId],
        [2, b.transactionId],
        [3, c.transactionId],
      ]);
      expect(await found({ ...q, transactionIds: [a.transactionId] })).toEqual([[1, a.transactionId]]);
      // Paging by the first position: what an earlier page returned does not come back after it.
      expect(await found({ ...q, limit: 2 })).toEqual([
        [1, a.transactionId],
        [2, b.transactionId],
      ]);
      expect(await found({ ...q, afterSeq: 2 })).toEqual([[3, c.transactionId]]);
      expect(await found({ ...q, afterSeq: 3 })).toEqual([]);
      const { limit: _limit, ...all } = q;
      expect(await archive.countArchived(all)).toBe(3);
      expect(await archive.countArchived({ ...all, afterSeq: 2 })).toBe(1);
      expect(await archive.countArchived({ ...all, upToSeq: 5 })).toBe(3);
      expect(await archive.countArchived({ ...all, transactionIds: [a.transactionId, b.transactionId] })).toBe(2);

      const replay = new Replay(log, archive, { copyFor: async (_queue, { outbound }) => outbound }, systemClock);
      const filter = { fromMs: 0, toMs: Date.now() + 60_000, eventCode: null, mpan: null, transactionIds: null };
      const page = await replay.replay(sup, { ...filter, transactionIds: [a.transactionId] });
      expect(page.copies.map((copy) => (JSON.parse(copy) as Record<string, unknown>)[ORIGINAL_TRANSACTION_FIELD])).toEqual([a.transactionId]);
      expect((await replay.replay(sup, filter)).copies).toHaveLength(3);
      expect(await replay.requeue(sup, { ...filter, transactionIds: [a.transactionId, b.transactionId] })).toEqual({ requeued: 2, unreadable: [] });
      expect((await log.queueState(sup)).headSeq).toBe(7);
    });

    it('records delivery attempts, newest first', async () => {
      const { log, archive } = ctx.backend;
      await log.append(batch([message(['SUP0000001'])]));
      const base = { queue: sup, firstSeq: 1, lastSeq: 1, url: 'https://x', startedAt: Date.now(), latencyMs: 3, error: null };
      const ids = [attemptId(), attemptId()];
      await archive.recordAttempt({ ...base, attemptId: ids[0]!, status: 503, verdict: 'retry' });
      await archive.recordAttempt({ ...base, attemptId: ids[1]!, status: 200, verdict: 'delivered' });
      const read = await archive.attempts(sup, 10);
      expect(read.map((a) => [a.attemptId, a.verdict])).toEqual([
        [ids[1], 'delivered'],
        [ids[0], 'retry'],
      ]);
      expect(read.every((a) => ATTEMPT_ID.test(a.attemptId ?? ''))).toBe(true);
    });

    it('stores a record written again under the same attempt ID once (a retry after a write whose answer was lost)', async () => {
      const { log, archive } = ctx.backend;
      await log.append(batch([message(['SUP0000001'])]));
      const startedAt = Date.now();
      const record = { attemptId: attemptId(startedAt), queue: sup, firstSeq: 1, lastSeq: 1, url: 'https://x', startedAt, latencyMs: 3, status: 503, verdict: 'retry' as const, error: null };
      await archive.recordAttempt(record);
      await archive.recordAttempt(record);
      // The first write stands: a second one under the same ID changes nothing, even where it differs.
      await archive.recordAttempt({ ...record, status: 200, verdict: 'delivered' });
      expect((await archive.attempts(sup, 10)).map((a) => [a.attemptId, a.status])).toEqual([[record.attemptId, 503]]);
      // Another attempt that looks the same in every other field (two calls in one millisecond) is a record of its own.
      const other = { ...record, attemptId: attemptId(startedAt) };
      await archive.recordAttempt(other);
      expect((await archive.attempts(sup, 10)).map((a) => a.attemptId)).toEqual([other.attemptId, record.attemptId]);
    });

    it('tells who sent a transaction and to whom, for status messages', async () => {
      const { log, archive } = ctx.backend;
      const a = message(['SUP0000001', 'MDS0000001']);
      await log.append(batch([a]));
      const parties = await archive.transactionParties(a.transactionId);
      expect(parties?.senderDipId).toBe('SDS0000001');
      expect(parties?.channel).toBe('IF-021');
      expect([...parties!.recipients].sort()).toEqual(['MDS0000001', 'SUP0000001']);
      expect(parties?.senderUniqueReference).toBe(a.senderUniqueReference);
      expect(parties?.correlationId).toBeNull();
      expect(await archive.transactionParties('T-unknown')).toBeUndefined();
    });

    it("names a replay copy's one recipient and its original, a synchronous replay (no queue entry) as well as a requeue", async () => {
      // A recipient reports a problem with POST /statusmessage naming the D0.transactionID it got: for a
      // copy that is the copy's R- ID, which only the participant it was made for received (not every
      // recipient of its original), and which the original's sender never saw: it is told the original.
      const { log, archive } = ctx.backend;
      const a = message(['SUP0000001', 'MDS0000001']);
      await log.append(batch([a]));
      const [original] = await archive.findArchived({ recipientDipId: 'SUP0000001', channel: 'IF-021', limit: 1 });
      await log.appendReplayCopies([{ originalId: original!.id, transactionId: 'R-replayed', receivedAt: Date.now(), outbound: '{}', recipientDipId: 'SUP0000001', capacity: null }]);
      await log.appendReplayCopies([{ originalId: original!.id, transactionId: 'R-requeued', receivedAt: Date.now(), outbound: '{}', recipientDipId: 'SUP0000001', capacity: null }], sup);
      for (const id of ['R-replayed', 'R-requeued']) {
        const parties = await archive.transactionParties(id);
        expect(parties?.senderDipId).toBe('SDS0000001');
        expect(parties?.channel).toBe('IF-021');
        expect(parties?.recipients).toEqual(['SUP0000001']);
        expect(parties?.replayOf).toBe(a.transactionId);
        expect(parties?.senderUniqueReference).toBe(a.senderUniqueReference);
      }
      expect((await archive.transactionParties(a.transactionId))?.replayOf).toBeNull();
    });

    it('gives back the request a transaction arrived in, byte for byte, with its signature as stored', async () => {
      const { log, archive } = ctx.backend;
      const a = message(['SUP0000001']);
      const b = message(['SUP0000001']);
      const rawRequest = Buffer.from(JSON.stringify([{ a: 'é'.repeat(300) }, { b: 1 }]));
      const signature = { url: 'https://dip.example/dip-channel/IF-021', headers: { 'x-dip-signature': 'c2ln', 'x-dip-signature-date': '2026-12-01T00:00:00Z' } };
      const signed = { ...batch([a, b]), rawRequest, signatureHeaders: JSON.stringify(signature) };
      await log.append(signed);
      for (const m of [a, b]) {
        const r = await archive.receivedRequest(m.transactionId);
        expect(r?.body.equals(rawRequest)).toBe(true);
        expect(r).toMatchObject({ channel: 'IF-021', senderDipId: 'SDS0000001', receivedAt: signed.receivedAt, signature });
      }
      // What the DIP makes itself carries no signature; a row from before the URL was kept, headers alone.
      const own = message(['SUP0000001']);
      await log.append(batch([own]));
      expect((await archive.receivedRequest(own.transactionId))?.signature).toEqual({ url: null, headers: {} });
      const older = message(['SUP0000001']);
      await log.append({ ...batch([older]), signatureHeaders: JSON.stringify(signature.headers) });
      expect((await archive.receivedRequest(older.transactionId))?.signature).toEqual({ url: null, headers: signature.headers });
      expect(await archive.receivedRequest('T-unknown')).toBeUndefined();
    });

    it('purges settled messages past retention, keeping what a queue still waits for', async () => {
      const { log, archive } = ctx.backend;
      const old = Date.now() - 10_000;
      await log.append(batch([message(['SUP0000001'], { receivedAt: old }), message(['MDS0000001'], { receivedAt: old })]));
      // Pulled, then acknowledged: what pulls handed out outlives the purge of what they handed out.
      await log.markPulled(sup, 1);
      await log.settle(sup, { upTo: 1 });
      expect(await archive.archivedChannels()).toEqual(['IF-021']);
      expect(await archive.purgeArchive('IF-021', Date.now(), 100)).toBe(1);
      expect(await archive.purgeArchive('IF-021', Date.now(), 100)).toBe(0);
      expect((await archive.findArchived({ recipientDipId: 'MDS0000001', channel: 'IF-021', limit: 10 })).length).toBe(1);
      // Positions carry on past purged entries.
      await log.append(batch([message(['SUP0000001'])]));
      expect(await log.queueState(sup)).toEqual({ ackedSeq: 1, headSeq: 2, pulledSeq: 1 });
    });
  });
}
