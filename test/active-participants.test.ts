/**
 * One "active participant" view (Registry.refusal) decides whether a participant may act now, on every
 * door: a suspended participant, its connection provider acting for it, and its portal users are refused
 * on every participant-facing route. The routes are the ones the DIP's listeners registered
 * (RunningDip.operations), so a route added tomorrow is checked tomorrow with nothing to change here; the
 * few a participant reaches before it is known (probes, documentation, sign-in) are listed by name.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../src/api/operations.js';
import { buildIF021 } from '../src/sim/messages.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { portalUsers, type PortalUser } from './helpers/portal-user.js';

/** Answered before a caller is known, to anyone holding a certificate of the environment. */
const API_PUBLIC = [/^\/health$/, /^\/ready$/, /^\/api\/docs/, /^\/api\/asyncapi\.json$/, /^\/catalogue/];
/** The portal's pages before a sign-in, and a person's own password (the person's, not its participant's). */
const PORTAL_PUBLIC = [/^\/portal\/sign-in/, /^\/portal\/sign-out$/, /^\/portal\/apply/, /^\/portal\/account$/];
const SUSPENDED = 'is suspended by the DIP operator';

/** A path of the route with its parameters filled: the recipient named, a channel, anything else made up. */
function pathOf(op: Operation, recipientId: string): string {
  const values: Record<string, string> = { recipientId, id: 'IF-021', channel: 'IF-021', transactionId: '00000000-0000-4000-8000-000000000000', publicationId: '00000000-0000-4000-8000-000000000000' };
  return op.url.replace(/:(\w+)/g, (_m, name: string) => values[name] ?? 'x').replace(/\*$/, 'x');
}

