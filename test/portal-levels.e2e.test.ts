import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIF021 } from '../src/sim/messages.js';
import { adminApi } from './helpers/admin.js';
import { describeViolations, firstSignIn, launchBrowser, newContext, screenshot, seriousViolations } from './helpers/browser.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;

/**
 * The user portal's levels (src/domain/portal-levels.ts) in a real browser: a participant's administrator
 * creates a viewer on the Users page; the viewer reads the participant's pages, is shown no form that
 * changes anything, and every change it sends by hand (with its session's CSRF token, as the pages would)
 * is refused with a 403 page naming the level it needs, nothing changed. Raised to operations by the
 * administrator (journalled, its sessions ended), the same user sets the webhook. A user made by the
 * operator API without the administrator flag is at operations: what every non-administrator could do before.
 */
describe('user portal: levels', () => {
  let td: TestDip;
  let browser: Browser;
  let admin: ReturnType<typeof adminApi>;
  let sup: TestParticipant;
  let sds: TestParticipant;
  /** A message the supplier received on IF-021: its journey page has the replay actions. */
  let received: string;
  const contexts: BrowserContext[] = [];

  async function newPage(): Promise<Page> {
    const context = await newContext(browser);
    contexts.push(context);
    return context.newPage();
  }

  /** A user made by the operator API (as the first administrator is), signed in at their first sign-in. */
  async function madeByOperator(username: string, isAdmin: boolean): Promise<Page> {
    const made = await admin('POST', '/admin/portal/accounts', { username, displayName: username, participantDipId: sup.dipId, admin: isAdmin });
    expect(made.status).toBe(201);
    // The operator API's `admin` flag makes an administrator or a user at operations, and says which.
    expect((made.body as Json).level).toBe(isAdmin ? 'admin' : 'operations');
    const page = await newPage();
    await firstSignIn(page, td.dip.portalUrl, '/portal', username, (made.body as { password: string }).password);
    return page;
  }

  async function accessible(page: Page): Promise<void> {
    const violations = await seriousViolations(page);
    expect(violations, describeViolations(violations)).toEqual([]);
  }

  const nav = (page: Page, name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
  const post = (page: Page, path: string, form: Record<string, string>) => page.request.post(`${td.dip.portalUrl}${path}`, { form, headers: { origin: td.dip.portalUrl } });
  const csrfOf = async (page: Page) => (await page.locator('input[name=_csrf]').first().getAttribute('value'))!;
  /** The forms of the page's main part that change something (the header's sign-out form is not in it). */
  const writeForms = (page: Page) => page.locator('main form[method=post]').count();

  beforeAll(async () => {
    td = await startTestDip();
    admin = adminApi(td);
    sup = await td.participant('1000000001', ['SUP']);
    sds = await td.participant('1000000002', ['SDS']);
    const sent = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'levels' })]);
    expect(sent.status).toBe(201);
    received = sent.body.messageArray[0]!.transactionID!;
    browser = await launchBrowser();
  });

  afterAll(async () => {
    for (const c of contexts) await c.close();
    await browser?.close();
    await td?.close();
  });

  it('an administrator creates a viewer, who sees no write form and is refused every change (403 naming the level); raised to operations, journalled, its sessions end', async () => {
    const supAdmin = await madeByOperator('sup.admin', true);
    await nav(supAdmin, 'Users');
    // The least privilege is the form's default: an administrator chooses more on purpose.
    expect(await supAdmin.getByLabel('Level', { exact: true }).inputValue()).toBe('viewer');
    await supAdmin.getByLabel('Username').fill('sup.viewer');
    await supAdmin.getByLabel('Name', { exact: true }).fill('Vera Viewer');
    await supAdmin.getByRole('button', { name: 'Create user' }).click();
    await expect.poll(() => supAdmin.getByRole('status').textContent()).toContain('user sup.viewer created (viewer)');
    const password = (await supAdmin.locator('#enrolled-password').textContent())!;
    expect(await supAdmin.getByRole('table', { name: /Users of/ }).getByRole('row', { name: /sup\.viewer/ }).textContent()).toContain('viewer');
    await accessible(supAdmin);
    await screenshot(supAdmin, 'portal-users-levels');

    const viewer = await newPage();
    await firstSignIn(viewer, td.dip.portalUrl, '/portal', 'sup.viewer', password);
    // Reads every page it could before; none shows a form that changes something.
    for (const [link, heading] of [
      ['Webhooks', 'Webhooks'],
      ['Replay', 'Replay and requeue'],
      ['Alarms', 'Alarms'],
      ['Certificates', 'Certificates'],
      ['Roles and channels', 'Roles and channels'],
      ['Connection provider', 'Connection provider'],
      ['Users', 'Users'],
      ['Audit', 'Audit: messages sent'],
      ['Messages', 'Messages'],
    ] as const) {
      await nav(viewer, link);
      expect(await viewer.getByRole('heading', { level: 1 }).textContent()).toBe(heading);
      expect(await writeForms(viewer), `a write form on ${link}`).toBe(0);
      await accessible(viewer);
    }
    await nav(viewer, 'Webhooks');
    expect(await viewer.locator('main').textContent()).toContain('You are a viewer: registering, testing and removing webhooks needs the operations level');
    await waitFor(async () => (await viewer.goto(`${td.dip.portalUrl}/portal/messages/IF-021/${received}`))?.status() === 200, 10_000, 'the message in the archive');
    expect(await viewer.locator('main').textContent()).toContain('Message as delivered');
    expect(await writeForms(viewer)).toBe(0);
    await accessible(viewer);
    await screenshot(viewer, 'portal-journey-viewer');

    // Sent by hand, with the session's own CSRF token and Origin: each refused, naming what it needs.
    const csrf = await csrfOf(viewer);
    const day = new Date().toISOString().slice(0, 10);
    const writes: Array<[string, Record<string, string>, 'operations' | 'admin']> = [
      ['/portal/webhooks', { channel: 'IF-021', callbackURL: 'http://127.0.0.1:33923/admin/health' }, 'operations'],
      ['/portal/webhooks/remove', { channel: 'IF-021' }, 'operations'],
      ['/portal/webhooks/test', { channel: 'IF-021' }, 'operations'],
      [`/portal/messages/IF-021/${received}/requeue`, {}, 'operations'],
      [`/portal/messages/IF-021/${received}/replay`, {}, 'operations'],
      ['/portal/replay', { channel: 'IF-021', from: `${day}T00:00`, to: `${day}T23:59`, action: 'requeue' }, 'operations'],
      ['/portal/alarms', { rule: 'webhook-failing', email: 'vera@example.com' }, 'operations'],
      ['/portal/alarms/remove', { id: 'any' }, 'operations'],
      ['/portal/users', { username: 'sneaky', displayName: 'Sneaky', level: 'admin' }, 'admin'],
      ['/portal/users/disable', { username: 'sup.admin' }, 'admin'],
      ['/portal/users/totp-reset', { username: 'sup.admin' }, 'admin'],
      ['/portal/users/level', { username: 'sup.viewer', level: 'admin' }, 'admin'],
      ['/portal/certificates/request', { csr: '-----BEGIN CERTIFICATE REQUEST-----' }, 'admin'],
      ['/portal/roles-and-channels', { kind: 'channel', change: 'join', name: 'IF-021', confirm: 'yes' }, 'admin'],
      ['/portal/connection-provider', { change: 'nominate', dipId: sds.dipId, confirm: 'yes' }, 'admin'],
    ];
    for (const [path, form, needs] of writes) {
      const answer = await post(viewer, path, { _csrf: csrf, ...form });
      expect(answer.status(), path).toBe(403);
      expect(await answer.text(), path).toContain(`needs the ${needs} level`);
    }
    // Nothing changed: no webhook, no new user, the administrator still in.
    await nav(supAdmin, 'Webhooks');
    expect(await supAdmin.locator('main').textContent()).toContain('No webhook registered');
    await nav(supAdmin, 'Users');
    expect(await supAdmin.locator('main').textContent()).not.toContain('sneaky');

    // The administrator raises the viewer to operations: journalled, the viewer's sessions ended.
    await supAdmin.getByLabel('Level of sup.viewer').selectOption('operations');
    await supAdmin.getByRole('button', { name: 'Change level of sup.viewer' }).click();
    await expect.poll(() => supAdmin.getByRole('status').textContent()).toContain('sup.viewer is now operations: signed out everywhere');
    await accessible(supAdmin);
    const journal = (await admin('GET', `/admin/journal?actor=user:${sup.dipId}:sup.admin`)).body as Json[];
    expect(journal.filter((e) => e.action.startsWith('user.')).map((e) => [e.action, e.target, e.before, e.after]).reverse()).toEqual([
      ['user.create', 'sup.viewer', null, expect.objectContaining({ participant: sup.dipId, level: 'viewer' })],
      ['user.level', 'sup.viewer', { level: 'viewer' }, { level: 'operations', sessionsEnded: true }],
    ]);
    await viewer.goto(`${td.dip.portalUrl}/portal/webhooks`);
    expect(viewer.url()).toContain('/portal/sign-in');
  });

  it('a user made without the administrator flag is at operations, as every non-administrator was: it sets a webhook, and may not manage users', async () => {
    const ops = await madeByOperator('sup.ops', false);
    await nav(ops, 'Webhooks');
    await ops.getByLabel('Channel').selectOption('IF-021');
    await ops.getByLabel('Callback URL').fill(`${td.dip.portalUrl}/hook`);
    await ops.getByRole('button', { name: 'Save webhook' }).click();
    await expect.poll(() => ops.locator('main').textContent()).toContain('Registered webhooks');
    expect(await ops.getByRole('table', { name: 'Registered webhooks' }).textContent()).toContain('IF-021');
    await nav(ops, 'Users');
    expect(await writeForms(ops)).toBe(0);
    expect(await ops.locator('main').textContent()).toContain('You are at the operations level');
    const refused = await post(ops, '/portal/users', { _csrf: await csrfOf(ops), username: 'sneaky2', displayName: 'Sneaky', level: 'viewer' });
    expect(refused.status()).toBe(403);
    expect(await refused.text()).toContain('needs the admin level');
  });
});
