import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nextMailAfter, reportOwner } from '../src/domain/saved-report.js';
import { adminApi } from './helpers/admin.js';
import { describeViolations, firstSignIn, launchBrowser, newContext, screenshot, seriousViolations } from './helpers/browser.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { mailingTo, startSmtp, type TestSmtp } from './helpers/smtp.js';

/**
 * Saved reports in the user portal (spec 5.11: users configure their own reporting, e.g. by e-mail), in a
 * real browser: a viewer narrows the Reports page, saves it under a name to be e-mailed daily, opens it
 * again (the filters come back, the report runs now), deletes another; another user of the same
 * participant can neither open nor delete it (404); an operator saves one of the operator portal's page,
 * which no participant's user can open; at 06:00 UTC the report is e-mailed over SMTP.
 */
describe('user portal: saved reports', () => {
  let td: TestDip;
  let smtp: TestSmtp;
  let browser: Browser;
  let sup: TestParticipant;
  const clock = new ShiftableClock();
  const contexts: BrowserContext[] = [];

  /** A user of the supplier at the level asked, signed in at their first sign-in. */
  async function signedIn(username: string, level: 'viewer' | 'operations'): Promise<Page> {
    const made = await adminApi(td)('POST', '/admin/portal/accounts', { username, displayName: username, participantDipId: sup.dipId, admin: false });
    expect(made.status).toBe(201);
    // The operator API makes a user at operations; an administrator lowers it on the Users page (test/portal-levels.e2e.test.ts).
    if (level === 'viewer') await td.dip.backend.portalAccounts.changeAccount('user', username, { level: 'viewer' });
    const context = await newContext(browser);
    contexts.push(context);
    const page = await context.newPage();
    await firstSignIn(page, td.dip.portalUrl, '/portal', username, (made.body as { password: string }).password);
    return page;
  }

  beforeAll(async () => {
    smtp = await startSmtp();
    td = await startTestDip(mailingTo(smtp), undefined, { clock });
    sup = await td.participant('1000000001', ['SUP']);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    for (const c of contexts) await c.close();
    await browser?.close();
    await td?.close();
    await smtp?.close();
  });

  it('a viewer saves the report shown, opens it with its filters, deletes one; another user gets 404; the daily e-mail goes at 06:00 UTC', async () => {
    const viewer = await signedIn('sup.viewer', 'viewer');
    await viewer.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Reports', exact: true }).click();
    await viewer.getByLabel('Period').selectOption('week');
    await viewer.getByLabel('Channels (optional: interface IDs, comma-separated)').fill('IF-021');
    await viewer.getByRole('button', { name: 'Show' }).click();
    await viewer.waitForURL(/period=week/);

    // Saved with the filters shown, e-mailed daily as a summary.
    await viewer.getByLabel('Name').fill('IF-021 this week');
    await viewer.getByLabel('Send by e-mail').selectOption('daily');
    await viewer.getByLabel('To (e-mail address)').fill('vera@supplier.example');
    await viewer.getByRole('button', { name: 'Save report' }).click();
    expect(await viewer.getByRole('status').textContent()).toContain('saved "IF-021 this week": e-mailed daily to vera@supplier.example');
    // A second, not e-mailed, of the same filters; a third of the same name is refused, naming the field.
    await viewer.getByLabel('Name').fill('to delete');
    await viewer.getByRole('button', { name: 'Save report' }).click();
    await viewer.getByLabel('Name').fill('to delete');
    await viewer.getByRole('button', { name: 'Save report' }).click();
    expect(await viewer.getByRole('alert').textContent()).toContain('not saved: name: you have a saved report called "to delete" already');
    const saved = viewer.getByRole('table', { name: /Your saved reports/ });
    expect(await saved.getByRole('row').count()).toBe(3);
    expect(await saved.getByRole('row', { name: /IF-021 this week/ }).textContent()).toContain('throughput, the last 7 days, per day, on IF-021');
    const accessible = await seriousViolations(viewer);
    expect(accessible, describeViolations(accessible)).toEqual([]);
    await screenshot(viewer, 'portal-saved-reports');

    // Opened from the page without filters: the report runs now with the saved ones.
    await viewer.goto(`${td.dip.portalUrl}/portal/reports`);
    await viewer.getByRole('link', { name: 'IF-021 this week' }).click();
    await viewer.waitForURL(/\/portal\/reports\?period=week&channel=IF-021$/);
    expect(await viewer.getByLabel('Channels (optional: interface IDs, comma-separated)').inputValue()).toBe('IF-021');
    expect(await viewer.getByLabel('Period').inputValue()).toBe('week');

    // Another user of the same participant: the report is none of its (404), and stays.
    const href = (await viewer.getByRole('link', { name: 'IF-021 this week' }).getAttribute('href'))!;
    const id = decodeURIComponent(href.split('/').at(-1)!);
    const other = await signedIn('sup.other', 'operations');
    expect((await other.goto(`${td.dip.portalUrl}${href}`))?.status()).toBe(404);
    const csrf = (await other.locator('input[name=_csrf]').first().getAttribute('value'))!;
    const removed = await other.request.post(`${td.dip.portalUrl}/portal/reports/saved/remove`, { form: { _csrf: csrf, id }, headers: { origin: td.dip.portalUrl } });
    expect(removed.status()).toBe(404);
    expect(await td.dip.backend.savedReports.get(reportOwner({ participantDipId: sup.dipId, username: 'sup.viewer' }), id)).toBeDefined();
    await other.goto(`${td.dip.portalUrl}/portal/reports`);
    expect(await other.locator('main').textContent()).toContain('You have no saved report');

    // The viewer deletes its own.
    await saved.getByRole('button', { name: 'Delete to delete' }).click();
    expect(await viewer.getByRole('status').textContent()).toContain('saved report deleted');
    expect(await viewer.getByRole('table', { name: /Your saved reports/ }).getByRole('row').count()).toBe(2);

    // An operator (a viewer: its own reports change nothing of the DIP's) saves one of the operator
    // portal's Reports page, across every participant; no participant's user can open it.
    const made = await adminApi(td)('POST', '/admin/operators', { name: 'ops.olga', role: 'viewer', displayName: 'Olga' });
    expect(made.status).toBe(201);
    const context = await newContext(browser);
    contexts.push(context);
    const ops = await context.newPage();
    await firstSignIn(ops, td.dip.portalUrl, '/operator', 'ops.olga', (made.body as { password: string }).password);
    await ops.goto(`${td.dip.portalUrl}/operator/reports?period=day&recipient=${sup.dipId}`);
    await ops.getByLabel('Name').fill('To the supplier');
    await ops.getByLabel('Report (what an e-mail carries)').selectOption('latency');
    await ops.getByRole('button', { name: 'Save report' }).click();
    expect(await ops.getByRole('status').textContent()).toContain('saved "To the supplier"');
    await ops.getByRole('link', { name: 'To the supplier' }).click();
    await ops.waitForURL(new RegExp(`/operator/reports\\?period=day&recipient=${sup.dipId}$`));
    const [opsReport] = await td.dip.backend.savedReports.list(reportOwner({ participantDipId: null, username: 'ops.olga' }));
    expect(opsReport).toMatchObject({ participantDipId: null, definition: { report: 'latency', period: 'day', channels: [], sender: null, recipient: sup.dipId } });
    expect((await viewer.goto(`${td.dip.portalUrl}/portal/reports/saved/${opsReport!.id}`))?.status()).toBe(404);

    // The address agrees first (secrev3 M1): its one confirmation e-mail's link, then the page's button.
    const text = (data: string) => data.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
    const asks = smtp.mails.filter((m) => m.to.includes('vera@supplier.example')).map((m) => text(m.data));
    expect(asks).toHaveLength(1);
    expect(asks[0]).toContain('Subject: OpenDIP: may we e-mail reports to this address?');
    const link = /\/portal\/mail\/confirm\?token=dipmail_[\w-]+/.exec(asks[0]!)![0];
    await viewer.goto(`${td.dip.portalUrl}${link}`);
    await viewer.getByRole('button', { name: 'Agree to the reports' }).click();
    expect(await viewer.getByRole('status').textContent()).toContain('agreed');

    // 06:00 UTC: the daily e-mail, over SMTP, once.
    clock.jump(nextMailAfter('daily', clock.now()) - clock.now() + 1_000);
    const isReport = (m: { to: string[]; data: string }) => m.to.includes('vera@supplier.example') && text(m.data).includes('OpenDIP report:');
    await waitFor(() => smtp.mails.some(isReport), 10_000, 'the saved report e-mailed');
    const mail = text(smtp.mails.find(isReport)!.data);
    expect(mail).toContain('Subject: OpenDIP report: IF-021 this week');
    expect(mail).toContain('/portal/reports?period=week&channel=IF-021');
    expect((await td.dip.backend.savedReports.get(reportOwner({ participantDipId: sup.dipId, username: 'sup.viewer' }), id))?.nextDueAt).toBe(nextMailAfter('daily', clock.now()));
  });
});
