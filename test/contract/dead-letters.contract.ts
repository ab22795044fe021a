import { describe, expect, it } from 'vitest';
import { batch, message, sup, useBackend, type BackendFactory } from './fixtures.js';
import type { Backend } from '../../src/ports/backend.js';

export function deadLettersContract(name: string, open: BackendFactory): void {
  /** Two messages to SUP0000001 appended and settled as dead letters: the first refused 400, the second stale. */
  const twoDeadLetters = async (log: Backend['log']) => {
    const a = message(['SUP0000001']);
    const b = message(['SUP0000001']);
    await log.append(batch([a, b]));
    const [ea, eb] = await log.readQueue(sup, 0, 10, 1 << 20);
    await log.settle(sup, {
      upTo: 2,
      deadLetters: [
        { seq: ea!.seq, messageId: ea!.messageId, reason: 'rejected', status: 400, detail: 'recipient answered 400' },
        { seq: eb!.seq, messageId: eb!.messageId, reason: 'stale', status: null, detail: 'stale' },
      ],
    });
    return { a, b, ea: ea!, eb: eb! };
  };
  describe(`DeadLetters contract: ${name}`, () => {
    const ctx = useBackend(open);

    it('keeps dead letters, requeues them to the tail of their queue (same message) and discards them', async () => {
      const { log, deadLetters } = ctx.backend;
      const { a, b } = await twoDeadLetters(log);
      const dead = await deadLetters.deadLetters({ recipientDipId: 'SUP0000001', state: 'dead', limit: 10 });
      expect(dead.map((d) => [d.seq, d.reason, d.status, d.transactionId, d.senderDipId])).toEqual([
        [1, 'rejected', 400, a.transactionId, 'SDS0000001'],
        [2, 'stale', null, b.transactionId, 'SDS0000001'],
      ]);
      expect(await deadLetters.requeueDeadLetters(sup, [2, 99])).toEqual([2]);
      expect(await deadLetters.requeueDeadLetters(sup, [2])).toEqual([]); // already requeued
      expect(await deadLetters.discardDeadLetters(sup, [1, 1, 99])).toEqual([1]);
      expect(await deadLetters.discardDeadLetters(sup, [1])).toEqual([]); // already discarded
      // A queue the store does not have is told apart from one without such dead letters (the operator API's 404).
      const none = { recipientDipId: 'SUP0000009', channel: 'IF-021' };
      expect(await deadLetters.requeueDeadLetters(none, [1])).toBeNull();
      expect(await deadLetters.discardDeadLetters(none, [1])).toBeNull();
      // Only the positions asked for (the operator API reads why it left a named position alone).
      expect((await deadLetters.deadLetters({ recipientDipId: 'SUP0000001', channel: 'IF-021', seqs: [2, 99], limit: 10 })).map((d) => [d.seq, d.state])).toEqual([[2, 'requeued']]);
      // Positions within a range (what a pull's acknowledgement names: after its `from`, up to its sequence).
      expect((await deadLetters.deadLetters({ recipientDipId: 'SUP0000001', channel: 'IF-021', after: 1, upTo: 2, limit: 10 })).map((d) => d.seq)).toEqual([2]);
      expect((await deadLetters.deadLetters({ recipientDipId: 'SUP0000001', channel: 'IF-021', after: 0, upTo: 1, limit: 10 })).map((d) => d.seq)).toEqual([1]);
      expect(await deadLetters.deadLetters({ recipientDipId: 'SUP0000001', channel: 'IF-021', after: 2, upTo: 10, limit: 10 })).toEqual([]);
      expect((await log.readQueue(sup, 2, 10, 1 << 20)).map((e) => [e.seq, e.transactionId])).toEqual([[3, b.transactionId]]);
      expect((await deadLetters.deadLetters({ limit: 10 })).map((d) => d.state)).toEqual(['discarded', 'requeued']);
    });

    it("a requeued copy (the recipient's requeue, under an R- transaction ID) answers its original's dead letter: it is no longer dead", async () => {
      const { log, deadLetters } = ctx.backend;
      const { ea, eb } = await twoDeadLetters(log);
      const copy = (messageId: number, n: number) => ({ originalId: messageId, transactionId: `R-COPY-${n}`, receivedAt: Date.now(), outbound: '{}', recipientDipId: 'SUP0000001', capacity: null });
      // A replay (nothing enqueued) leaves the dead letter as it is: nothing was re-delivered.
      await log.appendReplayCopies([copy(ea.messageId, 1)]);
      expect((await deadLetters.deadLetters({ state: 'dead', limit: 10 })).map((d) => d.seq)).toEqual([1, 2]);
      await log.appendReplayCopies([copy(ea.messageId, 2)], sup);
      expect((await deadLetters.deadLetters({ state: 'dead', limit: 10 })).map((d) => d.seq)).toEqual([2]);
      expect((await deadLetters.deadLetters({ limit: 10 })).map((d) => [d.seq, d.state])).toEqual([[1, 'requeued'], [2, 'dead']]);
      // Another recipient's requeue of the same message does not answer this queue's dead letter.
      await log.appendReplayCopies([{ ...copy(eb.messageId, 3), recipientDipId: 'SUP0000002' }], { recipientDipId: 'SUP0000002', channel: 'IF-021' });
      expect((await deadLetters.deadLetters({ state: 'dead', limit: 10 })).map((d) => d.seq)).toEqual([2]);
    });
  });
}
