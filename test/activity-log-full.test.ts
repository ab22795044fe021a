import { readFileSync } from 'node:fs';
import { DEFAULTS } from '../src/config.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminTokenFile } from '../src/api/admin.js';
import type { SqliteActivityLog } from '../src/adapters/sqlite/activity-log.js';
import { verifyActivityLog } from '../src/pipeline/activity-recorder.js';
import { buildIF021 } from '../src/sim/messages.js';
import { adminApi } from './helpers/admin.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/**
 * A fault campaign's disk full for the API activity log only (SQLite: activity.db, a file of its own, at
 * its size cap as on a full disk): requests are still answered, the audit gap is told to the operator
 * (alarm, metrics) while it lasts, and what waited is written once space returns.
 */
describe('the activity log on a full disk', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  const clock = new ShiftableClock();
  let n = 0;
  const items = (count: number) =>
    Array.from({ length: count }, () => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `al${n++}` }));

  beforeAll(async () => {
    t = await startTestDip({}, undefined, { clock });
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
  });
  afterAll(async () => t?.close());

  it('answers every request, raises the activity-log alarm and its metrics while records wait, and writes them once space returns', async () => {
    const admin = adminApi(t);
    const token = readFileSync(adminTokenFile(t.config.dataDir), 'utf8').trim();
    const metrics = async () => (await fetch(`http://127.0.0.1:${t.dip.adminPort}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    const sample = async (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await metrics())?.[1] ?? NaN);
    const alarms = async () => (await admin('GET', '/admin/alarms')).body.alarms as Array<{ rule: string; summary: string }>;
    const store = t.dip.activityStore as SqliteActivityLog;
    await t.dip.activity!.flush();
    store.setSizeLimit(1); // capped at its current size: the next page it needs is refused

    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const answer = await sds.client.submit('IF-021', items(10));
      expect(answer.status).toBe(201);
      ids.push(String(answer.headers['x-request-id']));
    }
    await waitFor(async () => (await sample('dip_activity_log_waiting')) >= 30, 10_000, 'records to wait for the activity log');
    clock.jump(10_000); // an alarm evaluation
    await waitFor(async () => (await alarms()).some((a) => a.rule === 'activity-log'), 10_000, 'the activity-log alarm');
    const alarm = (await alarms()).find((a) => a.rule === 'activity-log')!;
    expect(alarm.summary).toMatch(/the API activity log cannot be written: database or disk is full; \d+ records wait in memory/);
    // A count that only grows since the start: a counter, so rate() and increase() read it (before: a gauge named without _total).
    expect(await metrics()).toContain('# TYPE dip_activity_log_refused_total counter');
    expect(await sample('dip_activity_log_refused_total')).toBe(0);
    // GET /admin/health names it beside the store, with its backlog; still 200 (requests are answered).
    const health = await admin('GET', '/admin/health');
    expect(health.status).toBe(200);
    expect(health.body.activityLog).toMatchObject({ state: 'unavailable', reason: 'database or disk is full', full: false, refused: 0 });
    expect(health.body.activityLog.waiting).toBeGreaterThanOrEqual(30);
    expect(health.body.activityLog.since).toEqual(expect.any(Number));

    store.setSizeLimit(null);
    await waitFor(async () => (await sample('dip_activity_log_waiting')) === 0, 10_000, 'the waiting records to be written');
    clock.jump(10_000);
    await waitFor(async () => !(await alarms()).some((a) => a.rule === 'activity-log'), 10_000, 'the alarm resolved');
    // ok again (the operator's own calls just made may wait for the next flush: no count here).
    const after = (await admin('GET', '/admin/health')).body.activityLog;
    expect(after).toMatchObject({ state: 'ok', full: false, refused: 0 });
    expect(after).not.toHaveProperty('reason');
    // Nothing of the gap is lost: every submission made during it is in the log, and the chain verifies.
    const recorded = new Set(((await admin('GET', '/admin/activity?limit=1000')).body as Array<{ requestId: string }>).map((r) => r.requestId));
    expect(ids.filter((id) => !recorded.has(id))).toEqual([]);
    expect(await verifyActivityLog(store)).toMatchObject({ ok: true });
  });
});

/**
 * The same full disk lasting until the backlog is full (observability.activityLog.maxWaiting, small here):
 * records past the cap were dropped and counted while requests were served. Now a request that cannot be
 * audited is not served: 503 with Retry-After, counted, alarmed, and summed up in the log once it has room.
 */
describe('the activity log backlog full', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  const clock = new ShiftableClock();
  let n = 0;
  const items = () => [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `bf${n++}` })];

  beforeAll(async () => {
    t = await startTestDip({ observability: { ...DEFAULTS.observability, activityLog: { ...DEFAULTS.observability.activityLog, maxWaiting: 50 } } }, undefined, { clock });
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
  });
  afterAll(async () => t?.close());

  it('refuses new requests 503 with Retry-After, counts and alarms them, serves the liveness probe, and records the refusals once there is room', async () => {
    const admin = adminApi(t);
    const token = readFileSync(adminTokenFile(t.config.dataDir), 'utf8').trim();
    const sample = async (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await (await fetch(`http://127.0.0.1:${t.dip.adminPort}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text())?.[1] ?? NaN);
    const store = t.dip.activityStore as SqliteActivityLog;
    await t.dip.activity!.flush();
    store.setSizeLimit(1);

    // Served until the log's last page is full and 50 records wait (well above what one 200 ms flush takes here); from then on refused, nothing of them done.
    const answers: Array<{ status: number; retryAfter: unknown; body: unknown }> = [];
    while (answers.filter((a) => a.status === 503).length < 3 && answers.length < 500) {
      const a = await sds.client.submit('IF-021', items());
      answers.push({ status: a.status, retryAfter: a.headers['retry-after'], body: a.body });
    }
    const first = answers.findIndex((a) => a.status === 503);
    expect(first).toBeGreaterThan(0);
    expect(new Set(answers.slice(0, first).map((a) => a.status))).toEqual(new Set([201]));
    expect(answers.slice(first).map((a) => a.status)).toEqual([503, 503, 503]);
    expect(answers[first]!.retryAfter).toBe('5');
    expect(JSON.stringify(answers[first]!.body)).toMatch(/cannot record this request in its API activity log/);
    // The liveness probe is still served (a 503 there gets the process restarted, losing what waits).
    expect((await sds.client.call('GET', '/health', '')).status).toBe(200);
    // Only on a listener that has the route: the operator API has no /health, so that path is refused as
    // any request (before, exempt by its path alone: a 404 kept in memory per request, unbounded).
    expect((await fetch(`http://127.0.0.1:${t.dip.adminPort}/health`)).status).toBe(503);
    // The readiness probe says why, in its own shape (before, the refusal's StandardResponse failed its schema: 500).
    const ready = await sds.client.call('GET', '/ready', '');
    expect(ready.status).toBe(503);
    expect(ready.body).toEqual({ status: 'unavailable', reason: 'the API activity log backlog is full: new requests are refused until it is written' });
    expect(await sample('dip_activity_log_full')).toBe(1);
    expect(await sample('dip_activity_log_refused_total')).toBeGreaterThanOrEqual(3);
    clock.jump(10_000);
    await waitFor(async () => ((await admin('GET', '/admin/alarms')).body.alarms as Array<{ rule: string; summary: string }>).some((a) => a.rule === 'activity-log' && /refused 503/.test(a.summary)), 10_000, 'the activity-log alarm naming the refusals');

    store.setSizeLimit(null);
    await waitFor(async () => (await sample('dip_activity_log_full')) === 0, 10_000, 'the backlog written');
    await t.dip.activity!.flush();
    await t.dip.activity!.flush();
    expect((await sds.client.submit('IF-021', items())).status).toBe(201);
    const summaries = (await store.range({ fromMs: 0, toMs: Number.MAX_SAFE_INTEGER, limit: 10_000 })).filter((r) => r.listener === 'activity-log');
    expect(summaries.length).toBeGreaterThanOrEqual(1);
    expect(summaries.reduce((sum, r) => sum + (JSON.parse(r.responseBody!) as { refused: number }).refused, 0)).toBe(await sample('dip_activity_log_refused_total'));
    expect(await verifyActivityLog(store)).toMatchObject({ ok: true });
  });
});
