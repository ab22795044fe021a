/**
 * A batch of status messages is answered as a batch of messages is (README, "Answers to a submission"):
 * one entry per status message, each failing one with a help beginning `item N:`. A schema failure was
 * one entry for the whole batch, its help `[1].sentTimestamp must …`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MSG } from '../src/domain/response-codes.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

describe('the answer to a batch of status messages refused by its schema', () => {
  let t: TestDip;
  let sup: TestParticipant;
  let sds: TestParticipant;
  beforeAll(async () => {
    t = await startTestDip();
    sup = await t.participant('1000000001', ['SUP']);
    sds = await t.participant('2000000001', ['SDS']);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('has one entry per status message, the failing one named by its place', async () => {
    const sent = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'sma1' })]);
    expect(sent.status).toBe(201);
    const entry = (sentTimestamp: string) => ({
      transactionID: sent.body.messageArray[0]!.transactionID,
      senderUniqueReference: null,
      correlationID: null,
      sentTimestamp,
      senderID: sup.dipId,
      recipientID: sds.dipId,
      DIPConnectionProviderID: null,
      message: 'RCP1061 - MPAN Invalid or Unknown',
      help: null,
      serviceTicketURL: null,
    });
    const answer = await sup.client.statusMessage([entry('2026-01-01T00:00:00+00:00'), entry('2026')]);
    expect(answer.status).toBe(400);
    expect(answer.body.messageArray.map((e) => [e.transactionID, e.message])).toEqual([
      [sent.body.messageArray[0]!.transactionID, MSG.processingFailed],
      [sent.body.messageArray[0]!.transactionID, MSG.schemaFailure],
    ]);
    expect(answer.body.messageArray[1]!.help).toMatch(/^item 1: sentTimestamp /);
    expect(answer.body.messageArray[0]!.help).toMatch(/^not accepted: the batch is refused whole because item 1 failed/);
  });
});
