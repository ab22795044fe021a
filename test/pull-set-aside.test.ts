import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DipClient } from '../src/client/dip-client.js';
import { buildIF021 } from '../src/sim/messages.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/**
 * A puller's acknowledgement that covers positions the DIP set aside (gone stale while the recipient held
 * them: dead letters, their senders told "not delivered"). It was answered "already acknowledged up to 1:
 * nothing changed": the recipient's adapter believed it had delivered, the sender was told it had not, and
 * a resend was processed twice. Still 200 (the position moved), but the answer names each such message:
 * its transaction ID, MSG1000 and why, in the acknowledgement whose range holds it (and that one's repeats).
 */
describe('acknowledging positions the DIP set aside', () => {
  let t: TestDip | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  const clock = new ShiftableClock();
  const queue = { recipientDipId: '1000000001', channel: 'IF-021' };
  /**
   * What an answer names as set aside: the positions its entries after the first cover (one entry per run
   * of consecutive positions, `position n` or `positions a-b`), each checked to carry its first one's ID.
   */
  const named = (answer: { body: { messageArray: Array<{ transactionID: string | null; help: string | null }> } }, ids: readonly string[]): number[] =>
    answer.body.messageArray.slice(1).flatMap((e) => {
      const [, a, b] = /^positions? (\d+)(?:-(\d+))?/.exec(e.help ?? '') ?? [];
      const first = Number(a);
      expect(e.transactionID).toBe(ids[first - 1]);
      return Array.from({ length: Number(b ?? a) - first + 1 }, (_, i) => first + i);
    });
  const range = (first: number, last: number): number[] => Array.from({ length: last - first + 1 }, (_, i) => first + i);

  /** A DIP where a supplier pulled `count` messages that then went stale (set aside): their transaction IDs. */
  async function setAsideWhilePulled(count: number, dataDir?: string): Promise<{ sds: TestParticipant; sup: TestParticipant; ids: string[]; more: () => Promise<void> }> {
    t = await startTestDip({ retentionDays: 1, allowShortRetention: true }, dataDir, { clock });
    const sds = await t.participant('2000000001', ['SDS']);
    const sup = await t.participant(queue.recipientDipId, ['SUP']);
    let n = 0;
    const submit = async (k: number) => {
      const items = Array.from({ length: k }, () => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `m${n++}` }));
      const submitted = await sds.client.submit('IF-021', items);
      expect(submitted.status).toBe(201);
      return submitted.body.messageArray.map((e) => e.transactionID!);
    };
    const ids = await submit(count);
    const pulled = await sup.client.pull('IF-021', sup.dipId);
    expect([pulled.firstSeq, pulled.lastSeq]).toEqual([1, count]);
    // The recipient is slow to acknowledge: a day later all went stale (dead letters, the sender told).
    clock.jump(86_400_000 + 1000);
    await waitFor(async () => (await t!.dip.backend.log.queueState(queue)).ackedSeq === count, 10_000, 'the pulled messages set aside as stale');
    return { sds, sup, ids, more: async () => void (await submit(1)) };
  }

  it('names, by transaction ID and why, the pulled messages that went stale before the acknowledgement, once', async () => {
    const { sup, ids, more } = await setAsideWhilePulled(2);
    // Past what was handed out (or set aside): refused, and it takes none of them.
    expect((await sup.client.ack('IF-021', sup.dipId, 3)).status).toBe(400);

    const late = await sup.client.ack('IF-021', sup.dipId, 2);
    expect(late.status).toBe(200);
    const [head, ...setAside] = late.body.messageArray;
    expect(head!.message).toBe('MSG0000 - Success');
    expect(head!.help).toBe('already acknowledged up to 2: nothing changed; but 2 message(s) up to 2 were set aside by the DIP before this acknowledgement, not delivered (their senders were told so): positions 1-2, named in the entries that follow');
    // Consecutive, for the same reason: one entry, the first one's transaction ID, naming both.
    expect(setAside.map((e) => [e.transactionID, e.message])).toEqual([[ids[0], 'MSG1000 - Message Processing Failed']]);
    expect(setAside[0]!.help).toMatch(new RegExp(`^positions 1-2 \\(2 messages, transaction IDs ${ids[0]} to ${ids[1]}\\) were set aside from .* to .* \\(stale: not delivered to 1000000001 within 1 days\\): each counts as not delivered and its sender was told so; each sender may send its message again`));
    // The same acknowledgement again (its answer lost on the way): the same answer.
    expect((await sup.client.ack('IF-021', sup.dipId, 2)).body).toEqual(late.body);

    // The next acknowledgement's range begins where that one's ended: they are not named again (they were,
    // on every acknowledgement until one moved the position past them, and once more by that one).
    await more();
    expect((await sup.client.pull('IF-021', sup.dipId)).firstSeq).toBe(3);
    const next = await sup.client.ack('IF-021', sup.dipId, 3);
    expect(next.body.messageArray.map((e) => [e.message, e.help])).toEqual([['MSG0000 - Success', 'acknowledged up to 3']]);
    // One that goes backwards moves nothing and names nothing: a later one accounted for its range.
    const back = await sup.client.ack('IF-021', sup.dipId, 1);
    expect(back.body.messageArray.map((e) => [e.message, e.help])).toEqual([['MSG0000 - Success', 'already acknowledged up to 3: nothing changed']]);
    expect(await t!.dip.backend.log.queueState(queue)).toMatchObject({ ackedSeq: 3 });
  });

  it('names each once across a restart: the acknowledged position is kept in the queue, not in the node', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'opendip-ack-restart-'));
    const { sup, ids } = await setAsideWhilePulled(4, dataDir);
    expect(named(await sup.client.ack('IF-021', sup.dipId, 2), ids)).toEqual([1, 2]);
    await t!.close();
    t = await startTestDip({ retentionDays: 1, allowShortRetention: true }, dataDir, { clock });
    const client = new DipClient({ baseUrl: t.dip.url, apiKey: sup.apiKey, keyPem: sup.credentials.keyPem, certPem: sup.credentials.certPem, caPem: t.dip.pki.ca.certPem, now: () => new Date(clock.now()) });
    try {
      const after = await client.ack('IF-021', sup.dipId, 4);
      expect(after.body.messageArray[0]!.help).toMatch(/^already acknowledged up to 4: nothing changed; but 2 message\(s\) up to 4 .*: positions 3-4,/);
      expect(named(after, ids)).toEqual([3, 4]);
      // Its repeat answers the same; the one before it, behind the position now, nothing.
      expect(named(await client.ack('IF-021', sup.dipId, 4), ids)).toEqual([3, 4]);
      expect(named(await client.ack('IF-021', sup.dipId, 2), ids)).toEqual([]);
    } finally {
      await client.close();
    }
  });

  it('names each once when two pullers of one queue acknowledge at once: none twice, none left out', async () => {
    const { sup, ids } = await setAsideWhilePulled(6);
    const second = new DipClient({ baseUrl: t!.dip.url, apiKey: sup.apiKey, keyPem: sup.credentials.keyPem, certPem: sup.credentials.certPem, caPem: t!.dip.pki.ca.certPem, now: () => new Date(clock.now()) });
    try {
      const answers = await Promise.all([sup.client.ack('IF-021', sup.dipId, 3), second.ack('IF-021', sup.dipId, 6)]);
      expect(answers.map((a) => a.status)).toEqual([200, 200]);
      expect(answers.flatMap((a) => named(a, ids)).sort((x, y) => x - y)).toEqual(range(1, 6));
    } finally {
      await second.close();
    }
  });

  it('names every one of many set aside, not the first twenty: none is left to no answer', async () => {
    // 45 pulled and gone stale; acknowledged in two steps. Each position is named by exactly one of them
    // (the first named 1-20 as "at least 20" and the second 31-45: 21-30 were never named).
    const { sup, ids } = await setAsideWhilePulled(45);
    const first = await sup.client.ack('IF-021', sup.dipId, 30);
    expect(first.body.messageArray[0]!.help).toContain('but 30 message(s) up to 30 were set aside');
    expect(named(first, ids)).toEqual(range(1, 30));
    expect(named(await sup.client.ack('IF-021', sup.dipId, 45), ids)).toEqual(range(31, 45));
  });
});
