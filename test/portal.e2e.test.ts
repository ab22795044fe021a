import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIF021 } from '../src/sim/messages.js';
import { StoreError } from '../src/ports/errors.js';
import { totpCode } from '../src/security/portal-credentials.js';
import { describeViolations, launchBrowser, newContext, screenshot, seriousViolations } from './helpers/browser.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import type { ReceivedCall } from '../src/client/webhook-receiver.js';

/**
 * The portals in a real browser (Debian's chromium through playwright-core) against a real DIP over real
 * HTTPS: a participant user signs in with TOTP, registers a webhook, sends a test message, finds it,
 * opens its journey and replays it; another participant's user sees none of it, whatever URL or form it
 * sends; an operator requeues a dead letter. Every page is checked with axe-core and photographed into
 * docs/screenshots/. One browser for the file, one context (cookie jar) per person.
 */

interface Enrolled {
  username: string;
  password: string;
  /** '' (or absent, as the operator API answers) until the person's first sign-in sets it up: every account is made without one. */
  totpSecret?: string;
}

type Msg = { payload: { CommonBlock: { D0: { transactionID: string; replayIndicator: boolean } }; CustomBlock?: Record<string, unknown> }; originalTransactionID?: string };

const messagesOf = (calls: ReceivedCall[]) => calls.flatMap((c) => c.messages as Msg[]);

