/**
 * What the portals do with requests before anyone is signed in, over real HTTPS (no browser needed):
 * form bodies are read in one pass with a bound on their fields, an address Fastify cannot route gets
 * a page with the pages' headers, and only the portal's own form signs a person out.
 */
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpCode } from '../src/security/portal-credentials.js';
import { CONTENT_SECURITY_POLICY } from '../src/portal/server.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, type TestDip } from './helpers/dip-harness.js';

describe('portal requests', () => {
  let t: TestDip;
  let agent: Agent;
  let origin: string;

  const send = async (method: 'GET' | 'POST', path: string, options: { form?: string; cookie?: string; origin?: string } = {}) => {
    const res = await request(`${origin}${path}`, {
      method,
      dispatcher: agent,
      headers: {
        ...(options.form === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded', origin: options.origin ?? origin }),
        ...(options.cookie ? { cookie: options.cookie } : {}),
      },
      body: options.form,
    });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  };

  beforeAll(async () => {
    t = await startTestDip();
    origin = t.dip.portalUrl;
    agent = new Agent({ connect: { ca: t.dip.pki.ca.certPem } });
  });
  afterAll(async () => {
    await agent?.close();
    await t?.close();
  });

  it('reads a form of many fields in one pass and refuses one of more than 1,000 (413), before any check', async () => {
    const fields = (n: number) => Array.from({ length: n }, (_, i) => `f${i}=x`).join('&');
    const many = await send('POST', '/portal/sign-in', { form: `username=nobody.here&password=p&code=1&${fields(900)}` });
    expect(many.status).toBe(401);
    const tooMany = await send('POST', '/portal/sign-in', { form: `username=nobody.here&password=p&code=1&${fields(20_000)}` });
    expect(tooMany.status).toBe(413);
    expect(tooMany.text).toContain('a form has at most 1000 fields');
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
    const made = (await adminApi(t)('POST', '/admin/operators', { name: 'vera.viewer', role: 'viewer', displayName: 'Vera' })).body as { password: string; totpSecret: string };
    const form = new URLSearchParams({ username: 'vera.viewer', password: made.password, code: totpCode(made.totpSecret, Date.now()), next: 'vera chose this', repeat: 'vera chose this' });
    const signIn = await send('POST', '/operator/sign-in', { form: form.toString() });
    expect(signIn.status).toBe(303);
    const cookie = String(signIn.headers['set-cookie']).split(';')[0]!;
    expect((await send('GET', '/operator/', { cookie })).status).toBe(200);
    const operators = await send('GET', '/operator/operators', { cookie });
    expect(operators.status).toBe(403);
    expect(operators.text).toContain('only an admin');
    expect(operators.text).not.toContain('vera.viewer</td>');
    // Nor may she learn by disabling which names are accounts: her role is refused first, whatever the name.
    const csrf = /name="_csrf" value="([^"]+)"/.exec((await send('GET', '/operator/', { cookie })).text)![1]!;
    await t.participant('1000000001', ['SUP']);
    for (const path of ['/operator/operators/disable', '/operator/participants/1000000001/users/disable']) {
      for (const username of ['vera.viewer', 'no.such.person']) {
        const tried = await send('POST', path, { cookie, form: new URLSearchParams({ _csrf: csrf, username }).toString() });
        expect([path, tried.status, tried.text.includes('no such account')]).toEqual([path, 403, false]);
      }
    }
  });

  it("makes a person choose their own password at the first sign-in, signs out only from the portal's own form, and changes a password on the account page", async () => {
    const made = (await adminApi(t)('POST', '/admin/operators', { name: 'ops.olga', role: 'admin', displayName: 'Olga' })).body as { password: string; totpSecret: string };
    const firstCode = totpCode(made.totpSecret, Date.now());
    const form = (fields: Record<string, string>) => ({ form: new URLSearchParams({ username: 'ops.olga', password: made.password, code: firstCode, ...fields }).toString() });
    // The password the administrator saw opens no session: the answer is the form to choose one.
    const asked = await send('POST', '/operator/sign-in', form({}));
    expect(asked.status).toBe(200);
    expect(asked.headers['set-cookie']).toBeUndefined();
    expect(asked.text).toContain('Choose your own to sign in');
    expect(asked.text).not.toContain(made.password);
    expect((await send('POST', '/operator/sign-in', form({ next: 'olga chose this', repeat: 'olga chose that' }))).text).toContain('the two new passwords differ');
    expect((await send('POST', '/operator/sign-in', form({ next: 'short', repeat: 'short' }))).text).toContain('at least 12 characters');
    // The code was not used up by those answers: it signs in with her own password.
    const signIn = await send('POST', '/operator/sign-in', form({ next: 'olga chose this', repeat: 'olga chose this' }));
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
    const nextCode = totpCode(made.totpSecret, Date.now() + 30_000);
    expect((await send('POST', '/operator/sign-in', { form: new URLSearchParams({ username: 'ops.olga', password: made.password, code: nextCode }).toString() })).status).toBe(401);
    expect((await send('POST', '/operator/sign-in', { form: new URLSearchParams({ username: 'ops.olga', password: 'a new long passphrase', code: nextCode }).toString() })).status).toBe(303);
  });
});
