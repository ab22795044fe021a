import { PULL_ACKNOWLEDGED } from '../../src/ports/archive.js';
import { describe, expect, it } from 'vitest';
import type { TraceQuery } from '../../src/ports/traces.js';
import { attemptId, batch, mds, message, sup, useBackend, type BackendFactory } from './fixtures.js';

/**
 * MessageTraces: messages with their copies, attempts and dead letters, read from what the archive and
 * the delivery journal hold (reports, traces, journeys). Every engine answers the same.
 */
export function tracesContract(name: string, open: BackendFactory): void {
  describe(`MessageTraces contract: ${name}`, () => {
    const ctx = useBackend(open);
    const T0 = Date.now() - 60_000;
    const all = (over: Partial<TraceQuery> = {}): TraceQuery => ({ fromMs: 0, toMs: Number.MAX_SAFE_INTEGER, limit: 1000, ...over });

    it('follows each copy: pending, then delivered with its attempts, or dead-lettered with why', async () => {
      const { log, archive, traces } = ctx.backend;
      const outbound = JSON.stringify({ payload: { CommonBlock: { A0: { primaryRecipients: ['SUP0000001'], secondaryRecipients: ['MDS0000001'], always: [] } } } });
      const a = message(['SUP0000001', 'MDS0000001'], { receivedAt: T0, correlationId: 'CI-1', outbound });
      await log.append(batch([a]));

      const [pending] = await traces.trace(all());
      expect(pending).toMatchObject({ transactionId: a.transactionId, channel: 'IF-021', eventCode: 'ActivePower', sender: 'SDS0000001', senderRole: 'SDS', senderUniqueReference: a.senderUniqueReference, correlationId: 'CI-1', receivedAt: T0, replayOf: null });
      expect(pending!.routing).toBeUndefined();
      expect(pending!.deliveries.map((d) => [d.recipient, d.seq, d.state, d.deliveredAt, d.firstAttemptAt, d.attempts.length, d.deadLetter]).sort()).toEqual([
        ['MDS0000001', 1, 'pending', null, null, 0, null],
        ['SUP0000001', 1, 'pending', null, null, 0, null],
      ]);

      // SUP: a failed call, then a delivered one; MDS: refused (a dead letter).
      const base = { queue: sup, firstSeq: 1, lastSeq: 1, url: 'https://sup.example/dip', error: null };
      await archive.recordAttempt({ attemptId: attemptId(), ...base, startedAt: T0 + 100, latencyMs: 7, status: 503, verdict: 'retry' });
      await archive.recordAttempt({ attemptId: attemptId(), ...base, startedAt: T0 + 1000, latencyMs: 12, status: 200, verdict: 'delivered' });
      await log.settle(sup, { upTo: 1 });
      const [entry] = await log.readQueue(mds, 0, 1, 1 << 20);
      await archive.recordAttempt({ attemptId: attemptId(), ...base, queue: mds, startedAt: T0 + 200, latencyMs: 5, status: 400, verdict: 'rejected' });
      await log.settle(mds, { upTo: 1, deadLetters: [{ seq: 1, messageId: entry!.messageId, reason: 'rejected', status: 400, detail: 'MDS0000001 refused the message: HTTP 400' }] });

      const [m] = await traces.trace(all({ withRouting: true }));
      expect(m!.routing).toEqual({ primary: ['SUP0000001'], secondary: ['MDS0000001'], always: [] });
      const of = (r: string) => m!.deliveries.find((d) => d.recipient === r)!;
      expect(of('SUP0000001')).toMatchObject({ state: 'delivered', deliveredAt: T0 + 1012, firstAttemptAt: T0 + 100, deadLetter: null });
      expect(of('SUP0000001').attempts).toEqual([
        { startedAt: T0 + 100, latencyMs: 7, status: 503, verdict: 'retry', error: null, pulled: false },
        { startedAt: T0 + 1000, latencyMs: 12, status: 200, verdict: 'delivered', error: null, pulled: false },
      ]);
      expect(of('MDS0000001')).toMatchObject({ state: 'dead', deliveredAt: null, firstAttemptAt: T0 + 200, deadLetter: { reason: 'rejected', status: 400, detail: 'MDS0000001 refused the message: HTTP 400' } });
      expect(of('MDS0000001').deadLetter!.at).toEqual(expect.any(Number));

      // The operator requeues the dead letter: its state says so.
      expect(await ctx.backend.deadLetters.requeueDeadLetters(mds, [1])).toEqual([1]);
      const [after] = await traces.trace(all());
      expect(after!.deliveries.find((d) => d.recipient === 'MDS0000001' && d.seq === 1)!.state).toBe('requeued');
    });

    it("takes a pull's acknowledgement as its copies' delivery, marked as pulled", async () => {
      const { log, archive, traces } = ctx.backend;
      const a = message(['SUP0000001'], { receivedAt: T0 });
      await log.append(batch([a]));
      await log.settle(sup, { upTo: 1 });
      await archive.recordAttempt({ attemptId: attemptId(), queue: sup, firstSeq: 1, lastSeq: 1, url: PULL_ACKNOWLEDGED, startedAt: T0 + 400, latencyMs: 0, status: null, verdict: 'delivered', error: null });
      const [m] = await traces.trace(all());
      expect(m!.deliveries[0]).toMatchObject({ state: 'delivered', deliveredAt: T0 + 400, attempts: [{ startedAt: T0 + 400, latencyMs: 0, status: null, verdict: 'delivered', error: null, pulled: true }] });
    });

    it('filters by period, channels, sender, recipient, transaction, correlation and MPAN, oldest first, up to the limit', async () => {
      const { log, traces } = ctx.backend;
      const a = message(['SUP0000001'], { receivedAt: T0, mpan: '1100000000001', correlationId: 'CI-A' });
      const b = message(['MDS0000001'], { receivedAt: T0 + 10, mpan: '1100000000002', correlationId: 'CI-A' });
      const c = message(['SUP0000001', 'MDS0000001'], { receivedAt: T0 + 20, mpan: '1100000000001', senderDipId: 'SDS0000002', channel: 'IF-022' });
      await log.append(batch([a, b]));
      await log.append({ ...batch([c]), channel: 'IF-022', senderDipId: 'SDS0000002' });
      const ids = async (q: Partial<TraceQuery>) => (await traces.trace(all(q))).map((m) => m.transactionId);
      expect(await ids({})).toEqual([a.transactionId, b.transactionId, c.transactionId]);
      expect(await ids({ fromMs: T0 + 10, toMs: T0 + 20 })).toEqual([b.transactionId]); // from inclusive, to exclusive
      expect(await ids({ channels: ['IF-022'] })).toEqual([c.transactionId]);
      expect(await ids({ channels: ['IF-022', 'IF-021'] })).toEqual([a.transactionId, b.transactionId, c.transactionId]);
      expect(await ids({ channels: ['IF-013', 'IF-022'] })).toEqual([c.transactionId]);
      expect(await ids({ sender: 'SDS0000002' })).toEqual([c.transactionId]);
      expect(await ids({ recipient: 'MDS0000001' })).toEqual([b.transactionId, c.transactionId]);
      expect(await ids({ transactionId: b.transactionId })).toEqual([b.transactionId]);
      expect(await ids({ correlationId: 'CI-A' })).toEqual([a.transactionId, b.transactionId]);
      expect(await ids({ mpan: '1100000000001' })).toEqual([a.transactionId, c.transactionId]);
      expect(await ids({ mpan: '1100000000009' })).toEqual([]);
      expect(await ids({ limit: 2 })).toEqual([a.transactionId, b.transactionId]);
      // A recipient filter keeps the whole message: its other copies too.
      const [withBoth] = await traces.trace(all({ recipient: 'MDS0000001', channels: ['IF-022'] }));
      expect(withBoth!.deliveries.map((d) => d.recipient).sort()).toEqual(['MDS0000001', 'SUP0000001']);
    });

    it('gives each message\'s MPAN as stored only when asked (withMpan): the same for the same MPAN, null without one', async () => {
      const { log, traces } = ctx.backend;
      const [a, b, c, d] = [
        message(['SUP0000001'], { receivedAt: T0, mpan: '1100000000001' }),
        message(['SUP0000001'], { receivedAt: T0 + 1, mpan: '1100000000002' }),
        message(['SUP0000001'], { receivedAt: T0 + 2, mpan: '1100000000001' }),
        message(['SUP0000001'], { receivedAt: T0 + 3, mpan: null }),
      ];
      await log.append(batch([a, b, c, d]));
      // A trace's rows are as they were: no MPAN member unless asked.
      for (const m of await traces.trace(all())) expect(Object.keys(m)).not.toContain('mpan');
      const keys = (await traces.trace(all({ withMpan: true }))).map((m) => m.mpan);
      expect(keys[0]).toEqual(expect.any(String));
      expect(keys[2]).toBe(keys[0]);
      expect(keys[1]).not.toBe(keys[0]);
      expect(keys[3]).toBeNull();
      // The key is what an MPAN filter matches (plain, or its keyed hash when sealed at rest).
      expect((await traces.trace(all({ withMpan: true, mpan: '1100000000001' }))).map((m) => m.mpan)).toEqual([keys[0], keys[0]]);
    });

    it('an attempt carrying several copies counts for each of them', async () => {
      const { log, archive, traces } = ctx.backend;
      const [a, b] = [message(['SUP0000001'], { receivedAt: T0 }), message(['SUP0000001'], { receivedAt: T0 + 1 })];
      await log.append(batch([a, b]));
      await archive.recordAttempt({ attemptId: attemptId(), queue: sup, firstSeq: 1, lastSeq: 2, url: 'https://sup.example/dip', startedAt: T0 + 50, latencyMs: 4, status: 200, verdict: 'delivered', error: null });
      await log.settle(sup, { upTo: 2 });
      const traced = await traces.trace(all());
      expect(traced.map((m) => [m.deliveries[0]!.seq, m.deliveries[0]!.state, m.deliveries[0]!.deliveredAt, m.deliveries[0]!.attempts.length])).toEqual([
        [1, 'delivered', T0 + 54, 1],
        [2, 'delivered', T0 + 54, 1],
      ]);
    });
  });
}
