/**
 * What the portals do with requests before anyone is signed in, over real HTTPS (no browser needed):
 * form bodies are read in one pass with a bound on their fields, an address Fastify cannot route gets
 * a page with the pages' headers, and only the portal's own form signs a person out.
 */
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { totpCode } from '../src/security/portal-credentials.js';
import { CONTENT_SECURITY_POLICY } from '../src/portal/server.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, type TestDip } from './helpers/dip-harness.js';
import { ShiftableClock } from './helpers/clocks.js';
import type { Clock } from '../src/ports/clock.js';

/**
 * A DIP of its own for the describe that calls this, and `send` to its portals' listener: a form goes with
 * the portal's own Origin unless another is given (a forged cross-site post).
 */
function portalDip(clock?: Clock) {
  const at: { t?: TestDip; agent?: Agent; from: Map<string, Agent> } = { from: new Map() };
  const now = () => (clock ? clock.now() : Date.now());
  beforeAll(async () => {
    at.t = await startTestDip({}, undefined, clock ? { clock } : {});
    at.agent = new Agent({ connect: { ca: at.t.dip.pki.ca.certPem } });
  });
  afterAll(async () => {
    await at.agent?.close();
    for (const agent of at.from.values()) await agent.close();
    await at.t?.close();
  });
  /** Connections from another loopback address (127.0.0.2, …): the DIP sees another client address. */
  const agentFrom = (address: string): Agent => {
    const agent = at.from.get(address) ?? new Agent({ localAddress: address, connect: { ca: at.t!.dip.pki.ca.certPem } });
    at.from.set(address, agent);
    return agent;
  };
  /** `origin: null` sends no Origin (a client that leaves it out); `fetchSite` sends that Sec-Fetch-Site. */
  const send = async (method: 'GET' | 'POST', path: string, options: { form?: string; cookie?: string; origin?: string | null; fetchSite?: string; from?: string } = {}) => {
    const origin = at.t!.dip.portalUrl;
    const res = await request(`${origin}${path}`, {
      method,
      dispatcher: options.from === undefined ? at.agent! : agentFrom(options.from),
      headers: {
        ...(options.form === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
        ...(options.form === undefined || options.origin === null ? {} : { origin: options.origin ?? origin }),
        ...(options.fetchSite === undefined ? {} : { 'sec-fetch-site': options.fetchSite }),
        ...(options.cookie ? { cookie: options.cookie } : {}),
      },
      body: options.form,
    });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  };
  /** A first sign-in to a portal (its TOTP set up, a password of its own chosen): the session's cookie, the TOTP secret and the password. */
  const enrolled = async (base: '/portal' | '/operator', username: string, password: string): Promise<{ cookie: string; secret: string; password: string; device: string | undefined }> => {
    const first = await send('POST', `${base}/sign-in`, { form: new URLSearchParams({ username, password, code: '' }).toString() });
    const secret = /id="totp-secret">([A-Z2-7]+)</.exec(first.text)![1]!;
    const token = /name="token" value="([^"]+)"/.exec(first.text)![1]!;
    const own = `${username} chose this one`;
    const signIn = await send('POST', `${base}/sign-in/enrolment`, { form: new URLSearchParams({ token, choose: 'yes', code: totpCode(secret, now()), next: own, repeat: own }).toString() });
    expect(signIn.status).toBe(303);
    const cookies = [signIn.headers['set-cookie'] ?? []].flat();
    // The device cookie a successful sign-in leaves in the browser (OWASP's device cookies), if any.
    const device = cookies.find((c) => c.startsWith('__Host-dip-portal-device='))?.split(';')[0];
    return { cookie: cookies[0]!.split(';')[0]!, secret, password: own, device };
  };
  const firstSignIn = async (base: '/portal' | '/operator', username: string, password: string): Promise<string> => (await enrolled(base, username, password)).cookie;
  /** A participant's new administrator (made with the bootstrap token), signed in to the user portal: its cookie. */
  const userSignedIn = async (username: string, participantDipId: string): Promise<string> => {
    const made = (await adminApi(at.t!)('POST', '/admin/portal/accounts', { username, displayName: username, participantDipId, admin: true })).body as { password: string };
    return firstSignIn('/portal', username, made.password);
  };
  /** A new operator (made with the bootstrap token while no admin exists), signed in to the operator portal: its cookie. */
  const operatorSignedIn = async (name: string, role: 'viewer' | 'operator' | 'admin'): Promise<string> => {
    const made = (await adminApi(at.t!)('POST', '/admin/operators', { name, role, displayName: name })).body as { password: string };
    return firstSignIn('/operator', name, made.password);
  };
  /** A participant's new user with its TOTP set up: its secret and its own password. */
  const userEnrolled = async (username: string, participantDipId: string) => {
    const made = (await adminApi(at.t!)('POST', '/admin/portal/accounts', { username, displayName: username, participantDipId, admin: false })).body as { password: string };
    return enrolled('/portal', username, made.password);
  };
  return { dip: (): TestDip => at.t!, send, userSignedIn, operatorSignedIn, userEnrolled };
}

