import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminApi } from './helpers/admin.js';
import { describeViolations, firstSignIn, launchBrowser, newContext, screenshot, seriousViolations } from './helpers/browser.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;

/**
 * The user portal's self-service pages (spec 5.12.1 "User Roles Request" and "Agent Management") in a real
 * browser: a participant's administrator signs up for an optional role and an opt-in channel and leaves
 * them, and nominates and withdraws a DIP Connection Provider, each confirmed; the signed API sees the same
 * (one pipeline, src/pipeline/self-service.ts) and the operator journal names the user. A user who is not
 * an administrator sees the pages and is refused the changes (403 page); a form without the session's CSRF
 * token changes nothing. Every page is checked with axe-core and photographed.
 */
describe('user portal: roles, channels and connection provider', () => {
  let td: TestDip;
  let browser: Browser;
  let admin: ReturnType<typeof adminApi>;
  let sup: TestParticipant;
  let cp: TestParticipant;
  const contexts: BrowserContext[] = [];

  /** A new user of the participant, signed in at their first sign-in (their TOTP set up, their own password chosen). */
  async function signedIn(username: string, participantDipId: string, isAdmin: boolean): Promise<Page> {
    const made = await admin('POST', '/admin/portal/accounts', { username, displayName: username, participantDipId, admin: isAdmin });
    expect(made.status).toBe(201);
    const context = await newContext(browser);
    contexts.push(context);
    const page = await context.newPage();
    await firstSignIn(page, td.dip.portalUrl, '/portal', username, (made.body as { password: string }).password);
    return page;
  }

  async function accessible(page: Page): Promise<void> {
    const violations = await seriousViolations(page);
    expect(violations, describeViolations(violations)).toEqual([]);
  }

  /** Accessible, and photographed for the README (docs/screenshots/ with DIP_SCREENSHOTS=docs). */
  async function checkPage(page: Page, name: string): Promise<void> {
    await accessible(page);
    await screenshot(page, name);
  }

  /** What the signed participant API says of the supplier (GET /participants/{id}). */
  const apiView = async (): Promise<Json> => (await sup.client.call<Json>('GET', `/participants/${sup.dipId}`, '')).body;
  const nav = (page: Page, name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
  const post = (page: Page, path: string, form: Record<string, string>) => page.request.post(`${td.dip.portalUrl}${path}`, { form, headers: { origin: td.dip.portalUrl } });
  const csrfOf = async (page: Page) => (await page.locator('input[name=_csrf]').first().getAttribute('value'))!;

  beforeAll(async () => {
    td = await startTestDip();
    admin = adminApi(td);
    sup = await td.participant('1000000001', ['SUP']);
    cp = await td.participant('9000000001', ['DCP']);
    expect((await admin('PUT', '/admin/optional-roles', { roles: ['MDS'] })).status).toBe(200);
    expect((await admin('PATCH', '/admin/channels/IF-021', { optIn: true })).status).toBe(200);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    for (const c of contexts) await c.close();
    await browser?.close();
    await td?.close();
  });

  it('an administrator signs up for an optional role and an opt-in channel and leaves them, confirmed, through the API\'s own functions', async () => {
    const page = await signedIn('sup.admin', sup.dipId, true);
    await nav(page, 'Roles and channels');
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Roles and channels');
    expect(await page.getByRole('table', { name: /Optional roles/ }).textContent()).toContain('MDS');
    expect(await page.getByRole('table', { name: /Channels/ }).textContent()).toContain('IF-021');

    // Not confirmed (sent by hand: the browser will not send the form without the box ticked): nothing changes.
    const unconfirmed = await post(page, '/portal/roles-and-channels', { _csrf: await csrfOf(page), kind: 'role', change: 'join', name: 'MDS' });
    expect(unconfirmed.status()).toBe(400);
    expect(await unconfirmed.text()).toContain('tick the confirmation first');
    expect((await apiView()).roles).toEqual(['SUP']);

    await page.getByRole('group', { name: 'Sign up for MDS' }).getByRole('checkbox').check();
    await page.getByRole('button', { name: 'Sign up for MDS' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain(`${sup.dipId} signed up for the role MDS`);
    expect((await apiView()).roles).toEqual(['MDS', 'SUP']);
    await page.getByRole('group', { name: 'Opt into IF-021' }).getByRole('checkbox').check();
    await page.getByRole('button', { name: 'Opt into IF-021' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain(`${sup.dipId} opted into IF-021`);
    expect((await apiView()).channels).toEqual(['IF-021']);
    expect(await page.getByRole('table', { name: /Channels/ }).textContent()).toContain('opted in');
    await checkPage(page, 'portal-roles-and-channels');

    // A refusal of the pipeline's is shown as it is: a register role is not one to leave.
    const register = await post(page, '/portal/roles-and-channels', { _csrf: await csrfOf(page), kind: 'role', change: 'leave', name: 'SUP', confirm: 'yes' });
    expect(register.status()).toBe(403);
    expect(await register.text()).toContain('roles from the central register change only there');

    await page.getByRole('group', { name: 'Leave MDS' }).getByRole('checkbox').check();
    await page.getByRole('button', { name: 'Leave MDS' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain(`${sup.dipId} left the role MDS`);
    await page.getByRole('group', { name: 'Leave IF-021' }).getByRole('checkbox').check();
    await page.getByRole('button', { name: 'Leave IF-021' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain(`${sup.dipId} left IF-021`);
    const after = await apiView();
    expect([after.roles, after.optionalRoles, after.channels]).toEqual([['SUP'], [], []]);

    // Journalled as the API journals them (a role change also as the participant's new roles), with the
    // user who acted, as the portal's other acts name them.
    const journal = (await admin('GET', `/admin/journal?actor=user:${sup.dipId}:sup.admin`)).body as Json[];
    expect(journal.filter((e) => e.action.startsWith('participant.')).map((e) => [e.action, e.target]).reverse()).toEqual([
      ['participant.role.join', `${sup.dipId}/MDS`],
      ['participant.roles', sup.dipId],
      ['participant.channel.join', `${sup.dipId}/IF-021`],
      ['participant.role.leave', `${sup.dipId}/MDS`],
      ['participant.roles', sup.dipId],
      ['participant.channel.leave', `${sup.dipId}/IF-021`],
    ]);
    // And in the API activity log, as every portal request, from the user (written in the background: waited for).
    const posts = async () => ((await admin('GET', '/admin/activity?caller=user:sup.admin')).body as Json[]).filter((r) => r.method === 'POST' && r.url === '/portal/roles-and-channels').map((r) => r.status as number);
    await waitFor(async () => (await posts()).length === 6, 10_000, "the user's forms in the activity log");
    expect((await posts()).sort()).toEqual([200, 200, 200, 200, 400, 403]);
  });

  it('an administrator nominates and withdraws a DIP Connection Provider, confirmed; the provider sees it', async () => {
    const page = await signedIn('sup.agents', sup.dipId, true);
    await nav(page, 'Connection provider');
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Connection provider');
    expect(await page.locator('main').textContent()).toContain('none: connects itself');

    // An unregistered DIP ID: the pipeline's 404, on the page.
    await page.getByLabel('DIP ID of the DIP Connection Provider').fill('9999999999');
    await page.getByRole('checkbox', { name: /I confirm/ }).check();
    await page.getByRole('button', { name: 'Nominate' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('connectionProvider 9999999999 is not a registered participant');

    await page.getByLabel('DIP ID of the DIP Connection Provider').fill(cp.dipId);
    await page.getByRole('checkbox', { name: /I confirm/ }).check();
    await page.getByRole('button', { name: 'Nominate' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain(`${cp.dipId} nominated`);
    expect((await apiView()).connectionProvider).toBe(cp.dipId);
    // The provider may now act for the supplier through the API.
    expect((await cp.client.call<Json>('GET', `/participants/${sup.dipId}`, '')).status).toBe(200);
    await checkPage(page, 'portal-connection-provider');

    // The provider's administrator acts for the supplier (the API's rule, `as`): opts it into IF-021 and
    // out again, journalled as the provider's user with the supplier as the target; a participant that did
    // not nominate it is refused.
    const provider = await signedIn('cp.admin', cp.dipId, true);
    await nav(provider, 'Connection provider');
    expect(await provider.locator('main').textContent()).toContain(`${sup.dipId} (SUP)`);
    await provider.goto(`${td.dip.portalUrl}/portal/roles-and-channels?as=${sup.dipId}`);
    expect(await provider.getByRole('heading', { level: 1 }).textContent()).toBe(`Roles and channels: acting for ${sup.dipId}`);
    await provider.getByRole('group', { name: 'Opt into IF-021' }).getByRole('checkbox').check();
    await provider.getByRole('button', { name: 'Opt into IF-021' }).click();
    await expect.poll(() => provider.getByRole('status').textContent()).toContain(`${sup.dipId} opted into IF-021`);
    expect((await apiView()).channels).toEqual(['IF-021']);
    await provider.getByRole('group', { name: 'Leave IF-021' }).getByRole('checkbox').check();
    await provider.getByRole('button', { name: 'Leave IF-021' }).click();
    await expect.poll(() => provider.getByRole('status').textContent()).toContain(`${sup.dipId} left IF-021`);
    const acts = (await admin('GET', `/admin/journal?target=${sup.dipId}/IF-021&actor=user:${cp.dipId}:cp.admin`)).body as Json[];
    expect(acts.map((e) => e.action).reverse()).toEqual(['participant.channel.join', 'participant.channel.leave']);
    expect((await provider.goto(`${td.dip.portalUrl}/portal/roles-and-channels?as=1000000002`))?.status()).toBe(403);

    await page.getByRole('group', { name: `Withdraw ${cp.dipId}` }).getByRole('checkbox').check();
    await page.getByRole('button', { name: `Withdraw ${cp.dipId}` }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('nomination withdrawn');
    expect((await apiView()).connectionProvider).toBeNull();

    const journal = (await admin('GET', `/admin/journal?actor=user:${sup.dipId}:sup.agents`)).body as Json[];
    expect(journal.filter((e) => e.action.startsWith('participant.')).map((e) => [e.action, e.target, e.after?.connectionProvider ?? null]).reverse()).toEqual([
      ['participant.connection-provider.nominate', sup.dipId, cp.dipId],
      ['participant.connection-provider.withdraw', sup.dipId, null],
    ]);
  });

  it('a user who is not an administrator sees both pages and is refused every change (403 page); a form without the CSRF token changes nothing', async () => {
    const page = await signedIn('sup.viewer', sup.dipId, false);
    await nav(page, 'Roles and channels');
    expect(await page.getByRole('table', { name: /Optional roles/ }).textContent()).toContain('MDS');
    expect(await page.getByRole('button', { name: 'Sign up for MDS' }).count()).toBe(0);
    expect(await page.locator('main').textContent()).toContain('You are at the operations level: signing up for roles and channels and leaving them needs the admin level');
    await accessible(page);
    const csrf = await csrfOf(page);
    const joined = await post(page, '/portal/roles-and-channels', { _csrf: csrf, kind: 'channel', change: 'join', name: 'IF-021', confirm: 'yes' });
    expect(joined.status()).toBe(403);
    expect(await joined.text()).toContain('this change needs the admin level');
    await nav(page, 'Connection provider');
    expect(await page.getByRole('button', { name: 'Nominate' }).count()).toBe(0);
    await accessible(page);
    expect((await post(page, '/portal/connection-provider', { _csrf: csrf, change: 'nominate', dipId: cp.dipId, confirm: 'yes' })).status()).toBe(403);

    // An administrator's session, but no CSRF token, or another site's Origin: refused before anything is done.
    const adminPage = await signedIn('sup.csrf', sup.dipId, true);
    await adminPage.goto(`${td.dip.portalUrl}/portal/roles-and-channels`);
    const noToken = await post(adminPage, '/portal/roles-and-channels', { kind: 'channel', change: 'join', name: 'IF-021', confirm: 'yes' });
    expect(noToken.status()).toBe(403);
    expect(await noToken.text()).toContain('CSRF check failed');
    const forged = await adminPage.request.post(`${td.dip.portalUrl}/portal/connection-provider`, { form: { _csrf: await csrfOf(adminPage), change: 'nominate', dipId: cp.dipId, confirm: 'yes' }, headers: { origin: 'https://evil.example' } });
    expect(forged.status()).toBe(403);
    const view = await apiView();
    expect([view.channels, view.connectionProvider]).toEqual([[], null]);
  });
});