describe('a suspended participant, on every participant-facing route', () => {
  let t: TestDip;
  let sup: TestParticipant;
  let cp: TestParticipant;
  let portalHttp: ReturnType<typeof portalUsers>;
  const users: Record<string, PortalUser> = {};
  const portal = (method: string, path: string, who: PortalUser, form: Record<string, string> = {}) => portalHttp.page(method, path, who, form);

  beforeAll(async () => {
    t = await startTestDip();
    portalHttp = portalUsers(t);
    cp = await t.participant('5000000001', ['DCP']);
    sup = await t.participant('1000000001', ['SUP']);
    const nominated = await sup.client.call('PUT', `/participants/${sup.dipId}/connection-provider`, JSON.stringify({ dipId: cp.dipId }), { 'content-type': 'application/json' });
    expect(nominated.status).toBe(200);
    users.sup = await portalHttp.signedIn('sam.sup', sup.dipId);
    users.cp = await portalHttp.signedIn('carl.cp', cp.dipId);
    expect((await adminApi(t)('POST', `/admin/participants/${sup.dipId}/suspend`, { reason: 'under review' })).status).toBe(200);
  });
  afterAll(async () => {
    await portalHttp?.close();
    await t?.close();
  });

  /** Each route's methods as registered: not HEAD (GET's), nor the 405s the listener answers for the methods a path does not take (hidden). */
  const taken = (op: Operation) => op.method !== 'HEAD' && op.schema?.hide !== true;
  const apiRoutes = () => t.dip.operations.participant.filter((op) => taken(op) && !API_PUBLIC.some((p) => p.test(op.url)));
  const portalRoutes = () => t.dip.operations.portal.filter((op) => op.url.startsWith('/portal/') && taken(op) && !PORTAL_PUBLIC.some((p) => p.test(op.url)));

  it('refuses its own signed calls (403, the reason) on every route of the participant API', async () => {
    expect(apiRoutes().length).toBeGreaterThan(30);
    // The OpenDIP extensions are among them: saved reports (all five), as the published routes.
    expect(apiRoutes().filter((op) => op.url.startsWith('/observability/saved-reports')).map((op) => `${op.method} ${op.url}`).sort()).toEqual([
      'DELETE /observability/saved-reports/:id',
      'GET /observability/saved-reports',
      'GET /observability/saved-reports/:id',
      'GET /observability/saved-reports/:id/run',
      'POST /observability/saved-reports',
    ]);
    const answered: string[] = [];
    for (const op of apiRoutes()) {
      const answer = await sup.client.call(op.method, pathOf(op, sup.dipId), op.method === 'GET' || op.method === 'DELETE' ? '' : '[]', op.method === 'GET' || op.method === 'DELETE' ? {} : { 'content-type': 'application/json' });
      if (answer.status !== 403 || !JSON.stringify(answer.body).includes(SUSPENDED)) answered.push(`${op.method} ${op.url}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`);
    }
    expect(answered).toEqual([]);
  });

  it('refuses its connection provider acting for it on every route that names the participant acted for', async () => {
    const named = apiRoutes().filter((op) => op.url.includes(':recipientId'));
    expect(named.length).toBeGreaterThan(10);
    const answered: string[] = [];
    for (const op of named) {
      const answer = await cp.client.call(op.method, pathOf(op, sup.dipId), op.method === 'GET' || op.method === 'DELETE' ? '' : '{}', op.method === 'GET' || op.method === 'DELETE' ? {} : { 'content-type': 'application/json' });
      if (answer.status !== 403 || !JSON.stringify(answer.body).includes(SUSPENDED)) answered.push(`${op.method} ${op.url}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`);
    }
    expect(answered).toEqual([]);
  });

  // The routes above name the client acted for in their path; two doors do not: a submission names its
  // sender in the body (S1.senderDIPID, Registry.actingAs), and a download reaches a client's restricted
  // publication through the provider's nominees (Registry.nomineesOf). Each served first, then refused.
  it('refuses its connection provider submitting for it (the reason given) and downloading its restricted publications', async () => {
    const sender = await t.participant('2000000001', ['SDS']);
    const reader = await t.participant('1000000003', ['SUP']);
    const recipient = await t.participant('1000000002', ['SUP']);
    const vas = await t.participant('VAS0000001', ['VAS']);
    for (const client of [sender, reader]) {
      expect((await client.client.call('PUT', `/participants/${client.dipId}/connection-provider`, JSON.stringify({ dipId: cp.dipId }), { 'content-type': 'application/json' })).status).toBe(200);
    }
    const submit = (suffix: string) => {
      const m = buildIF021({ senderDipId: sender.dipId, senderRole: 'SDS', primaryRecipients: [recipient.dipId], uniqueSuffix: suffix });
      (m.payload.CommonBlock.S1 as Record<string, unknown>).DIPConnectionProviderID = cp.dipId;
      return cp.client.submit('IF-021', [m]);
    };
    const csv = 'MPAN,Volume\n1000000000001,1.5\n';
    const published = await vas.client.publish('REP-002', { type: 'ClientReport', version: '1', format: 'csv', recipients: reader.dipId }, Buffer.from(csv), createHash('sha256').update(csv).digest('base64'));
    expect(published.status).toBe(201);
    const download = () => cp.client.download(`/dip-channel/REP-002/publications/${(published.body as unknown as { publication: { publicationID: string } }).publication.publicationID}/content`);

    const before = await submit('before');
    expect(before.status, JSON.stringify(before.body)).toBe(201);
    expect((await download()).status).toBe(200);

    for (const client of [sender, reader]) expect((await adminApi(t)('POST', `/admin/participants/${client.dipId}/suspend`, { reason: 'late payments' })).status).toBe(200);
    const after = await submit('after');
    expect(after.status).toBe(403);
    expect(JSON.stringify(after.body)).toContain(`${sender.dipId} ${SUSPENDED}`);
    expect(JSON.stringify(after.body)).toContain('(late payments)');
    // Answered as to a stranger (downloadRefusal): whether a publication exists is said only to its readers.
    expect((await download()).status).toBe(404);
  });

  it("refuses its portal users every page, and its provider's users every page acting for it", async () => {
    expect(portalRoutes().length).toBeGreaterThan(20);
    const answered: string[] = [];
    for (const op of portalRoutes()) {
      for (const [who, form] of [[users.sup!, {}], [users.cp!, { as: sup.dipId }]] as const) {
        const page = await portal(op.method, pathOf(op, sup.dipId), who, form);
        if (page.status !== 403 || !page.text.includes(SUSPENDED)) answered.push(`${who === users.sup ? 'own user' : "provider's user"} ${op.method} ${op.url}: ${page.status}`);
      }
    }
    expect(answered).toEqual([]);
    // The provider's users still reach their own participant's pages.
    expect((await portal('GET', '/portal/', users.cp!)).status).toBe(200);
  });
});
