/**
 * Participants on the operator API (spec 5.12.2 "Create User", "Manage User", "Certificate Management"), over
 * the real listeners: created from MPIDs and roles checked against the central register (as an onboarding
 * approval), with a certificate issued for the company's CSR (its key stays in this test), its first
 * administrator invited over a real SMTP conversation; suspended (its signed calls refused) and reactivated;
 * its certificate renewed from a new CSR and the old one revoked; every act journalled, a viewer refused.
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DipClient } from '../src/client/dip-client.js';
import { adminApi } from './helpers/admin.js';
import { keyAndCsr } from './helpers/csr.js';
import { buildIF021 } from '../src/sim/messages.js';
import { queueIdle, startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';
import { mailingTo, startSmtp, type TestSmtp } from './helpers/smtp.js';

const DIP_ID = '1000000066';
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');
const feed = [
  { companyRegNumber: '05555555', companyName: 'Acme Power Ltd', companyDetails: [{ MPID: 'ACME', marketRole: 'X', DIPID: DIP_ID, DIPRole: 'SUP', datetimeFrom: iso(Date.now() - 3_600_000), datetimeTo: null }] },
  { companyRegNumber: '05555556', companyName: 'Twice Energy Ltd', companyDetails: [{ MPID: 'TWCE', marketRole: 'X', DIPID: '1000000067', DIPRole: 'SUP', datetimeFrom: iso(Date.now() - 3_600_000), datetimeTo: null }] },
];

describe('operator API: participants', () => {
  let t: TestDip;
  let smtp: TestSmtp;
  let admin: ReturnType<typeof adminApi>;
  let operator: ReturnType<typeof adminApi>;
  let viewer: ReturnType<typeof adminApi>;
  let first: { csr: string; keyPem: string };
  let acmeKey = '';
  const clients: DipClient[] = [];

  beforeAll(async () => {
    smtp = await startSmtp();
    t = await startTestDip(mailingTo(smtp));
    admin = adminApi(t);
    expect((await admin('POST', '/admin/register/apply', { feed, source: 'file:register.json' })).status).toBe(200);
    operator = adminApi(t, (await admin('POST', '/admin/operators', { name: 'olga', role: 'operator', automation: true })).body.token);
    viewer = adminApi(t, (await admin('POST', '/admin/operators', { name: 'vic', role: 'viewer', automation: true })).body.token);
    first = await keyAndCsr('Acme Power');
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
    await t?.close();
    await smtp?.close();
  });

  const body = (over: Record<string, unknown> = {}) => ({ companyName: 'Acme Power Ltd', mpids: ['ACME'], roles: ['SUP'], contactName: 'Ada Acme', contactEmail: 'ada@acme.example', csr: first.csr, ...over });
  const clientOf = (apiKey: string, keyPem: string, certPem: string) => {
    const c = new DipClient({ baseUrl: t.dip.url, apiKey, keyPem, certPem, caPem: t.dip.pki.ca.certPem });
    clients.push(c);
    return c;
  };

  it('refuses a viewer, a role the register does not give, and MPIDs the register does not know, creating nothing', async () => {
    const byViewer = await viewer('POST', '/admin/participants', body());
    expect(byViewer.status).toBe(403);
    expect(byViewer.body.error).toContain('a viewer changes nothing');
    const role = await operator('POST', '/admin/participants', body({ roles: ['SUP', 'LDSO'] }));
    expect(role.status).toBe(400);
    expect(role.body.error).toBe(`roles: the central register does not give ${DIP_ID} the role LDSO now (it gives SUP): roles come from the register`);
    const unknown = await operator('POST', '/admin/participants', body({ mpids: ['NOPE'] }));
    expect(unknown.status).toBe(409);
    expect(unknown.body.error).toContain('the register has no DIP ID for NOPE now');
    const badCsr = await operator('POST', '/admin/participants', body({ csr: 'not a CSR' }));
    expect(badCsr.status).toBe(400);
    expect(badCsr.body.error).toContain('certificate signing request');
    expect((await admin('GET', '/admin/participants')).body.map((p: { dipId: string }) => p.dipId)).not.toContain(DIP_ID);
    expect(smtp.mails).toHaveLength(0);
  });

  it('creates the participant, issues its certificate for the CSR and invites its first administrator; it can call the DIP with its own key', async () => {
    const made = await operator('POST', '/admin/participants', body({ username: 'ada.acme' }));
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    expect(made.body).toMatchObject({ dipId: DIP_ID, roles: ['SUP'], rolesNotNamed: [], username: 'ada.acme', invitation: { sent: true } });
    await waitFor(() => smtp.mails.length === 1, 10_000, 'the invitation');
    expect(smtp.mails[0]!.to).toEqual(['ada@acme.example']);
    expect(smtp.mails[0]!.data).toContain('username: ada.acme');
    expect(smtp.mails[0]!.data).toMatch(/first password: \S+/);
    const listed = (await viewer('GET', '/admin/participants')).body.find((p: { dipId: string }) => p.dipId === DIP_ID);
    expect(listed).toMatchObject({ organisation: 'Acme Power Ltd', roles: ['SUP'], suspended: null, previousCertificateValidUntil: null });
    const journal = (await admin('GET', `/admin/journal?target=${DIP_ID}`)).body as Array<{ action: string; actor: string; after: { username?: string } }>;
    expect(journal.find((e) => e.action === 'participant.create')).toMatchObject({ actor: 'operator:olga', after: { username: 'ada.acme' } });
    const again = await operator('POST', '/admin/participants', body());
    expect(again.status).toBe(409);
    expect(again.body.error).toContain('is a registered participant already');

    acmeKey = made.body.apiKey;
    const acme = clientOf(acmeKey, first.keyPem, made.body.certificatePem);
    const pulled = await acme.pull('IF-021', DIP_ID);
    expect(pulled.status, JSON.stringify(pulled.body)).not.toBe(401);
    expect(pulled.status).not.toBe(403);
  });

  // The form sent twice at once: both passed the registry check, and the second re-registered the participant
  // (a new API key and certificate, the first one's key dead). Registration is insert-only: one is refused 409.
  it('registers a participant once when the creation is sent twice at once: the other is refused 409 naming it', async () => {
    const twice = await keyAndCsr('Twice Energy');
    const form = body({ companyName: 'Twice Energy Ltd', mpids: ['TWCE'], contactEmail: 'tom@twice.example', csr: twice.csr });
    const answers = await Promise.all([operator('POST', '/admin/participants', { ...form, username: 'tom.one' }), operator('POST', '/admin/participants', { ...form, username: 'tom.two' })]);
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409]);
    const refused = answers.find((a) => a.status === 409)!;
    expect(refused.body.error).toContain('1000000067 is a registered participant already');
    const made = answers.find((a) => a.status === 201)!;
    const pulled = await clientOf(made.body.apiKey, twice.keyPem, made.body.certificatePem).pull('IF-021', '1000000067');
    expect(pulled.status, JSON.stringify(pulled.body)).not.toBe(401);
  });

  it("e-mails maintenance notices to the participant's first administrator, subscribed or not (spec 5.13.5), once per address", async () => {
    const before = smtp.mails.length;
    const start = new Date(Date.now() + 86_400_000).toISOString();
    const end = new Date(Date.now() + 90_000_000).toISOString();
    const published = await operator('POST', '/admin/maintenance', { start, end, text: 'Database upgrade.' });
    expect(published.status, JSON.stringify(published.body)).toBe(201);
    await waitFor(() => smtp.mails.slice(before).some((m) => m.to.includes('ada@acme.example')), 10_000, 'the notice to the administrator');
    const toAda = smtp.mails.slice(before).filter((m) => m.to.includes('ada@acme.example'));
    expect(toAda).toHaveLength(1);
    expect(toAda[0]!.data).toContain('[DIP maintenance PUBLISHED]');
    expect(toAda[0]!.data).toContain('Database upgrade.');
  });

  it('suspends a participant (its calls refused with the reason, messages for it held) and reactivates it (held messages delivered), journalled; a viewer cannot', async () => {
    const sup = await t.participant('1000000011', ['SUP']);
    const sds = await t.participant('2000000011', ['SDS']);
    const toSup = await t.receiver();
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: toSup.url })).status).toBe(201);
    const if021 = (n: number) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `susp${n}` });
    expect((await sds.client.submit('IF-021', [if021(1)])).status).toBe(201);
    await waitFor(() => toSup.calls.length === 1, 10_000, 'the first message delivered');
    expect((await viewer('POST', '/admin/participants/1000000011/suspend', { reason: 'unpaid' })).status).toBe(403);
    const suspended = await operator('POST', '/admin/participants/1000000011/suspend', { reason: 'security incident under investigation' });
    expect(suspended.status, JSON.stringify(suspended.body)).toBe(200);
    expect(suspended.body.suspended).toMatchObject({ by: 'operator:olga', reason: 'security incident under investigation' });
    const refused = await sup.client.pull('IF-021', '1000000011');
    expect(refused.status).toBe(403);
    expect(JSON.stringify(refused.body)).toContain('1000000011 is suspended by the DIP operator');
    expect((await operator('POST', '/admin/participants/1000000011/suspend', { reason: 'again' })).status).toBe(409);
    // Sent to it while suspended: accepted from the sender, held (not delivered) until it is reactivated.
    expect((await sds.client.submit('IF-021', [if021(2)])).status).toBe(201);
    // Its worker finds the queue held and goes idle with no retry scheduled (as a paused channel's).
    await waitFor(() => queueIdle(t.dip, { recipientDipId: sup.dipId, channel: 'IF-021' }), 10_000, 'the held queue to go idle');
    expect(toSup.calls).toHaveLength(1);
    const back = await operator('POST', '/admin/participants/1000000011/reactivate');
    expect(back.status).toBe(200);
    expect(back.body.suspended).toBeNull();
    await waitFor(() => toSup.calls.length === 2, 10_000, 'the held message delivered after reactivation');
    expect((await operator('POST', '/admin/participants/1000000011/reactivate')).status).toBe(409);
    expect((await operator('POST', '/admin/participants/9999999999/suspend', { reason: 'x' })).status).toBe(404);
    const actions = ((await admin('GET', '/admin/journal?target=1000000011')).body as Array<{ action: string }>).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['participant.suspend', 'participant.reactivate']));
  });

  it('renews a certificate from a new CSR and revokes the one it replaced (admins only)', async () => {
    const second = await keyAndCsr('Acme Power');
    const byOperator = await operator('POST', `/admin/pki/participants/${DIP_ID}/certificate`, { csr: second.csr });
    expect(byOperator.status).toBe(403);
    const renewed = await admin('POST', `/admin/pki/participants/${DIP_ID}/certificate`, { csr: second.csr, overlapDays: 1 });
    expect(renewed.status, JSON.stringify(renewed.body)).toBe(200);
    expect(renewed.body.previousValidUntil).toEqual(expect.any(String));
    const listed = (await admin('GET', '/admin/participants')).body.find((p: { dipId: string }) => p.dipId === DIP_ID);
    expect(listed.certificateFingerprint).toBe(renewed.body.fingerprint);
    const revoked = await admin('POST', `/admin/pki/participants/${DIP_ID}/revoke`, { which: 'previous', reason: 'superseded' });
    expect(revoked.status, JSON.stringify(revoked.body)).toBe(200);
    const list = (await admin('GET', '/admin/pki/revoked')).body as Array<{ fingerprint256: string; reason: string }>;
    expect(list.map((r) => r.fingerprint256)).toContain(revoked.body.fingerprint);
    const actions = ((await admin('GET', `/admin/journal?target=${DIP_ID}`)).body as Array<{ action: string; actor: string }>).filter((e) => e.action.startsWith('participant.certificate'));
    expect(actions.map((e) => [e.action, e.actor])).toEqual(expect.arrayContaining([['participant.certificate.rotate', 'bootstrap'], ['participant.certificate.revoke', 'bootstrap']]));
    // The renewed certificate (its key made here) is the one the DIP takes now.
    const renewedClient = clientOf(acmeKey, second.keyPem, renewed.body.certificate);
    expect((await renewedClient.pull('IF-021', DIP_ID)).status).not.toBe(401);
  });
});
