import { Agent, request } from 'undici';
import { totpCode } from '../../src/security/portal-credentials.js';
import { adminApi } from './admin.js';
import type { TestDip } from './dip-harness.js';

/** A user portal session: its cookie and its CSRF token (every form carries it). */
export interface PortalUser {
  cookie: string;
  csrf: string;
}

/**
 * The user portal over real HTTPS without a browser: a participant's administrator made and signed in
 * (its TOTP set up, its own password chosen), and pages fetched or forms sent as it.
 */
export function portalUsers(t: TestDip) {
  const agent = new Agent({ connect: { ca: t.dip.pki.ca.certPem } });
  /** A page (GET; `as` in the query) or a form (POST, from the portal's own origin, with the CSRF token). */
  const page = async (method: string, path: string, who: PortalUser, form: Record<string, string> = {}) => {
    const body = method === 'POST' ? new URLSearchParams({ _csrf: who.csrf, ...form }).toString() : undefined;
    const query = method === 'POST' || !form.as ? '' : `${path.includes('?') ? '&' : '?'}as=${form.as}`;
    const res = await request(`${t.dip.portalUrl}${path}${query}`, {
      method: method as 'GET' | 'POST',
      dispatcher: agent,
      headers: { cookie: who.cookie, ...(body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded', origin: t.dip.portalUrl }) },
      body,
    });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  };
  const signedIn = async (username: string, dipId: string): Promise<PortalUser> => {
    const made = (await adminApi(t)('POST', '/admin/portal/accounts', { username, displayName: username, participantDipId: dipId, admin: true })).body as { password: string };
    const post = async (path: string, form: Record<string, string>) =>
      request(`${t.dip.portalUrl}${path}`, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/x-www-form-urlencoded', origin: t.dip.portalUrl }, body: new URLSearchParams(form).toString() });
    const first = await (await post('/portal/sign-in', { username, password: made.password, code: '' })).body.text();
    const secret = /id="totp-secret">([A-Z2-7]+)</.exec(first)![1]!;
    const token = /name="token" value="([^"]+)"/.exec(first)![1]!;
    const own = `${username} chose this one`;
    const done = await post('/portal/sign-in/enrolment', { token, choose: 'yes', code: totpCode(secret, Date.now()), next: own, repeat: own });
    const cookie = [done.headers['set-cookie'] ?? []].flat()[0]!.split(';')[0]!;
    const home = await page('GET', '/portal/', { cookie, csrf: '' });
    return { cookie, csrf: /name="_csrf" value="([^"]+)"/.exec(home.text)![1]! };
  };
  return { page, signedIn, close: () => agent.close() };
}