describe('portal requests', () => {
  const { dip, send } = portalDip();

  /** An operator's first sign-in: the password alone is answered with the page that sets up their TOTP. */
  const startEnrolment = async (username: string, password: string) => {
    const page = await send('POST', '/operator/sign-in', { form: new URLSearchParams({ username, password, code: '' }).toString() });
    expect(page.status, page.text).toBe(200);
    expect(page.headers['set-cookie']).toBeUndefined();
    return { page, secret: /id="totp-secret">([A-Z2-7]+)</.exec(page.text)![1]!, token: /name="token" value="([^"]+)"/.exec(page.text)![1]! };
  };
  const confirm = (token: string, fields: Record<string, string>) => send('POST', '/operator/sign-in/enrolment', { form: new URLSearchParams({ token, choose: 'yes', ...fields }).toString() });

  it('reads a form of many fields in one pass and refuses one of more than 1,000 (413), before any check', async () => {
    const fields = (n: number) => Array.from({ length: n }, (_, i) => `f${i}=x`).join('&');
    const many = await send('POST', '/portal/sign-in', { form: `username=nobody.here&password=p&code=1&${fields(900)}` });
    expect(many.status).toBe(401);
    const tooMany = await send('POST', '/portal/sign-in', { form: `username=nobody.here&password=p&code=1&${fields(20_000)}` });
    expect(tooMany.status).toBe(413);
    expect(tooMany.text).toContain('a form has at most 1000 fields');
  });

  it("refuses a sign-in form another site may have sent (login CSRF): a foreign Origin, or no Origin and a Sec-Fetch-Site other than same-origin or none, or neither header", async () => {
    // From an address of its own and a name each, so the sign-ins it checks (unknown names: 401) meet no throttle.
    let tries = 0;
    const signIn = (headers: { origin?: string | null; fetchSite?: string }, path = '/portal/sign-in') =>
      send('POST', path, { form: new URLSearchParams({ username: `nobody.${(tries += 1)}`, password: 'p', code: '123456' }).toString(), from: '127.0.0.7', ...headers });
    const refused = [
      { origin: 'https://attacker.example' },
      { origin: null },
      { origin: null, fetchSite: 'cross-site' },
      { origin: null, fetchSite: 'same-site' },
    ];
    for (const base of ['/portal', '/operator']) {
      for (const headers of refused) {
        for (const path of [`${base}/sign-in`, `${base}/sign-in/enrolment`]) {
          const answer = await signIn(headers, path);
          expect([path, headers, answer.status, answer.text.includes('the sign-in form was not sent from this portal')]).toEqual([path, headers, 403, true]);
        }
      }
      // A browser that leaves Origin out still sends Sec-Fetch-Site: its own page's form (or one typed in) is checked.
      for (const fetchSite of ['same-origin', 'none']) expect((await signIn({ origin: null, fetchSite }, `${base}/sign-in`)).status).toBe(401);
      expect((await signIn({}, `${base}/sign-in`)).status).toBe(401);
    }
  });

  it('answers /favicon.ico with no content, not a 404 every page load logs as an error', async () => {
    const icon = await send('GET', '/favicon.ico');
    expect(icon.status).toBe(204);
  });

  it('answers an address it cannot read with a page carrying the pages\' headers, not the address echoed as JSON', async () => {
    const bad = await send('GET', '/portal/%');
    expect(bad.status).toBe(400);
    expect(String(bad.headers['content-type'])).toMatch(/^text\/html/);
    expect(bad.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(bad.headers['cache-control']).toBe('no-store');
    expect(bad.text).not.toContain('FST_ERR');
  });

  it('shows the operator accounts to admins only, as the operator API does', async () => {
    // Made while no admin exists (the bootstrap token still works): a viewer, signed in with a password of her own.
    const made = (await adminApi(dip())('POST', '/admin/operators', { name: 'vera.viewer', role: 'viewer', displayName: 'Vera' })).body as { password: string };
    const { secret, token } = await startEnrolment('vera.viewer', made.password);
    const signIn = await confirm(token, { code: totpCode(secret, Date.now()), next: 'vera chose this', repeat: 'vera chose this' });
    expect(signIn.status).toBe(303);
    const cookie = String(signIn.headers['set-cookie']).split(';')[0]!;
    expect((await send('GET', '/operator/', { cookie })).status).toBe(200);
    const operators = await send('GET', '/operator/operators', { cookie });
    expect(operators.status).toBe(403);
    expect(operators.text).toContain('only an admin');
    expect(operators.text).not.toContain('vera.viewer</td>');
    // Nor may she learn by disabling which names are accounts: her role is refused first, whatever the name.
    const csrf = /name="_csrf" value="([^"]+)"/.exec((await send('GET', '/operator/', { cookie })).text)![1]!;
    await dip().participant('1000000001', ['SUP']);
    for (const path of ['/operator/operators/disable', '/operator/participants/1000000001/users/disable']) {
      for (const username of ['vera.viewer', 'no.such.person']) {
        const tried = await send('POST', path, { cookie, form: new URLSearchParams({ _csrf: csrf, username }).toString() });
        expect([path, tried.status, tried.text.includes('no such account')]).toEqual([path, 403, false]);
      }
    }
  });

  it("sets up an operator's TOTP and their own password at the first sign-in, signs out only from the portal's own form, and changes a password on the account page", async () => {
    const made = (await adminApi(dip())('POST', '/admin/operators', { name: 'ops.olga', role: 'admin', displayName: 'Olga' })).body as { password: string };
    // The password the administrator saw opens no session: the answer is the secret to add to an app,
    // with the form that confirms it (the enrolment token in a hidden field, a password of her own).
    const { page: offered, secret, token } = await startEnrolment('ops.olga', made.password);
    expect(offered.text).toContain('Set up your authenticator');
    expect(offered.text).toContain(`href="otpauth://totp/`);
    expect(offered.text).not.toContain(made.password);
    // Another sign-in with her password meanwhile gets the sign-in page again (409), and no secret.
    const competing = await send('POST', '/operator/sign-in', { form: new URLSearchParams({ username: 'ops.olga', password: made.password, code: '' }).toString() });
    expect(competing.status).toBe(409);
    expect(competing.text).toContain('already under way');
    expect(competing.text).not.toContain(secret);
    const firstCode = totpCode(secret, Date.now());
    expect((await confirm(token, { code: firstCode, next: 'olga chose this', repeat: 'olga chose that' })).text).toContain('the two new passwords differ');
    expect((await confirm(token, { code: firstCode, next: 'short', repeat: 'short' })).text).toContain('at least 12 characters');
    const wrong = await confirm(token, { code: firstCode === '000000' ? '111111' : '000000', next: 'olga chose this', repeat: 'olga chose this' });
    expect(wrong.status).toBe(401);
    // The form comes back (without the secret: it is shown once) to try again.
    expect(wrong.text).toContain(`name="token" value="${token}"`);
    expect(wrong.text).not.toContain(secret);
    // The code was not used up by those answers: it signs in with her own password.
    const signIn = await confirm(token, { code: firstCode, next: 'olga chose this', repeat: 'olga chose this' });
    expect(signIn.status).toBe(303);
    made.password = 'olga chose this';
    const cookie = String(signIn.headers['set-cookie']).split(';')[0]!;
    expect((await send('GET', '/operator/', { cookie })).status).toBe(200);

    const forged = await send('POST', '/operator/sign-out', { cookie, form: '', origin: 'https://attacker.example' });
    expect(forged.status).toBe(403);
    expect(forged.headers['set-cookie']).toBeUndefined();
    expect((await send('GET', '/operator/', { cookie })).status).toBe(200);

    // Her own password: the administrator who made the account knew the first one.
    const page = await send('GET', '/operator/account', { cookie });
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;
    const change = (current: string, next: string, repeat = next) => send('POST', '/operator/account', { cookie, form: new URLSearchParams({ _csrf: csrf, current, next, repeat }).toString() });
    expect((await change('not her password', 'a new long passphrase')).text).toContain('the current password is wrong');
    expect((await change(made.password, 'a new long passphrase', 'another one entirely')).text).toContain('the two new passwords differ');
    expect((await change(made.password, 'short')).text).toContain('at least 12 characters');
    const changed = await change(made.password, 'a new long passphrase');
    expect(changed.status).toBe(200);
    expect(String(changed.headers['set-cookie'])).toContain('Max-Age=0');
    // Every session has ended; the old password no longer signs in, the new one does.
    expect((await send('GET', '/operator/', { cookie })).status).toBe(303);
    const nextCode = totpCode(secret, Date.now() + 30_000);
    expect((await send('POST', '/operator/sign-in', { form: new URLSearchParams({ username: 'ops.olga', password: made.password, code: nextCode }).toString() })).status).toBe(401);
    expect((await send('POST', '/operator/sign-in', { form: new URLSearchParams({ username: 'ops.olga', password: 'a new long passphrase', code: nextCode }).toString() })).status).toBe(303);
  });
});

