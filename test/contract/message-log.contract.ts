import { describe, expect, it } from 'vitest';
import { batch, mds, message, sup, useBackend, type BackendFactory } from './fixtures.js';

/** MessageLog: append, read, settle. Every adapter passes this. */
export function messageLogContract(name: string, open: BackendFactory): void {
  describe(`MessageLog contract: ${name}`, () => {
    const ctx = useBackend(open);

    it('appends a batch and fans it out to each recipient queue in order', async () => {
      const log = ctx.backend.log;
      const a = message(['SUP0000001', 'MDS0000001']);
      const b = message(['SUP0000001']);
      expect(await log.append(batch([a, b]))).toEqual({ ok: true });
      const supEntries = await log.readQueue(sup, 0, 10, 1 << 20);
      expect(supEntries.map((e) => [e.seq, e.transactionId])).toEqual([
        [1, a.transactionId],
        [2, b.transactionId],
      ]);
      expect(supEntries[0]!.outbound).toBe(a.outbound);
      expect((await log.readQueue(mds, 0, 10, 1 << 20)).map((e) => e.seq)).toEqual([1]);
      expect(await log.queueState(sup)).toEqual({ ackedSeq: 0, headSeq: 2, pulledSeq: 0 });
    });

    it('refuses a whole batch when any sender unique reference was seen before, storing nothing, and names what each was stored as', async () => {
      const log = ctx.backend.log;
      const first = message(['SUP0000001']);
      await log.append(batch([first]));
      const fresh = message(['SUP0000001']);
      const repeat = message(['SUP0000001'], { senderUniqueReference: first.senderUniqueReference });
      expect(await log.append(batch([fresh, repeat]))).toEqual({ ok: false, duplicates: [first.senderUniqueReference], originals: { [first.senderUniqueReference!]: first.transactionId } });
      expect((await log.readQueue(sup, 0, 10, 1 << 20)).length).toBe(1);
      // The same reference from another sender is a different message.
      const other = message(['SUP0000001'], { senderDipId: 'SDS0000002', senderUniqueReference: first.senderUniqueReference });
      expect(await log.append(batch([other]))).toEqual({ ok: true });
    });

    it('refuses a duplicate reference after a reopen too (for the whole retention period)', async () => {
      const first = message(['SUP0000001']);
      await ctx.backend.log.append(batch([first]));
      await ctx.backend.close();
      const log = (await ctx.reopen()).log;
      expect(await log.append(batch([message(['SUP0000001'], { senderUniqueReference: first.senderUniqueReference })]))).toEqual({
        ok: false,
        duplicates: [first.senderUniqueReference],
        originals: { [first.senderUniqueReference!]: first.transactionId },
      });
    });

    it('reports each group commit: appends arriving together are made durable in one group (metrics)', async () => {
      const groups: Array<{ writes: number; durableMs: number }> = [];
      ctx.backend.onGroupCommit((g) => groups.push(g));
      const results = await Promise.all(Array.from({ length: 20 }, () => ctx.backend.log.append(batch([message(['SUP0000001'])]))));
      expect(results.every((r) => r.ok)).toBe(true);
      // Every append is in a reported group, and submitted in one turn they share at least one group.
      expect(groups.reduce((s, g) => s + g.writes, 0)).toBeGreaterThanOrEqual(20);
      expect(Math.max(...groups.map((g) => g.writes))).toBeGreaterThan(1);
      for (const g of groups) expect(g.durableMs).toBeGreaterThanOrEqual(0);
    });

    it('concurrent appends each get their own contiguous sequence numbers', async () => {
      const log = ctx.backend.log;
      const results = await Promise.all(Array.from({ length: 50 }, () => log.append(batch([message(['SUP0000001']), message(['SUP0000001'])]))));
      expect(results.every((r) => r.ok)).toBe(true);
      const seqs = (await log.readQueue(sup, 0, 1000, 1 << 24)).map((e) => e.seq);
      expect(seqs).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    });

    it('reads bounded by count and bytes, always at least one entry', async () => {
      const log = ctx.backend.log;
      const big = 'x'.repeat(1000);
      await log.append(batch([1, 2, 3, 4, 5].map(() => message(['SUP0000001'], { outbound: big }))));
      expect((await log.readQueue(sup, 0, 3, 1 << 20)).length).toBe(3);
      expect((await log.readQueue(sup, 0, 10, 2500)).length).toBe(2);
      expect((await log.readQueue(sup, 0, 10, 10)).length).toBe(1);
      expect((await log.readQueue(sup, 4, 10, 1 << 20)).map((e) => e.seq)).toEqual([5]);
    });

    it('nothing is readable before the write that made it is durable', async () => {
      const log = ctx.backend.log;
      const m = message(['SUP0000001']);
      let resolved = false;
      const gate = ctx.syncGate;
      gate?.hold();
      const appended = log.append(batch([m])).then((r) => {
        resolved = true;
        return r;
      });
      // Poll while the append is in flight: an entry seen before the append resolved is a defect.
      for (let i = 0; i < 20 && !resolved; i++) {
        await new Promise((r) => setImmediate(r));
        const seen = await log.readQueue(sup, 0, 10, 1 << 20);
        if (!resolved && !ctx.serverCommit) expect(seen, 'an entry was readable before its write was durable').toEqual([]);
      }
      if (gate) {
        expect(resolved).toBe(false); // held: not acknowledged either
        gate.release();
      }
      expect(await appended).toEqual({ ok: true });
      expect((await log.readQueue(sup, 0, 10, 1 << 20)).map((e) => e.transactionId)).toEqual([m.transactionId]);
    });

    it('settles durably, never backwards, and lists only queues with unsettled entries', async () => {
      const log = ctx.backend.log;
      await log.append(batch([message(['SUP0000001', 'MDS0000001']), message(['SUP0000001'])]));
      await log.settle(sup, { upTo: 2 });
      await log.settle(sup, { upTo: 1 });
      expect((await log.queueState(sup)).ackedSeq).toBe(2);
      expect(await log.pendingQueues()).toEqual([mds]);
      await ctx.backend.close();
      const reopened = (await ctx.reopen()).log;
      expect(await reopened.queueState(sup)).toEqual({ ackedSeq: 2, headSeq: 2, pulledSeq: 0 });
      expect(await reopened.pendingQueues()).toEqual([mds]);
      // Sequence numbers carry on after a reopen.
      await reopened.append(batch([message(['SUP0000001'])]));
      expect((await reopened.queueState(sup)).headSeq).toBe(3);
    });

    // A queue entry whose message was missing was passed over by queueBacklog's inner join: GET /admin/queues
    // showed the next entry's receipt as the oldest and nothing else, so a damaged queue no worker reads (a
    // pull recipient's, another node's) looked healthy.
    it("reads a queue's backlog in one go, and reports a head entry whose message is missing as damage, counted, not passed over", async () => {
      const log = ctx.backend.log;
      await log.append(batch([message(['SUP0000001'], { receivedAt: 1_000 })]));
      await log.append(batch([message(['SUP0000001'], { receivedAt: 2_000 })]));
      expect(await log.queueBacklog(sup)).toEqual({ ackedSeq: 0, headSeq: 2, oldestReceivedAt: 1_000, damage: null });
      const [first] = await log.readQueue(sup, 0, 1, 1 << 20);
      await ctx.loseMessage(first!.messageId);
      expect(await log.queueBacklog(sup)).toEqual({
        ackedSeq: 0,
        headSeq: 2,
        oldestReceivedAt: 2_000,
        damage: `damaged database: queue SUP0000001/IF-021 position 1 refers to message ${first!.messageId}, which is missing`,
      });
      // Settled past it, the queue is healthy again; a queue with nothing waiting has no damage to show.
      await log.settle(sup, { upTo: 1 });
      expect(await log.queueBacklog(sup)).toEqual({ ackedSeq: 1, headSeq: 2, oldestReceivedAt: 2_000, damage: null });
      await log.settle(sup, { upTo: 2 });
      expect(await log.queueBacklog(sup)).toEqual({ ackedSeq: 2, headSeq: 2, oldestReceivedAt: null, damage: null });
      expect(await log.queueBacklog({ recipientDipId: 'SUP0000009', channel: 'IF-021' })).toEqual({ ackedSeq: 0, headSeq: 0, oldestReceivedAt: null, damage: null });
    });

    it('records the last position a pull handed out durably, never backwards, apart from the settled position', async () => {
      const log = ctx.backend.log;
      await log.append(batch([1, 2, 3, 4].map(() => message(['SUP0000001', 'MDS0000001']))));
      await log.markPulled(sup, 3);
      // Pulls answered out of order (two nodes, say): the smaller one arriving last moves nothing back.
      await Promise.all([log.markPulled(sup, 2), log.markPulled(sup, 1)]);
      expect(await log.queueState(sup)).toEqual({ ackedSeq: 0, headSeq: 4, pulledSeq: 3 });
      // Per queue: the other recipient's queue is untouched.
      expect((await log.queueState(mds)).pulledSeq).toBe(0);
      // Settling (an acknowledgement, a webhook delivery, an expiry) leaves it as it is.
      await log.settle(sup, { upTo: 4 });
      expect(await log.queueState(sup)).toEqual({ ackedSeq: 4, headSeq: 4, pulledSeq: 3 });
      await log.markPulled(sup, 4);
      await ctx.backend.close();
      const reopened = (await ctx.reopen()).log;
      expect(await reopened.queueState(sup)).toEqual({ ackedSeq: 4, headSeq: 4, pulledSeq: 4 });
      // Entries appended later (new messages, a requeue) are not handed out until pulled.
      await reopened.append(batch([message(['SUP0000001'])]));
      expect(await reopened.queueState(sup)).toEqual({ ackedSeq: 4, headSeq: 5, pulledSeq: 4 });
    });

    it("keeps the recipient's acknowledged position in the queue's row: each pull acknowledgement accounts for the positions after the one before it", async () => {
      const log = ctx.backend.log;
      await log.append(batch([1, 2, 3, 4, 5, 6, 7].map(() => message(['SUP0000001', 'MDS0000001']))));
      // No such queue (a recipient that never had a message): nothing to account for, nothing written.
      expect(await log.acknowledge({ recipientDipId: 'SUP0000009', channel: 'IF-021' }, 1)).toBeNull();
      expect(await log.acknowledge(sup, 2)).toBe(0);
      expect((await log.queueState(sup)).ackedSeq).toBe(2);
      // The same acknowledgement again (its answer lost): the same positions, so the same answer.
      expect(await log.acknowledge(sup, 2)).toBe(0);
      // One behind it: a later one accounted for its positions.
      expect(await log.acknowledge(sup, 1)).toBeNull();
      expect(await log.acknowledge(sup, 4)).toBe(2);
      // Setting aside (a stale entry) moves the settled position, not the recipient's: an acknowledgement
      // at the settled position accounts for what was set aside since its last one.
      const [fifth] = await log.readQueue(sup, 4, 1, 1 << 20);
      await log.settle(sup, { upTo: 5, deadLetters: [{ seq: 5, messageId: fifth!.messageId, reason: 'stale', status: null, detail: 'stale' }] });
      expect(await log.acknowledge(sup, 5)).toBe(4);
      // A delivery (a webhook's) moves both: what came before it is accounted for.
      await log.settle(sup, { upTo: 6 });
      expect(await log.acknowledge(sup, 6)).toBe(6);
      expect(await log.acknowledge(sup, 7)).toBe(6);
      // So does a webhook's answer that refused some of what it was sent (a 207): the recipient named those
      // itself, and pulling from then on (its webhook removed) it is not told of them again (settle2).
      await log.append(batch([1, 2, 3].map(() => message(['SUP0000001']))));
      const [, ninth] = await log.readQueue(sup, 7, 2, 1 << 20);
      expect(await log.settle(sup, { upTo: 10, deadLetters: [{ seq: 9, messageId: ninth!.messageId, reason: 'rejected', status: 207, detail: 'refused in a 207' }] })).toBe('settled');
      expect(await log.acknowledge(sup, 10)).toBe(10);
      expect(await log.acknowledge(sup, 9)).toBeNull();
      // Per queue.
      expect(await log.acknowledge(mds, 3)).toBe(0);
      // Durable: the same after a restart.
      await ctx.backend.close();
      const reopened = (await ctx.reopen()).log;
      expect(await reopened.acknowledge(sup, 10)).toBe(10);
      expect(await reopened.acknowledge(sup, 7)).toBeNull();
      expect(await reopened.queueState(sup)).toEqual({ ackedSeq: 10, headSeq: 10, pulledSeq: 0 });
    });

    it('accounts for each position once when two pull acknowledgements of one queue come at once', async () => {
      const log = ctx.backend.log;
      await log.append(batch(Array.from({ length: 10 }, () => message(['SUP0000001']))));
      for (let round = 0; round < 3; round++) {
        const base = round * 10;
        if (round > 0) await log.append(batch(Array.from({ length: 10 }, () => message(['SUP0000001']))));
        const [low, high] = await Promise.all([log.acknowledge(sup, base + 4), log.acknowledge(sup, base + 10)]);
        // Either order: the lower first (it accounts for base..4, the higher for 4..10), or the higher first
        // (it accounts for them all, the lower for none). Never a position twice, none left out.
        expect([[base, base + 4], [null, base]]).toContainEqual([low, high]);
        expect((await log.queueState(sup)).ackedSeq).toBe(base + 10);
      }
    });

    it("records dead letters, the new position and the senders' notices in one settlement, once", async () => {
      const { log, deadLetters } = ctx.backend;
      const a = message(['SUP0000001']);
      await log.append(batch([a]));
      const [entry] = await log.readQueue(sup, 0, 10, 1 << 20);
      const notice = message(['SDS0000001'], { channel: 'STATUS', senderUniqueReference: null, senderDipId: '00000000000' });
      const settlement = {
        upTo: 1,
        deadLetters: [{ seq: 1, messageId: entry!.messageId, reason: 'rejected' as const, status: 400, detail: 'refused' }],
        notices: { ...batch([notice]), channel: 'STATUS', senderDipId: '00000000000' },
      };
      expect(await log.settle(sup, settlement)).toBe('settled');
      // The same settlement recorded again (its COMMIT's answer lost, though it committed) is not recorded
      // twice, and is answered as settled: not superseded by its own position, which lost its dead-letter
      // events and the notices' wake-up (settle2).
      expect(await log.settle(sup, settlement)).toBe('settled');
      expect(await log.settle(sup, { upTo: 1, deadLetters: settlement.deadLetters })).toBe('settled');
      // Another message at that position (not this settlement's): passed, superseded.
      expect(await log.settle(sup, { upTo: 1, deadLetters: [{ ...settlement.deadLetters[0]!, messageId: entry!.messageId + 1000 }] })).toBe('superseded');
      expect((await deadLetters.deadLetters({ limit: 10 })).map((d) => [d.seq, d.transactionId, d.reason])).toEqual([[1, a.transactionId, 'rejected']]);
      expect((await log.readQueue({ recipientDipId: 'SDS0000001', channel: 'STATUS' }, 0, 10, 1 << 20)).map((e) => e.transactionId)).toEqual([notice.transactionId]);
      expect((await log.queueState(sup)).ackedSeq).toBe(1);
    });

    it("sets nothing aside, nor tells its sender, when a pull's acknowledgement lands between the sweep's read and its settlement", async () => {
      const { log, deadLetters } = ctx.backend;
      await log.append(batch([1, 2, 3].map(() => message(['SUP0000001']))));
      // The sweep reads the acknowledged position (0) and picks the stale entries after it …
      const stale = await log.readQueue(sup, (await log.queueState(sup)).ackedSeq, 10, 1 << 20);
      const setAside = (entries: typeof stale) => entries.map((e) => ({ seq: e.seq, messageId: e.messageId, reason: 'stale' as const, status: null, detail: 'stale' }));
      // … while it builds the senders' notices, the recipient acknowledges the first two: they are delivered.
      expect(await log.acknowledge(sup, 2)).toBe(0);
      const notice = message(['SDS0000001'], { channel: 'STATUS', senderUniqueReference: null, senderDipId: '00000000000' });
      const outcome = await log.settle(sup, { upTo: 3, deadLetters: setAside(stale), notices: { ...batch([notice]), channel: 'STATUS', senderDipId: '00000000000' } });
      // Neither acknowledged and dead-lettered, nor its sender told "not delivered": nothing of it is written.
      expect(await deadLetters.deadLetters({ limit: 10 })).toEqual([]);
      expect(await log.readQueue({ recipientDipId: 'SDS0000001', channel: 'STATUS' }, 0, 10, 1 << 20)).toEqual([]);
      expect(outcome).toBe('superseded');
      // The position stays the recipient's: the third still waits, for a settlement made from the position as it is now.
      expect((await log.queueState(sup)).ackedSeq).toBe(2);
      expect(await log.settle(sup, { upTo: 3, deadLetters: setAside(stale.slice(2)) })).toBe('settled');
      expect((await deadLetters.deadLetters({ limit: 10 })).map((d) => [d.seq, d.reason])).toEqual([[3, 'stale']]);
      // Named once, by the acknowledgement whose range holds it.
      expect(await log.acknowledge(sup, 3)).toBe(2);
    });

    it('archives replay copies and, for a requeue, appends them to the queue', async () => {
      const { log, archive } = ctx.backend;
      await log.append(batch([message(['SUP0000001'])]));
      const [original] = await archive.findArchived({ recipientDipId: 'SUP0000001', channel: 'IF-021', limit: 1 });
      await log.appendReplayCopies([{ originalId: original!.id, transactionId: 'R-copy-1', receivedAt: Date.now(), outbound: '{"r":1}', recipientDipId: 'SUP0000001', capacity: null }]);
      expect((await log.queueState(sup)).headSeq).toBe(1);
      await log.appendReplayCopies([{ originalId: original!.id, transactionId: 'R-copy-2', receivedAt: Date.now(), outbound: '{"r":2}', recipientDipId: 'SUP0000001', capacity: null }], sup);
      const entries = await log.readQueue(sup, 1, 10, 1 << 20);
      expect(entries.map((e) => [e.seq, e.transactionId, e.outbound])).toEqual([[2, 'R-copy-2', '{"r":2}']]);
      // A requeued copy is not found again by a later replay: only originals are.
      expect((await archive.findArchived({ recipientDipId: 'SUP0000001', channel: 'IF-021', limit: 10 })).map((m) => m.id)).toEqual([original!.id]);
    });

    it('keeps with each entry the capacity it was routed in, on every road out: read, replay, requeue and requeued dead letter', async () => {
      // Spec 5.5.6: a copy is obfuscated for the capacity routing reached its recipient in (SUP0000001 as the
      // MPAN's distributor, not as a supplier); a recipient routed without one (what the DIP sends itself, and
      // every entry queued before capacities were kept) reads null: all its receiving roles, as then.
      const { log, archive, deadLetters } = ctx.backend;
      const a = message(['SUP0000001', 'MDS0000001'], { capacities: { SUP0000001: 'LDSO' } });
      const b = message(['SUP0000001']);
      await log.append(batch([a, b]));
      expect((await log.readQueue(sup, 0, 10, 1 << 20)).map((e) => [e.transactionId, e.capacity])).toEqual([
        [a.transactionId, 'LDSO'],
        [b.transactionId, null],
      ]);
      expect((await log.readQueue(mds, 0, 10, 1 << 20)).map((e) => e.capacity)).toEqual([null]);
      // A replay finds it with its entry's capacity, and a requeued copy keeps the one it is given.
      const found = await archive.findArchived({ ...sup, limit: 10 });
      expect(found.map((m) => [m.transactionId, m.capacity])).toEqual([
        [a.transactionId, 'LDSO'],
        [b.transactionId, null],
      ]);
      await log.appendReplayCopies([{ originalId: found[0]!.id, transactionId: 'R-capacity', receivedAt: Date.now(), outbound: '{}', recipientDipId: 'SUP0000001', capacity: found[0]!.capacity }], sup);
      expect((await log.readQueue(sup, 2, 10, 1 << 20)).map((e) => [e.transactionId, e.capacity])).toEqual([['R-capacity', 'LDSO']]);
      // A dead letter requeued takes the capacity of the entry it was.
      await log.settle(sup, { upTo: 1, deadLetters: [{ seq: 1, messageId: found[0]!.id, reason: 'rejected', status: 400, detail: 'refused' }] });
      expect(await deadLetters.requeueDeadLetters(sup, [1])).toEqual([1]);
      expect((await log.readQueue(sup, 3, 10, 1 << 20)).map((e) => [e.seq, e.transactionId, e.capacity])).toEqual([[4, a.transactionId, 'LDSO']]);
    });

    it('keeps with each message the security pattern it was accepted under, on every road out: read, replay, requeue and requeued dead letter', async () => {
      // Its copies are made for that pattern whatever its channel runs later (src/pipeline/recipient-copy.ts
      // copyPattern); a message stored without one (as before it was recorded) reads null.
      const { log, archive, deadLetters } = ctx.backend;
      const a = message(['SUP0000001'], { securityPattern: 2 });
      const b = message(['SUP0000001'], { securityPattern: 3 });
      const c = message(['SUP0000001']);
      await log.append(batch([a, b, c]));
      const patterns = [
        [a.transactionId, 2],
        [b.transactionId, 3],
        [c.transactionId, null],
      ];
      expect((await log.readQueue(sup, 0, 10, 1 << 20)).map((e) => [e.transactionId, e.securityPattern])).toEqual(patterns);
      const found = await archive.findArchived({ ...sup, limit: 10 });
      expect(found.map((m) => [m.transactionId, m.securityPattern])).toEqual(patterns);
      // A replay copy is its original's, requeued: made for the original's pattern again.
      await log.appendReplayCopies([{ originalId: found[0]!.id, transactionId: 'R-pattern', receivedAt: Date.now(), outbound: '{}', recipientDipId: 'SUP0000001', capacity: null }], sup);
      expect((await log.readQueue(sup, 3, 10, 1 << 20)).map((e) => [e.transactionId, e.securityPattern])).toEqual([['R-pattern', 2]]);
      await log.settle(sup, { upTo: 2, deadLetters: [{ seq: 2, messageId: found[1]!.id, reason: 'rejected', status: 400, detail: 'refused' }] });
      expect(await deadLetters.requeueDeadLetters(sup, [2])).toEqual([2]);
      expect((await log.readQueue(sup, 4, 10, 1 << 20)).map((e) => [e.transactionId, e.securityPattern])).toEqual([[b.transactionId, 3]]);
    });
  });
}
