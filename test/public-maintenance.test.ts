/**
 * The public maintenance page (spec 5.13.5 "published on the system website") on the anonymous listener:
 * a real HTTPS client without a client certificate, and a real browser that renders the page. The DIP's
 * clock is shifted, never waited for, to see a window end and then leave the page.
 */
import type { Browser } from 'playwright-core';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { calendarText, foldLine } from '../src/domain/icalendar.js';
import { publicWindows, RECENTLY_ENDED_MS, withdrawnWindows, type MaintenanceNotice } from '../src/domain/maintenance.js';
import { describeViolations, launchBrowser, newContext, screenshot, seriousViolations } from './helpers/browser.js';
import { adminApi } from './helpers/admin.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, type TestDip } from './helpers/dip-harness.js';

const hour = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();

describe('public maintenance windows: which are listed', () => {
  const notice = (id: string, start: number, end: number, state: MaintenanceNotice['state'] = 'published'): MaintenanceNotice => ({
    id, version: 1, start, end, text: id, scope: { kind: 'dip' }, state, publishedAt: 0, publishedBy: 'op', changedAt: 0, changedBy: 'op',
  });
  it('keeps published windows to come, in progress and ended within a day, soonest first; never a withdrawn one', () => {
    const now = 100 * hour;
    const listed = publicWindows(
      [notice('MN-1', now + 5 * hour, now + 6 * hour), notice('MN-2', now - hour, now + hour), notice('MN-3', now - 3 * hour, now - 2 * hour), notice('MN-4', now - 30 * hour, now - RECENTLY_ENDED_MS - 1), notice('MN-5', now + hour, now + 2 * hour, 'withdrawn')],
      now,
    );
    expect(listed.map((n) => n.id)).toEqual(['MN-3', 'MN-2', 'MN-1']);
  });
  it('keeps withdrawn windows for the calendar feed (as cancelled) for as long as they would have been listed', () => {
    const now = 100 * hour;
    const withdrawn = (id: string, start: number, end: number) => notice(id, start, end, 'withdrawn');
    const cancelled = withdrawnWindows([withdrawn('MN-6', now + hour, now + 2 * hour), withdrawn('MN-7', now - 3 * hour, now - 2 * hour), withdrawn('MN-8', now - 30 * hour, now - RECENTLY_ENDED_MS - 1), notice('MN-9', now, now + hour)], now);
    expect(cancelled.map((n) => n.id)).toEqual(['MN-7', 'MN-6']);
  });
});

describe('iCalendar text', () => {
  it('escapes backslashes, semicolons, commas and newlines, and folds at 75 octets without splitting a character', () => {
    expect(calendarText('a\\b;c,d\ne')).toBe('a\\\\b\\;c\\,d\\ne');
    const folded = foldLine(`DESCRIPTION:${'é'.repeat(60)}`);
    const lines = folded.split('\r\n');
    expect(lines.length).toBeGreaterThan(1);
    for (const l of lines) expect(Buffer.byteLength(l)).toBeLessThanOrEqual(75);
    expect(lines.map((l, i) => (i === 0 ? l : l.slice(1))).join('')).toBe(`DESCRIPTION:${'é'.repeat(60)}`);
  });
});

