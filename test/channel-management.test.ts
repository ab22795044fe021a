import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIF031DataServiceRequest } from '../src/sim/appointment.js';
import { buildIF021, mpanCore } from '../src/sim/messages.js';
import { Signer } from '../src/security/signature.js';
import { adminApi } from './helpers/admin.js';
import { queueIdle, startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;

describe('channel management while running (spec 5.3)', () => {
  let t: TestDip;
  let carol: ReturnType<typeof adminApi>;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let ldso: TestParticipant;
  let sup2: TestParticipant;
  let regs: TestParticipant;
  let toSup: Awaited<ReturnType<TestDip['receiver']>>;
  let toLdso: Awaited<ReturnType<TestDip['receiver']>>;
  let toRegs: Awaited<ReturnType<TestDip['receiver']>>;
  let n = 0;
  const if021 = (recipient: string) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [recipient], uniqueSuffix: `cm${(n += 1)}` });
  const if031 = () =>
    buildIF031DataServiceRequest({ senderDipId: sup2.dipId, mpan: mpanCore(`load${(n += 1)}`), distributorDipId: ldso.dipId, primaryRecipients: [regs.dipId], supplierDipId: sup2.dipId, proposedDipId: sds.dipId, effectiveFrom: new Date() });
  const messagesAt = (r: { calls: Array<{ messages: unknown[] }> }) => r.calls.flatMap((c) => c.messages) as Json[];

  beforeAll(async () => {
    t = await startTestDip();
    const created = await adminApi(t)('POST', '/admin/operators', { name: 'carol', role: 'operator', automation: true });
    carol = adminApi(t, created.body.token);
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
    ldso = await t.participant('3000000001', ['LDSO']);
    sup2 = await t.participant('1000000002', ['SUP']);
    regs = await t.participant('4000000001', ['REGS']);
    toSup = await t.receiver();
    toLdso = await t.receiver();
    toRegs = await t.receiver();
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: toSup.url })).status).toBe(201);
    expect((await ldso.client.setWebhook('IF-021', ldso.dipId, { callbackURL: toLdso.url })).status).toBe(201);
    expect((await regs.client.setWebhook('IF-031', regs.dipId, { callbackURL: toRegs.url })).status).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("changes IF-021's receiving roles live while a load runs on IF-031, with no failed message there; versioned and rolled back", async () => {
    const before = await carol('GET', '/admin/channels/IF-021');
    expect(before.body).toMatchObject({ channel: 'IF-021', version: 0, state: 'active', inForce: { receiverRoles: ['LSS', 'MDS', 'LDSO', 'SUP'] } });

    // A steady load on another channel for the whole test.
    let running = true;
    const answers: number[] = [];
    const load = (async () => {
      while (running) answers.push((await sup2.client.submit('IF-031', [if031(), if031(), if031()])).status);
    })();
    await waitFor(() => answers.length >= 3, 20_000, 'the load to run');

    const changed = await carol('PATCH', '/admin/channels/IF-021', { settings: { receiverRoles: ['LSS', 'MDS', 'SUP'] }, note: 'LDSO off IF-021', expectedVersion: 0 });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    expect(changed.body).toMatchObject({ version: 1, changedBy: 'operator:carol', inForce: { receiverRoles: ['LSS', 'MDS', 'SUP'] } });
    // In force at once, no restart: LDSO is no longer a valid primary recipient; SUP still is.
    const refused = await sds.client.submit('IF-021', [if021(ldso.dipId)]);
    expect(refused.status).toBe(400);
    expect(refused.body.messageArray[0]!.message).toMatch(/^MSG1032/);
    expect((await sds.client.submit('IF-021', [if021(sup.dipId)])).status).toBe(201);
    await waitFor(() => messagesAt(toSup).length === 1, 10_000, 'IF-021 to the supplier');

    // Refused before it applies, with the field named; a stale version is refused too.
    const invalid = await carol('PATCH', '/admin/channels/IF-021', { settings: { receiverRoles: ['SUP', 'sup'] } });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error).toMatch(/settings\.receiverRoles\[1\]/);
    expect((await carol('PATCH', '/admin/channels/IF-021', { note: 'stale', expectedVersion: 0 })).status).toBe(409);
    expect((await carol('PATCH', '/admin/channels/IF-999', { note: 'x' })).status).toBe(404);
    // Spec 5.4: a limit below 14 days dead-letters what an offline recipient has not fetched: refused, as at start, unless acknowledged.
    const short = await carol('PATCH', '/admin/channels/IF-021', { settings: { staleAfterMinutes: 1440 } });
    expect(short.status).toBe(400);
    expect(short.body.error).toMatch(/^settings\.staleAfterMinutes: 1440 \(1 day\) dead-letters a message its recipient has not fetched before the 14 days \(20160 minutes\) spec 5\.4 keeps it for.*settings\.allowShortRetention: true/);
    const shape = await carol('PATCH', '/admin/channels/IF-021', { settings: { staleAfterMinutes: 'soon' } });
    expect(shape.status).toBe(400);
    expect(shape.body.error).toMatch(/staleAfterMinutes must be number/);
    // A misspelt override is refused, named with the keys there are (it used to be dropped, and the
    // change recorded as a version with nothing in it); so is a patch that names nothing to change.
    const typo = await carol('PATCH', '/admin/channels/IF-021', { settings: { staleAfterMinute: 5 } });
    expect(typo.status).toBe(400);
    expect(typo.body.error).toMatch(/^body\/settings must NOT have additional property 'staleAfterMinute' \(known fields: .*\bstaleAfterMinutes\b/);
    const misplaced = await carol('PATCH', '/admin/channels/IF-021', { staleAfterMinute: 5 });
    expect(misplaced.status).toBe(400);
    expect(misplaced.body.error).toMatch(/^body must NOT have additional property 'staleAfterMinute' \(known fields: settings, optIn, note, expectedVersion\)/);
    for (const nothing of [{ note: 'only a note' }, { settings: {} }, { settings: {}, note: 'x', expectedVersion: 1 }]) {
      const refused = await carol('PATCH', '/admin/channels/IF-021', nothing);
      expect(refused.status, JSON.stringify(nothing)).toBe(400);
      expect(refused.body.error).toMatch(/^nothing to change on IF-021: name overrides under settings, or optIn/);
    }
    // The settings in force given again: answered as they are, no new version, and journalled as a no-op
    // (below): an auditor sees every change an operator attempted, including one that changed nothing.
    const same = await carol('PATCH', '/admin/channels/IF-021', { settings: { receiverRoles: ['LSS', 'MDS', 'SUP'] }, note: 'again' });
    expect(same.status).toBe(200);
    expect(same.body).toMatchObject({ version: 1, note: 'LDSO off IF-021' });

    // The previous version is shown, and put back as a new version.
    const history = await carol('GET', '/admin/channels/IF-021/history');
    expect(history.body.map((v: Json) => [v.version, v.by, v.settings.receiverRoles])).toEqual([[1, 'operator:carol', ['LSS', 'MDS', 'SUP']]]);
    const rolledBack = await carol('POST', '/admin/channels/IF-021/rollback', { version: 1 });
    expect(rolledBack.body.version).toBe(2);
    const reset = await carol('PATCH', '/admin/channels/IF-021', { settings: { receiverRoles: null } });
    expect(reset.body).toMatchObject({ version: 3, inForce: { receiverRoles: ['LSS', 'MDS', 'LDSO', 'SUP'] } });
    expect((await sds.client.submit('IF-021', [if021(ldso.dipId)])).status).toBe(201);
    await waitFor(() => messagesAt(toLdso).length === 1, 10_000, 'IF-021 to the distributor again');

    running = false;
    await load;
    expect(answers.filter((s) => s !== 201)).toEqual([]);
    await waitFor(() => messagesAt(toRegs).length === answers.length * 3, 20_000, 'every IF-031 of the load delivered');

    const journal = await carol('GET', '/admin/journal?target=IF-021');
    expect(journal.body.map((e: Json) => [e.actor, e.action])).toEqual([
      ['operator:carol', 'channel.change'],
      ['operator:carol', 'channel.rollback'],
      ['operator:carol', 'channel.change.no-op'],
      ['operator:carol', 'channel.change'],
    ]);
    expect(journal.body[2].before).toMatchObject({ version: 1, settings: { receiverRoles: ['LSS', 'MDS', 'SUP'] }, note: 'LDSO off IF-021' });
    expect(journal.body[2].after).toEqual(journal.body[2].before);
    expect(journal.body[3].before).toMatchObject({ version: 0, settings: {} });
    expect(journal.body[3].after).toMatchObject({ version: 1, settings: { receiverRoles: ['LSS', 'MDS', 'SUP'] } });
  });

  it('pausing IF-021 holds its deliveries and refuses its ingest with 503, other channels untouched; resume delivers', async () => {
    // A recipient that refuses for now: the message waits in its queue, retried every few hundred ms.
    let accept = false;
    let attempts = 0;
    const slow = await t.receiver(() => {
      attempts += 1;
      return accept ? 200 : 503;
    });
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: slow.url })).status).toBe(201);
    expect((await sds.client.submit('IF-021', [if021(sup.dipId)])).status).toBe(201);
    await waitFor(() => attempts >= 1, 10_000, 'the first attempt');

    const paused = await carol('POST', '/admin/channels/IF-021/pause', { note: 'maintenance' });
    expect(paused.body).toMatchObject({ state: 'paused' });
    // A call already in flight when the pause applied may still finish (refused); the worker's next look
    // finds the channel held and it goes idle with no retry scheduled: only a resume kicks it again.
    const heldIdle = () => queueIdle(t.dip, { recipientDipId: sup.dipId, channel: 'IF-021' });
    await waitFor(heldIdle, 10_000, 'the paused queue to go idle');
    const attemptsWhenPaused = attempts;
    accept = true;
    const refused = await sds.client.submit('IF-021', [if021(sup.dipId)]);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('60');
    expect(refused.body.messageArray[0]!.message).toMatch(/^MSG1000/);
    expect(refused.body.messageArray[0]!.help).toMatch(/paused/);
    // "Send it again unchanged": the same signed request (same date, so the same X-DIP-Signature) is
    // refused as paused again.
    const unchanged = JSON.stringify([if021(sup.dipId)]);
    const signed = await new Signer(sds.credentials.keyPem, sds.credentials.certPem).sign('POST', `${t.dip.url}/dip-channel/IF-021`, unchanged);
    const sendUnchanged = () => sds.client.call('POST', '/dip-channel/IF-021', unchanged, { ...signed });
    for (let i = 0; i < 2; i++) expect((await sendUnchanged()).body.messageArray[0]!.help).toMatch(/is paused/);
    // Another channel is not touched.
    expect((await sup2.client.submit('IF-031', [if031()])).status).toBe(201);
    const regsBefore = messagesAt(toRegs).length;
    await waitFor(() => messagesAt(toRegs).length === regsBefore + 1, 10_000, 'IF-031 while IF-021 is paused');
    // A sweep (what the retry timer and the periodic sweep do) looks at the queue again: still no call.
    await t.dip.delivery.sweep();
    await waitFor(heldIdle, 10_000, 'the paused queue to stay idle after a sweep');
    expect(attempts).toBe(attemptsWhenPaused);
    expect(messagesAt(slow)).toEqual([]);

    expect((await carol('POST', '/admin/channels/IF-021/pause')).status).toBe(409);
    expect((await carol('POST', '/admin/channels/IF-021/resume')).body).toMatchObject({ state: 'active' });
    await waitFor(() => messagesAt(slow).length === 1, 10_000, 'the held message after the resume');
    // Once it resumes, the request sent unchanged is taken, once; a third copy is a duplicate.
    expect((await sendUnchanged()).status).toBe(201);
    const repeated = await sendUnchanged();
    expect([repeated.status, repeated.body.messageArray[0]!.message]).toEqual([400, expect.stringMatching(/^MSG1006/)]);

    // Withdrawn: refused as an unknown channel.
    await carol('POST', '/admin/channels/IF-021/withdraw', { note: 'end of trial' });
    const gone = await sds.client.submit('IF-021', [if021(sup.dipId)]);
    expect(gone.status).toBe(404);
    expect(gone.body.messageArray[0]!.help).toMatch(/withdrawn/);
    await carol('POST', '/admin/channels/IF-021/resume');
    expect((await sds.client.submit('IF-021', [if021(sup.dipId)])).status).toBe(201);

    // Rolling the settings back to a version taken while the channel was paused puts those settings in
    // force, not the pause: pausing, resuming and withdrawing are acts of their own, each journalled as one,
    // and a rollback that stopped the channel's messages again would do it with nothing saying so.
    const history = (await carol('GET', '/admin/channels/IF-021/history')).body as Array<{ version: number; state: string; note: string }>;
    const whilePaused = history.find((v) => v.state === 'paused' && v.note === 'maintenance')!;
    const rolled = await carol('POST', '/admin/channels/IF-021/rollback', { version: whilePaused.version });
    expect(rolled.body).toMatchObject({ state: 'active', note: `rolled back to version ${whilePaused.version}` });
    expect((await sds.client.submit('IF-021', [if021(sup.dipId)])).status).toBe(201);
  });

  it('takes a staleness below 14 days only acknowledged, shows it with the channel, and keeps the acknowledgement while it is in force', async () => {
    const meant = await carol('PATCH', '/admin/channels/IF-022', { settings: { staleAfterMinutes: 1440, allowShortRetention: true }, note: 'time-critical' });
    expect(meant.status).toBe(200);
    expect(meant.body.inForce.staleAfterMinutes).toBe(1440);
    expect(meant.body.warnings).toEqual([expect.stringMatching(/^staleAfterMinutes 1440 \(1 day\) dead-letters .* spec 5\.4 keeps it for$/)]);
    const dropped = await carol('PATCH', '/admin/channels/IF-022', { settings: { allowShortRetention: null } });
    expect(dropped.status).toBe(400);
    expect(dropped.body.error).toMatch(/^settings\.staleAfterMinutes: 1440 \(1 day\)/);
    const back = await carol('PATCH', '/admin/channels/IF-022', { settings: { staleAfterMinutes: null, allowShortRetention: null } });
    expect(back.body).toMatchObject({ inForce: { staleAfterMinutes: 20_160 }, warnings: [] });
  });
});
