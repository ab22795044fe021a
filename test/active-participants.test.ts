/**
 * One "active participant" view (Registry.refusal) decides whether a participant may act now, on every
 * door: a suspended participant, its connection provider acting for it, and its portal users are refused
 * on every participant-facing route. The routes are the ones the DIP's listeners registered
 * (RunningDip.operations), so a route added tomorrow is checked tomorrow with nothing to change here; the
 * few a participant reaches before it is known (probes, documentation, sign-in) are listed by name.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../src/api/operations.js';
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