describe('the user portal\'s certificate request', () => {
  const { dip, send, userSignedIn } = portalDip();

  it("refuses a certificate request without a CSR, naming the field, and issues nothing (no key made for nobody to hold)", async () => {
    const sup = await dip().participant('1000000002', ['SUP']);
    // Made with the bootstrap token: this DIP has no admin operator yet.
    const cookie = await userSignedIn('sid.sup', sup.dipId);
    const csrf = /name="_csrf" value="([^"]+)"/.exec((await send('GET', '/portal/certificates', { cookie })).text)![1]!;
    for (const csr of [undefined, '', '   \n ']) {
      const form = new URLSearchParams({ _csrf: csrf, ...(csr === undefined ? {} : { csr }) }).toString();
      const answer = await send('POST', '/portal/certificates/request', { cookie, form });
      expect([JSON.stringify(csr), answer.status]).toEqual([JSON.stringify(csr), 400]);
      expect(answer.text).toContain('csr is required: paste the PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----) of a key you hold');
      expect(answer.text).not.toContain('Issued certificate');
      expect(answer.text).not.toContain('certificate issued');
    }
  });
});

describe('offboarding a participant is an admin\'s: it revokes its certificates, as every other revocation', () => {
  const { dip, send, operatorSignedIn } = portalDip();
  const csrfOf = async (cookie: string) => /name="_csrf" value="([^"]+)"/.exec((await send('GET', '/operator/', { cookie })).text)![1]!;

  it('refuses the operator role on the API (403 naming the admin role) and in the portal (no form; a post refused), and lets an admin offboard', async () => {
    const sup = await dip().participant('1000000003', ['SUP']);
    // Made with the bootstrap token while this DIP has no admin operator yet; the admin last.
    const robot = (await adminApi(dip())('POST', '/admin/operators', { name: 'ops.robot', role: 'operator', automation: true })).body as { token: string };
    const byApi = await adminApi(dip(), robot.token)('POST', `/admin/participants/${sup.dipId}/offboard`, { reason: 'tried by an operator' });
    expect(byApi.status).toBe(403);
    expect(byApi.body.error).toBe(`operator ops.robot (operator) may not POST /admin/participants/${sup.dipId}/offboard: offboarding revokes the participant's certificates, so it needs the admin role`);

    const otto = await operatorSignedIn('ops.otto', 'operator');
    const shown = await send('GET', `/operator/participants/${sup.dipId}`, { cookie: otto });
    expect(shown.status).toBe(200);
    expect(shown.text).not.toContain(`action="/operator/participants/${sup.dipId}/offboard"`);
    expect(shown.text).toContain('offboarding revokes the participant&#39;s certificates, so it needs the admin role');
    const posted = await send('POST', `/operator/participants/${sup.dipId}/offboard`, { cookie: otto, form: new URLSearchParams({ _csrf: await csrfOf(otto), reason: 'tried in the portal', confirm: 'yes' }).toString() });
    expect(posted.status).toBe(403);
    expect(posted.text).toContain('needs the admin role');
    expect(((await adminApi(dip(), robot.token)('GET', '/admin/participants')).body as Array<{ dipId: string }>).map((p) => p.dipId)).toContain(sup.dipId);

    const ada = await operatorSignedIn('ops.ada', 'admin');
    const asAdmin = await send('GET', `/operator/participants/${sup.dipId}`, { cookie: ada });
    expect(asAdmin.text).toContain(`action="/operator/participants/${sup.dipId}/offboard"`);
    const done = await send('POST', `/operator/participants/${sup.dipId}/offboard`, { cookie: ada, form: new URLSearchParams({ _csrf: await csrfOf(ada), reason: 'left the market', confirm: 'yes' }).toString() });
    expect(done.status).toBe(200);
    expect(done.text).toContain(`${sup.dipId} offboarded`);
  });
});

