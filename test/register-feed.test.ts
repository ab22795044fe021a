import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DipClient } from '../src/client/dip-client.js';
import { buildIF021 } from '../src/sim/messages.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');

/** The published company details shape (ISDPublication marketParticipantDetail / M16Row). */
const company = (rows: Array<{ dipId: string; role: string; from: number; to?: number | null }>) => [
  {
    companyRegNumber: '09876543',
    companyName: 'New Energy Ltd',
    companyDetails: rows.map((r) => ({ MPID: 'NEWE', marketRole: 'X', DIPID: r.dipId, DIPRole: r.role, datetimeFrom: iso(r.from), datetimeTo: r.to === undefined || r.to === null ? null : iso(r.to) })),
  },
];

describe('central register feed (spec 5.7.1)', () => {
  let t: TestDip;
  let admin: ReturnType<typeof adminApi>;
  let sds: TestParticipant;
  let fresh: TestParticipant;
  let register: Server;
  let served: unknown = [];
  let n = 0;
  const to = (recipient: string) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [recipient], uniqueSuffix: `rf${(n += 1)}` });
  const hourAgo = Date.now() - 3_600_000;

  beforeAll(async () => {
    // The register's endpoint in this test is on loopback: listed, as an operator would list a private link.
    t = await startTestDip({ revocationPollMs: 50, register: { pull: null, allowList: ['127.0.0.1'], maxFeedMb: 64 } });
    admin = adminApi(t);
    sds = await t.participant('2000000001', ['SDS']);
    // Onboarded as a data service; the register will make it a supplier too.
    fresh = await t.participant('1000000009', ['ADS']);
    register = createServer((req, res) => {
      if (req.headers.authorization !== 'Bearer register-secret') return res.writeHead(401).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(served));
    });
    await new Promise<void>((r) => register.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    register?.close();
    await t?.close();
  });

  it('a register update makes a participant a supplier that receives IF-021 at once; applied again it changes nothing', async () => {
    const before = await sds.client.submit('IF-021', [to(fresh.dipId)]);
    expect(before.body.messageArray[0]!.message).toMatch(/^MSG1032/);

    const feed = company([
      { dipId: fresh.dipId, role: 'ADS', from: hourAgo },
      { dipId: fresh.dipId, role: 'SUP', from: hourAgo },
    ]);
    const applied = await admin('POST', '/admin/register/apply', { feed, source: 'file:m16-1.json' });
    expect(applied.status, JSON.stringify(applied.body)).toBe(200);
    expect(applied.body).toMatchObject({ changed: [fresh.dipId], rolesChanged: [{ dipId: fresh.dipId, granted: ['SUP'], revoked: [] }] });

    const received = await t.receiver();
    expect((await fresh.client.setWebhook('IF-021', fresh.dipId, { callbackURL: received.url })).status).toBe(201);
    expect((await sds.client.submit('IF-021', [to(fresh.dipId)])).status).toBe(201);
    await waitFor(() => received.calls.length === 1, 5000, 'IF-021 to the new supplier');
    // Its API key is unchanged (the client above still uses it).

    const again = await admin('POST', '/admin/register/apply', { feed, source: 'file:m16-1.json' });
    expect(again.body).toMatchObject({ changed: [], unchanged: 1, rolesChanged: [], rescinded: [] });
    const journal = (await admin('GET', `/admin/journal?target=${fresh.dipId}`)).body as Json[];
    expect(journal.map((e) => [e.actor, e.action])).toEqual([
      ['register:file:m16-1.json', 'participant.roles'],
      ['register:file:m16-1.json', 'register.update'],
    ]);
    expect(journal[0]!.after).toMatchObject({ roles: ['ADS', 'SUP'], granted: ['SUP'] });

    // Refused whole, naming the row and field.
    const broken = await admin('POST', '/admin/register/apply', { feed: [{ companyRegNumber: '09876543', companyDetails: [{ MPID: 'newe', DIPID: fresh.dipId, DIPRole: 'SUP', datetimeFrom: 'yesterday' }] }] });
    expect(broken.status).toBe(400);
    expect(broken.body.error).toMatch(/\[0\]\.companyDetails\[0\]\.MPID: 4 capital letters.*\[0\]\.companyDetails\[0\]\.datetimeFrom/);
  });

  it('a role revoked by a pull from the register: the next send to it is refused with MSG1032, its queue dead-lettered', async () => {
    // A supplier's webhook that refuses for now: messages wait in its queue.
    const refusing = await t.receiver(() => 503);
    expect((await fresh.client.setWebhook('IF-021', fresh.dipId, { callbackURL: refusing.url })).status).toBe(201);
    expect((await sds.client.submit('IF-021', [to(fresh.dipId), to(fresh.dipId)])).status).toBe(201);

    served = company([
      { dipId: fresh.dipId, role: 'ADS', from: hourAgo },
      { dipId: fresh.dipId, role: 'SUP', from: hourAgo, to: Date.now() - 1000 },
    ]);
    const url = `http://127.0.0.1:${(register.address() as AddressInfo).port}/companyDetails`;
    expect((await admin('POST', '/admin/register/pull', { url })).status).toBe(502); // the register wants its credentials
    const pulled = await admin('POST', '/admin/register/pull', { url, headers: { authorization: 'Bearer register-secret' } });
    expect(pulled.status, JSON.stringify(pulled.body)).toBe(200);
    expect(pulled.body.rolesChanged).toEqual([{ dipId: fresh.dipId, granted: [], revoked: ['SUP'] }]);

    const refused = await sds.client.submit('IF-021', [to(fresh.dipId)]);
    expect(refused.status).toBe(400);
    expect(refused.body.messageArray[0]!.message).toMatch(/^MSG1032/);
    // The documented rule: what was queued for a recipient that no longer receives there is dead-lettered, senders told.
    await waitFor(async () => (await admin('GET', `/admin/dead-letters?recipient=${fresh.dipId}`)).body.length === 2, 10_000, 'the queue dead-lettered');
    const dead = (await admin('GET', `/admin/dead-letters?recipient=${fresh.dipId}`)).body as Json[];
    expect(dead[0]!.detail).toMatch(/no longer receives on IF-021/);
    // Requeued now, each would be dead-lettered again at once and its sender told twice: refused, saying
    // why and what to do, and nothing requeued.
    const requeue = await admin('POST', '/admin/dead-letters/requeue', { recipientDipId: fresh.dipId, channel: 'IF-021' });
    expect(requeue.status).toBe(409);
    expect(requeue.body.error).toBe(
      `not requeued: ${fresh.dipId} no longer receives on IF-021 (holds ADS; receiving: ${(dead[0]!.detail as string).match(/receiving: ([^)]*)\)/)![1]}); requeued now each would be dead-lettered again. Discard them (dip dead-letters discard), or requeue once it receives again`,
    );
    expect(((await admin('GET', `/admin/dead-letters?recipient=${fresh.dipId}`)).body as Json[]).map((d) => d.state)).toEqual(['dead', 'dead']);
    const journal = (await admin('GET', `/admin/journal?target=${fresh.dipId}&action=participant.roles`)).body as Json[];
    expect(journal[0]).toMatchObject({ actor: `register:pull:127.0.0.1:${(register.address() as AddressInfo).port}`, after: { revoked: ['SUP'] } });
    expect(JSON.stringify(await admin('GET', '/admin/journal'))).not.toMatch(/register-secret/);
  });

  it('a participant rescinded from the register is offboarded: certificate refused (401 naming the revocation), key disabled, webhooks gone, history kept', async () => {
    const received = await t.receiver();
    expect((await sds.client.setWebhook('IF-021', sds.dipId, { callbackURL: received.url })).status).toBe(403); // SDS does not receive IF-021
    const snapshot = await admin('POST', '/admin/register/apply', { feed: company([{ dipId: sds.dipId, role: 'SDS', from: hourAgo }]), snapshot: true, source: 'file:m16-full.json' });
    expect(snapshot.status, JSON.stringify(snapshot.body)).toBe(200);
    expect(snapshot.body.rescinded).toEqual([fresh.dipId]);

    // Kept-alive connection: the API key is gone.
    const answer = await fresh.client.submit('IF-021', []);
    expect(answer.status).toBe(401);
    // A new connection with its certificate: answered 401 naming the revocation (src/api/certificate-answer.ts).
    await waitFor(async () => {
      const client = new DipClient({ baseUrl: t.dip.url, apiKey: fresh.apiKey, keyPem: fresh.credentials.keyPem, certPem: fresh.credentials.certPem, caPem: t.dip.pki.ca.certPem });
      try {
        const outcome = await client.submit('IF-021', []);
        return outcome.status === 401 && /TLS client certificate \(serial [0-9A-F]+\) was revoked at/.test(JSON.stringify(outcome.body));
      } finally {
        await client.close();
      }
    }, 10_000, 'the certificate refused');
    const revoked = (await admin('GET', '/admin/pki/revoked')).body as Json[];
    expect(revoked.map((e) => e.dipIds)).toEqual([[fresh.dipId]]);
    // History kept: its register entry, its profile and every change in the journal.
    expect(((await admin('GET', '/admin/register')).body as Json[]).map((e) => e.dipId).sort()).toEqual([sds.dipId, fresh.dipId].sort());
    const offboarded = (await admin('GET', `/admin/journal?target=${fresh.dipId}&action=participant.offboard`)).body as Json[];
    expect(offboarded[0]).toMatchObject({ actor: 'register:file:m16-full.json', before: { roles: ['ADS'], webhooks: ['IF-021'] }, after: { certificatesRevoked: 1, webhooksRemoved: 1 } });
    // The other participant carries on.
    expect((await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [fresh.dipId], uniqueSuffix: 'after' })])).body.messageArray[0]!.message).toMatch(/^MSG1031/);
  });

  it('offboarding one already offboarded is answered 409 saying when and by whom; one never registered 404', async () => {
    const leaving = await t.participant('1000000008', ['SUP']);
    const first = await admin('POST', `/admin/participants/${leaving.dipId}/offboard`, { reason: 'left the market' });
    expect(first.status).toBe(200);
    const journalled = ((await admin('GET', `/admin/journal?target=${leaving.dipId}&action=participant.offboard`)).body as Json[])[0]!;
    const again = await admin('POST', `/admin/participants/${leaving.dipId}/offboard`, {});
    expect(again.status).toBe(409);
    expect(again.body.error).toBe(`${leaving.dipId} was already offboarded at ${new Date(journalled.at as string | number).toISOString()} by ${journalled.actor as string}`);
    expect(journalled.actor).toBe('bootstrap');
    // Only the first offboarding is journalled.
    expect(((await admin('GET', `/admin/journal?target=${leaving.dipId}&action=participant.offboard`)).body as Json[]).length).toBe(1);
    const unknown = await admin('POST', '/admin/participants/1000000077/offboard', {});
    expect([unknown.status, unknown.body.error]).toEqual([404, '1000000077 is not a registered participant']);
  });
});

