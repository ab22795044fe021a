/**
 * A recipient's status message about a message the DIP itself sent (a test message, an IF-016 answer to a
 * consumption replay, its rejections): the DIP is that message's sender, so the report is the operator's
 * to read (spec 5.5.9: "any format issues with the message that the recipient encounters will also need to
 * be relayed back to the Sender"). It was accepted 201 and queued for the DIP's own DIP ID's STATUS
 * queue, which nothing reads, until it went stale, and nobody was told.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Channel } from '../src/pipeline/channels.js';
import { STATUS_CHANNEL } from '../src/pipeline/status.js';
import { sendTestMessage } from '../src/pipeline/test-message.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;

describe('a status message about a message the DIP sent', () => {
  let t: TestDip;
  let sup: TestParticipant;
  beforeAll(async () => {
    t = await startTestDip();
    sup = await t.participant('1000000001', ['SUP']);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("is accepted, recorded for the DIP's operator (journal), and queued for nobody", async () => {
    const channel = { interfaceId: 'IF-021', publicationId: 'PUB-021', definition: { schemaVersions: ['1.0'] } } as unknown as Channel;
    const { transactionId } = await sendTestMessage({ log: t.dip.backend.log, notify: () => undefined, clock: { now: () => Date.now() } as never, dipId: t.config.dipId, environment: 'DEV' }, sup.dipId, channel, 'tester');
    const status = {
      transactionID: transactionId,
      senderUniqueReference: null,
      correlationID: null,
      sentTimestamp: new Date(Date.now() - 1000).toISOString().slice(0, 19) + '+00:00',
      senderID: sup.dipId,
      recipientID: t.config.dipId,
      DIPConnectionProviderID: null,
      message: 'RCP1061 - MPAN Invalid or Unknown',
      help: 'our system could not read it',
      serviceTicketURL: null,
    };
    const answer = await sup.client.statusMessage([status]);
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    expect(answer.body.messageArray[0]).toMatchObject({ transactionID: transactionId, message: 'MSG0000 - Success', help: expect.stringContaining("the DIP's operator") });
    // Nothing waits on a queue nobody reads.
    expect((await t.dip.backend.log.queueState({ recipientDipId: t.config.dipId, channel: STATUS_CHANNEL })).headSeq).toBe(0);
    const journal = (await adminApi(t)('GET', '/admin/journal?action=status-message.about-dip-message')).body as Json[];
    expect(journal).toEqual([
      expect.objectContaining({
        actor: `participant:${sup.dipId}`,
        target: transactionId,
        after: expect.objectContaining({ senderID: sup.dipId, message: 'RCP1061 - MPAN Invalid or Unknown', help: 'our system could not read it' }),
      }),
    ]);
  });
});
