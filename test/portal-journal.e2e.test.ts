import 'reflect-metadata';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { adminApi } from './helpers/admin.js';
import { checkPage, startMailingPortal, type MailingPortal } from './helpers/browser.js';
import type { TestDip } from './helpers/dip-harness.js';

const HOSTILE = '=HYPERLINK("http://evil.example","x")';

/**
 * The operator portal's Journal page (README "Portals"): filtered by period, actor, action and participant
 * as GET /admin/journal filters, operated from the keyboard alone, with a link to the CSV of the same
 * filter (the API's formula-safe CSV), in a real browser checked with axe-core.
 */
describe('operator portal: journal', () => {
  let portal: MailingPortal;
  let td: TestDip;
  let admin: ReturnType<typeof adminApi>;

  beforeAll(async () => {
    ({ td, admin } = portal = await startMailingPortal([], 'file:register.json', 'Journal Test'));
    const at = Date.parse('2026-11-30T09:00:00Z');
    const journal = td.dip.backend.journal;
    await journal.append({ at, actor: 'operator:bob', action: 'participant.suspend', target: '1000000071', before: { suspended: null }, after: { reason: 'review' }, status: 200 });
    await journal.append({ at: at + 60_000, actor: 'operator:bob', action: 'participant.reactivate', target: '1000000071', before: null, after: null, status: 200 });
    await journal.append({ at: at + 120_000, actor: 'operator:bob', action: 'participant.suspend', target: HOSTILE, before: null, after: { reason: '<b>x</b>' }, status: 200 });
    await journal.append({ at: at + 180_000, actor: 'operator:carol', action: 'participant.suspend', target: '1000000071', before: null, after: null, status: 200 });
    await journal.append({ at: at + 86_400_000, actor: 'operator:bob', action: 'participant.suspend', target: '1000000071', before: null, after: null, status: 200 });
  });
  afterAll(async () => portal?.close());

  it('filters by period, actor, action and participant from the keyboard; its CSV link gives the same entries, formula-safe', async () => {
    const made = await admin('POST', '/admin/operators', { name: 'ops.jules', role: 'viewer', displayName: 'Jules' });
    expect(made.status).toBe(201);
    const ops = await portal.signedIn('/operator', 'ops.jules', (made.body as { password: string }).password);
    await ops.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Journal', exact: true }).click();

    // The dates by the date pickers' own entry (Chromium's datetime-local takes Tab between its parts); the
    // rest by keyboard only: each field reached with Tab from the one before, typed into, the form sent with Enter.
    await ops.getByLabel('From (UTC)').fill('2026-11-30T09:00');
    await ops.getByLabel('Up to (UTC, that minute included)').fill('2026-11-30T09:02');
    await ops.getByLabel('Actor (e.g. operator:alice)').focus();
    await ops.keyboard.type('operator:bob');
    const typeNext = async (label: string, text: string) => {
      await ops.keyboard.press('Tab');
      expect(await ops.evaluate(() => document.activeElement?.id)).toBe(await ops.getByLabel(label).getAttribute('id'));
      await ops.keyboard.type(text);
    };
    await typeNext('Action (e.g. participant.offboard)', 'participant.suspend');
    await ops.keyboard.press('Enter');
    await ops.waitForURL(/actor=operator%3Abob/);
    const table = ops.getByRole('table', { name: /Operator actions/ });
    // 09:00 and 09:02 (the minute named is in the period): suspend only, bob only, not the next day's.
    const targets = async () => (await table.locator('tbody tr td:nth-child(4)').allTextContents());
    expect(await targets()).toEqual([HOSTILE, '1000000071']);
    expect(await table.locator('tbody b').count()).toBe(0);
    await checkPage(ops, 'operator-journal-filtered');

    // The CSV of the same filter: reached by Tab, the same entries, a formula written as text.
    const link = ops.getByRole('link', { name: 'Download these entries as CSV' });
    await ops.getByLabel('Participant or other target (a DIP ID, a username, a channel)').focus();
    for (let i = 0; i < 3 && !(await link.evaluate((a) => a === document.activeElement)); i++) await ops.keyboard.press('Tab');
    expect(await link.evaluate((a) => a === document.activeElement)).toBe(true);
    const csv = await ops.request.get(new URL((await link.getAttribute('href'))!, ops.url()).href);
    expect(csv.status()).toBe(200);
    expect(csv.headers()['content-type']).toBe('text/csv; charset=utf-8');
    const rows = parse<Record<string, string>>(await csv.text(), { columns: true });
    expect(rows.map((r) => r.target)).toEqual([`'${HOSTILE}`, '1000000071']);
    expect(rows.map((r) => r.actor)).toEqual(['operator:bob', 'operator:bob']);

    // By participant: every action on it, whoever did it.
    await ops.goto(`${td.dip.portalUrl}/operator/journal?target=1000000071`);
    expect(await targets()).toEqual(['1000000071', '1000000071', '1000000071', '1000000071']);
    // A filter that is no date is refused, named, on the page and its CSV alike.
    expect((await ops.goto(`${td.dip.portalUrl}/operator/journal?from=yesterday`))?.status()).toBe(400);
    expect(await ops.getByRole('alert').textContent()).toContain('from: "yesterday" is not a date and time');
    expect((await ops.request.get(`${td.dip.portalUrl}/operator/journal.csv?from=yesterday`)).status()).toBe(400);
  });
});