describe('portals in a browser', () => {
  let td: TestDip;
  let browser: Browser;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let other: TestParticipant;
  let vas: TestParticipant;
  /** A Pattern B publication on REP-002 (LDSO and SUP receive it; SDS does not). */
  let publicationId: string;
  /** The alarm subscription 1000000001's user made in the portal. */
  let supSubscription: string;
  let adminUrl: string;
  let token: string;
  let operator: Enrolled;
  let supAdmin: Enrolled | undefined;
  let sentToSup: string;
  const contexts: BrowserContext[] = [];
  /** The time step a TOTP code was last used for, per user: each sign-in needs a fresh code. */
  const lastStep = new Map<string, number>();

  async function adminApi<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${adminUrl}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    return { status: res.status, body: (await res.json()) as T };
  }

  /** A code for a time step not used before by this user (a code is good for one sign-in). */
  /**
   * A code the DIP has not seen for this user: each TOTP step signs in once, and the DIP accepts one step
   * ahead of its clock at most. A third sign-in within one 30 s step waits for the next step to begin
   * (the wall clock is the DIP's here), rather than send a code two steps ahead, which is refused.
   */
  async function freshCode(who: Enrolled): Promise<string> {
    const step = Math.max(Math.floor(Date.now() / 30_000), (lastStep.get(who.username) ?? 0) + 1);
    lastStep.set(who.username, step);
    await waitFor(() => Math.floor(Date.now() / 30_000) >= step - 1, 31_000, 'the next TOTP step');
    return totpCode(who.totpSecret!, step * 30_000 + 1000);
  }

  async function person(): Promise<Page> {
    const context = await newContext(browser);
    contexts.push(context);
    return context.newPage();
  }

  /** The people who have chosen their own password (at their first sign-in). */
  const chosen = new Set<string>();
  async function signIn(page: Page, base: string, who: Enrolled): Promise<void> {
    await page.goto(`${td.dip.portalUrl}${base}/`);
    await expect.poll(() => page.url()).toContain(`${base}/sign-in`);
    await page.getByLabel('Username').fill(who.username);
    await page.getByLabel('Password').fill(who.password);
    if (!who.totpSecret) return enrolAtFirstSignIn(page, base, who);
    const code = await freshCode(who);
    await page.getByLabel('Code from your authenticator app').fill(code);
    await page.getByRole('button', { name: 'Sign in' }).click();
    if (!chosen.has(who.username)) {
      // The first sign-in: the password the administrator chose opens no session until the person
      // chooses their own (the same code, not used up).
      await expect.poll(() => page.title()).toContain('Choose your password');
      const violations = await seriousViolations(page);
      expect(violations, describeViolations(violations)).toEqual([]);
      const own = `${who.password}-mine`;
      await page.getByLabel('Current password').fill(who.password);
      await page.getByLabel('Code from your authenticator app').fill(code);
      await page.getByLabel('New password (12 characters or more)').fill(own);
      await page.getByLabel('New password again').fill(own);
      await page.getByRole('button', { name: 'Choose password and sign in' }).click();
      who.password = own;
      chosen.add(who.username);
    }
    await page.waitForURL(`**${base}/`);
  }

  /**
   * A first sign-in, an operator's or a participant's user's (the sign-in form filled but for the code,
   * which they do not have yet): the page shows the new TOTP secret, the person adds it to their app
   * (here: the project's own TOTP code, on the secret read off the page) and confirms with a code and a
   * password of their own. A wrong code first: the form comes back, without the secret.
   */
  async function enrolAtFirstSignIn(page: Page, base: string, who: Enrolled): Promise<void> {
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.title()).toContain('Set up your authenticator');
    await checkPage(page, `${base.slice(1)}-enrolment`);
    who.totpSecret = (await page.locator('#totp-secret').textContent())!;
    expect(await page.locator('#totp-uri').getAttribute('href')).toMatch(new RegExp(`^otpauth://totp/.*secret=${who.totpSecret}`));
    const own = `${who.password}-mine`;
    const code = await freshCode(who);
    const fill = async (typed: string) => {
      await page.getByLabel('Code from your authenticator app').fill(typed);
      await page.getByLabel('New password (12 characters or more)').fill(own);
      await page.getByLabel('New password again').fill(own);
      await page.getByRole('button', { name: 'Confirm and sign in' }).click();
    };
    await fill(code === '000000' ? '111111' : '000000');
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('the code is wrong');
    expect(await page.locator('#totp-secret').count()).toBe(0);
    await fill(code);
    who.password = own;
    chosen.add(who.username);
    await page.waitForURL(`**${base}/`);
  }

  /** Every main page: no serious or critical accessibility violation, and a screenshot for the README. */
  async function checkPage(page: Page, name: string): Promise<void> {
    const violations = await seriousViolations(page);
    expect(violations, describeViolations(violations)).toEqual([]);
    await screenshot(page, name);
  }

  beforeAll(async () => {
    td = await startTestDip();
    sds = await td.participant('2000000001', ['SDS']);
    sup = await td.participant('1000000001', ['SUP']);
    other = await td.participant('1000000002', ['SUP']);
    vas = await td.participant('3000000001', ['VAS']);
    const csv = 'mpan,rate\n1234567890123,1.5\n';
    const published = await vas.client.publish('REP-002', { type: 'DUoS', version: '1', format: 'csv' }, Buffer.from(csv), createHash('sha256').update(csv).digest('base64'));
    expect(published.status).toBe(201);
    publicationId = (published.body as unknown as { publication: { publicationID: string } }).publication.publicationID;
    adminUrl = `http://127.0.0.1:${td.dip.adminPort}`;
    token = readFileSync(join(td.config.dataDir, 'admin-token'), 'utf8').trim();
    // The test calls the operator API as an automation operator: made first, as the bootstrap token is
    // refused once the first admin account exists.
    const reader = await adminApi<{ token: string }>('POST', '/admin/operators', { name: 'e2e.tooling', role: 'operator', automation: true });
    expect(reader.status).toBe(201);
    // An operator account (its role decides what it may do), with its first password: she sets up her
    // TOTP at her first sign-in.
    const made = await adminApi<{ password: string; totpSecret?: string }>('POST', '/admin/operators', { name: 'ops.alice', role: 'admin', displayName: 'Alice (operator)' });
    expect(made.status).toBe(201);
    expect(made.body.totpSecret).toBeUndefined();
    operator = { username: 'ops.alice', password: made.body.password, totpSecret: '' };
    token = reader.body.token;
    browser = await launchBrowser();
  });

  afterAll(async () => {
    for (const c of contexts) await c.close();
    await browser?.close();
    await td?.close();
  });

  it('an operator sets up TOTP at the first sign-in and creates the first administrator of a participant', async () => {
    const page = await person();
    // A wrong password is refused, with no hint of which part was wrong.
    await page.goto(`${td.dip.portalUrl}/operator/sign-in`);
    await page.getByLabel('Username').fill(operator.username);
    await page.getByLabel('Password').fill(`${operator.password}-wrong`);
    await page.getByLabel('Code from your authenticator app').fill('000000');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('the username, password or code is wrong');
    await checkPage(page, 'operator-sign-in');

    await signIn(page, '/operator', operator);
    await checkPage(page, 'operator-health');
    // The cluster's clocks (GET /admin/health's coordination.peerClock) are shown beside storage when the
    // health document has them (before: not shown at all), and not on an embedded DIP, which has no peers.
    const clocks = page.getByRole('heading', { name: 'Cluster clocks' });
    expect(await clocks.count()).toBe(0);
    // This node's own clock as participants' signature dates say (GET /admin/health's clockCheck; the dip-clock alarm).
    expect((await page.locator(`h2:has-text("This node's clock") + p`).textContent())?.replace(/\s+/g, ' ').trim()).toMatch(
      /^ok in the last 10 min, participants whose latest signature date was refused as ahead of this node's clock: 0, behind it: 0; verified: \d+$/,
    );
    // The embedded DIP's coordination is given the readings a cluster node's carries (src/adapters/nats: the
    // roll calls of its peers), as /admin/health reports them.
    const coordination = td.dip.coordination;
    const health = coordination.health.bind(coordination);
    const withPeerClock = (peerClock: { node: string; offsetMs: number; allowanceMs: number; believed: boolean } | null) => {
      coordination.health = () => Object.assign({}, health(), { peerClock });
    };
    const clocksLine = async () => (await page.locator('h2:has-text("Cluster clocks") + p').textContent())?.replace(/\s+/g, ' ').trim();
    try {
      withPeerClock(null);
      await page.reload();
      expect(await clocks.count()).toBe(1);
      expect(await clocksLine()).toBe('ok no other node heard from lately (by its roll calls)');
      withPeerClock({ node: 'node-b', offsetMs: 300, allowanceMs: 1_000, believed: true });
      await page.reload();
      expect(await clocksLine()).toBe("ok node-b's clock is 300 ms ahead of this node's, the furthest off of the nodes heard from; the queue leases allow 1000 ms");
      withPeerClock({ node: 'node-c', offsetMs: -2_500, allowanceMs: 1_000, believed: true });
      await page.reload();
      expect(await clocksLine()).toBe("skewed node-c's clock is 2500 ms behind this node's, the furthest off of the nodes heard from; the queue leases allow 1000 ms (the clock-skew alarm is raised)");
      expect(await page.locator('h2:has-text("Cluster clocks") + p .badge').getAttribute('class')).toBe('badge warn');
      withPeerClock({ node: 'node-c', offsetMs: -40_000, allowanceMs: 1_000, believed: false });
      await page.reload();
      expect(await clocksLine()).toContain('beyond five lease lengths: the leases ignore it');
      expect(await page.locator('h2:has-text("Cluster clocks") + p .badge').getAttribute('class')).toBe('badge bad');
      await checkPage(page, 'operator-health-cluster');
    } finally {
      coordination.health = health;
    }
    await page.getByRole('link', { name: 'Participants' }).click();
    await checkPage(page, 'operator-participants');
    await page.getByRole('link', { name: sup.dipId }).click();
    await page.getByLabel('Username').fill('sup.admin');
    await page.getByLabel('Name', { exact: true }).fill('Sam Supplier');
    await page.getByLabel('Level').selectOption('admin');
    await page.getByRole('button', { name: 'Create user' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('user sup.admin created for 1000000001');
    // The operator is shown the first password, and no second factor: Sam sets his up himself.
    expect(await page.locator('#enrolled-totp-later').textContent()).toContain('set up by Sam Supplier at their first sign-in');
    expect(await page.content()).not.toContain('otpauth:');
    supAdmin = {
      username: (await page.locator('#enrolled-username').textContent())!,
      password: (await page.locator('#enrolled-password').textContent())!,
      totpSecret: '',
    };
    await checkPage(page, 'operator-participant');
    for (const [link, name] of [['Channels', 'operator-channels'], ['Certificates', 'operator-certificates'], ['Operators', 'operator-operators']] as const) {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: link }).click();
      await checkPage(page, name);
    }
    // A channel's settings versions, from the channel management API: paused and resumed by another operator.
    expect((await adminApi('POST', '/admin/channels/IF-047/pause', { note: 'portal test' })).status).toBe(200);
    expect((await adminApi('POST', '/admin/channels/IF-047/resume', {})).status).toBe(200);
    await page.goto(`${td.dip.portalUrl}/operator/channels`);
    await page.getByRole('link', { name: 'IF-047', exact: true }).click();
    const versions = await page.getByRole('table').textContent();
    expect(versions).toMatch(/2\s*active.*1\s*paused.*portal test/s);
    await checkPage(page, 'operator-channel');
  });

  it('a participant user signs in with TOTP, registers a webhook, sends a test message, finds it, opens its journey and replays it', async () => {
    expect(supAdmin).toBeDefined();
    const receiver = await td.receiver();
    const page = await person();
    await signIn(page, '/portal', supAdmin!);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Overview');
    await checkPage(page, 'portal-overview');

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Webhooks' }).click();
    await page.getByLabel('Channel').selectOption('IF-021');
    await page.getByLabel('Callback URL').fill(receiver.url);
    await page.getByRole('button', { name: 'Save webhook' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain(`webhook for IF-021 set to ${receiver.url}`);
    expect(td.dip.backend && (await td.dip.backend.registry.webhooks()).find((w) => w.recipientDipId === sup.dipId)?.url).toBe(receiver.url);

    await page.getByRole('button', { name: 'Send a test message on IF-021' }).click();
    const queued = page.getByRole('status');
    await expect.poll(() => queued.textContent()).toContain('queued for IF-021');
    const transactionId = (await queued.getByRole('link').textContent())!;
    expect(transactionId).toMatch(/^T-IF-021-/);
    await waitFor(() => messagesOf(receiver.calls).some((m) => m.payload.CommonBlock.D0.transactionID === transactionId), 15_000, 'the test message at the webhook');
    expect(receiver.calls.every((c) => c.signature.ok)).toBe(true);
    await page.reload();
    await expect.poll(() => page.getByText('no call yet').count()).toBe(0);
    await checkPage(page, 'portal-webhooks');

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Messages', exact: true }).click();
    await page.getByLabel('Transaction ID').fill(transactionId);
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.getByRole('table').textContent()).toContain(transactionId);
    await checkPage(page, 'portal-messages');
    // The event code however it is written (the test message's is OpenDIPTest): brackets and case do not matter.
    await page.getByLabel('Event code').fill('[opendiptest]');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.getByRole('table').textContent()).toContain(transactionId);

    await page.getByRole('link', { name: transactionId }).click();
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe(`Journey of ${transactionId}`);
    const timeline = page.locator('ol.timeline');
    // The detailed audit (figure 19): the DIP's own test message, from its receipt to the webhook's answer.
    await expect.poll(() => timeline.textContent()).toContain('from 0000000000 (DIP)');
    expect(await timeline.textContent()).toContain('webhook call: 200 (delivered)');
    expect(await page.locator('ol.workflow').textContent()).toContain('✓ written to the archive');
    await checkPage(page, 'portal-journey');

    await page.getByRole('button', { name: 'Requeue to my webhook' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('1 message(s) requeued');
    await waitFor(() => messagesOf(receiver.calls).some((m) => m.originalTransactionID === transactionId), 15_000, 'the requeued copy at the webhook');
    const copy = messagesOf(receiver.calls).find((m) => m.originalTransactionID === transactionId)!;
    expect(copy.payload.CommonBlock.D0.replayIndicator).toBe(true);
    expect(copy.payload.CommonBlock.D0.transactionID).toMatch(/^R-IF-021-/);

    await page.getByRole('button', { name: 'Replay here (show the re-issued copy)' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('1 message(s) replayed');
    expect(await page.locator('pre').first().textContent()).toContain(`"originalTransactionID": "${transactionId}"`);
    await checkPage(page, 'portal-replayed');

    for (const [link, name] of [['Replay', 'portal-replay'], ['Status messages', 'portal-status-messages'], ['Certificates', 'portal-certificates'], ['Reports', 'portal-reports'], ['Users', 'portal-users']] as const) {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: link, exact: true }).click();
      await checkPage(page, name);
      // Reports: the test message and its requeued copy, delivered, drawn as charts with their numbers.
      if (link === 'Reports') {
        expect(await page.getByRole('img', { name: /Webhook calls by answer: delivered [1-9]/ }).count()).toBe(1);
        // Throughput over time from the reports API, cut to 1000000001: the test message and its copies.
        expect(await page.getByRole('img', { name: /^Throughput, .*Messages in: total [1-9]/ }).count()).toBe(1);
        expect(await page.getByRole('img', { name: /^End-to-end latency/ }).count()).toBe(1);
        await page.getByLabel('Period').selectOption('week');
        await page.getByRole('button', { name: 'Show' }).click();
        await expect.poll(() => page.url()).toContain('period=week');
        expect(await page.getByRole('img', { name: /^Throughput, .*Copies delivered: total [1-9]/ }).count()).toBe(1);
      }
    }
  });

  it("a participant's administrator creates a user, who sets up their own authenticator at the first sign-in; a lost one the administrator resets", async () => {
    expect(supAdmin).toBeDefined();
    const admin = await person();
    await signIn(admin, '/portal', supAdmin!);
    await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users', exact: true }).click();
    await admin.getByLabel('Username').fill('sup.una');
    await admin.getByLabel('Name', { exact: true }).fill('Una User');
    await admin.getByRole('button', { name: 'Create user' }).click();
    await expect.poll(() => admin.getByRole('status').textContent()).toContain('user sup.una created');
    // The administrator sees her first password and no second factor: nothing to sign in as her with.
    expect(await admin.locator('#enrolled-totp-later').textContent()).toContain('set up by Una User at their first sign-in');
    expect(await admin.content()).not.toContain('otpauth:');
    expect((await td.dip.backend.portalAccounts.account('user', 'sup.una'))?.totpSecretSealed).toBeNull();
    const una: Enrolled = { username: (await admin.locator('#enrolled-username').textContent())!, password: (await admin.locator('#enrolled-password').textContent())!, totpSecret: '' };
    await checkPage(admin, 'portal-user-created');

    // Her first sign-in: password, no code, the enrolment page (her secret, once, to her), a code and her own password, the home page.
    const page = await person();
    await signIn(page, '/portal', una);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Overview');
    expect(una.totpSecret).toMatch(/^[A-Z2-7]{32}$/);

    // She lost her phone: her administrator resets it, and is shown a new first password (again no secret).
    await admin.goto(`${td.dip.portalUrl}/portal/users`);
    expect(await admin.getByRole('button', { name: `Reset authenticator of ${supAdmin!.username}` }).count()).toBe(0);
    await admin.getByRole('button', { name: 'Reset authenticator of sup.una' }).click();
    await expect.poll(() => admin.getByRole('status').textContent()).toContain('authenticator of sup.una reset');
    expect(await admin.locator('#enrolled-totp-later').textContent()).toContain('at their next sign-in');
    const lost = una.totpSecret;
    una.password = (await admin.locator('#enrolled-password').textContent())!;
    una.totpSecret = '';
    // Not their own, nor an operator's (as if there were no such user), even by a form posted by hand.
    const csrf = (await admin.locator('input[name=_csrf]').first().getAttribute('value'))!;
    const reset = (username: string) => admin.request.post(`${td.dip.portalUrl}/portal/users/totp-reset`, { form: { _csrf: csrf, username }, headers: { origin: td.dip.portalUrl } });
    expect((await reset(supAdmin!.username)).status()).toBe(409);
    expect((await reset(operator.username)).status()).toBe(404);
    // Her session has ended; her next sign-in sets up a new authenticator.
    await page.reload();
    expect(page.url()).toContain('/portal/sign-in');
    await signIn(page, '/portal', una);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Overview');
    expect(una.totpSecret).not.toBe(lost);
    const journal = await adminApi<Array<{ actor: string; action: string; target: string }>>('GET', '/admin/journal?action=user.totp-reset');
    expect(journal.body.map((e) => [e.actor, e.target])).toEqual([[`user:${sup.dipId}:${supAdmin!.username}`, 'sup.una']]);
    const steps = await adminApi<Array<{ action: string }>>('GET', '/admin/journal?target=sup.una');
    expect(steps.body.map((e) => e.action).reverse()).toEqual(['user.create', 'totp-enrolment.start', 'totp-enrolment.wrong-code', 'totp-enrolment.complete', 'user.totp-reset', 'totp-enrolment.start', 'totp-enrolment.wrong-code', 'totp-enrolment.complete']);
  });

  it('a participant user subscribes to alarms, downloads a publication and reads its own API activity', async () => {
    const page = await person();
    await signIn(page, '/portal', supAdmin!);
    const nav = (name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();

    await nav('Alarms');
    // Neither an email nor a webhook: the API's own refusal, shown on the page.
    await page.getByRole('button', { name: 'Subscribe' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('give email, webhookUrl or both');
    await page.getByLabel('Email address').fill('ops@supplier.example');
    await page.getByLabel('Queue depth: messages for us are piling up').uncheck();
    // A threshold of its own (spec 5.11; refusals name the field: test/portal-forms.test.ts).
    await page.getByLabel('Queue age (minutes)').fill('15');
    await page.getByRole('button', { name: 'Subscribe' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('subscribed to dead-letter, queue-age, delivery-latency, webhook-failing, certificate-expiring, copies-withheld, maintenance');
    await checkPage(page, 'portal-alarms');
    // The participant API sees the same subscription (one store, one owner).
    const listed = await sup.client.call<{ subscriptions: Array<{ id: string; email: string; rules: string[]; thresholds?: unknown }> }>('GET', '/observability/alarm-subscriptions', '');
    expect(listed.body.subscriptions.map((x) => [x.email, x.rules.length, x.thresholds])).toEqual([['ops@supplier.example', 7, { queueAgeMinutes: 15 }]]);
    supSubscription = listed.body.subscriptions[0]!.id;

    await nav('Publications');
    const link = page.getByRole('link', { name: /DUoS-1\.csv/ });
    expect(await link.count()).toBe(1);
    await checkPage(page, 'portal-publications');
    const file = await page.request.get(`${td.dip.portalUrl}${(await link.getAttribute('href'))!}`);
    expect(file.status()).toBe(200);
    expect(file.headers()['content-disposition']).toBe('attachment; filename="DUoS-1.csv"');
    expect(await file.text()).toBe('mpan,rate\n1234567890123,1.5\n');

    // The signed API call above is in 1000000001's activity log (written in batches: reload until it is).
    await nav('API activity');
    await expect
      .poll(async () => {
        await page.reload();
        return page.getByRole('table').textContent();
      })
      .toContain('/observability/alarm-subscriptions');
    expect(await page.getByRole('table').textContent()).not.toContain('/dip-channel/REP-002/publications');
    await checkPage(page, 'portal-activity');

    // Unsubscribing removes it for the API too.
    await nav('Alarms');
    await page.getByRole('button', { name: /^Unsubscribe from dead-letter/ }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('unsubscribed');
    expect((await sup.client.call<{ subscriptions: unknown[] }>('GET', '/observability/alarm-subscriptions', '')).body.subscriptions).toEqual([]);
    // Subscribed again, for the next test to try to reach from another participant.
    await page.getByLabel('Email address').fill('ops@supplier.example');
    await page.getByRole('button', { name: 'Subscribe' }).click();
    supSubscription = (await sup.client.call<{ subscriptions: Array<{ id: string }> }>('GET', '/observability/alarm-subscriptions', '')).body.subscriptions[0]!.id;
  });

  it("a user of one participant never sees another participant's messages, by URL, form or request", async () => {
    // A real message from the data service to 1000000001 only.
    const answer = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'iso' })]);
    expect(answer.status).toBe(201);
    sentToSup = answer.body.messageArray[0]!.transactionID!;
    const made = await adminApi<Enrolled>('POST', '/admin/portal/accounts', { username: 'other.user', displayName: 'Olga Other', participantDipId: other.dipId });
    expect(made.status).toBe(201);
    const page = await person();
    await signIn(page, '/portal', made.body);
    const base = td.dip.portalUrl;

    // Search finds nothing of 1000000001's, even by its transaction ID.
    await page.goto(`${base}/portal/messages?transactionId=${sentToSup}&channel=IF-021`);
    expect(await page.getByText('No message matches.').count()).toBe(1);
    // The journey URL of 1000000001's message: answered as if it did not exist.
    const journey = await page.goto(`${base}/portal/messages/IF-021/${sentToSup}`);
    expect(journey?.status()).toBe(404);
    expect(await page.content()).not.toContain(sup.dipId);
    // Acting as 1000000001 by editing the URL: the participant API's own refusal.
    const asOther = await page.goto(`${base}/portal/messages/IF-021/${sentToSup}?as=${sup.dipId}`);
    expect(asOther?.status()).toBe(403);
    expect(await page.getByRole('alert').textContent()).toContain(`recipient-id ${sup.dipId} is not the caller ${other.dipId}`);
    expect((await page.goto(`${base}/portal/webhooks?as=${sup.dipId}`))?.status()).toBe(403);
    expect((await page.goto(`${base}/portal/certificates/participant?as=${sup.dipId}`))?.status()).toBe(403);

    // Forms posted by hand with the user's own session and CSRF token.
    await page.goto(`${base}/portal/webhooks`);
    const csrf = (await page.locator('input[name=_csrf]').first().getAttribute('value'))!;
    const post = (path: string, form: Record<string, string>) => page.request.post(`${base}${path}`, { form: { _csrf: csrf, ...form }, headers: { origin: base } });
    expect((await post(`/portal/messages/IF-021/${sentToSup}/replay`, {})).status()).toBe(404);
    expect((await post(`/portal/messages/IF-021/${sentToSup}/requeue`, { as: sup.dipId })).status()).toBe(403);
    expect((await post('/portal/webhooks', { channel: 'IF-021', callbackURL: 'http://127.0.0.1:9/x', as: sup.dipId })).status()).toBe(403);
    expect((await post('/portal/users/disable', { username: 'sup.admin' })).status()).toBe(403);
    expect((await post('/portal/users/totp-reset', { username: 'sup.admin' })).status()).toBe(403);
    const hooks = await td.dip.backend.registry.webhooks();
    expect(hooks.filter((w) => w.recipientDipId === sup.dipId).map((w) => w.url)).not.toContain('http://127.0.0.1:9/x');
    // Without the CSRF token, or from another origin, nothing is done.
    expect((await page.request.post(`${base}/portal/webhooks/test`, { form: { channel: 'IF-021' }, headers: { origin: base } })).status()).toBe(403);
    expect((await page.request.post(`${base}/portal/webhooks/test`, { form: { _csrf: csrf, channel: 'IF-021' }, headers: { origin: 'https://evil.example' } })).status()).toBe(403);
    // Alarm subscriptions, API activity: only the user's own participant's, whatever the URL or form says.
    await page.goto(`${base}/portal/alarms?as=${sup.dipId}&owner=${sup.dipId}`);
    expect(await page.content()).not.toContain('ops@supplier.example');
    expect((await post('/portal/alarms/remove', { id: supSubscription, as: sup.dipId, owner: sup.dipId })).status()).toBe(404);
    expect((await sup.client.call<{ subscriptions: Array<{ id: string }> }>('GET', '/observability/alarm-subscriptions', '')).body.subscriptions.map((x) => x.id)).toEqual([supSubscription]);
    await page.goto(`${base}/portal/activity?as=${sup.dipId}&caller=${sup.dipId}&days=7`);
    expect(await page.content()).not.toContain('/observability/alarm-subscriptions');
    // A publication on a channel the participant neither receives nor publishes on: not listed, not downloadable.
    const sdsUser = await adminApi<Enrolled>('POST', '/admin/portal/accounts', { username: 'sds.user', displayName: 'Dana Data', participantDipId: sds.dipId });
    const sdsPage = await person();
    await signIn(sdsPage, '/portal', sdsUser.body);
    await sdsPage.goto(`${base}/portal/publications`);
    expect(await sdsPage.getByText('No publication to download.').count()).toBe(1);
    // Answered as an unknown ID: a 403 naming the channel's roles confirmed the ID was a publication.
    const refused = await sdsPage.goto(`${base}/portal/publications/REP-002/${publicationId}`);
    expect(refused?.status()).toBe(404);
    expect(await sdsPage.getByRole('alert').textContent()).toContain(`no publication ${publicationId} on REP-002`);
    expect((await sdsPage.goto(`${base}/portal/publications/IF-021/${publicationId}`))?.status()).toBe(404);

    // The participant user's session does not open the operator portal.
    await page.goto(`${base}/operator/`);
    expect(page.url()).toContain('/operator/sign-in');
    // Every answer carries the strict policy.
    const res = await page.request.get(`${base}/portal/`);
    expect(res.headers()['content-security-policy']).toContain("default-src 'none'");
  });

  it("a participant user follows its own requeue job's status on the Replay page; another participant's user never sees it", async () => {
    // Before, the portal started a requeue job (more than a page) and showed nothing of how it went.
    const items = Array.from({ length: 3 }, (_, i) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `job${i}` }));
    const sent = await sds.client.submit('IF-021', items);
    expect(sent.status).toBe(201);
    const queue = { recipientDipId: sup.dipId, channel: 'IF-021' };
    const transactionIds = sent.body.messageArray.map((e) => e.transactionID!);
    const archived = await td.dip.backend.archive.findArchived({ ...queue, transactionIds, limit: 3 });
    const { headSeq } = await td.dip.backend.log.queueState(queue);
    // A job that requeued the first of the three and then failed on a permanent store error.
    const jobId = '0193f0c4-1111-7000-8000-00000000a0b1';
    const at = Date.now();
    await td.dip.backend.requeueJobs.createJob({ id: jobId, queue, filter: { fromMs: 0, toMs: Number.MAX_SAFE_INTEGER, eventCode: null, mpan: null, transactionIds }, upToSeq: headSeq, cursor: archived[0]!.seq, requeued: 1, state: 'running', error: null, createdAt: at, updatedAt: at });
    await td.dip.backend.requeueJobs.finishJob(jobId, 'failed', 'database disk image is malformed', at);
    const base = td.dip.portalUrl;

    const supUser = await adminApi<Enrolled>('POST', '/admin/portal/accounts', { username: 'sup.jobs', displayName: 'Jo Jobs', participantDipId: sup.dipId });
    expect(supUser.status).toBe(201);
    const page = await person();
    await signIn(page, '/portal', supUser.body);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Replay', exact: true }).click();
    const jobs = page.getByRole('table', { name: /Your requeue jobs/ });
    const row = jobs.getByRole('row').filter({ hasText: jobId });
    await expect.poll(() => row.count()).toBe(1);
    const cells = await row.getByRole('cell').allTextContents();
    // The store's own words are the operator's: the participant is told it stopped on a fault.
    expect(cells.slice(0, 5)).toEqual([jobId, 'IF-021', 'Failed', '1 of 3 (33%)', 'stopped on a fault in the DIP: its operator has the cause']);
    expect(await page.content()).not.toContain('malformed');
    await checkPage(page, 'portal-requeue-jobs');
    // A store that cannot be read takes the list away, not the page.
    const jobStore = td.dip.backend.requeueJobs;
    const jobsRead = jobStore.jobs.bind(jobStore);
    jobStore.jobs = async () => {
      jobStore.jobs = jobsRead;
      throw new StoreError('unavailable', 'PostgreSQL: Connection terminated', null);
    };
    await page.reload();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/requeue jobs cannot be listed right now/);
    await expect.poll(() => page.getByRole('button', { name: 'Go' }).count()).toBe(1);

    const otherUser = await adminApi<Enrolled>('POST', '/admin/portal/accounts', { username: 'other.jobs', displayName: 'Otto Jobs', participantDipId: other.dipId });
    expect(otherUser.status).toBe(201);
    const otherPage = await person();
    await signIn(otherPage, '/portal', otherUser.body);
    await otherPage.goto(`${base}/portal/replay`);
    expect(await otherPage.getByText('No requeue job.').count()).toBe(1);
    expect(await otherPage.content()).not.toContain(jobId);
    // Naming 1000000001 in the URL: refused as the participant API refuses it, nothing of its jobs shown.
    const asSup = await otherPage.goto(`${base}/portal/replay?as=${sup.dipId}`);
    expect(asSup?.status()).toBe(403);
    expect(await otherPage.content()).not.toContain(jobId);
  });

  it('the data portal in a browser: searchable, an example message per event code, accessible and usable from the keyboard', async () => {
    // The data portal is on the participant listener: the browser presents the participant's certificate.
    const context = await newContext(browser, { origin: td.dip.url, certPem: sds.credentials.certPem, keyPem: sds.credentials.keyPem });
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(`${td.dip.url}/catalogue`);
    await checkPage(page, 'data-portal-interfaces');
    // Keyboard only: the skip link first, then the search field, a query, Enter.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.url()).toContain('#main');
    await page.getByLabel('Search interfaces, event codes, roles, fields and data items').focus();
    await page.keyboard.type('reactivepower');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByRole('status').textContent()).toMatch(/^[1-9] interface\(s\) and 0 data item\(s\) match “reactivepower”/);
    expect(await page.getByRole('link', { name: 'IF-021', exact: true }).count()).toBe(1);
    await checkPage(page, 'data-portal-search');
    // Tab through the page to the interface's link and follow it with Enter.
    let tabs = 0;
    while ((await page.evaluate(() => document.activeElement?.textContent)) !== 'IF-021' && tabs++ < 40) await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.waitForURL('**/catalogue/interfaces/IF-021');
    await checkPage(page, 'data-portal-interface');
    // The example is a focusable region (scrollable from the keyboard) holding the message to send.
    const example = page.getByRole('region', { name: 'Example message' }).last();
    await example.focus();
    expect(await page.evaluate(() => document.activeElement?.tagName)).toBe('PRE');
    expect(JSON.parse((await example.textContent())!)[0].payload.CommonBlock.S0).toEqual({ interfaceID: 'IF-021', schemaVersion: expect.any(String), eventCode: '[ReactivePower]' });
    await page.getByRole('navigation', { name: 'Data portal' }).getByRole('link', { name: 'Business flows' }).click();
    await checkPage(page, 'data-portal-flows');
    // The dictionary: checked, not photographed (a full-page image of a thousand rows says nothing more).
    await page.getByRole('navigation', { name: 'Data portal' }).getByRole('link', { name: 'Data dictionary' }).click();
    const violations = await seriousViolations(page);
    expect(violations, describeViolations(violations)).toEqual([]);
  });

  it('an operator requeues a dead letter from the dead-letter page', async () => {
    let answer = 400;
    const receiver = await td.receiver(() => answer);
    await other.client.setWebhook('IF-021', other.dipId, { callbackURL: receiver.url });
    const sent = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [other.dipId], uniqueSuffix: 'dead' })]);
    expect(sent.status).toBe(201);
    const tx = sent.body.messageArray[0]!.transactionID!;
    // The recipient refuses it with a final 400: dead-lettered at once.
    await waitFor(async () => (await adminApi<Array<{ transactionId: string }>>('GET', `/admin/dead-letters?recipient=${other.dipId}`)).body.some((d) => d.transactionId === tx), 15_000, 'the dead letter');
    answer = 200;
    const delivered = () => messagesOf(receiver.calls).filter((m) => m.payload.CommonBlock.D0.transactionID === tx).length;
    const before = delivered();

    const page = await person();
    await signIn(page, '/operator', operator);
    // The dead letter raises an alarm: the operator reads it on the Alarms page, critical, with what to do.
    await td.dip.alarms!.evaluate();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Alarms' }).click();
    expect(await page.getByRole('heading', { level: 2 }).allTextContents()).toEqual(['Raised now', 'Recently resolved', 'Subscriptions']);
    // Critical first: the dead letter comes before the test participants' certificates (warnings, 29 days left).
    const raisedRows = page.getByRole('table', { name: /^Alarms raised now/ }).getByRole('row');
    expect(await raisedRows.nth(1).getByRole('cell').allTextContents()).toEqual(['critical', expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)? UTC \(/), 'dead-letter', other.dipId, expect.stringMatching(/dead letter/), expect.stringMatching(/^dip dead-letters list .* dip dead-letters requeue delivers them again/)]);
    // The operator API's subscription actions, as forms: operators subscribe by e-mail, then remove it.
    await page.getByLabel('Email address').fill('oncall@example.net');
    await page.getByRole('button', { name: 'Subscribe', exact: true }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('operators subscribed to dead-letter');
    const subscribed = await adminApi<{ subscriptions: Array<{ id: string; owner: string; email: string | null }> }>('GET', '/admin/alarms/subscriptions');
    expect(subscribed.body.subscriptions.filter((x) => x.email === 'oncall@example.net').map((x) => x.owner)).toEqual(['operator']);
    await checkPage(page, 'operator-alarms');
    await page.getByRole('button', { name: /^Unsubscribe operator from .*oncall@example\.net/ }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toMatch(/^subscription .* removed$/);
    expect((await adminApi<{ subscriptions: Array<{ email: string | null }> }>('GET', '/admin/alarms/subscriptions')).body.subscriptions.some((x) => x.email === 'oncall@example.net')).toBe(false);

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dead letters' }).click();
    await page.getByLabel('Recipient DIP ID').fill(other.dipId);
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByRole('checkbox', { name: new RegExp(tx) }).check();
    await checkPage(page, 'operator-dead-letters');
    await page.getByRole('button', { name: `Requeue selected for ${other.dipId} on IF-021` }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain(`1 dead letter(s) requeued at the tail of ${other.dipId}'s IF-021 queue`);
    await waitFor(() => delivered() > before, 15_000, 'the requeued dead letter delivered');
    expect((await adminApi<unknown[]>('GET', `/admin/dead-letters?recipient=${other.dipId}`)).body).toEqual([]);
    // None left dead: the alarm resolves, and the Alarms page lists it as recently resolved.
    await td.dip.alarms!.evaluate();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Alarms' }).click();
    expect(await page.getByRole('table', { name: /^Alarms raised now/ }).getByRole('row').filter({ hasText: 'dead-letter' }).count()).toBe(0);
    expect(await page.getByRole('table', { name: /^Alarms resolved lately/ }).getByRole('row').filter({ hasText: 'dead-letter' }).getByRole('cell').nth(3).textContent()).toBe(other.dipId);
    // The operator API ran it as the signed-in operator: the journal names her.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Journal' }).click();
    expect(await page.getByRole('table').textContent()).toContain('operator:ops.alice');
    const journal = await adminApi<Array<{ actor: string; action: string; target: string }>>('GET', '/admin/journal?actor=operator:ops.alice');
    expect(journal.body.some((e) => e.action === 'dead-letters.requeue' && e.target.includes(other.dipId))).toBe(true);
    await checkPage(page, 'operator-journal');
    // Reports across every participant: the messages of the tests above, from the operator reports API.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Reports' }).click();
    expect(await page.getByRole('img', { name: /^Throughput, .*Messages in: total [2-9]/ }).count()).toBe(1);
    await page.getByLabel('Recipient DIP ID (optional)').fill(other.dipId);
    await page.getByRole('button', { name: 'Show' }).click();
    await expect.poll(() => page.url()).toContain(`recipient=${other.dipId}`);
    expect(await page.getByRole('img', { name: /^Throughput, .*Errors \(dead letters\): total [1-9]/ }).count()).toBe(1);
    await checkPage(page, 'operator-reports');
    // The API activity log of every listener, narrowed to one caller: its signed calls, not the others'.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'API activity' }).click();
    await page.getByLabel('Caller (a DIP ID, or operator:name)').fill(sup.dipId);
    await page.getByRole('button', { name: 'Show' }).click();
    await expect.poll(() => page.getByRole('table').textContent()).toContain('/observability/alarm-subscriptions');
    expect(await page.getByRole('table').textContent()).not.toContain(vas.dipId);
    await checkPage(page, 'operator-activity');
  });

  it('an operator resumes a failed requeue job from the Requeue jobs page: it finishes, journalled under her name', async () => {
    const sent = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [other.dipId], uniqueSuffix: 'resume' })]);
    expect(sent.status).toBe(201);
    const queue = { recipientDipId: other.dipId, channel: 'IF-021' };
    const { headSeq } = await td.dip.backend.log.queueState(queue);
    // A job failed by a permanent store error before its first page.
    const jobId = '0193f0c4-2222-7000-8000-00000000c0d2';
    const at = Date.now();
    const jobs = td.dip.backend.requeueJobs;
    await jobs.createJob({ id: jobId, queue, filter: { fromMs: 0, toMs: Number.MAX_SAFE_INTEGER, eventCode: null, mpan: null, transactionIds: [sent.body.messageArray[0]!.transactionID!] }, upToSeq: headSeq, cursor: 0, requeued: 0, state: 'running', error: null, createdAt: at, updatedAt: at });
    await jobs.finishJob(jobId, 'failed', 'database disk image is malformed', at);

    const page = await person();
    await signIn(page, '/operator', operator);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Requeue jobs' }).click();
    const row = page.getByRole('row').filter({ hasText: jobId });
    expect(await row.textContent()).toContain('database disk image is malformed');
    await checkPage(page, 'operator-requeue-jobs');
    await row.getByRole('button', { name: `Resume job ${jobId}` }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain(`requeue job ${jobId} resumed after 0 message(s) requeued`);
    await waitFor(async () => (await jobs.job(jobId))?.state === 'done', 15_000, 'the resumed job to finish');
    expect(await jobs.job(jobId)).toMatchObject({ requeued: 1, error: null });
    const journal = await adminApi<Array<{ actor: string; target: string }>>('GET', '/admin/journal?action=requeue-job.resume');
    expect(journal.body).toContainEqual(expect.objectContaining({ actor: 'operator:ops.alice', target: jobId }));
  });

  it("an operator publishes a maintenance notice in the operator portal; a participant's user sees it in the user portal", async () => {
    expect(supAdmin).toBeDefined();
    const op = await person();
    await signIn(op, '/operator', operator);
    await op.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Maintenance' }).click();
    const start = new Date(Date.now() + 86_400_000).toISOString().slice(0, 16);
    const end = new Date(Date.now() + 90_000_000).toISOString().slice(0, 16);
    await op.getByLabel('Start (UTC)').fill(start);
    await op.getByLabel('End (UTC)').fill(end);
    await op.getByLabel('Channels (comma-separated; empty: the whole DIP)').fill('IF-021');
    await op.getByLabel('What participants are told').fill('IF-021 storage upgrade: deliveries held for up to 30 minutes.');
    await op.getByRole('button', { name: 'Publish and notify' }).click();
    await expect.poll(() => op.getByRole('status').textContent()).toContain('published; subscribers are notified');
    expect(await op.getByRole('table').textContent()).toContain('IF-021 storage upgrade');
    await checkPage(op, 'operator-maintenance');
    // Published as the signed-in operator, with the notice in the journal.
    const journal = await adminApi<Array<{ action: string; actor: string }>>('GET', '/admin/journal?action=maintenance.publish');
    expect(journal.body.map((e) => e.actor)).toContain('operator:ops.alice');

    const user = await person();
    await signIn(user, '/portal', supAdmin!);
    await user.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Maintenance' }).click();
    const listed = await user.getByRole('table').textContent();
    expect(listed).toContain('IF-021 storage upgrade: deliveries held for up to 30 minutes.');
    // UTC with UK local time beside it (src/domain/uk-time.ts): `2026-12-07 09:17 UTC (09:17 GMT)`.
    expect(listed).toMatch(new RegExp(`${start.replace('T', ' ')} UTC \\((\\d{4}-\\d\\d-\\d\\d )?\\d\\d:\\d\\d (GMT|BST)\\)`));
    await checkPage(user, 'portal-maintenance');
  });
  it('an operator withdraws a publication from the Publications page: confirmed, CSRF-checked, journalled under her name; its readers are answered 410', async () => {
    const csv = 'mpan,rate\n1234567890123,9.9\n';
    const published = await vas.client.publish('REP-002', { type: 'Misrouted', version: '1', format: 'csv' }, Buffer.from(csv), createHash('sha256').update(csv).digest('base64'));
    expect(published.status).toBe(201);
    const id = (published.body as unknown as { publication: { publicationID: string } }).publication.publicationID;
    const url = `/dip-channel/REP-002/publications/${id}/content`;
    expect((await sup.client.download(url)).status).toBe(200);

    const page = await person();
    await signIn(page, '/operator', operator);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Publications' }).click();
    const row = page.getByRole('row').filter({ hasText: id });
    await row.getByText('Withdraw…').click();
    await checkPage(page, 'operator-publications');
    // Posted by hand: without the session's CSRF token it is refused, and unconfirmed it is not withdrawn.
    const csrf = (await page.locator('input[name=_csrf]').first().getAttribute('value'))!;
    const post = (form: Record<string, string>) => page.request.post(`${td.dip.portalUrl}/operator/publications/withdraw`, { form, headers: { origin: td.dip.portalUrl } });
    expect((await post({ _csrf: 'forged', id, reason: 'forged', confirm: 'yes' })).status()).toBe(403);
    const unconfirmed = await post({ _csrf: csrf, id, reason: 'not confirmed' });
    expect([unconfirmed.status(), await unconfirmed.text()]).toEqual([400, expect.stringContaining('tick the confirmation first')]);
    expect((await sup.client.download(url)).status).toBe(200);

    const reason = 'sent to REP-002 by mistake: meant for one supplier';
    await row.getByLabel('Reason (said in every later 410)').fill(reason);
    await row.getByLabel(`I confirm: the bytes of ${id} are removed for good`).check();
    await row.getByRole('button', { name: `Withdraw ${id}` }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain(`publication ${id} (Misrouted version 1 on REP-002) withdrawn at`);
    expect(await page.getByRole('status').textContent()).toContain('by operator:ops.alice');
    const after = page.getByRole('row').filter({ hasText: id });
    expect(await after.textContent()).toContain(`withdrawn`);
    expect(await after.textContent()).toContain(reason);
    expect(await after.getByRole('button').count()).toBe(0);
    await checkPage(page, 'operator-publications-withdrawn');
    // The operator API's own withdrawal, journalled under her name; whoever could read it is told why.
    const journal = await adminApi<Array<{ actor: string; target: string; after: { withdrawn: { reason: string } } }>>('GET', `/admin/journal?action=publication.withdraw&target=${id}`);
    expect(journal.body.map((e) => [e.actor, e.target, e.after.withdrawn.reason])).toEqual([['operator:ops.alice', id, reason]]);
    const gone = await sup.client.download(url);
    const chunks: Buffer[] = [];
    for await (const c of gone.body) chunks.push(c as Buffer);
    expect([gone.status, Buffer.concat(chunks).toString()]).toEqual([410, expect.stringContaining(reason)]);
    // Again (a second tab's form): the API's 409, said on the page.
    const again = await post({ _csrf: csrf, id, reason: 'twice', confirm: 'yes' });
    expect([again.status(), await again.text()]).toEqual([409, expect.stringContaining('withdrawn already')]);
  });
});
