import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nominationChange, onboardParticipant } from '../src/pipeline/participants.js';
import { buildIF021 } from '../src/sim/messages.js';
import { issueParticipantCertificate } from '../src/security/pki.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;

describe('DIP Connection Providers', () => {
  let t: TestDip;
  let cp: TestParticipant;
  let direct: TestParticipant;
  let sup: TestParticipant;
  let received: Awaited<ReturnType<TestDip['receiver']>>;
  const nominee = (id: string, role: string) =>
    issueParticipantCertificate(t.dip.pki.ca, { organisation: id, dipIds: [id], environment: 'DEV', validDays: 5 }).then((kc) =>
      onboardParticipant(t.dip.backend.registry, { dipId: id, roles: [role], certificatePem: kc.certPem, connectionProvider: cp.dipId }),
    );

  beforeAll(async () => {
    // /validate's StandardResponse form, whose entries name the recipient and the provider.
    t = await startTestDip({ api: { emptyReplay: 'bad-request', validateAnswer: 'standard-response' } });
    cp = await t.participant('9000000001', ['DCP']);
    direct = await t.participant('2000000003', ['SDS']); // connects for itself; nominated nobody
    await nominee('2000000001', 'SDS');
    await nominee('2000000002', 'SDS');
    await nominee('1000000002', 'SUP'); // a supplier whose webhooks the provider manages
    sup = await t.participant('1000000001', ['SUP']);
    received = await t.receiver();
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: received.url })).status).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
  });

  const item = (sender: string, provider: string | null, suffix: string) => {
    const m = buildIF021({ senderDipId: sender, senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: suffix });
    (m.payload.CommonBlock.S1 as Json).DIPConnectionProviderID = provider;
    return m;
  };

  it('sends for each participant that nominated it, with one certificate, and says so in S1', async () => {
    const answer = await cp.client.submit('IF-021', [item('2000000001', cp.dipId, 'cp1'), item('2000000002', cp.dipId, 'cp2')]);
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    expect(answer.body.messageArray.map((e) => e.DIPConnectionProviderID)).toEqual([cp.dipId, cp.dipId]);
    await waitFor(() => received.calls.flatMap((c) => c.messages).length === 2, 5000, 'deliveries');
    expect(received.calls.flatMap((c) => c.messages).map((m) => (m as Json).payload.CommonBlock.S1.senderDIPID)).toEqual(['2000000001', '2000000002']);
  });

  // Published StandardResponseBodyType: recipientID is the "indended (logical) recipient of the message, i.e
  // sender of the original event message"; DIPConnectionProviderID the "physical recipient of the message (if
  // different to recipient Id)". The answer to a provider's batch names, for each item, the participant it
  // sent for, and the provider beside it, as the status messages about those items do. It named the provider twice.
  it('answers each item for the participant it was sent for, with the provider as its physical recipient', async () => {
    const answer = await cp.client.submit('IF-021', [item('2000000001', cp.dipId, 'cpr1'), item('2000000002', cp.dipId, 'cpr2')]);
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    expect(answer.body.messageArray.map((e) => [e.recipientID, e.DIPConnectionProviderID])).toEqual([
      ['2000000001', cp.dipId],
      ['2000000002', cp.dipId],
    ]);
    // A batch refused whole answers each item the same way; one the provider may not send for is its own.
    const refused = await cp.client.submit('IF-021', [item('2000000001', cp.dipId, 'cpr3'), item(direct.dipId, cp.dipId, 'cpr4')]);
    expect(refused.status).toBe(403);
    expect(refused.body.messageArray.map((e) => e.recipientID)).toEqual(['2000000001', cp.dipId]);
    // /validate answers as the submission would.
    const dry = await cp.client.call('POST', '/validate/IF-021/ActivePower', JSON.stringify([item('2000000002', cp.dipId, 'cpr5')]));
    expect([dry.status, dry.body.messageArray[0]!.recipientID, dry.body.messageArray[0]!.DIPConnectionProviderID]).toEqual([201, '2000000002', cp.dipId]);
    // A participant that sends for itself is answered as before.
    const own = await direct.client.submit('IF-021', [item(direct.dipId, null, 'cpr6')]);
    expect([own.body.messageArray[0]!.recipientID, own.body.messageArray[0]!.DIPConnectionProviderID]).toEqual([direct.dipId, null]);
  });

  it('acts for nobody else, and must name itself', async () => {
    const notNominated = await cp.client.submit('IF-021', [item(direct.dipId, cp.dipId, 'cp3')]);
    expect(notNominated.status).toBe(403);
    expect(notNominated.body.messageArray[0]!.message).toMatch(/^MSG1009/);
    const unnamed = await cp.client.submit('IF-021', [item('2000000001', null, 'cp4')]);
    expect(unnamed.status).toBe(403);
    expect(unnamed.body.messageArray[0]!.message).toMatch(/^MSG1011/);
    // A participant cannot use another's provider, nor claim to be one.
    const claims = await direct.client.submit('IF-021', [item(direct.dipId, cp.dipId, 'cp5')]);
    expect(claims.status).toBe(403);
    expect(claims.body.messageArray[0]!.message).toMatch(/^MSG1011/);
    expect((await direct.client.submit('IF-021', [item(direct.dipId, null, 'cp6')])).status).toBe(201);
  });

  it('manages the webhooks and replays of its nominees only', async () => {
    const set = await cp.client.setWebhook('IF-021', '1000000002', { callbackURL: `${received.url}for-1000000002` });
    expect(set.status).toBe(201);
    // Answered for the nominee, the provider as its physical recipient (as a provider's submission is): it
    // was null, so a provider managing several nominees could not tell its own calls from theirs.
    expect((set.body as { messageArray: Json[] }).messageArray[0]).toMatchObject({ recipientID: '1000000002', DIPConnectionProviderID: cp.dipId });
    expect((await cp.client.setWebhook('IF-021', '1000000001', { callbackURL: 'https://evil.example/' })).status).toBe(403);
    const window = { datetimeFrom: '2020-01-01T00:00:00+00:00', datetimeTo: '2099-01-01T00:00:00+00:00' };
    expect((await cp.client.replay('IF-021', '1000000001', window)).status).toBe(403);
    // Allowed: nothing was sent to 1000000002, so the answer says there is nothing to replay (not 403).
    const allowed = await cp.client.replay('IF-021', '1000000002', window);
    expect([allowed.status, JSON.stringify(allowed.body)]).toEqual([400, expect.stringContaining('nothing to replay')]);
    expect((allowed.body as { messageArray: Json[] }).messageArray[0]).toMatchObject({ recipientID: '1000000002', DIPConnectionProviderID: cp.dipId });
    // A participant acting for itself is answered without one.
    const own = await direct.client.replay('IF-021', direct.dipId, window);
    expect((own.body as { messageArray: Json[] }).messageArray[0]).toMatchObject({ recipientID: direct.dipId, DIPConnectionProviderID: null });
  });

  // A suspended participant's calls are refused; its provider could still send, pull and manage webhooks
  // for it (Registry.actingAs ignored suspension), the reactivated nominee as before.
  it('acts for no suspended nominee: neither sends nor pulls nor sets webhooks for it until it is reactivated', async () => {
    const admin = adminApi(t);
    expect((await admin('POST', '/admin/participants/2000000002/suspend', { reason: 'under review' })).status).toBe(200);
    expect((await admin('POST', '/admin/participants/1000000002/suspend', { reason: 'under review' })).status).toBe(200);
    try {
      const sent = await cp.client.submit('IF-021', [item('2000000002', cp.dipId, 'susp1')]);
      expect(sent.status).toBe(403);
      expect(sent.body.messageArray[0]!.help).toContain('2000000002 is suspended by the DIP operator');
      const pulled = await cp.client.pull('IF-021', '1000000002');
      expect(pulled.status).toBe(403);
      expect(JSON.stringify(pulled.body)).toContain('1000000002 is suspended by the DIP operator');
      expect((await cp.client.setWebhook('IF-021', '1000000002', { callbackURL: `${received.url}suspended` })).status).toBe(403);
      // The provider still sends for its nominee that is not suspended.
      expect((await cp.client.submit('IF-021', [item('2000000001', cp.dipId, 'susp2')])).status).toBe(201);
    } finally {
      expect((await admin('POST', '/admin/participants/2000000002/reactivate')).status).toBe(200);
      expect((await admin('POST', '/admin/participants/1000000002/reactivate')).status).toBe(200);
    }
    expect((await cp.client.submit('IF-021', [item('2000000002', cp.dipId, 'susp3')])).status).toBe(201);
  });

  // Published StandardResponseBodyType: DIPConnectionProviderID is the "physical recipient of the message (if
  // different to recipient Id)". A status message to a sender that connects through a provider names that
  // provider, as the answer to its submission did; it was null, or whatever the recipient reporting had written.
  it("names the sender's connection provider in the status messages that go back to it, whatever the reporting recipient wrote", async () => {
    const viaProvider = await cp.client.submit('IF-021', [item('2000000001', cp.dipId, 'cpst1')]);
    const itself = await direct.client.submit('IF-021', [item(direct.dipId, null, 'cpst2')]);
    expect([viaProvider.status, itself.status]).toEqual([201, 201]);
    const status = (answer: typeof viaProvider, recipientID: string) => ({
      transactionID: answer.body.messageArray[0]!.transactionID,
      senderUniqueReference: null,
      correlationID: null,
      sentTimestamp: '2026-01-01T00:00:00+00:00',
      senderID: sup.dipId,
      recipientID,
      DIPConnectionProviderID: '7777777777',
      message: 'RCP1061 - MPAN Invalid or Unknown',
      help: 'not ours',
      serviceTicketURL: null,
    });
    const reported = await sup.client.statusMessage([status(viaProvider, '2000000001'), status(itself, direct.dipId)]);
    expect(reported.status, JSON.stringify(reported.body)).toBe(201);
    const pulled = await cp.client.call<Json[]>('GET', '/statusmessage/pull/2000000001', '');
    expect(pulled.body.map((e) => [e.transactionID, e.recipientID, e.DIPConnectionProviderID])).toEqual([[viaProvider.body.messageArray[0]!.transactionID, '2000000001', cp.dipId]]);
    const own = await direct.client.call<Json[]>('GET', `/statusmessage/pull/${direct.dipId}`, '');
    expect(own.body.map((e) => [e.transactionID, e.recipientID, e.DIPConnectionProviderID])).toEqual([[itself.body.messageArray[0]!.transactionID, direct.dipId, null]]);
  });

  it("names the sender's connection provider in the status messages the DIP raises itself (a recipient refused the message)", async () => {
    await nominee('1000000003', 'SUP');
    const refusing = await t.receiver(() => 400);
    expect((await cp.client.setWebhook('IF-021', '1000000003', { callbackURL: refusing.url })).status).toBe(201);
    const m = buildIF021({ senderDipId: '2000000001', senderRole: 'SDS', primaryRecipients: ['1000000003'], uniqueSuffix: 'cpst3' });
    (m.payload.CommonBlock.S1 as Json).DIPConnectionProviderID = cp.dipId;
    const sent = await cp.client.submit('IF-021', [m]);
    expect(sent.status, JSON.stringify(sent.body)).toBe(201);
    const tx = sent.body.messageArray[0]!.transactionID;
    let back: Json | undefined;
    await waitFor(async () => {
      const pulled = await cp.client.call<Json[]>('GET', '/statusmessage/pull/2000000001', '');
      back = pulled.body.find((e) => e.transactionID === tx);
      return back !== undefined;
    }, 10_000, 'the status message about the refused message');
    expect(back).toMatchObject({ senderID: '0000000000', recipientID: '2000000001', DIPConnectionProviderID: cp.dipId, message: 'MSG1000 - Message Processing Failed' });
  });
});

