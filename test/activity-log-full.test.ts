import { readFileSync } from 'node:fs';
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
    const gauge = async (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await metrics())?.[1] ?? NaN);
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
    await waitFor(async () => (await gauge('dip_activity_log_waiting')) >= 30, 10_000, 'records to wait for the activity log');
    clock.jump(10_000); // an alarm evaluation
    await waitFor(async () => (await alarms()).some((a) => a.rule === 'activity-log'), 10_000, 'the activity-log alarm');
    const alarm = (await alarms()).find((a) => a.rule === 'activity-log')!;
    expect(alarm.summary).toMatch(/the API activity log cannot be written: database or disk is full; \d+ records wait in memory/);
    expect(await gauge('dip_activity_log_dropped')).toBe(0);
    // GET /admin/health names it beside the store, with its backlog; still 200 (requests are answered).
    const health = await admin('GET', '/admin/health');
    expect(health.status).toBe(200);
    expect(health.body.activityLog).toMatchObject({ state: 'unavailable', reason: 'database or disk is full', dropped: 0 });
    expect(health.body.activityLog.waiting).toBeGreaterThanOrEqual(30);
    expect(health.body.activityLog.since).toEqual(expect.any(Number));

    store.setSizeLimit(null);
    await waitFor(async () => (await gauge('dip_activity_log_waiting')) === 0, 10_000, 'the waiting records to be written');
    clock.jump(10_000);
    await waitFor(async () => !(await alarms()).some((a) => a.rule === 'activity-log'), 10_000, 'the alarm resolved');
    // ok again (the operator's own calls just made may wait for the next flush: no count here).
    const after = (await admin('GET', '/admin/health')).body.activityLog;
    expect(after).toMatchObject({ state: 'ok', dropped: 0 });
    expect(after).not.toHaveProperty('reason');
    // Nothing of the gap is lost: every submission made during it is in the log, and the chain verifies.
    const recorded = new Set(((await admin('GET', '/admin/activity?limit=1000')).body as Array<{ requestId: string }>).map((r) => r.requestId));
    expect(ids.filter((id) => !recorded.has(id))).toEqual([]);
    expect(await verifyActivityLog(store)).toMatchObject({ ok: true });
  });
});
