import 'reflect-metadata';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { adminApi } from './helpers/admin.js';
import { describeViolations, firstSignIn, screenshot, seriousViolations, startMailingPortal, type MailingPortal } from './helpers/browser.js';
import { waitFor, type TestDip } from './helpers/dip-harness.js';
import type { Mail, TestSmtp } from './helpers/smtp.js';

const DIP_ID = '1000000055';
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');
const feed = [{ companyRegNumber: '07654321', companyName: 'Bright Supply Ltd', companyDetails: [{ MPID: 'BRSU', marketRole: 'X', DIPID: DIP_ID, DIPRole: 'SUP', datetimeFrom: iso(Date.now() - 3_600_000), datetimeTo: null }] }];

/** A message's body as sent, quoted-printable undone. */
const mailText = (mail: Mail): string => mail.data.slice(mail.data.search(/\r?\n\r?\n/)).replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));

/**
 * Company self-onboarding (spec 5.12.1 "User Onboarding") in a real browser, every page checked with axe-core:
 * a company applies on the user portal's public form (a field refused first, by name), its contact opens the
 * link e-mailed (a real SMTP conversation) and confirms, an operator approves it in the operator portal
 * (seeing the register check: the register's roles are granted, not the claim's), and the invited contact
 * signs in with the e-mailed first password, setting up their authenticator and their own password.
 */
describe('portal: a company applies, an operator approves, the contact signs in', () => {
  let portal: MailingPortal;
  let td: TestDip;
  let smtp: TestSmtp;
  let admin: ReturnType<typeof adminApi>;
  let csr: string;
  const page = (): Promise<Page> => portal.page();
  async function checkPage(p: Page, name: string): Promise<void> {
    const violations = await seriousViolations(p);
    expect(violations, describeViolations(violations)).toEqual([]);
    await screenshot(p, name);
  }
  beforeAll(async () => {
    ({ td, smtp, admin, csr } = portal = await startMailingPortal(feed, 'file:m16.json', 'Bright Supply'));
  });
  afterAll(async () => portal?.close());

  it('apply → verify → approve → the invited contact signs in', async () => {
    // The company: from the sign-in page to the form.
    const applicant = await page();
    await applicant.goto(`${td.dip.portalUrl}/portal/sign-in`);
    await applicant.getByRole('link', { name: 'Apply to use the DIP' }).click();
    await applicant.getByLabel('Company name').fill('Bright Supply Ltd');
    await applicant.getByLabel('Market Participant IDs (MPIDs)').fill('BRSU, BRS');
    await applicant.getByLabel('DIP roles').fill('SUP, MDS');
    await applicant.getByLabel('Your name').fill('Bea Bright');
    await applicant.getByLabel('Your e-mail address').fill('bea@brightsupply.example');
    await applicant.getByLabel('Certificate signing request (PEM)').fill(csr);
    await applicant.getByRole('button', { name: 'Apply' }).click();
    // Refused by field, what was typed kept: the MPID field says why and is marked invalid.
    await expect.poll(() => applicant.locator('#mpids-problem').textContent()).toContain("'BRS' is not an MPID (4 letters)");
    expect(await applicant.getByLabel('Market Participant IDs (MPIDs)').getAttribute('aria-invalid')).toBe('true');
    await checkPage(applicant, 'portal-apply-refused');
    await applicant.getByLabel('Market Participant IDs (MPIDs)').fill('BRSU');
    await applicant.getByRole('button', { name: 'Apply' }).click();
    await expect.poll(() => applicant.getByRole('status').textContent()).toContain('application received');
    await checkPage(applicant, 'portal-apply-sent');

    // The contact's e-mail: the link opens a page whose button confirms.
    await waitFor(() => smtp.mails.length === 1, 10_000, 'the verification e-mail');
    const link = /(https:\/\/\S+\/portal\/apply\/verify\?token=[\w-]+)/.exec(mailText(smtp.mails[0]!))![1]!;
    await applicant.goto(link);
    await checkPage(applicant, 'portal-apply-confirm');
    await applicant.getByRole('button', { name: 'Confirm application' }).click();
    await expect.poll(() => applicant.getByRole('status').textContent()).toContain('application confirmed');

    // The operator: the review queue, the register check, approval.
    const made = await admin('POST', '/admin/operators', { name: 'ops.olga', role: 'operator', displayName: 'Olga (operator)' });
    expect(made.status).toBe(201);
    const operator = await page();
    await firstSignIn(operator, td.dip.portalUrl, '/operator', 'ops.olga', (made.body as { password: string }).password);
    await operator.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Applications', exact: true }).click();
    await checkPage(operator, 'operator-applications');
    await operator.getByRole('link', { name: 'Bright Supply Ltd' }).click();
    const check = (await operator.locator('main').textContent())!;
    expect(check).toContain(DIP_ID);
    expect(check).toMatch(/Claimed, not in the register\s*MDS/);
    await checkPage(operator, 'operator-application');
    await operator.getByRole('button', { name: 'Approve' }).click();
    await expect.poll(() => operator.getByRole('status').textContent()).toContain(`approved: ${DIP_ID} registered with the roles SUP; the invitation was e-mailed to bea@brightsupply.example`);
    expect(await operator.getByRole('region', { name: 'Participant API key' }).textContent()).toMatch(/^dip_\S+$/);

    // The contact: the invitation's first password, a first sign-in, their participant's portal.
    await waitFor(() => smtp.mails.length === 2, 10_000, 'the invitation');
    const invitation = mailText(smtp.mails[1]!);
    const contact = await page();
    await firstSignIn(contact, td.dip.portalUrl, '/portal', /username: (\S+)/.exec(invitation)![1]!, /first password: (\S+)/.exec(invitation)![1]!);
    expect(await contact.locator('header').textContent()).toContain(`Bea Bright (${DIP_ID})`);
    await checkPage(contact, 'portal-onboarded');
  });
});
