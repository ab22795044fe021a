import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIF021 } from '../src/sim/messages.js';
import { queueIdle, startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;

describe('the message road: IF-021 from a data service to SUP, LDSO, MDS and LSS', () => {
  let t: TestDip;
  let sds: TestParticipant;
  const recipients: Record<string, { p: TestParticipant; r: Awaited<ReturnType<TestDip['receiver']>> }> = {};

  beforeAll(async () => {
    t = await startTestDip();
    sds = await t.participant('2000000001', ['SDS']);
    for (const [id, role] of [
      ['1000000001', 'SUP'],
      ['3000000001', 'LDSO'],
      ['4000000001', 'MDS'],
      ['5000000001', 'LSS'],
    ] as const) {
      const p = await t.participant(id, [role]);
      const r = await t.receiver();
      const answer = await p.client.setWebhook('IF-021', id, { callbackURL: `${r.url}dip/if-021`, maxMessageCount: 50 });
      expect(answer.status).toBe(201);
      recipients[role] = { p, r };
    }
  });
  afterAll(async () => {
    await t?.close();
  });

  it('accepts with 201 and the published StandardResponse, then delivers signed copies with D0 filled', async () => {
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: ['1000000001', '3000000001'], uniqueSuffix: 'road1' });
    const answer = await sds.client.submit('IF-021', [item]);
    expect(answer.status).toBe(201);
    const entry = answer.body.messageArray[0]!;
    expect(entry).toMatchObject({
      senderUniqueReference: item.payload.CommonBlock.S1.senderUniqueReference,
      message: 'MSG0000 - Success',
      recipientID: sds.dipId,
      help: null,
    });
    expect(entry.transactionID).toMatch(/^T-IF-021-2000000001-SDS-\d{8}-[0-9A-F]{16}$/);
    expect(entry.transactionID!.length).toBeLessThanOrEqual(65);
    expect(answer.body.timestamp).toHaveLength(25);
    expect(Object.keys(entry).sort()).toEqual(
      ['DIPConnectionProviderID', 'correlationID', 'help', 'message', 'recipientID', 'senderID', 'senderUniqueReference', 'sentTimestamp', 'serviceTicketURL', 'transactionID'].sort(),
    );

    for (const role of ['SUP', 'LDSO', 'MDS', 'LSS']) {
      const { r } = recipients[role]!;
      await waitFor(() => r.calls.length > 0, 5000, `delivery to ${role}`);
      const call = r.calls[0]!;
      expect(call.signature.ok).toBe(true);
      expect([call.firstSeq, call.lastSeq]).toEqual([1, 1]);
      const out = call.messages[0] as Json;
      const cb = out.payload.CommonBlock;
      expect(Object.keys(cb)).toEqual(['S0', 'S1', 'A0', 'D0', 'M0']);
      expect(cb.D0).toEqual({
        transactionID: entry.transactionID,
        transactionTimestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/),
        publicationID: 'PUB-021',
        initialCorrelationID: null,
        replayIndicator: false,
        serviceTicketURL: null,
      });
      expect(cb.A0.primaryRecipients).toEqual(['1000000001', '3000000001']);
      expect(cb.A0.secondaryRecipients).toEqual([]);
      expect([...cb.A0.always].sort()).toEqual(['4000000001', '5000000001']);
      expect(out.payload.CustomBlock).toEqual(item.payload.CustomBlock);
    }
  });

  it('accepts any case of field names and URL, and sends the spec case out', async () => {
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', uniqueSuffix: 'case1' });
    const shouted = JSON.parse(JSON.stringify(item).replace(/"(CommonBlock|S1|senderDIPID|CustomBlock)"/g, (_m, k: string) => `"${k.toLowerCase()}"`));
    const answer = await sds.client.submit('if-021', [shouted]);
    expect(answer.status).toBe(201);
    const mds = recipients.MDS!.r;
    await waitFor(() => mds.calls.some((c) => (c.messages[0] as Json).payload.CommonBlock.S1.senderUniqueReference === item.payload.CommonBlock.S1.senderUniqueReference));
    const last = mds.calls.at(-1)!.messages[0] as Json;
    expect(last.payload.CommonBlock.S1.senderDIPID).toBe(sds.dipId);
    expect(last.payload.CustomBlock).toBeDefined();
  });

  it('keeps FIFO order per recipient across many batches, several messages per call', async () => {
    const sup = recipients.SUP!.r;
    const before = sup.calls.flatMap((c) => c.messages).length;
    const refs: string[] = [];
    for (let b = 0; b < 10; b++) {
      const items = Array.from({ length: 20 }, (_, i) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: `fifo${b}x${i}` }));
      refs.push(...items.map((i) => i.payload.CommonBlock.S1.senderUniqueReference));
      expect((await sds.client.submit('IF-021', items)).status).toBe(201);
    }
    await waitFor(() => sup.calls.flatMap((c) => c.messages).length >= before + 200, 10_000, 'all 200 at SUP');
    const got = sup.calls.flatMap((c) => c.messages).slice(before).map((m) => (m as Json).payload.CommonBlock.S1.senderUniqueReference);
    expect(got).toEqual(refs);
    // Sequence numbers are contiguous across calls: no gap, no repeat.
    const seqs = sup.calls.flatMap((c) => Array.from({ length: c.lastSeq! - c.firstSeq! + 1 }, (_, i) => c.firstSeq! + i));
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect(sup.calls.length).toBeLessThan(seqs.length); // batching happened
  });

  it('replays a recipient\'s own messages under new R- transaction IDs, and requeues them to its webhook', async () => {
    const ldso = recipients.LDSO!;
    const from = new Date(Date.now() - 3600_000).toISOString().slice(0, 19) + '+00:00';
    const to = new Date(Date.now() + 3600_000).toISOString().slice(0, 19) + '+00:00';
    const replay = await ldso.p.client.replay('IF-021', ldso.p.dipId, { datetimeFrom: from, datetimeTo: to, eventCode: 'ActivePower', MPAN: null, version: null });
    expect(replay.status).toBe(200);
    const copies = replay.body as Json[];
    expect(copies.length).toBe(1); // only the first message named LDSO as a recipient
    expect(copies[0]!.payload.CommonBlock.D0.replayIndicator).toBe(true);
    expect(copies[0]!.payload.CommonBlock.D0.transactionID).toMatch(/^R-IF-021-/);

    const before = ldso.r.calls.length;
    const requeue = await ldso.p.client.requeue('IF-021', ldso.p.dipId, { datetimeFrom: from, datetimeTo: to });
    expect(requeue.status).toBe(200);
    await waitFor(() => ldso.r.calls.length > before);
    const again = ldso.r.calls.at(-1)!.messages[0] as Json;
    expect(again.payload.CommonBlock.D0.replayIndicator).toBe(true);
  });

  it('never lets a participant replay, requeue or configure another recipient\'s queue', async () => {
    const sup = recipients.SUP!.p;
    const body = { datetimeFrom: '2020-01-01T00:00:00+00:00', datetimeTo: '2099-01-01T00:00:00+00:00' };
    for (const answer of [
      await sup.client.replay('IF-021', '3000000001', body),
      await sup.client.requeue('IF-021', '3000000001', body),
      await sup.client.setWebhook('IF-021', '3000000001', { callbackURL: 'https://evil.example/' }),
    ]) {
      expect(answer.status).toBe(403);
      expect(JSON.stringify(answer.body)).toContain('is not the caller');
    }
    // A sender that does not receive on the channel cannot register a webhook for it.
    const denied = await sds.client.setWebhook('IF-021', sds.dipId, { callbackURL: 'https://x.example/' });
    expect(denied.status).toBe(403);
  });

  it('removes a webhook with DELETE (204), after which messages wait in the queue', async () => {
    const lss = recipients.LSS!;
    expect((await lss.p.client.deleteWebhook('IF-021', lss.p.dipId)).status).toBe(204);
    // The published answer to a DELETE is 204; deleting what is not there leaves the same state.
    expect((await lss.p.client.deleteWebhook('IF-021', lss.p.dipId)).status).toBe(204);
    const before = lss.r.calls.length;
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', uniqueSuffix: 'waiting1' });
    expect((await sds.client.submit('IF-021', [item])).status).toBe(201);
    // Queued for LSS, and its worker idle with no webhook to call: it waits there until one is registered.
    const lssQueue = { recipientDipId: lss.p.dipId, channel: 'IF-021' };
    await waitFor(async () => {
      const state = await t.dip.backend.log.queueState(lssQueue);
      return state.headSeq > state.ackedSeq && queueIdle(t.dip, lssQueue);
    }, 5000, 'the message queued for LSS with no webhook');
    expect(lss.r.calls.length).toBe(before);
    expect((await lss.p.client.setWebhook('IF-021', lss.p.dipId, { callbackURL: `${lss.r.url}again` })).status).toBe(201);
    await waitFor(() => lss.r.calls.length > before, 5000, 'the waiting message after re-registering');
  });
});
