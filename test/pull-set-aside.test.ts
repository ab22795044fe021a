import { afterEach, describe, expect, it } from 'vitest';
import { buildIF021 } from '../src/sim/messages.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';

/**
 * A puller's acknowledgement that covers positions the DIP set aside (gone stale while the recipient held
 * them: dead letters, their senders told "not delivered"). It was answered "already acknowledged up to 1:
 * nothing changed": the recipient's adapter believed it had delivered, the sender was told it had not, and
 * a resend was processed twice. Still 200 (the position moved), but the answer names each such message:
 * its transaction ID, MSG1000 and why, until an acknowledgement moves the position past it.
 */
describe('acknowledging positions the DIP set aside', () => {
  let t: TestDip | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('names, by transaction ID and why, the pulled messages that went stale before the acknowledgement', async () => {
    const clock = new ShiftableClock();
    t = await startTestDip({ retentionDays: 1, allowShortRetention: true }, undefined, { clock });
    const sds = await t.participant('2000000001', ['SDS']);
    const sup = await t.participant('1000000001', ['SUP']);
    const items = [0, 1, 2].map((i) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `a${i}` }));
    const submitted = await sds.client.submit('IF-021', items.slice(0, 2));
    expect(submitted.status).toBe(201);
    const ids = submitted.body.messageArray.map((e) => e.transactionID);
    const pulled = await sup.client.pull('IF-021', sup.dipId);
    expect([pulled.firstSeq, pulled.lastSeq]).toEqual([1, 2]);
    // The recipient is slow to acknowledge: a day later both went stale (dead letters, the sender told).
    clock.jump(86_400_000 + 1000);
    const queue = { recipientDipId: sup.dipId, channel: 'IF-021' };
    await waitFor(async () => (await t!.dip.backend.log.queueState(queue)).ackedSeq === 2, 10_000, 'the pulled messages set aside as stale');

    const late = await sup.client.ack('IF-021', sup.dipId, 2);
    expect(late.status).toBe(200);
    const [head, ...setAside] = late.body.messageArray;
    expect(head!.message).toBe('MSG0000 - Success');
    expect(head!.help).toBe('already acknowledged up to 2: nothing changed; but 2 message(s) up to 2 were set aside by the DIP before this acknowledgement, not delivered (their senders were told so): positions 1, 2, named in the entries that follow');
    expect(setAside.map((e) => [e.transactionID, e.message])).toEqual(ids.map((id) => [id, 'MSG1000 - Message Processing Failed']));
    expect(setAside[0]!.help).toMatch(/^position 1 was set aside at .* \(stale: not delivered to 1000000001 within 1 days\): it counts as not delivered and its sender was told so; its sender may send it again/);

    // Named until an acknowledgement moves the position past them (that one's range covers them too);
    // then no more.
    expect((await sds.client.submit('IF-021', items.slice(2))).status).toBe(201);
    expect((await sup.client.pull('IF-021', sup.dipId)).firstSeq).toBe(3);
    const next = await sup.client.ack('IF-021', sup.dipId, 3);
    expect(next.body.messageArray.map((e) => e.transactionID)).toEqual([null, ...ids]);
    expect(next.body.messageArray[0]!.help).toMatch(/^acknowledged up to 3; but 2 message\(s\) up to 2 were set aside/);
    const again = await sup.client.ack('IF-021', sup.dipId, 3);
    expect(again.body.messageArray.map((e) => [e.message, e.help])).toEqual([['MSG0000 - Success', 'already acknowledged up to 3: nothing changed']]);
  });
});