describe('a withdrawn connection provider', () => {
  // Found by a black-box participant client: the withdrawn provider lost API access at once, but the
  // webhooks it had registered for its client stayed, and the client's next messages went to the provider.
  it("loses the webhooks it registered for the participant with the nomination; the participant's own stay; the answer and the journal say which", async () => {
    const t = await startTestDip();
    try {
      const cp = await t.participant('5000000001', ['DCP']);
      const sup = await t.participant('1000000003', ['SUP']);
      const sds = await t.participant('2000000001', ['SDS']);
      const admin = adminApi(t);
      const call = (method: string, path: string, body?: unknown) =>
        sup.client.call<Json>(method, path, body === undefined ? '' : JSON.stringify(body), body === undefined ? {} : { 'content-type': 'application/json' });
      expect((await call('PUT', `/participants/${sup.dipId}/connection-provider`, { dipId: cp.dipId })).status).toBe(200);
      const providers = await t.receiver();
      const own = await t.receiver();
      expect((await cp.client.call('POST', `/dip-channel/IF-021/pubconfig/${sup.dipId}`, JSON.stringify({ config: { callbackURL: `${providers.url}cp-hook` } }))).status).toBe(201);
      expect((await cp.client.setStatusWebhook(sup.dipId, { callbackURL: `${providers.url}cp-status` })).status).toBe(201);
      // The participant takes its status webhook back before it withdraws: that one is its own and stays.
      expect((await sup.client.setStatusWebhook(sup.dipId, { callbackURL: own.url })).status).toBe(201);

      const withdrawn = await call('DELETE', `/participants/${sup.dipId}/connection-provider`);
      expect(withdrawn.status, JSON.stringify(withdrawn.body)).toBe(200);
      expect(withdrawn.body).toMatchObject({ connectionProvider: null, removedWebhooks: [{ channel: 'IF-021', registeredBy: cp.dipId }] });
      expect((await t.dip.backend.registry.webhooks()).filter((w) => w.recipientDipId === sup.dipId).map((w) => [w.channel, w.registeredBy])).toEqual([['STATUS', sup.dipId]]);

      const sent = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'wd1' })]);
      expect(sent.status, JSON.stringify(sent.body)).toBe(201);
      // Held for the participant to pull (or for a webhook of its own), not sent to the provider.
      await waitFor(async () => (await sup.client.pull('IF-021', sup.dipId)).body.length === 1, 10_000, "the participant's message in its pull queue");
      expect(providers.calls).toEqual([]);
      const journal = (await admin('GET', `/admin/journal?target=${sup.dipId}`)).body as Json[];
      expect(journal.find((e) => e.action === 'participant.connection-provider.withdraw')).toMatchObject({
        before: { connectionProvider: cp.dipId },
        after: { connectionProvider: null, removedWebhooks: [{ channel: 'IF-021', registeredBy: cp.dipId }] },
      });

      // The operator's way (`dip participant add` again with --no-connection-provider) ends the nomination too;
      // run again without it (a new certificate, a role), the nomination and its webhooks stay.
      expect((await call('PUT', `/participants/${sup.dipId}/connection-provider`, { dipId: cp.dipId })).status).toBe(200);
      expect((await cp.client.setWebhook('IF-021', sup.dipId, { callbackURL: `${providers.url}cp-again` })).status).toBe(201);
      const kept = await onboardParticipant(t.dip.backend.registry, { dipId: sup.dipId, roles: ['SUP'], certificatePem: sup.credentials.certPem });
      expect([kept.participant.connectionProvider, kept.removedWebhooks]).toEqual([cp.dipId, []]);
      const again = await onboardParticipant(t.dip.backend.registry, { dipId: sup.dipId, roles: ['SUP'], certificatePem: sup.credentials.certPem, connectionProvider: null });
      expect(again.removedWebhooks).toMatchObject([{ channel: 'IF-021', registeredBy: cp.dipId }]);
      expect((await t.dip.backend.registry.webhooks()).filter((w) => w.recipientDipId === sup.dipId).map((w) => w.channel)).toEqual(['STATUS']);
    } finally {
      await t.close();
    }
  });
});