describe("an automation operator account bearing a portal user's name", () => {
  const { dip, send, userSignedIn } = portalDip();

  it("ends none of that user's sessions by signing out or being disabled, and may disable the user as anyone else's", async () => {
    const sup = await dip().participant('1000000003', ['SUP']);
    // Made with the bootstrap token (no admin exists): a supplier's user, then an automation account of the same name.
    const bootstrap = adminApi(dip());
    const cookie = await userSignedIn('pat.same', sup.dipId);
    const signedIn = async () => (await send('GET', '/portal/', { cookie })).status;
    expect(await signedIn()).toBe(200);
    const auto = await bootstrap('POST', '/admin/operators', { name: 'pat.same', role: 'operator', automation: true });
    expect(auto.status, JSON.stringify(auto.body)).toBe(201);
    const automation = adminApi(dip(), auto.body.token as string);

    // Its sign-out has no session to end, and says so; the user's session goes on.
    const signedOut = await automation('DELETE', '/admin/session');
    expect(signedOut.status).toBe(400);
    expect(signedOut.body.error).toContain('pat.same is an automation account: it has no session to end');
    expect(await signedIn()).toBe(200);
    // Disabling it stops its token, and not the user's session.
    expect((await bootstrap('PATCH', '/admin/operators/pat.same', { disabled: true })).status).toBe(200);
    expect((await automation('GET', '/admin/whoami')).status).toBe(401);
    expect(await signedIn()).toBe(200);
    // Enabled again, it may disable the user as any other operator's (not refused as its "own" sign-in).
    expect((await bootstrap('PATCH', '/admin/operators/pat.same', { disabled: false })).status).toBe(200);
    const disabled = await automation('POST', '/admin/portal/accounts/pat.same/disabled', { disabled: true });
    expect(disabled.status, JSON.stringify(disabled.body)).toBe(200);
    expect(await signedIn()).toBe(303);
  });
});

