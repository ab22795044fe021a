import 'reflect-metadata';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { adminApi } from './helpers/admin.js';
import { describeViolations, screenshot, seriousViolations, startMailingPortal, type MailingPortal } from './helpers/browser.js';
import { waitFor, type TestDip } from './helpers/dip-harness.js';
import type { TestSmtp } from './helpers/smtp.js';

const DIP_ID = '1000000044';
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');
const feed = [{ companyRegNumber: '04444444', companyName: 'Delta Energy Ltd', companyDetails: [{ MPID: 'DELT', marketRole: 'X', DIPID: DIP_ID, DIPRole: 'SUP', datetimeFrom: iso(Date.now() - 3_600_000), datetimeTo: null }] }];

/**
 * Participant administration in the operator portal (spec 5.12.2 "Create User", "Manage User", "Certificate
 * Management") in a real browser, every page checked with axe-core: an operator registers a participant (a role
 * the register does not give refused by name first), its API key shown once and its first administrator invited
 * over a real SMTP conversation; suspends and reactivates it; is refused a certificate renewal (an admin's); a
 * read-only operator is refused a suspension.
 */
describe('operator portal: participants', () => {
  let portal: MailingPortal;
  let td: TestDip;
  let smtp: TestSmtp;
  let admin: ReturnType<typeof adminApi>;
  let csr: string;

  async function checkPage(p: Page, name: string): Promise<void> {
    const violations = await seriousViolations(p);
    expect(violations, describeViolations(violations)).toEqual([]);
    await screenshot(p, name);
  }
  /** An operator account made on the API, signed in the first time in a browser of its own. */
  async function operatorSignedIn(name: string, role: 'operator' | 'viewer'): Promise<Page> {
    const made = await admin('POST', '/admin/operators', { name, role, displayName: `${name} (${role})` });
    expect(made.status).toBe(201);
    return portal.signedIn('/operator', name, (made.body as { password: string }).password);
  }

  beforeAll(async () => {
    ({ td, smtp, admin, csr } = portal = await startMailingPortal(feed, 'file:register.json', 'Delta Energy'));
  });
  afterAll(async () => portal?.close());

  it('register → invite → suspend → reactivate; certificates are an admin’s; a viewer changes nothing', async () => {
    const ops = await operatorSignedIn('ops.otto', 'operator');
    await ops.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Participants', exact: true }).click();
    await checkPage(ops, 'operator-participants');
    const fill = async (roles: string) => {
      await ops.getByLabel('Company name').fill('Delta Energy Ltd');
      await ops.getByLabel('MPIDs (comma-separated)').fill('DELT');
      await ops.getByLabel('DIP roles (comma-separated, as the register gives them)').fill(roles);
      await ops.getByLabel('First administrator: name').fill('Dora Delta');
      await ops.getByLabel('First administrator: e-mail address').fill('dora@delta.example');
      await ops.getByLabel("The company's certificate signing request (PEM)").fill(csr);
      await ops.getByRole('button', { name: 'Register participant' }).click();
    };
    await fill('SUP, LDSO');
    await expect.poll(() => ops.getByRole('alert').textContent()).toContain(`roles: the central register does not give ${DIP_ID} the role LDSO now (it gives SUP)`);
    await checkPage(ops, 'operator-participant-refused');
    await fill('SUP');
    await expect.poll(() => ops.getByRole('status').textContent()).toContain(`${DIP_ID} registered with the roles SUP;`);
    expect(await ops.getByRole('region', { name: 'Participant API key' }).textContent()).toMatch(/^dip_\S+$/);
    await checkPage(ops, 'operator-participant-registered');
    await waitFor(() => smtp.mails.length === 1, 10_000, 'the invitation');
    expect(smtp.mails[0]!.to).toEqual(['dora@delta.example']);
    expect(smtp.mails[0]!.data).toMatch(/first password: \S+/);

    await ops.getByRole('link', { name: `Participant ${DIP_ID}` }).click();
    await ops.getByLabel('Reason for suspending (said to the participant in every refusal)').fill('contract ended pending review');
    await ops.getByRole('button', { name: `Suspend ${DIP_ID}` }).click();
    await expect.poll(() => ops.getByRole('status').textContent()).toContain(`${DIP_ID} suspended`);
    expect(await ops.locator('main').textContent()).toContain('suspended since');
    await checkPage(ops, 'operator-participant-suspended');
    expect((await admin('GET', '/admin/participants')).body[0].suspended).toMatchObject({ by: 'operator:ops.otto', reason: 'contract ended pending review' });

    // A renewal is an admin's (certificates are security): the operator is told why.
    await ops.getByLabel('New certificate signing request from the participant (PEM)').fill(csr);
    await ops.getByRole('button', { name: `Issue and register a new certificate for ${DIP_ID}` }).click();
    await expect.poll(() => ops.getByRole('alert').textContent()).toContain('only an admin changes security');

    const viewer = await operatorSignedIn('vera', 'viewer');
    await viewer.goto(`${td.dip.portalUrl}/operator/participants/${DIP_ID}`);
    await viewer.getByRole('button', { name: `Reactivate ${DIP_ID}` }).click();
    await expect.poll(() => viewer.getByRole('alert').textContent()).toContain('a viewer changes nothing');
    expect((await admin('GET', '/admin/participants')).body[0].suspended).not.toBeNull();

    await ops.getByRole('button', { name: `Reactivate ${DIP_ID}` }).click();
    await expect.poll(() => ops.getByRole('status').textContent()).toContain(`${DIP_ID} reactivated`);
    expect((await admin('GET', '/admin/participants')).body[0].suspended).toBeNull();

    // Its first administrator signs in from the invitation and stops the maintenance e-mails (the opt-out):
    // a notice published before reaches the address, one published after does not.
    const notice = async (text: string) => {
      const published = await admin('POST', '/admin/maintenance', { start: new Date(Date.now() + 86_400_000).toISOString(), end: new Date(Date.now() + 90_000_000).toISOString(), text });
      expect(published.status).toBe(201);
    };
    await notice('First window.');
    await waitFor(() => smtp.mails.some((m) => m.to.includes('dora@delta.example') && m.data.includes('First window.')), 10_000, 'the first notice to the administrator');
    const invitation = smtp.mails[0]!.data.replace(/=\r?\n/g, '');
    const dora = await portal.signedIn('/portal', /username: (\S+)/.exec(invitation)![1]!, /first password: (\S+)/.exec(invitation)![1]!);
    await dora.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Maintenance', exact: true }).click();
    expect(await dora.locator('main').textContent()).toContain('e-mailed to dora@delta.example');
    await checkPage(dora, 'portal-maintenance-mail');
    await dora.getByRole('button', { name: 'Stop e-mailing maintenance notices' }).click();
    await expect.poll(() => dora.getByRole('status').textContent()).toContain('no longer e-mailed');
    // The operators subscribe too: the next notice is sent (to them), and not to the address opted out.
    expect((await admin('POST', '/admin/alarms/subscriptions', { rules: ['maintenance'], email: 'ops@dip.example' })).status).toBe(201);
    await notice('Second window.');
    await waitFor(() => smtp.mails.some((m) => m.to.includes('ops@dip.example') && m.data.includes('Second window.')), 10_000, 'the second notice to the operators');
    expect(smtp.mails.filter((m) => m.to.includes('dora@delta.example') && m.data.includes('Second window.'))).toEqual([]);

    // Suspended, its users' portal refuses every page (reads too, as its API does) with the reason; they
    // could set webhooks, change the provider and download publications while the API refused the participant.
    expect((await admin('POST', `/admin/participants/${DIP_ID}/suspend`, { reason: 'audit in progress' })).status).toBe(200);
    const suspended = await dora.goto(`${td.dip.portalUrl}/portal/webhooks`);
    expect(suspended?.status()).toBe(403);
    expect(await dora.getByRole('alert').textContent()).toContain(`${DIP_ID} is suspended by the DIP operator`);
    expect(await dora.getByRole('alert').textContent()).toContain('audit in progress');
    expect((await admin('POST', `/admin/participants/${DIP_ID}/reactivate`)).status).toBe(200);
    expect((await dora.goto(`${td.dip.portalUrl}/portal/webhooks`))?.status()).toBe(200);

    // The operator makes a viewer of the participant directly, then disables and enables it: each journalled with the level and before and after.
    await ops.goto(`${td.dip.portalUrl}/operator/participants/${DIP_ID}`);
    const form = ops.getByRole('group', { name: `New portal user for ${DIP_ID}` });
    await form.getByLabel('Username').fill('vic.viewer');
    await form.getByLabel('Name', { exact: true }).fill('Vic Viewer');
    await form.getByLabel('Level').selectOption('viewer');
    await form.getByRole('button', { name: 'Create user' }).click();
    await expect.poll(() => ops.getByRole('status').textContent()).toContain(`user vic.viewer created for ${DIP_ID} (viewer)`);
    await checkPage(ops, 'operator-participant-viewer-created');
    expect((await admin('GET', `/admin/portal/accounts?participant=${DIP_ID}`)).body).toEqual(expect.arrayContaining([expect.objectContaining({ username: 'vic.viewer', level: 'viewer', admin: false })]));
    await ops.getByRole('button', { name: 'Disable vic.viewer' }).click();
    await expect.poll(() => ops.getByRole('status').textContent()).toContain('vic.viewer disabled');
    await ops.getByRole('button', { name: 'Enable vic.viewer' }).click();
    await expect.poll(() => ops.getByRole('status').textContent()).toContain('vic.viewer enabled');
    const userActs = ((await admin('GET', '/admin/journal?target=vic.viewer')).body as Array<{ action: string; actor: string; before: unknown; after: unknown }>).map((e) => [e.actor, e.action, e.before, e.after]);
    expect(userActs).toEqual(
      expect.arrayContaining([
        ['operator:ops.otto', 'user.create', null, expect.objectContaining({ participant: DIP_ID, level: 'viewer' })],
        ['operator:ops.otto', 'user.disable', { participant: DIP_ID, disabled: false }, { disabled: true, sessionsEnded: true }],
        ['operator:ops.otto', 'user.enable', { participant: DIP_ID, disabled: true }, { disabled: false, sessionsEnded: true }],
      ]),
    );
    expect(userActs).toHaveLength(3);

    const actions = ((await admin('GET', `/admin/journal?target=${DIP_ID}`)).body as Array<{ action: string; actor: string }>).map((e) => `${e.actor} ${e.action}`);
    expect(actions).toEqual(expect.arrayContaining(['operator:ops.otto participant.create', 'operator:ops.otto participant.suspend', 'operator:ops.otto participant.reactivate', `user:${DIP_ID}:dora.${DIP_ID} participant.maintenance-email`]));
  });
});
