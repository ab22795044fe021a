/**
 * Saved reports over both APIs (spec 5.11: users configure their own reporting, e.g. by e-mail), over the
 * real listeners: a participant's system saves, lists, reads, runs and deletes its own over the signed API,
 * checked as the portal's form is (each field named), capped at 20; never another owner's (another
 * participant's, its own portal users'); refused while suspended. An operator does the same on the
 * operator API under `operator:<name>`, the key of that operator's portal reports.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportOwner, SAVED_REPORTS_PER_USER, type SavedReport } from '../src/domain/saved-report.js';
import { adminApi, type AdminAnswer } from './helpers/admin.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { mailingTo, startSmtp, type TestSmtp } from './helpers/smtp.js';

const DAY = 86_400_000;

interface Saved {
  id: string;
  owner: string;
  name: string;
  channels: string[];
  every: string;
  format: string | null;
  email: string | null;
  nextDueAt: number | null;
}

describe('saved reports over the APIs', () => {
  let t: TestDip;
  let smtp: TestSmtp;
  let sup: TestParticipant;
  let sds: TestParticipant;
  let olga: (method: string, path: string, body?: unknown) => Promise<AdminAnswer>;
  let otto: (method: string, path: string, body?: unknown) => Promise<AdminAnswer>;

  beforeAll(async () => {
    smtp = await startSmtp();
    t = await startTestDip(mailingTo(smtp));
    sup = await t.participant('1000000001', ['SUP']);
    sds = await t.participant('2000000001', ['SDS']);
    const bootstrap = adminApi(t);
    // A viewer: saving one's own report changes nothing of the DIP's (as in the operator portal).
    olga = adminApi(t, (await bootstrap('POST', '/admin/operators', { name: 'olga', role: 'viewer', automation: true })).body.token);
    otto = adminApi(t, (await bootstrap('POST', '/admin/operators', { name: 'otto', role: 'operator', automation: true })).body.token);
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  const save = (p: TestParticipant, body: Record<string, unknown>) => p.client.call<Saved>('POST', '/observability/saved-reports', JSON.stringify(body), { 'content-type': 'application/json' });
  const mine = async (p: TestParticipant) => (await p.client.call<{ savedReports: Saved[] }>('GET', '/observability/saved-reports', '')).body.savedReports;
  /** A report as a portal's store keeps it (what a portal user or operator saved on the Reports page). */
  const portalReport = async (owner: string, participantDipId: string | null, name: string): Promise<SavedReport> => {
    const r: SavedReport = { id: `portal-${name}`, owner, participantDipId, name, definition: { report: 'latency', period: 'day', channels: [], sender: null, recipient: null }, mailing: null, createdAt: 0, nextDueAt: null };
    expect(await t.dip.backend.savedReports.create(r, SAVED_REPORTS_PER_USER)).toBeNull();
    return r;
  };

  it("a participant's system saves a report (its channels in the catalogue's spelling, e-mailed daily), lists, reads and runs it, then deletes it", async () => {
    const made = await save(sup, { name: ' IF-021 daily ', report: 'throughput', period: 'day', channels: ['if-021'], every: 'daily', format: 'csv', email: 'ops@supplier.example' });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ owner: `participant:${sup.dipId}`, name: 'IF-021 daily', report: 'throughput', period: 'day', channels: ['IF-021'], sender: null, recipient: null, every: 'daily', format: 'csv', email: 'ops@supplier.example' });
    expect(made.body.nextDueAt).toBeGreaterThan(Date.now());
    // Nothing is e-mailed to an address before it agrees: the save says a confirmation e-mail went to it.
    const { emailConfirmation, ...stored } = made.body as Saved & { emailConfirmation?: string };
    expect(emailConfirmation).toBe('requested');
    const id = made.body.id;
    expect((await mine(sup)).map((r) => r.id)).toEqual([id]);
    expect((await sup.client.call<Saved>('GET', `/observability/saved-reports/${id}`, '')).body).toEqual(stored);

    const before = Date.now();
    const ran = await sup.client.call<{ id: string; report: string; from: string; to: string; granularity: string; rows: unknown[] }>('GET', `/observability/saved-reports/${id}/run`, '');
    expect(ran.status).toBe(200);
    expect(ran.body).toMatchObject({ id, report: 'throughput', granularity: 'hour' });
    expect(Date.parse(ran.body.to) - Date.parse(ran.body.from)).toBe(DAY);
    expect(Date.parse(ran.body.to)).toBeGreaterThanOrEqual(before);
    expect(Array.isArray(ran.body.rows)).toBe(true);

    expect((await sup.client.call('DELETE', `/observability/saved-reports/${id}`, '')).status).toBe(204);
    expect((await sup.client.call('GET', `/observability/saved-reports/${id}`, '')).status).toBe(404);
    expect((await sup.client.call('DELETE', `/observability/saved-reports/${id}`, '')).status).toBe(404);
    expect(await mine(sup)).toEqual([]);
  });

  it('refuses each field as the portal does, naming it (400), and keeps nothing', async () => {
    const ok = { name: 'checked', report: 'latency', period: 'week' };
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...ok, name: '   ' }, 'name: 1 to 80 characters'],
      [{ ...ok, name: 'x'.repeat(81) }, 'name: 1 to 80 characters'],
      [{ ...ok, report: 'volume' }, 'report must be one of'],
      [{ ...ok, period: 'year' }, 'period must be one of'],
      [{ ...ok, channels: ['IF-021', 'IF-999'] }, 'channels: IF-999 is no channel of this DIP'],
      [{ ...ok, sender: 'not-a-dip-id' }, 'sender: a DIP ID (10 letters or digits)'],
      [{ ...ok, recipient: '12345' }, 'recipient: a DIP ID (10 letters or digits)'],
      [{ ...ok, every: 'hourly' }, 'every must be one of'],
      [{ ...ok, every: 'weekly' }, 'format: csv or summary'],
      [{ ...ok, every: 'weekly', format: 'summary', email: 'nobody' }, 'email: an address such as name@company.example'],
      [{ ...ok, colour: 'red' }, 'colour'],
    ];
    const answered: string[] = [];
    for (const [body, problem] of cases) {
      const a = await save(sds, body);
      if (a.status !== 400 || !JSON.stringify(a.body).includes(problem)) answered.push(`${JSON.stringify(body).slice(0, 80)}: ${a.status} ${JSON.stringify(a.body).slice(0, 300)}`);
    }
    expect(answered).toEqual([]);
    expect(await mine(sds)).toEqual([]);
    expect((await save(sds, ok)).status).toBe(201);
    const twice = await save(sds, ok);
    expect(twice.status).toBe(400);
    expect(JSON.stringify(twice.body)).toContain('name: you have a saved report called \\"checked\\" already');
  });

  it("never answers another owner's report: another participant's, nor its own portal users' (404, nothing removed)", async () => {
    const theirs = (await save(sds, { name: 'sds only', report: 'throughput', period: 'month' })).body.id;
    const users = await portalReport(reportOwner({ participantDipId: sup.dipId, username: 'sam' }), sup.dipId, 'sam');
    for (const id of [theirs, users.id]) {
      expect((await sup.client.call('GET', `/observability/saved-reports/${id}`, '')).status).toBe(404);
      expect((await sup.client.call('GET', `/observability/saved-reports/${id}/run`, '')).status).toBe(404);
      const removed = await sup.client.call('DELETE', `/observability/saved-reports/${id}`, '');
      expect(removed.status).toBe(404);
      expect(JSON.stringify(removed.body)).toContain(`you have no saved report ${id}`);
    }
    expect((await mine(sup)).map((r) => r.id)).not.toContain(users.id);
    expect((await mine(sds)).map((r) => r.id)).toContain(theirs);
    expect(await t.dip.backend.savedReports.get(users.owner, users.id)).toBeDefined();
  });

  it(`caps an owner at ${SAVED_REPORTS_PER_USER} saved reports; another owner's allowance is its own`, async () => {
    const capped = await t.participant('3000000001', ['SUP']);
    for (let i = 0; i < SAVED_REPORTS_PER_USER; i++) expect((await save(capped, { name: `r${i}`, report: 'throughput', period: 'day' })).status).toBe(201);
    const full = await save(capped, { name: 'one more', report: 'throughput', period: 'day' });
    expect(full.status).toBe(400);
    expect(JSON.stringify(full.body)).toContain(`you keep ${SAVED_REPORTS_PER_USER} saved reports`);
    expect(await mine(capped)).toHaveLength(SAVED_REPORTS_PER_USER);
    expect((await save(sup, { name: 'not capped', report: 'throughput', period: 'day' })).status).toBe(201);
  });

  it('refuses a suspended participant (403, the reason) on every saved-report route, as every signed call', async () => {
    const held = await t.participant('4000000001', ['SUP']);
    const id = (await save(held, { name: 'held', report: 'throughput', period: 'day' })).body.id;
    expect((await adminApi(t)('POST', `/admin/participants/${held.dipId}/suspend`, { reason: 'under review' })).status).toBe(200);
    const calls: Array<[string, string, string]> = [
      ['GET', '/observability/saved-reports', ''],
      ['POST', '/observability/saved-reports', JSON.stringify({ name: 'more', report: 'throughput', period: 'day' })],
      ['GET', `/observability/saved-reports/${id}`, ''],
      ['GET', `/observability/saved-reports/${id}/run`, ''],
      ['DELETE', `/observability/saved-reports/${id}`, ''],
    ];
    for (const [method, path, body] of calls) {
      const a = await held.client.call(method, path, body, body ? { 'content-type': 'application/json' } : {});
      expect([a.status, JSON.stringify(a.body).includes('is suspended by the DIP operator')], `${method} ${path}`).toEqual([403, true]);
    }
    expect(await t.dip.backend.savedReports.get(`participant:${held.dipId}`, id)).toBeDefined();
  });

  it("an operator keeps its own under operator:<name>, the key of its portal reports; another operator's are none of its; the bootstrap token keeps none", async () => {
    const portals = await portalReport(reportOwner({ participantDipId: null, username: 'olga' }), null, 'olga from the portal');
    // A participant's user of the same name is another realm: never the operator's.
    const namesake = await portalReport(reportOwner({ participantDipId: sup.dipId, username: 'olga' }), sup.dipId, 'a user called olga');
    const made = await olga('POST', '/admin/saved-reports', { name: 'all suppliers', report: 'throughput', period: 'week', channels: ['IF-021'], every: 'weekly', format: 'summary', email: 'noc@dip.example' });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ owner: 'operator:olga', every: 'weekly', format: 'summary', email: 'noc@dip.example' });
    const listed = (await olga('GET', '/admin/saved-reports')).body.savedReports as Saved[];
    expect(listed.map((r) => r.id)).toEqual([portals.id, made.body.id]);
    expect(listed.map((r) => r.id)).not.toContain(namesake.id);
    const ran = await olga('GET', `/admin/saved-reports/${made.body.id}/run`);
    expect(ran.status).toBe(200);
    expect(ran.body).toMatchObject({ id: made.body.id, report: 'throughput', granularity: 'day' });
    expect(Date.parse(ran.body.to) - Date.parse(ran.body.from)).toBe(7 * DAY);

    expect((await otto('GET', '/admin/saved-reports')).body).toEqual({ savedReports: [] });
    expect((await otto('GET', `/admin/saved-reports/${made.body.id}`)).status).toBe(404);
    expect((await otto('DELETE', `/admin/saved-reports/${made.body.id}`)).status).toBe(404);
    const bad = await otto('POST', '/admin/saved-reports', { name: 'x', report: 'throughput', period: 'day', channels: ['IF-999'] });
    expect(bad).toMatchObject({ status: 400, body: { error: 'channels: IF-999 is no channel of this DIP' } });
    const bootstrap = await adminApi(t)('GET', '/admin/saved-reports');
    expect(bootstrap.status).toBe(403);
    expect(bootstrap.body.error).toContain('the bootstrap token is no operator account');

    expect((await olga('DELETE', `/admin/saved-reports/${made.body.id}`)).status).toBe(204);
    expect(((await olga('GET', '/admin/saved-reports')).body.savedReports as Saved[]).map((r) => r.id)).toEqual([portals.id]);
  });
});