describe("the portals' list filters", () => {
  const { dip, send, userSignedIn, operatorSignedIn } = portalDip();
  /** The page's text with the markup's escapes undone (the problems quote the values as sent). */
  const shown = (page: { text: string }) => page.text.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');

  it('answers a filter value a page cannot take with the page, 400 and an alert naming the field and why, never unfiltered rows', async () => {
    const sup = await dip().participant('1000000004', ['SUP']);
    const user = await userSignedIn('una.user', sup.dipId);
    // The operator is a viewer: made while no admin exists (the bootstrap token still works), reads every list.
    const operator = await operatorSignedIn('otto.viewer', 'viewer');
    const refused: Array<[string, string, string]> = [
      ['/portal/messages?from=notadate', user, 'from: "notadate" is not a date and time (YYYY-MM-DDTHH:MM, UTC)'],
      ['/portal/messages?to=2026-02-30T10:00', user, 'to: "2026-02-30T10:00" is not a date and time'],
      ['/portal/messages?limit=-5', user, 'limit: is not a filter of this page (it takes as, channel, transactionId, eventCode, from, to)'],
      ['/portal/activity?days=3', user, 'days: "3" is not one of 1, 7'],
      ['/portal/reports?period=year', user, 'period: "year" is not one of day, week, month'],
      ['/operator/dead-letters?state=bogus', operator, 'state: "bogus" is not one of dead, requeued, discarded'],
      ['/operator/dead-letters?recipient=not-an-id', operator, 'recipient: "not-an-id" is not a DIP ID: 10 letters or digits'],
      ['/operator/certificates?days=-5', operator, 'days: "-5" is not a whole number from 1 to 3650'],
      ['/operator/activity?hours=2&limit=-5', operator, 'hours: "2" is not one of 1, 24; limit: is not a filter of this page'],
      ['/operator/activity?minStatus=404', operator, 'minStatus: "404" is not one of any, 400, 500'],
      ['/operator/journal?limit=-5', operator, 'limit: is not a filter of this page (it takes from, to, actor, action, target)'],
      ['/operator/reports?period=fortnight', operator, 'period: "fortnight" is not one of day, week, month'],
    ];
    for (const [path, cookie, problem] of refused) {
      const page = await send('GET', path, { cookie });
      expect([path, page.status]).toEqual([path, 400]);
      expect(String(page.headers['content-type'])).toMatch(/^text\/html/);
      expect(shown(page)).toContain(`role="alert">The filters were not applied: ${problem}`);
      // The page again, with the value as sent to correct (or a way back to the page unfiltered), and no rows.
      expect(page.text).toContain(`<a href="${path.split('?')[0]}">Show the page without filters</a>`);
      expect(page.text).not.toContain('<table');
    }
    // Values the filters take are applied as before.
    // An operator looks a request up by the x-request-id a participant quotes (spec 5.8.1), or the refusals alone.
    const lookedUp = await send('GET', '/operator/activity?requestId=7d0f0c9e-0000-4000-8000-000000000001&minStatus=400', { cookie: operator });
    expect(lookedUp.status).toBe(200);
    expect(lookedUp.text).toContain('value="7d0f0c9e-0000-4000-8000-000000000001"');
    expect(lookedUp.text).toMatch(/<option value="400" selected/);
    for (const [path, cookie] of [['/portal/messages?from=2026-01-01T00:00&to=', user], ['/portal/activity?days=1', user], ['/operator/dead-letters?state=requeued', operator], ['/operator/certificates?days=60', operator]] as const) {
      const page = await send('GET', path, { cookie });
      expect([path, page.status]).toEqual([path, 200]);
      expect(page.text).not.toContain('The filters were not applied');
    }
    expect((await send('GET', '/operator/certificates?days=60', { cookie: operator })).text).toContain('Certificates expiring within 60 days');
  });
});

describe('a portal session left idle', () => {
  const clock = new ShiftableClock();
  const { dip, send, userSignedIn, operatorSignedIn } = portalDip(clock);
  const MINUTE = 60_000;

  it('ends after 30 minutes without a request (portal.sessionIdleMinutes), in both portals, while one in use lasts to its 8 hours', async () => {
    const sup = await dip().participant('1000000005', ['SUP']);
    const user = await userSignedIn('ida.idle', sup.dipId);
    const operator = await operatorSignedIn('oscar.idle', 'viewer');
    for (const [path, cookie] of [['/portal/', user], ['/operator/', operator]] as const) expect([path, (await send('GET', path, { cookie })).status]).toEqual([path, 200]);
    clock.jump(31 * MINUTE);
    // Left alone for longer than the idle limit: the page sends the person to sign in again.
    for (const [path, cookie] of [['/portal/', user], ['/operator/', operator]] as const) {
      const page = await send('GET', path, { cookie });
      expect([path, page.status, page.headers.location]).toEqual([path, 303, `${path}sign-in`]);
    }
    // In use: each page renews the cookie (the same CSRF token, forms in other tabs still work), so a
    // session used every 20 minutes stays open past 30, and its form posts still pass.
    let cookie = await userSignedIn('ivy.busy', sup.dipId);
    const csrf = /name="_csrf" value="([^"]+)"/.exec((await send('GET', '/portal/', { cookie })).text)![1]!;
    for (let i = 0; i < 4; i++) {
      clock.jump(20 * MINUTE);
      const page = await send('GET', '/portal/', { cookie });
      expect([i, page.status]).toEqual([i, 200]);
      const renewed = String(page.headers['set-cookie'] ?? '');
      expect(renewed).toMatch(/^__Host-dip-portal=[^;]+; Path=\/; Secure; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
      cookie = renewed.split(';')[0]!;
      expect(/name="_csrf" value="([^"]+)"/.exec(page.text)![1]).toBe(csrf);
    }
    const posted = await send('POST', '/portal/alarms/remove', { cookie, form: new URLSearchParams({ _csrf: csrf, id: 'none' }).toString() });
    expect(posted.status).toBe(404);
    // Never past the 8 hours from the sign-in, however busy.
    for (let i = 0; i < 20; i++) {
      clock.jump(20 * MINUTE);
      const page = await send('GET', '/portal/', { cookie });
      if (page.status !== 200) break;
      cookie = String(page.headers['set-cookie']).split(';')[0]!;
    }
    expect((await send('GET', '/portal/', { cookie })).status).toBe(303);
  });
});

