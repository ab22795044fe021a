import 'reflect-metadata';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminApi } from './helpers/admin.js';
import { checkPage, startMailingPortal, type MailingPortal } from './helpers/browser.js';
import type { TestDip } from './helpers/dip-harness.js';

const BY_PORTAL = '1000000061';
const BY_API = '1000000062';
const NEVER = '1000000069';
const REASON = 'left the market <script>document.title="x"</script> & "more"';

interface Entry {
  actor: string;
  action: string;
  target: string;
  before: Record<string, unknown>;
  after: Record<string, unknown>;
  status: number | null;
}

/**
 * Offboarding from the operator portal (README "Participants without outage"), in a real browser checked
 * with axe-core: the participant page's Offboard form (a reason and a confirmation) offboards through the
 * operator API, journalled as `dip offboard` and the API journal it; the offboarded participant's page is
 * no 404 but says when, by whom and why, with its journal, and offers no action.
 */
describe('operator portal: offboarding', () => {
  let portal: MailingPortal;
  let td: TestDip;
  let admin: ReturnType<typeof adminApi>;

  // The journal read with an operator-role token: once an admin account exists the bootstrap token is refused.
  let reader: ReturnType<typeof adminApi>;
  const offboardEntry = async (dipId: string): Promise<Entry[]> => (await reader('GET', `/admin/journal?target=${dipId}&action=participant.offboard`)).body as Entry[];

  beforeAll(async () => {
    ({ td, admin } = portal = await startMailingPortal([], 'file:register.json', 'Offboard Test'));
    await td.participant(BY_PORTAL, ['SUP']);
    await td.participant(BY_API, ['SUP']);
  });
  afterAll(async () => portal?.close());

  it('offboards with a reason and a confirmation, journalled as the API does; the page then shows it offboarded, with its history and no action', async () => {
    reader = adminApi(td, ((await admin('POST', '/admin/operators', { name: 'journal.reader', role: 'operator', automation: true })).body as { token: string }).token);
    // Offboarded by the API (with the bootstrap token, while no admin account exists).
    expect((await admin('POST', `/admin/participants/${BY_API}/offboard`, { reason: 'by the API' })).status).toBe(200);
    // An admin's: offboarding revokes the participant's certificates (test/portal-forms.test.ts refuses the operator role).
    const made = await admin('POST', '/admin/operators', { name: 'ops.olga', role: 'admin', displayName: 'Olga' });
    expect(made.status).toBe(201);
    const ops = await portal.signedIn('/operator', 'ops.olga', (made.body as { password: string }).password);
    await ops.goto(`${td.dip.portalUrl}/operator/participants/${BY_PORTAL}`);
    await ops.getByText(`Offboard ${BY_PORTAL}…`).click();
    await checkPage(ops, 'operator-participant-offboard-form');
    await ops.getByLabel('Reason for offboarding (journalled)').fill(REASON);
    // Unticked, the browser keeps the form (required): nothing is offboarded.
    await ops.getByRole('button', { name: `Offboard ${BY_PORTAL}` }).click();
    expect((await offboardEntry(BY_PORTAL)).length).toBe(0);
    await ops.getByLabel(`I confirm: ${BY_PORTAL} is offboarded for good`).check();
    await ops.getByRole('button', { name: `Offboard ${BY_PORTAL}` }).click();
    await expect.poll(() => ops.getByRole('status').textContent()).toContain(`${BY_PORTAL} offboarded`);

    // Journalled once, by the operator, exactly as the API path journals an offboarding (the same keys before and after).
    const [portalEntry, ...more] = await offboardEntry(BY_PORTAL);
    const [apiEntry] = await offboardEntry(BY_API);
    expect(more).toEqual([]);
    expect(portalEntry).toMatchObject({ actor: 'operator:ops.olga', action: 'participant.offboard', target: BY_PORTAL, status: apiEntry!.status, after: { reason: REASON, certificatesRevoked: 1 } });
    expect(Object.keys(portalEntry!.before).sort()).toEqual(Object.keys(apiEntry!.before).sort());
    expect(Object.keys(portalEntry!.after).sort()).toEqual(Object.keys(apiEntry!.after).sort());

    // The page after the act, and opened again: offboarded, when, by whom, why (escaped), its journal; no action.
    const shownOffboarded = async () => {
      const main = (await ops.locator('main').textContent()) ?? '';
      expect(main).toContain('offboarded at');
      expect(main).toContain('by operator:ops.olga');
      expect(main).toContain(REASON);
      expect(await ops.locator('main script').count()).toBe(0);
      expect(await ops.title()).not.toBe('x');
      expect(await ops.locator('main form').count()).toBe(0);
      expect(await ops.locator('main button').count()).toBe(0);
      expect(await ops.getByRole('table', { name: new RegExp(`Journal entries on ${BY_PORTAL}`) }).getByText('participant.offboard').count()).toBe(1);
    };
    await shownOffboarded();
    expect((await ops.goto(`${td.dip.portalUrl}/operator/participants/${BY_PORTAL}`))?.status()).toBe(200);
    await shownOffboarded();
    await checkPage(ops, 'operator-participant-offboarded');
    await ops.getByRole('link', { name: 'Its journal entries' }).click();
    expect(ops.url()).toContain(`/operator/journal?target=${BY_PORTAL}`);

    // Offboarded by the API: the same page, with that reason and actor.
    await ops.goto(`${td.dip.portalUrl}/operator/participants/${BY_API}`);
    expect(await ops.locator('main').textContent()).toContain('by bootstrap: by the API');
    // Offboarding it again is refused saying when and by whom (the API's 409), through the portal too.
    const again = await ops.request.post(`${td.dip.portalUrl}/operator/participants/${BY_API}/offboard`, { form: { reason: 'again', confirm: 'yes', _csrf: await csrfOf(ops) } });
    expect(again.status()).toBe(409);
    expect(await again.text()).toContain(`${BY_API} was already offboarded at`);
    // A DIP ID never registered is still a 404.
    expect((await ops.goto(`${td.dip.portalUrl}/operator/participants/${NEVER}`))?.status()).toBe(404);
  });
});

/** The signed-in page's CSRF token, as its forms carry it. */
async function csrfOf(p: Page): Promise<string> {
  await p.goto(new URL('/operator/participants', p.url()).href);
  return (await p.locator('input[name="_csrf"]').first().getAttribute('value')) ?? '';
}