describe('an offboarded connection provider', () => {
  // Offboarding removed the provider's own webhooks only: those it had registered on its clients' queues
  // stayed, and the clients' messages kept going to an organisation no longer on the DIP.
  it("leaves none of the webhooks it registered for its clients: their queues wait to be pulled (nothing lost), the clients' own stay; the journal names them", async () => {
    const t = await startTestDip();
    try {
      const cp = await t.participant('5000000002', ['DCP']);
      const sup = await t.participant('1000000004', ['SUP']);
      const sds = await t.participant('2000000004', ['SDS']);
      const admin = adminApi(t);
      expect((await sup.client.call('PUT', `/participants/${sup.dipId}/connection-provider`, JSON.stringify({ dipId: cp.dipId }), { 'content-type': 'application/json' })).status).toBe(200);
      const providers = await t.receiver();
      const own = await t.receiver();
      expect((await cp.client.setWebhook('IF-021', sup.dipId, { callbackURL: `${providers.url}cp-hook` })).status).toBe(201);
      expect((await sup.client.setStatusWebhook(sup.dipId, { callbackURL: own.url })).status).toBe(201);

      const offboarded = await admin('POST', `/admin/participants/${cp.dipId}/offboard`, { reason: 'left the market' });
      expect(offboarded.status, JSON.stringify(offboarded.body)).toBe(200);
      expect(offboarded.body).toMatchObject({ offboarded: cp.dipId, clientWebhooksRemoved: [{ recipientDipId: sup.dipId, channel: 'IF-021', registeredBy: cp.dipId }] });
      expect((await t.dip.backend.registry.webhooks()).filter((w) => w.recipientDipId === sup.dipId).map((w) => [w.channel, w.registeredBy])).toEqual([['STATUS', sup.dipId]]);

      const sent = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'off1' })]);
      expect(sent.status, JSON.stringify(sent.body)).toBe(201);
      await waitFor(async () => (await sup.client.pull('IF-021', sup.dipId)).body.length === 1, 10_000, "the client's message in its pull queue");
      expect(providers.calls).toEqual([]);
      const journal = ((await admin('GET', `/admin/journal?target=${cp.dipId}&action=participant.offboard`)).body as Json[])[0];
      expect(journal).toMatchObject({ after: { webhooksRemoved: 0, clientWebhooksRemoved: [{ recipientDipId: sup.dipId, channel: 'IF-021', registeredBy: cp.dipId }] } });
    } finally {
      await t.close();
    }
  });
});

