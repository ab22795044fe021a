import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIF021 } from '../src/sim/messages.js';
import { adminApi } from './helpers/admin.js';
import { describeViolations, firstSignIn, launchBrowser, newContext, screenshot, seriousViolations } from './helpers/browser.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/**
 * The audit reports of spec 5.11.3 (figures 16 to 19) in a real browser: a data service's user lists what
 * it sent (Sent / DIP / Received marks, each a word as well as a colour), follows one message through a
 * business process by its transaction ID, and opens its detailed audit, choosing a recipient; a recipient's
 * user finds it by MPAN and sees its own copy only; another participant's user gets 404 for its URLs and
 * nothing from its IDs; an operator sees every recipient. Every page is checked with axe-core.
 */
describe('portals: audit reports (spec 5.11.3)', () => {
  let td: TestDip;
  let browser: Browser;
  let admin: ReturnType<typeof adminApi>;
  let sds: TestParticipant;
  let supA: TestParticipant;
  let supB: TestParticipant;
  let supC: TestParticipant;
  let supD: TestParticipant;
  /** Sent by the data service to three suppliers: delivered to A (webhook), pending for B (no webhook), refused by D (400: dead-lettered). */
  let tx: string;
  const mpan = '1200000000009';
  const contexts: BrowserContext[] = [];

  async function signedIn(base: '/portal' | '/operator', username: string, password: string): Promise<Page> {
    const context = await newContext(browser);
    contexts.push(context);
    const page = await context.newPage();
    await firstSignIn(page, td.dip.portalUrl, base, username, password);
    return page;
  }

  async function user(username: string, participantDipId: string): Promise<Page> {
    const made = await admin('POST', '/admin/portal/accounts', { username, displayName: username, participantDipId, admin: false });
    expect(made.status).toBe(201);
    return signedIn('/portal', username, (made.body as { password: string }).password);
  }

  async function checkPage(page: Page, name: string): Promise<void> {
    const violations = await seriousViolations(page);
    expect(violations, describeViolations(violations)).toEqual([]);
    await screenshot(page, name);
  }

  const main = (page: Page) => page.locator('main').textContent();

  beforeAll(async () => {
    td = await startTestDip();
    admin = adminApi(td);
    sds = await td.participant('2000000001', ['SDS']);
    supA = await td.participant('1000000001', ['SUP']);
    supB = await td.participant('1000000002', ['SUP']);
    supC = await td.participant('1000000003', ['SUP']);
    supD = await td.participant('1000000004', ['SUP']);
    const r = await td.receiver();
    expect((await supA.client.setWebhook('IF-021', supA.dipId, { callbackURL: `${r.url}dip` })).status).toBe(201);
    const refusing = await td.receiver(() => 400);
    expect((await supD.client.setWebhook('IF-021', supD.dipId, { callbackURL: `${refusing.url}dip` })).status).toBe(201);
    expect((await admin('POST', '/admin/mpan/changes', [{ mpan, slot: 'SUP', dipId: supA.dipId, effectiveFrom: '2020-01-01T00:00:00Z' }])).status).toBe(200);
    const sent = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', mpan, primaryRecipients: [supA.dipId, supB.dipId, supD.dipId], uniqueSuffix: 'audit' })]);
    expect(sent.status).toBe(201);
    tx = sent.body.messageArray[0]!.transactionID!;
    await waitFor(async () => {
      const j = await admin('GET', `/admin/reports/journey/${tx}`);
      const events = j.status === 200 ? (j.body as { rows: Array<{ event: string }> }).rows.map((e) => e.event) : [];
      return events.includes('delivered') && events.includes('dead-lettered');
    }, 15_000, 'the delivery to the first supplier and the dead letter of the last journalled');
    browser = await launchBrowser();
  });

  afterAll(async () => {
    for (const c of contexts) await c.close();
    await browser?.close();
    await td?.close();
  });

  it("the sender lists what it sent with Sent / DIP / Received marks, traces it, and opens its detailed audit choosing a recipient", async () => {
    const page = await user('sds.audit', sds.dipId);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit', exact: true }).click();
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Audit: messages sent');
    // Choosing the business process selects its channels (IF-021 is one of data collection's).
    await page.getByLabel('Business process').selectOption('data-collection');
    await page.getByRole('button', { name: 'Show' }).click();
    await expect.poll(() => page.url()).toContain('process=data-collection');
    const table = page.getByRole('table', { name: /message\(s\) sent/ });
    const row = table.getByRole('row').filter({ hasText: tx });
    expect(await row.count()).toBe(1);
    const cells = await row.getByRole('cell').allTextContents();
    expect(cells[4]).toContain('✓ accepted 201');
    expect(cells[5]).toContain('✓ archived and routed');
    expect(cells[6]).toContain(`${supA.dipId}: ✓ delivered`);
    expect(cells[6]).toContain(`${supB.dipId}: … pending`);
    expect(cells[6]).toContain(`${supD.dipId}: ✗ dead-lettered`);
    await checkPage(page, 'portal-audit-sent');

    // Another process's channels: not this message.
    await page.goto(`${td.dip.portalUrl}/portal/audit?process=service-appointment`);
    expect(await page.getByText('No message sent in this period on these channels.').count()).toBe(1);
    // A channel that does not exist is named.
    const bad = await page.goto(`${td.dip.portalUrl}/portal/audit?channels=IF-999`);
    expect(bad?.status()).toBe(400);
    expect(await page.getByRole('alert').textContent()).toContain('IF-999 is no channel of this DIP');

    // Figure 17: the process, followed by the ID that links it.
    await page.goto(`${td.dip.portalUrl}/portal/audit/trace`);
    await page.getByLabel('Business process').selectOption('data-collection');
    await page.getByLabel('Or transaction ID').fill(tx);
    await page.getByRole('button', { name: 'Trace' }).click();
    const traced = page.getByRole('table', { name: `Messages linked by transaction ID ${tx} that ${sds.dipId} sent or received` });
    expect(await traced.getByRole('row').filter({ hasText: tx }).getByRole('cell').nth(1).textContent()).toBe('3');
    await checkPage(page, 'portal-audit-trace');

    // Figure 19: the detailed audit, from the link.
    await traced.getByRole('link', { name: tx }).click();
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe(`Journey of ${tx}`);
    const workflow = await page.locator('ol.workflow').textContent();
    expect(workflow).toContain('✓ accepted 201');
    expect(workflow).toContain('✓ written to the archive');
    expect(workflow).toContain('✗ 1 dead letter(s)');
    const recipients = page.getByRole('table', { name: /Each recipient/ });
    expect(await recipients.getByRole('row', { name: new RegExp(supA.dipId) }).textContent()).toMatch(/✓ delivered\s*\d+(\.\d)? (ms|s)/);
    expect(await recipients.getByRole('row', { name: new RegExp(supB.dipId) }).textContent()).toContain('… pending');
    const refused = await recipients.getByRole('row', { name: new RegExp(supD.dipId) }).textContent();
    expect(refused).toContain('✗ dead-lettered');
    expect(refused).toContain('last answered 400 (rejected)');
    expect(refused).toContain(`✓ the DIP returns a status message to ${sds.dipId}`);
    expect(await page.locator('ol.timeline').textContent()).toContain(`delivered to ${supA.dipId}`);
    await page.getByLabel('Recipient', { exact: true }).selectOption(supB.dipId);
    await page.getByRole('button', { name: 'Show' }).click();
    await expect.poll(() => page.getByRole('heading', { level: 2, name: `Timeline: ${supB.dipId}` }).count()).toBe(1);
    expect(await page.locator('ol.timeline').textContent()).not.toContain(supA.dipId);
    // The sender sees the header, not a recipient's copy of the payload.
    expect(await main(page)).toContain('none is shown here');
    await checkPage(page, 'portal-audit-detail');
    // The status message the detailed audit says went back is the sender's to read.
    await waitFor(async () => {
      await page.goto(`${td.dip.portalUrl}/portal/status-messages`);
      return (await main(page))!.includes(tx);
    }, 15_000, 'the status message returned to the sender');
  });

  it("a recipient finds the message by MPAN, sees its own copy only and its payload; another participant's IDs and URLs give it nothing", async () => {
    const page = await user('supa.audit', supA.dipId);
    await page.goto(`${td.dip.portalUrl}/portal/audit/mpan`);
    await page.getByLabel('MPAN (13 digits)').fill(mpan);
    await page.getByRole('button', { name: 'Find' }).click();
    const found = page.getByRole('table', { name: `Messages about MPAN ${mpan} that ${supA.dipId} sent or received` });
    const row = await found.getByRole('row').filter({ hasText: tx }).textContent();
    expect(row).toContain(`${supA.dipId}: ✓ delivered`);
    // Another recipient's copy is not its to see.
    expect(row).not.toContain(supB.dipId);
    await checkPage(page, 'portal-audit-mpan');
    await found.getByRole('link', { name: tx }).click();
    expect(await page.getByRole('table', { name: /Each recipient/ }).textContent()).not.toContain(supB.dipId);
    await page.getByText(`Message as delivered to ${supA.dipId}`, { exact: true }).click();
    expect(await page.getByRole('region', { name: `Message as delivered to ${supA.dipId}` }).textContent()).toContain(tx);
    await checkPage(page, 'portal-audit-recipient-detail');

    // A supplier that neither sent nor received it.
    const other = await user('supc.audit', supC.dipId);
    const journey = await other.goto(`${td.dip.portalUrl}/portal/messages/IF-021/${tx}`);
    expect(journey?.status()).toBe(404);
    expect(await other.content()).not.toContain(supA.dipId);
    const trace = await other.goto(`${td.dip.portalUrl}/portal/audit/trace?transactionId=${tx}`);
    expect(trace?.status()).toBe(200);
    expect(await main(other)).toContain('No message that you may see is linked by it.');
    const byMpan = await other.goto(`${td.dip.portalUrl}/portal/audit/mpan?mpan=${mpan}`);
    expect(byMpan?.status()).toBe(403);
    expect(await other.getByRole('alert').textContent()).toContain(`${supC.dipId} has never been responsible for MPAN ${mpan}`);
    const sent = await other.goto(`${td.dip.portalUrl}/portal/audit?process=data-collection`);
    expect(sent?.status()).toBe(200);
    expect(await main(other)).not.toContain(tx);
    // Acting as the sender by editing the URL: the participant API's own refusal.
    const asSender = await other.goto(`${td.dip.portalUrl}/portal/audit?as=${sds.dipId}`);
    expect(asSender?.status()).toBe(403);
    expect((await other.goto(`${td.dip.portalUrl}/portal/messages/IF-021/${tx}?as=${sds.dipId}`))?.status()).toBe(403);
    // The other pending recipient's journey URL on another channel: as if it did not exist.
    expect((await page.goto(`${td.dip.portalUrl}/portal/messages/IF-022/${tx}`))?.status()).toBe(404);
  });

  it('an operator lists, traces and audits across participants, every recipient shown', async () => {
    const made = await admin('POST', '/admin/operators', { name: 'ops.audit', role: 'viewer', displayName: 'Audit' });
    expect(made.status).toBe(201);
    const page = await signedIn('/operator', 'ops.audit', (made.body as { password: string }).password);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit', exact: true }).click();
    await page.getByLabel('Sender DIP ID (optional: every sender)').fill(sds.dipId);
    await page.getByRole('button', { name: 'Show' }).click();
    const row = await page.getByRole('table', { name: /message\(s\) sent/ }).getByRole('row').filter({ hasText: tx }).textContent();
    expect(row).toContain(`${supA.dipId}: ✓ delivered`);
    expect(row).toContain(`${supB.dipId}: … pending`);
    await checkPage(page, 'operator-audit-sent');
    await page.goto(`${td.dip.portalUrl}/operator/audit/mpan?mpan=${mpan}`);
    expect(await page.getByRole('table', { name: `Messages about MPAN ${mpan}` }).textContent()).toContain(tx);
    await page.getByRole('link', { name: tx }).click();
    const recipients = await page.getByRole('table', { name: /Each recipient/ }).textContent();
    expect(recipients).toContain(supA.dipId);
    expect(recipients).toContain(supB.dipId);
    await checkPage(page, 'operator-audit-detail');
    expect((await page.goto(`${td.dip.portalUrl}/operator/messages/T-none`))?.status()).toBe(404);
  });
});