describe("a person's portal sessions (portal.maxSessionsPerUser)", () => {
  const clock = new ShiftableClock();
  const { dip, send, userEnrolled } = portalDip(clock);

  it('ends the oldest of five once the person signs in a sixth time, on whichever browser, and no other', async () => {
    const sup = await dip().participant('1000000006', ['SUP']);
    const sam = await userEnrolled('sam.sessions', sup.dipId);
    const cookies = [sam.cookie];
    for (let i = 0; i < 5; i++) {
      // Each sign-in needs a code of a time step not used before.
      clock.jump(30_000);
      const signIn = await send('POST', '/portal/sign-in', { form: new URLSearchParams({ username: 'sam.sessions', password: sam.password, code: totpCode(sam.secret, clock.now()) }).toString() });
      expect([i, signIn.status]).toEqual([i, 303]);
      cookies.push(String([signIn.headers['set-cookie'] ?? []].flat()[0]).split(';')[0]!);
    }
    const statuses = [];
    for (const cookie of cookies) statuses.push((await send('GET', '/portal/', { cookie })).status);
    // The first (the enrolment's) ended when the sixth began; the five newest go on.
    expect(statuses).toEqual([303, 200, 200, 200, 200, 200]);
  });
});

describe('the operator portal limited to the operators\' networks (portal.operatorAllowList)', () => {
  const at: { t?: TestDip; agent?: Agent } = {};
  const start = async (operatorAllowList: string[]) => {
    await at.agent?.close();
    await at.t?.close();
    at.t = await startTestDip({ portal: { ...DEFAULTS.portal, operatorAllowList } });
    // Each DIP its own data directory, so its own CA.
    at.agent = new Agent({ connect: { ca: at.t.dip.pki.ca.certPem } });
  };
  afterAll(async () => {
    await at.agent?.close();
    await at.t?.close();
  });
  const get = async (path: string, method: 'GET' | 'POST' = 'GET') => {
    const origin = at.t!.dip.portalUrl;
    const res = await request(`${origin}${path}`, { method, dispatcher: at.agent!, ...(method === 'POST' ? { headers: { 'content-type': 'application/x-www-form-urlencoded', origin }, body: 'username=olga&password=p&code=' } : {}) });
    return { status: res.statusCode, text: await res.body.text() };
  };

  it('answers a client outside the list as if the operator portal did not exist, sign-in included; the user portal is unchanged', async () => {
    await start(['10.0.0.0/8', 'fd00::/8']);
    for (const [path, method] of [['/operator/sign-in', 'GET'], ['/operator/', 'GET'], ['/operator/sign-in', 'POST'], ['/operator/sign-in/enrolment', 'POST'], ['/%6Fperator/sign-in', 'GET']] as const) {
      const page = await get(path, method);
      expect([path, method, page.status]).toEqual([path, method, 404]);
      expect(page.text).toContain('there is no page');
      expect(page.text).not.toContain('name="password"');
    }
    expect((await get('/portal/sign-in')).status).toBe(200);
    // The client's own address listed (as IPv4: a dual-stack listener's IPv4-mapped form counts as it): served.
    await start(['127.0.0.0/8']);
    expect((await get('/operator/sign-in')).status).toBe(200);
  });

  it('refuses an entry that is no address or range at start, naming it', async () => {
    await expect(startTestDip({ portal: { ...DEFAULTS.portal, operatorAllowList: ['ops.example.net'] } })).rejects.toThrow(/portal.operatorAllowList: 'ops.example.net' is neither an IP address nor a CIDR range/);
  });
});