// Offboarding left each client's nomination naming the offboarded DIP ID: registered again (`dip participant
// add` upserts), that ID at once sent as every former client and pulled their messages.
describe('an offboarded connection provider registered again', () => {
  it("acts for none of its former clients: offboarding withdrew their nominations (journalled, answered)", async () => {
    const t = await startTestDip();
    try {
      const cp = await t.participant('5000000003', ['DCP']);
      const a = await t.participant('2000000005', ['SDS']);
      const b = await t.participant('2000000006', ['SDS']);
      const sup = await t.participant('1000000005', ['SUP']);
      const admin = adminApi(t);
      for (const c of [a, b]) expect((await c.client.call('PUT', `/participants/${c.dipId}/connection-provider`, JSON.stringify({ dipId: cp.dipId }), { 'content-type': 'application/json' })).status).toBe(200);
      const offboarded = await admin('POST', `/admin/participants/${cp.dipId}/offboard`, { reason: 'left the market' });
      expect(offboarded.status, JSON.stringify(offboarded.body)).toBe(200);
      expect(offboarded.body).toMatchObject({ offboarded: cp.dipId, nominationsWithdrawn: [a.dipId, b.dipId] });

      const again = await t.participant(cp.dipId, ['DCP']);
      for (const c of [a, b]) {
        const read = await c.client.call<Json>('GET', `/participants/${c.dipId}`, '');
        expect(read.status, JSON.stringify(read.body)).toBe(200);
        expect(read.body).toMatchObject({ connectionProvider: null });
        const m = buildIF021({ senderDipId: c.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `re${c.dipId}` });
        (m.payload.CommonBlock.S1 as Json).DIPConnectionProviderID = cp.dipId;
        expect((await again.client.submit('IF-021', [m])).status).toBe(403);
        expect((await again.client.pull('IF-021', c.dipId)).status).toBe(403);
        const journal = (await admin('GET', `/admin/journal?target=${c.dipId}&action=participant.connection-provider.withdraw`)).body as Json[];
        expect(journal).toMatchObject([{ before: { connectionProvider: cp.dipId }, after: { connectionProvider: null } }]);
      }
    } finally {
      await t.close();
    }
  });
});