describe('a feed that rescinds anyone is an admin\'s: rescinding offboards, which revokes certificates', () => {
  let t: TestDip;
  let register: Server;
  let served: unknown = [];
  const hourAgo = Date.now() - 3_600_000;

  beforeAll(async () => {
    t = await startTestDip({ register: { pull: null, allowList: ['127.0.0.1'], maxFeedMb: 64 } });
    register = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(served)));
    await new Promise<void>((r) => register.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    register?.close();
    await t?.close();
  });

  it('refuses the operator role (403 naming whom it would rescind and the admin role), nothing applied, by apply and by pull; an admin rescinds', async () => {
    const stays = await t.participant('1000000021', ['SUP']);
    const leaves = await t.participant('1000000022', ['SUP']);
    // Made with the bootstrap token while this DIP has no admin operator yet.
    const robot = (await adminApi(t)('POST', '/admin/operators', { name: 'ops.robot', role: 'operator', automation: true })).body as { token: string };
    const operator = adminApi(t, robot.token);
    const both = company([
      { dipId: stays.dipId, role: 'SUP', from: hourAgo },
      { dipId: leaves.dipId, role: 'SUP', from: hourAgo },
    ]);
    // Routine feeds stay the operator's.
    expect((await operator('POST', '/admin/register/apply', { feed: both, source: 'file:m16-1.json' })).status).toBe(200);
    const held = (await operator('GET', '/admin/register')).body as Json[];

    const refusal = `operator ops.robot (operator) may not rescind participants: offboarding revokes the participant's certificates, so it needs the admin role; this feed would rescind ${leaves.dipId}, so nothing was applied`;
    const snapshot = await operator('POST', '/admin/register/apply', { feed: company([{ dipId: stays.dipId, role: 'ADS', from: hourAgo }]), snapshot: true, source: 'file:m16-full.json' });
    expect([snapshot.status, snapshot.body.error]).toEqual([403, refusal]);
    const ended = company([
      { dipId: stays.dipId, role: 'ADS', from: hourAgo },
      { dipId: leaves.dipId, role: 'SUP', from: hourAgo, to: Date.now() - 1000 },
    ]);
    const rowsEnded = await operator('POST', '/admin/register/apply', { feed: ended, source: 'file:m16-2.json' });
    expect([rowsEnded.status, rowsEnded.body.error]).toEqual([403, refusal]);
    served = ended;
    const pulled = await operator('POST', '/admin/register/pull', { url: `http://127.0.0.1:${(register.address() as AddressInfo).port}/companyDetails` });
    expect([pulled.status, pulled.body.error]).toEqual([403, refusal]);
    // Whole or nothing: not even the other participant's change was kept.
    expect((await operator('GET', '/admin/register')).body).toEqual(held);
    expect(((await operator('GET', '/admin/participants')).body as Json[]).map((p) => p.dipId)).toEqual(expect.arrayContaining([stays.dipId, leaves.dipId]));
    expect((await adminApi(t)('GET', '/admin/pki/revoked')).body).toEqual([]);

    const byAdmin = await adminApi(t)('POST', '/admin/register/apply', { feed: ended, source: 'file:m16-2.json' });
    expect(byAdmin.status, JSON.stringify(byAdmin.body)).toBe(200);
    expect(byAdmin.body).toMatchObject({ rescinded: [leaves.dipId], rolesChanged: [{ dipId: stays.dipId, granted: ['ADS'], revoked: ['SUP'] }] });
  });
});