describe('the public maintenance page on the anonymous listener', () => {
  const clock = new ShiftableClock();
  let t: TestDip;
  let admin: ReturnType<typeof adminApi>;
  let anonymous: Agent;
  let browser: Browser;
  let base: string;
  const hostile = 'Database <script>alert(1)</script> & "upgrade": ingest answers 503';
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    t = await startTestDip({ publications: { ...DEFAULTS.publications, anonymous: { ...DEFAULTS.publications.anonymous, enabled: true, host: '127.0.0.1', port: 0 } } }, undefined, { clock });
    admin = adminApi(t);
    anonymous = new Agent({ connect: { ca: t.dip.pki.ca.certPem, servername: 'localhost' } });
    base = `https://localhost:${t.dip.publicPort}`;
    const now = clock.now();
    const publish = async (name: string, start: number, end: number, channels?: string[]) => {
      const r = await admin('POST', '/admin/maintenance', { start: iso(start), end: iso(end), text: name === 'dip' ? hostile : `Window ${name}`, ...(channels ? { channels } : {}) });
      expect(r.status).toBe(201);
      ids[name] = (r.body as { id: string }).id;
    };
    await publish('dip', now + 3 * 24 * hour, now + 3 * 24 * hour + 2 * hour);
    await publish('channels', now + 4 * 24 * hour, now + 4 * 24 * hour + hour, ['IF-021', 'IF-002']);
    await publish('soon over', now + hour / 2, now + hour);
    await publish('withdrawn', now + 5 * 24 * hour, now + 5 * 24 * hour + hour);
    expect((await admin('POST', `/admin/maintenance/${ids.withdrawn}/withdraw`)).status).toBe(200);
  });
  afterAll(async () => {
    await browser?.close();
    await anonymous?.close();
    await t?.close();
  });

  const get = async (path: string) => {
    const res = await request(`${base}${path}`, { dispatcher: anonymous });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  };

  it('answers the page without a client certificate: windows to come with their scope, text escaped, no withdrawn one, no operator, cacheable', async () => {
    const res = await get('/maintenance');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.headers['cache-control']).toBe('public, max-age=60');
    expect(String(res.headers['content-security-policy'])).toContain("default-src 'none'");
    expect(res.text).toContain('Database &#60;script&#62;alert(1)&#60;/script&#62; &#38; &#34;upgrade&#34;');
    expect(res.text).not.toContain('<script>');
    expect(res.text).toContain('the whole DIP');
    expect(res.text).toContain('channels IF-002, IF-021');
    expect(res.text).not.toContain(ids.withdrawn);
    // Who published a window is the operator's business (the admin token's actor), never the public's.
    const journal = (await admin('GET', `/admin/journal?target=${ids.dip}`)).body as Array<{ actor: string }>;
    expect(journal[0]!.actor.length).toBeGreaterThan(0);
    expect(res.text).not.toContain(journal[0]!.actor);
    // UTC and UK local time, the zone named (seconds shown when the instant has some: these are now-based).
    expect(res.text).toMatch(/\d{2}:\d{2}(?::\d{2})? UTC \((?:\d{4}-\d{2}-\d{2} )?\d{2}:\d{2}(?::\d{2})? (?:GMT|BST)\)/);
  });

  it('answers the same windows as JSON, with UK local time beside UTC, and as an iCalendar feed', async () => {
    const json = await get('/maintenance.json');
    expect(json.status).toBe(200);
    expect(json.headers['cache-control']).toBe('public, max-age=60');
    const body = JSON.parse(json.text) as { timeZone: string; windows: Array<Record<string, unknown>> };
    expect(body.timeZone).toBe('Europe/London');
    expect(body.windows.map((w) => w.id)).toEqual([ids['soon over'], ids.dip, ids.channels]);
    expect(body.windows[1]).toMatchObject({ status: 'upcoming', scope: 'dip', channels: [], text: hostile, startUk: expect.stringMatching(/ (GMT|BST)$/) });
    expect(Object.keys(body.windows[1]!).sort()).toEqual(['changedAt', 'channels', 'end', 'endUk', 'id', 'scope', 'start', 'startUk', 'status', 'text', 'version']);

    const ics = await get('/maintenance.ics');
    expect(ics.status).toBe(200);
    expect(ics.headers['content-type']).toMatch(/^text\/calendar/);
    expect(ics.text.startsWith('BEGIN:VCALENDAR\r\nVERSION:2.0\r\n')).toBe(true);
    expect(ics.text.match(/BEGIN:VEVENT/g)).toHaveLength(4);
    // The withdrawn window is sent cancelled, its SEQUENCE past the published one's (0): a calendar that
    // imported it marks it cancelled (it was left out of the feed, and calendars kept it).
    const events = ics.text.split('BEGIN:VEVENT').slice(1);
    const cancelled = events.filter((e) => e.includes('\r\nSTATUS:CANCELLED\r\n'));
    expect(cancelled).toHaveLength(1);
    expect(cancelled[0]).toContain(`UID:${ids.withdrawn}.maintenance.`);
    expect(cancelled[0]).toContain('\r\nSEQUENCE:1\r\n');
    expect(events.filter((e) => e.includes(`UID:${ids.dip}.maintenance.`))[0]).not.toContain('STATUS:');
    expect(ics.text).toContain('SUMMARY:DIP maintenance: channels IF-002\\, IF-021');
    for (const line of ics.text.split('\r\n')) expect(Buffer.byteLength(line)).toBeLessThanOrEqual(75);
    // A name the routes do not read is refused, as on the listener's publications routes.
    expect((await get('/maintenance.json?chanel=IF-021')).status).toBe(400);
  });

  it('keeps a window that ended for a day, marked ended, then drops it', async () => {
    clock.jump(2 * hour);
    const ended = JSON.parse((await get('/maintenance.json')).text) as { windows: Array<{ id: string; status: string }> };
    expect(ended.windows.find((w) => w.id === ids['soon over'])?.status).toBe('ended');
    clock.jump(RECENTLY_ENDED_MS);
    const later = JSON.parse((await get('/maintenance.json')).text) as { windows: Array<{ id: string }> };
    expect(later.windows.map((w) => w.id)).toEqual([ids.dip, ids.channels]);
  });

  it('renders in a real browser: the table, the text as text, no serious accessibility violation', async () => {
    browser = await launchBrowser();
    const context = await newContext(browser);
    const page = await context.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(`${base}/maintenance`);
    await expect(page.getByRole('heading', { name: 'Maintenance windows' }).isVisible()).resolves.toBe(true);
    const table = page.getByRole('table', { name: 'Maintenance windows' });
    await expect(table.getByRole('row').count()).resolves.toBe(3);
    await expect(table.getByText(hostile).isVisible()).resolves.toBe(true);
    // The stylesheet loaded under the page's policy (the header's border is its rule).
    await expect(page.locator('header').evaluate((e) => getComputedStyle(e).borderBottomWidth)).resolves.toBe('2px');
    expect(dialogs).toEqual([]);
    const violations = await seriousViolations(page);
    expect(violations, describeViolations(violations)).toEqual([]);
    await screenshot(page, 'public-maintenance');
    await context.close();
  });
});
