/**
 * A company onboarding itself (spec 5.12.1 "User Onboarding"), over the real listeners: the user portal's
 * public form (HTTPS), the contact's e-mail (a real SMTP conversation with smtp-server), the operators' review
 * queue on the operator API, and the invited contact's first sign-in.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { totpCode } from '../src/security/portal-credentials.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';
import { startSmtp, type Mail, type TestSmtp } from './helpers/smtp.js';

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');
const hourAgo = Date.now() - 3_600_000;
const DIP_ID = '1000000077';
/** The register: NEWE is New Energy Ltd's, DIP ID 1000000077, a supplier; OTHR another company's. */
const feed = [
  { companyRegNumber: '09876543', companyName: 'New Energy Ltd', companyDetails: [{ MPID: 'NEWE', marketRole: 'X', DIPID: DIP_ID, DIPRole: 'SUP', datetimeFrom: iso(hourAgo), datetimeTo: null }] },
  { companyRegNumber: '01234567', companyName: 'Other Ltd', companyDetails: [{ MPID: 'OTHR', marketRole: 'X', DIPID: '1000000088', DIPRole: 'SUP', datetimeFrom: iso(hourAgo), datetimeTo: null }] },
];

/** The text of a message as sent: its body, quoted-printable undone. */
function mailText(mail: Mail): string {
  const body = mail.data.slice(mail.data.search(/\r?\n\r?\n/));
  return body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

async function newCsr(): Promise<string> {
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  return (await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=New Energy', keys, signingAlgorithm: alg })).toString('pem');
}

describe('company self-onboarding', () => {
  let t: TestDip;
  let smtp: TestSmtp;
  let admin: ReturnType<typeof adminApi>;
  let csr: string;
  const agents = new Map<string, Agent>();

  beforeAll(async () => {
    smtp = await startSmtp();
    t = await startTestDip({
      onboarding: { ...DEFAULTS.onboarding, applicationsPerAddressPerHour: 4, maxWaiting: 4 },
      observability: { ...DEFAULTS.observability, alarms: { ...DEFAULTS.observability.alarms, smtp: { host: '127.0.0.1', port: smtp.port, secure: false, requireTLS: false, user: null, pass: null, from: 'dip@example.net' } } },
    });
    admin = adminApi(t);
    expect((await admin('POST', '/admin/register/apply', { feed, source: 'file:m16.json' })).status).toBe(200);
    csr = await newCsr();
  });
  afterAll(async () => {
    for (const a of agents.values()) await a.close();
    await t?.close();
    await smtp?.close();
  });

  /** A request to the portal from a loopback address of its own (the rate limit is per address). */
  const send = async (method: 'GET' | 'POST', path: string, form?: Record<string, string>, from = '127.0.0.1') => {
    const agent = agents.get(from) ?? new Agent({ localAddress: from, connect: { ca: t.dip.pki.ca.certPem } });
    agents.set(from, agent);
    const res = await request(`${t.dip.portalUrl}${path}`, {
      method,
      dispatcher: agent,
      headers: form ? { 'content-type': 'application/x-www-form-urlencoded', origin: t.dip.portalUrl } : {},
      body: form ? new URLSearchParams(form).toString() : undefined,
    });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  };
  const claim = (over: Record<string, string> = {}) => ({ companyName: 'New Energy Ltd', mpids: 'NEWE', roles: 'SUP, LDSO', contactName: 'Nia Newton', contactEmail: 'nia@newenergy.example', csrPem: csr, ...over });
  /** Applies and opens the link e-mailed: the application's ID as the operators see it. */
  const appliedAndVerified = async (over: Record<string, string>, from: string): Promise<string> => {
    const before = smtp.mails.length;
    const applied = await send('POST', '/portal/apply', claim(over), from);
    expect(applied.status, applied.text).toBe(200);
    await waitFor(() => smtp.mails.length > before, 5000, 'the verification e-mail');
    const token = /\/portal\/apply\/verify\?token=([\w-]+)/.exec(mailText(smtp.mails.at(-1)!))![1]!;
    expect((await send('POST', '/portal/apply/verify', { token }, from)).status).toBe(200);
    const pending = (await admin('GET', '/admin/onboarding/applications')).body as Array<{ id: string; contactEmail: string }>;
    return pending.find((a) => a.contactEmail === (over.contactEmail ?? claim().contactEmail))!.id;
  };

  it('applies, verifies by e-mail, is approved with the register\'s roles, and the invited contact signs in', async () => {
    const form = await send('GET', '/portal/apply');
    expect(form.status).toBe(200);
    expect(form.text).toContain('name="mpids"');

    const applied = await send('POST', '/portal/apply', claim());
    expect(applied.status, applied.text).toBe(200);
    expect(applied.text).toContain('A link to confirm the application was sent to nia@newenergy.example');
    await waitFor(() => smtp.mails.length === 1, 5000, 'the verification e-mail');
    const mail = smtp.mails[0]!;
    expect(mail.to).toEqual(['nia@newenergy.example']);
    const link = /(https:\/\/\S+\/portal\/apply\/verify\?token=[\w-]+)/.exec(mailText(mail))![1]!;
    // Nothing the applicant wrote rides on the DIP's own sender (a phishing relay): a fixed text, the link, the application's ID.
    for (const typed of ['New Energy', 'Nia', 'Newton', 'NEWE', 'LDSO']) expect(mailText(mail)).not.toContain(typed);
    // Not yet verified: the operators do not see it.
    expect((await admin('GET', '/admin/onboarding/applications')).body).toEqual([]);

    // The link opens a page whose button confirms: following the link alone (a mail scanner) confirms nothing.
    const token = new URL(link).searchParams.get('token')!;
    const page = await send('GET', `/portal/apply/verify?token=${token}`);
    expect(page.text).toContain(`name="token" value="${token}"`);
    expect((await admin('GET', '/admin/onboarding/applications')).body).toEqual([]);
    expect((await send('POST', '/portal/apply/verify', { token })).status).toBe(200);
    expect((await send('POST', '/portal/apply/verify', { token })).status).toBe(404);

    const [pending] = (await admin('GET', '/admin/onboarding/applications')).body as Array<{ id: string }>;
    expect(mailText(mail)).toContain(`application ${pending!.id}`);
    const view = await admin('GET', `/admin/onboarding/applications/${pending!.id}`);
    expect(view.status, JSON.stringify(view.body)).toBe(200);
    expect(view.body).toMatchObject({
      application: { status: 'pending', companyName: 'New Energy Ltd', mpids: ['NEWE'], roles: ['LDSO', 'SUP'], contactEmail: 'nia@newenergy.example' },
      check: { dipId: DIP_ID, companyName: 'New Energy Ltd', unknownMpids: [], registerRoles: ['SUP'], rolesNotInRegister: ['LDSO'], rolesNotClaimed: [], problem: null },
      alreadyRegistered: false,
    });

    const approved = await admin('POST', `/admin/onboarding/applications/${pending!.id}/approve`, {});
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    expect(approved.body).toMatchObject({ roles: ['SUP'], invitation: { sent: true }, application: { status: 'approved', dipId: DIP_ID, username: `nia.${DIP_ID}` } });
    expect(approved.body.certificatePem).toMatch(/BEGIN CERTIFICATE/);
    // The participant is registered with the register's roles only (LDSO was claimed, not registered).
    const registered = (await t.dip.backend.registry.participants()).find((r) => r.participant.dipId === DIP_ID)!.participant;
    expect(registered.roles).toEqual(['SUP']);
    expect(registered.organisation).toBe('New Energy Ltd');
    expect((await admin('POST', `/admin/onboarding/applications/${pending!.id}/approve`, {})).status).toBe(409);

    const journal = (await admin('GET', `/admin/journal?target=${pending!.id}`)).body as Array<{ action: string; actor: string; after: Record<string, unknown> }>;
    expect(journal.map((e) => [e.action, e.actor])).toEqual([
      ['onboarding.approve', 'bootstrap'],
      ['onboarding.verify', 'applicant:nia@newenergy.example'],
    ]);
    expect(journal[0]!.after).toMatchObject({ dipId: DIP_ID, roles: ['SUP'], rolesNotInRegister: ['LDSO'] });

    await waitFor(() => smtp.mails.length === 2, 5000, 'the invitation');
    const invitation = mailText(smtp.mails[1]!);
    const username = /username: (\S+)/.exec(invitation)![1]!;
    const password = /first password: (\S+)/.exec(invitation)![1]!;
    expect(username).toBe(`nia.${DIP_ID}`);
    // secfix5 M2: the first password expires, and the invitation says when (72 h from its making by default).
    const lapse = Date.parse(/first sign-in only: it stops working at (\S+) if not used by then/.exec(invitation)![1]!);
    expect(lapse - Date.now()).toBeGreaterThan(71 * 3_600_000);
    expect(lapse - Date.now()).toBeLessThanOrEqual(72 * 3_600_000);
    // The first sign-in sets up the authenticator and chooses a password, as for every new account.
    const first = await send('POST', '/portal/sign-in', { username, password, code: '' });
    expect(first.status, first.text).toBe(200);
    const secret = /id="totp-secret">([A-Z2-7]+)</.exec(first.text)![1]!;
    const enrolment = /name="token" value="([^"]+)"/.exec(first.text)![1]!;
    const own = 'Nia chose this passphrase';
    const signedIn = await send('POST', '/portal/sign-in/enrolment', { token: enrolment, choose: 'yes', code: totpCode(secret, Date.now()), next: own, repeat: own });
    expect(signedIn.status, signedIn.text).toBe(303);
    const cookie = [signedIn.headers['set-cookie'] ?? []].flat()[0]!.split(';')[0]!;
    const overview = await request(`${t.dip.portalUrl}/portal/users`, { dispatcher: agents.get('127.0.0.1')!, headers: { cookie } });
    const text = await overview.body.text();
    expect(overview.statusCode).toBe(200);
    expect(text).toContain(DIP_ID);
  });

  it('names every problem of a form field by field, and counts every application against the address\'s rate', async () => {
    const from = '127.0.0.3';
    const bad = await send('POST', '/portal/apply', claim({ mpids: 'NEWE, toolong', roles: '', contactEmail: 'nia at newenergy', csrPem: 'not a request' }), from);
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('MPIDs: &#39;TOOLONG&#39; is not an MPID (4 letters)');
    expect(bad.text).toContain('roles: at least one');
    expect(bad.text).toContain('e-mail: an address such as name@company.example');
    expect(bad.text).toContain('certificate signing request: a PEM');
    // What was typed is kept in the form.
    expect(bad.text).toContain('value="New Energy Ltd"');
    for (let i = 0; i < 3; i++) expect((await send('POST', '/portal/apply', claim({ mpids: 'X' }), from)).status).toBe(400);
    const limited = await send('POST', '/portal/apply', claim(), from);
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toMatch(/^\d+$/);
    expect(limited.text).toContain('too many applications from your network address');
  });

  it('answers an application for MPIDs the register does not have as any other; the operator sees why and rejects it, the reason e-mailed', async () => {
    const unknown = await send('POST', '/portal/apply', claim({ mpids: 'ZZZZ', contactEmail: 'zed@nowhere.example' }), '127.0.0.4');
    expect(unknown.status).toBe(200);
    expect(unknown.text).toContain('A link to confirm the application was sent to zed@nowhere.example');
    const id = await appliedAndVerified({ mpids: 'ZZZZ, OTHR', contactEmail: 'zed2@nowhere.example' }, '127.0.0.4');
    const view = (await admin('GET', `/admin/onboarding/applications/${id}`)).body;
    expect(view.check).toMatchObject({ dipId: null, unknownMpids: ['ZZZZ'], dipIds: ['1000000088'], problem: 'the register has no DIP ID for ZZZZ now' });
    const refused = await admin('POST', `/admin/onboarding/applications/${id}/approve`, {});
    expect(refused.status).toBe(409);
    expect(refused.body.error).toContain('the register has no DIP ID for ZZZZ now');

    const before = smtp.mails.length;
    const rejected = await admin('POST', `/admin/onboarding/applications/${id}/reject`, { reason: 'ZZZZ is no MPID of the register: apply once you are qualified' });
    expect(rejected.status, JSON.stringify(rejected.body)).toBe(200);
    expect(rejected.body).toMatchObject({ application: { status: 'rejected', reason: 'ZZZZ is no MPID of the register: apply once you are qualified', decidedBy: 'bootstrap' }, notice: { sent: true } });
    await waitFor(() => smtp.mails.length > before, 5000, 'the rejection');
    expect(smtp.mails.at(-1)!.to).toEqual(['zed2@nowhere.example']);
    expect(mailText(smtp.mails.at(-1)!)).toContain('ZZZZ is no MPID of the register: apply once you are qualified');
    expect((await admin('POST', `/admin/onboarding/applications/${id}/reject`, { reason: 'again' })).status).toBe(409);
    expect((await admin('GET', '/admin/onboarding/applications?status=rejected')).body.map((a: { id: string }) => a.id)).toEqual([id]);
    expect((await admin('POST', '/admin/onboarding/applications/nope/reject', { reason: 'x' })).status).toBe(404);

    // A viewer (an auditor, a dashboard) reads the journal, who did what and when, but not the applicant's
    // contact details, which GET /admin/onboarding holds back from it too; nor finds an address by the actor filter.
    const made = await admin('POST', '/admin/operators', { name: 'vic', role: 'viewer', automation: true });
    const viewer = adminApi(t, made.body.token as string);
    const seen = (await viewer('GET', `/admin/journal?target=${id}`)).body as Array<{ action: string; actor: string; before: Record<string, unknown> | null; after: Record<string, unknown> }>;
    expect(seen.map((e) => [e.action, e.actor])).toEqual([
      ['onboarding.reject', 'bootstrap'],
      ['onboarding.verify', 'applicant'],
    ]);
    expect(JSON.stringify(seen)).not.toMatch(/zed2@nowhere\.example|New Energy Ltd/);
    expect(seen[0]!.before).toMatchObject({ companyName: '(held back from viewers)', contactEmail: '(held back from viewers)', mpids: ['OTHR', 'ZZZZ'] });
    expect(seen[0]!.after).toEqual({ reason: 'ZZZZ is no MPID of the register: apply once you are qualified' });
    const probed = await viewer('GET', '/admin/journal?actor=applicant:zed2@nowhere.example');
    expect(probed.status).toBe(403);
    expect(probed.body.error).toMatch(/applicants/);
    // An operator or admin reads them whole.
    expect(((await admin('GET', `/admin/journal?target=${id}`)).body as Array<{ actor: string }>)[1]!.actor).toBe('applicant:zed2@nowhere.example');
  });

  it('puts an approval back to pending when the participant could not be registered, and journals nothing', async () => {
    const id = await appliedAndVerified({ companyName: 'Other Ltd', mpids: 'OTHR', roles: 'SUP', contactEmail: 'olga@other.example' }, '127.0.0.10');
    const failing = vi.spyOn(t.dip.backend.registry, 'insertParticipant').mockRejectedValueOnce(new Error('the disk is full'));
    try {
      const failed = await admin('POST', `/admin/onboarding/applications/${id}/approve`, {});
      expect(failed.status).toBe(500);
    } finally {
      failing.mockRestore();
    }
    expect((await admin('GET', `/admin/onboarding/applications/${id}`)).body.application).toMatchObject({ status: 'pending', decidedAt: null, decidedBy: null, dipId: null, username: null });
    expect(((await admin('GET', `/admin/journal?target=${id}`)).body as Array<{ action: string }>).map((e) => e.action)).toEqual(['onboarding.verify']);
    const approved = await admin('POST', `/admin/onboarding/applications/${id}/approve`, {});
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    expect(approved.body.apiKey).toEqual(expect.any(String));
  });

  it('takes no application past the cap of verified applications waiting; unverified ones are not counted against it', async () => {
    // Waiting now: zed@ unverified, nothing verified; the cap is 4. Unverified ones past the cap are taken.
    for (const n of [1, 2, 3, 4, 5]) expect((await send('POST', '/portal/apply', claim({ contactEmail: `u${n}@newenergy.example` }), n < 4 ? '127.0.0.5' : '127.0.0.6')).status).toBe(200);
    for (const n of [1, 2, 3, 4]) await appliedAndVerified({ contactEmail: `c${n}@newenergy.example` }, n < 3 ? '127.0.0.7' : '127.0.0.8');
    const full = await send('POST', '/portal/apply', claim({ contactEmail: 'c5@newenergy.example' }), '127.0.0.9');
    expect(full.status).toBe(503);
    expect(full.text).toContain('the DIP takes no more applications at the moment');
  });
});

describe('a DIP whose onboarding is off', () => {
  it('neither shows the Apply link on the sign-in page nor serves the form', async () => {
    const t = await startTestDip({ onboarding: { ...DEFAULTS.onboarding, enabled: false } });
    const agent = new Agent({ connect: { ca: t.dip.pki.ca.certPem } });
    try {
      const get = async (path: string) => {
        const res = await request(`${t.dip.portalUrl}${path}`, { dispatcher: agent });
        return { status: res.statusCode, text: await res.body.text() };
      };
      const signIn = await get('/portal/sign-in');
      expect(signIn.status).toBe(200);
      expect(signIn.text).toContain('name="username"');
      expect(signIn.text).not.toContain('/portal/apply');
      expect((await get('/portal/apply')).status).toBe(404);
    } finally {
      await agent.close();
      await t.close();
    }
  });
});