describe('failed sign-ins slow the one failing, and lock no name out (OWASP: throttle per address, back off per account)', () => {
  // Held: the waits read off Retry-After below would shrink by however long a loaded machine takes.
  const clock = ShiftableClock.held();
  const { dip, send, userEnrolled } = portalDip(clock);
  const form = (username: string, password: string, code = '000000') => ({ form: new URLSearchParams({ username, password, code }).toString() });
  const signInFrom = (from: string, username: string, password: string, code?: string) => send('POST', '/portal/sign-in', { ...form(username, password, code), from });
  /** The next TOTP step's code (each code signs in once). */
  const nextCode = (secret: string) => {
    clock.jump(30_000);
    return totpCode(secret, clock.now());
  };

  it("the user's own browser (its device cookie) signs in at once while a stranger holds the name's wait and the address's wait", async () => {
    const sup = await dip().participant('1000000011', ['SUP']);
    const rita = await userEnrolled('rita.real', sup.dipId);
    expect(rita.device).toBeDefined();
    // A stranger fails against rita's name (each guess after the name's wait), then, behind the address
    // rita shares with it (a proxy), sprays junk names until the address waits too.
    const answers: number[] = [];
    for (let i = 0; i < 10; i++) {
      clock.jump(60_000);
      answers.push((await signInFrom('127.0.0.3', 'rita.real', `guess ${i}`)).status);
    }
    expect(answers).toEqual(Array<number>(10).fill(401));
    for (let i = 0; i < 10; i++) expect((await signInFrom('127.0.0.2', `junk.name${i}`, 'x')).status).toBe(401);
    for (const wait of [1_000, 2_000, 4_000]) {
      expect((await signInFrom('127.0.0.2', 'junk.name10', 'x')).status).toBe(429);
      clock.jump(wait);
      expect((await signInFrom('127.0.0.2', 'junk.name10', 'x')).status).toBe(401);
    }
    // The name waits 32 s from its last failure, the address 8 s from its own (less the jumps since).
    const code = totpCode(rita.secret, clock.now());
    // Without her cookie she is held like anyone: by the address (127.0.0.2) and by the name (any address).
    const atProxy = await signInFrom('127.0.0.2', 'rita.real', rita.password, code);
    expect(atProxy.status).toBe(429);
    expect(Number(atProxy.headers['retry-after'])).toBeGreaterThan(4);
    const elsewhere = await signInFrom('127.0.0.4', 'rita.real', rita.password, code);
    expect(elsewhere.status).toBe(429);
    expect(Number(elsewhere.headers['retry-after'])).toBeGreaterThan(15);
    // With it, from the stranger's own address, at once: signed in.
    const page = await send('POST', '/portal/sign-in', { ...form('rita.real', rita.password, code), from: '127.0.0.2', cookie: rita.device });
    expect(page.status, page.text).toBe(303);
    const cookies = [page.headers['set-cookie'] ?? []].flat();
    expect(cookies[0]).toMatch(/^__Host-dip-portal=/);
    expect(cookies.find((c) => c.startsWith('__Host-dip-portal-device='))).toMatch(/; Path=\/; Secure; HttpOnly; SameSite=Strict; Max-Age=7776000$/);
    // A device cookie failing for its name stops being trusted (OWASP): then it waits as a stranger does.
    const failures: number[] = [];
    for (let i = 0; i < 6; i++) failures.push((await send('POST', '/portal/sign-in', { ...form('rita.real', `wrong ${i}`), from: '127.0.0.5', cookie: rita.device })).status);
    expect(failures).toEqual([401, 401, 401, 401, 401, 429]);
  });

  it("a guesser with the right password and a fresh address for each try is held by the name's wait", async () => {
    const sup = await dip().participant('1000000014', ['SUP']);
    const gil = await userEnrolled('gil.guessed', sup.dipId);
    nextCode(gil.secret);
    const answers: number[] = [];
    // The injected clock is held where the name's wait began (after the fifth failure): 25 sign-ins, each a
    // new TLS connection from a new address, take longer than the first wait's second on a loaded machine,
    // and a try after it is checked (401) as it should be, which is not what this case is about.
    let held: number | null = null;
    for (let i = 0; i < 30; i++) {
      if (held !== null) clock.jump(held - clock.now());
      answers.push((await signInFrom(`127.0.1.${10 + i}`, 'gil.guessed', gil.password, '000000')).status);
      if (i === 4) held = clock.now();
    }
    expect(answers.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(answers.slice(5)).toEqual(Array<number>(25).fill(429));
  });

  it('behind one shared address, junk sign-ins never make a wait above a minute', async () => {
    const waits: number[] = [];
    for (let i = 0; i < 60; i++) {
      const name = i % 2 === 0 ? `no such name ${i}` : `no.such.name${i}`;
      const p = await signInFrom('127.0.2.1', name, 'Summer2026!');
      if (p.status !== 429) continue;
      const seconds = Number(p.headers['retry-after']);
      waits.push(seconds);
      clock.jump(seconds * 1000);
    }
    expect(Math.max(...waits)).toBe(60);
  });

  it('slows one address trying many names (429 and Retry-After for that address only), nothing checked', async () => {
    const sup = await dip().participant('1000000012', ['SUP']);
    const sue = await userEnrolled('sue.sprayed', sup.dipId);
    const code = nextCode(sue.secret);
    for (let i = 0; i < 10; i++) {
      const p = await signInFrom('127.0.0.4', `sprayed.name${i}`, 'Summer2026!');
      expect([i, p.status, p.status === 401 ? '' : p.text.slice(0, 3000)]).toEqual([i, 401, '']);
    }
    const held = await signInFrom('127.0.0.4', 'sprayed.name10', 'Summer2026!');
    expect(held.status).toBe(429);
    expect(held.headers['retry-after']).toBe('1');
    expect(held.text).toContain('too many failed sign-ins: try again after');
    // Even right credentials wait at that address; another address is not held by it.
    expect((await signInFrom('127.0.0.4', 'sue.sprayed', sue.password, code)).status).toBe(429);
    expect((await signInFrom('127.0.0.5', 'sue.sprayed', sue.password, code)).status).toBe(303);
    // The address's wait doubles with each failure after it.
    clock.jump(1_000);
    expect((await signInFrom('127.0.0.4', 'sprayed.name11', 'Summer2026!')).status).toBe(401);
    expect((await signInFrom('127.0.0.4', 'sprayed.name12', 'Summer2026!')).headers['retry-after']).toBe('2');
  });

  it("backs off one name's guesses from one address: a growing wait, the right password included, then signs in", async () => {
    const sup = await dip().participant('1000000013', ['SUP']);
    const ben = await userEnrolled('ben.brute', sup.dipId);
    const code = nextCode(ben.secret);
    for (let i = 0; i < 5; i++) expect((await signInFrom('127.0.0.6', 'ben.brute', `guess ${i}`)).status).toBe(401);
    const held = await signInFrom('127.0.0.6', 'ben.brute', ben.password, code);
    expect(held.status).toBe(429);
    expect(held.headers['retry-after']).toBe('1');
    clock.jump(1_000);
    expect((await signInFrom('127.0.0.6', 'ben.brute', 'guess 5')).status).toBe(401);
    expect((await signInFrom('127.0.0.6', 'ben.brute', ben.password, code)).headers['retry-after']).toBe('2');
    clock.jump(2_000);
    expect((await signInFrom('127.0.0.6', 'ben.brute', ben.password, code)).status).toBe(303);
  });
});

describe("the user portal's alarm form: a subscription's own thresholds (spec 5.11, operations level)", () => {
  const { dip, send, userSignedIn } = portalDip();

  it('offers the threshold fields, keeps what is filled in, and names the field of a value refused', async () => {
    const sup = await dip().participant('1000000009', ['SUP']);
    const cookie = await userSignedIn('tara.thresholds', sup.dipId);
    const page = await send('GET', '/portal/alarms', { cookie });
    expect(page.status).toBe(200);
    for (const name of ['queueAgeMinutes', 'deliveryLatencySeconds', 'deadLetterCount', 'deadLetterWindowMinutes', 'channels']) expect(page.text).toContain(`name="${name}"`);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;
    const post = (extra: Record<string, string>, rules = ['queue-age', 'dead-letter']) => {
      const form = new URLSearchParams({ _csrf: csrf, email: 'tara@sup.example', ...extra });
      for (const r of rules) form.append('rule', r);
      return send('POST', '/portal/alarms', { cookie, form: form.toString() });
    };
    const made = await post({ queueAgeMinutes: '15', deadLetterCount: '3', deadLetterWindowMinutes: '60', channels: 'IF-021, IF-022', deliveryLatencySeconds: '' });
    expect(made.status, made.text).toBe(200);
    expect(made.text).toContain('queue-age: 15 min');
    const stored = (await adminApi(dip())('GET', '/admin/alarms/subscriptions')).body as { subscriptions: Array<{ owner: string; thresholds?: unknown }> };
    expect(stored.subscriptions.filter((s) => s.owner === sup.dipId).map((s) => s.thresholds)).toEqual([{ queueAgeMinutes: 15, deadLetters: { count: 3, windowMinutes: 60 }, channels: ['IF-021', 'IF-022'] }]);
    // Blank fields: no thresholds, the operator's (as before).
    expect((await post({ queueAgeMinutes: '', deadLetterCount: '', deadLetterWindowMinutes: '', channels: '' })).status).toBe(200);
    // Each refusal names the field by its label.
    const refused = async (extra: Record<string, string>, rules?: string[]) => {
      const r = await post(extra, rules);
      expect(r.status).toBe(400);
      return /not subscribed: ([^<]+)</.exec(r.text)![1]!.replace(/&#39;/g, "'").replace(/&gt;/g, '>');
    };
    expect(await refused({ queueAgeMinutes: '0' })).toBe('Queue age (minutes) must be >= 1');
    expect(await refused({ queueAgeMinutes: 'soon' })).toBe('Queue age (minutes): a whole number');
    expect(await refused({ deadLetterCount: '3' })).toBe('Dead letters: give both the number and the window (minutes)');
    expect(await refused({ deliveryLatencySeconds: '5' }, ['delivery-latency'])).toBe("Delivery latency (seconds): at least 30 s, the DIP's own delivery latency threshold (below it no delivery is watched)");
    expect(await refused({ deliveryLatencySeconds: '60' })).toBe('Delivery latency (seconds): the subscription does not name delivery-latency');
  });
});