// A nomination kept by a re-registration named a provider no longer registered (one offboarded before
// offboarding withdrew nominations) and printed "kept": registered again, that ID would act for it.
describe('a re-registration whose provider is no longer registered', () => {
  it('drops the nomination and says so', async () => {
    const t = await startTestDip();
    try {
      const cp = await t.participant('5000000004', ['DCP']);
      const sup = await t.participant('1000000006', ['SUP']);
      const store = t.dip.backend.registry;
      const registered = (await store.participants()).find((r) => r.participant.dipId === sup.dipId)!.participant;
      await store.upsertParticipant({ ...registered, connectionProvider: cp.dipId }, null);
      await store.removeParticipant(cp.dipId);
      const again = await onboardParticipant(store, { dipId: sup.dipId, roles: ['SUP'], certificatePem: sup.credentials.certPem });
      expect([again.participant.connectionProvider, again.formerProvider]).toEqual([null, cp.dipId]);
      expect(nominationChange(again.formerProvider, again.participant.connectionProvider, again.formerProviderGone)).toBe(`none (was ${cp.dipId}, no longer registered: dropped)`);
      expect((await store.participants()).find((r) => r.participant.dipId === sup.dipId)!.participant.connectionProvider).toBeNull();
    } finally {
      await t.close();
    }
  });
});

describe('webhook callbacks outside DEV', () => {
  it('must be https', async () => {
    const t = await startTestDip({ environment: 'SIT' });
    try {
      const sup = await t.participant('1000000001', ['SUP']);
      const plain = await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: 'http://127.0.0.1:9/' });
      expect(plain.status).toBe(400);
      expect(plain.body.messageArray[0]!.help).toMatch(/must be https in the SIT environment/);
      expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: 'https://93.184.215.14:9/' })).status).toBe(201); // a public address: internal ones are refused outside DEV (webhook-destinations.test.ts)
    } finally {
      await t.close();
    }
  });
});
