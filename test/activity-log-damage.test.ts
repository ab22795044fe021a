import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { SqliteActivityLog } from '../src/adapters/sqlite/activity-log.js';
import { ActivityLogDamage } from '../src/pipeline/activity-damage.js';
import { chainEntries, GENESIS_HASH } from '../src/domain/activity.js';
import { adminApi } from './helpers/admin.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';

/** An activity.db as a kill -9 leaves it, in `dataDir`, then its WAL deleted: committed records lost. */
async function activityLostItsWal(dataDir: string): Promise<void> {
  const live = join(mkdtempSync(join(tmpdir(), 'opendip-actdamage-')), 'activity.db');
  const store = new SqliteActivityLog(live);
  await store.openChain('c', 1);
  const entries = Array.from({ length: 30 }, (_, i) => ({ requestId: `r${i}`, at: 1000 + i, listener: 'participant', caller: null, remote: null, method: 'GET', url: '/x', status: 200, durationMs: 1, responseBody: 'y'.repeat(2000) }));
  await store.append(chainEntries('c', { seq: 0, hash: GENESIS_HASH }, entries).records);
  const file = join(dataDir, 'activity.db');
  for (const suffix of ['', '-wal', '-shm']) copyFileSync(live + suffix, file + suffix);
  await store.close();
  rmSync(`${file}-wal`);
}

/**
 * A loss or damage of the API activity log found at a start was told once (log, journal, chain) and by a
 * `storage` alarm for the life of that process only; GET /admin/health said `ok` throughout. It now says
 * `damaged` until an operator acknowledges it, across restarts, and the acknowledgement is journalled.
 */
describe('GET /admin/health shows the activity log damaged until an operator acknowledges it', () => {
  let t: TestDip | undefined;
  afterEach(async () => t?.close());

  it('damaged after a WAL loss, still after a restart, ok once acknowledged (journalled); the storage alarm alike', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'opendip-actdamage-data-'));
    await activityLostItsWal(dataDir);
    const clock = new ShiftableClock();
    t = await startTestDip({}, dataDir, { clock });
    let admin = adminApi(t);
    const health = await admin('GET', '/admin/health');
    // Requests are still answered (the loss is accepted): the status stays 200.
    expect(health.status).toBe(200);
    expect(health.body.activityLog).toMatchObject({ state: 'damaged', reason: expect.stringMatching(/activity\.db-wal is missing/), damaged: { found: [{ lost: expect.stringMatching(/activity\.db-wal is missing/) }] } });
    const alarmed = async () => ((await admin('GET', '/admin/alarms')).body.alarms as Array<{ key: string; summary: string }>).find((a) => a.key.startsWith('storage-activity-wal-loss'));
    clock.jump(10_000);
    await waitFor(async () => (await alarmed()) !== undefined, 10_000, 'the storage alarm for the activity log');
    expect((await alarmed())?.summary).toMatch(/POST \/admin\/activity\/damage\/acknowledge/);

    // A restart announces nothing again, but the damage is not over because the process that found it stopped.
    await t.close();
    t = await startTestDip({}, dataDir, { clock });
    admin = adminApi(t);
    expect((await admin('GET', '/admin/health')).body.activityLog).toMatchObject({ state: 'damaged', damaged: { found: [expect.anything()] } });
    clock.jump(10_000);
    await waitFor(async () => (await alarmed()) !== undefined, 10_000, 'the storage alarm again after the restart');

    const acknowledged = await admin('POST', '/admin/activity/damage/acknowledge');
    expect(acknowledged.status).toBe(200);
    expect(acknowledged.body.acknowledged).toEqual([{ at: expect.any(Number), lost: expect.stringMatching(/activity\.db-wal is missing/) }]);
    expect((await admin('GET', '/admin/health')).body.activityLog).toMatchObject({ state: 'ok' });
    expect((await admin('GET', '/admin/health')).body.activityLog).not.toHaveProperty('damaged');
    const [entry] = (await admin('GET', '/admin/journal?action=activity-log.damage-acknowledge')).body as Array<{ actor: string; before: unknown }>;
    expect(entry).toMatchObject({ actor: 'bootstrap', before: { damaged: [{ lost: expect.stringMatching(/activity\.db-wal is missing/) }] } });
    clock.jump(10_000);
    await waitFor(async () => (await alarmed()) === undefined, 10_000, 'the alarm resolved');
    // Twice: nothing left, said so.
    const again = await admin('POST', '/admin/activity/damage/acknowledge');
    expect([again.status, again.body.error]).toEqual([409, expect.stringMatching(/no loss or damage to acknowledge/)]);

    // The acknowledgement is kept in the file: the next start shows the log ok.
    await t.close();
    t = await startTestDip({}, dataDir, { clock });
    expect((await adminApi(t)('GET', '/admin/health')).body.activityLog).toMatchObject({ state: 'ok' });
  });
});

/**
 * SQLITE_CORRUPT (or NOTADB, IOERR) met by a running DIP's activity log raised nothing but the
 * `activity-log` alarm for the write refused, whose records wait: the file's damage was told nowhere. As a
 * full disk, requests are still answered (records wait in memory, back-pressure at maxWaiting); the damage
 * is told once (log, journal, health `damaged`, the `storage` alarm), not per write, until acknowledged.
 */
describe('SQLITE_CORRUPT while running', () => {
  let t: TestDip | undefined;
  afterEach(async () => t?.close());

  it('is journalled once, shown by health and the storage alarm while requests are still answered, until acknowledged', async () => {
    const clock = new ShiftableClock();
    t = await startTestDip({ observability: { ...DEFAULTS.observability, activityLog: { ...DEFAULTS.observability.activityLog, flushIntervalMs: 20 } } }, undefined, { clock });
    const admin = adminApi(t);
    const store = t.dip.activityStore as SqliteActivityLog;
    await t.dip.activity!.flush();
    const append = store.append.bind(store);
    store.append = () => Promise.reject(new Database.SqliteError('database disk image is malformed', 'SQLITE_CORRUPT'));
    // Many writes refused: each request answered, the damage journalled once.
    for (let i = 0; i < 5; i++) {
      expect((await admin('GET', '/admin/health')).status).toBe(200);
      await t.dip.activity!.flush();
    }
    const health = (await admin('GET', '/admin/health')).body.activityLog;
    expect(health).toMatchObject({ state: 'unavailable', reason: 'database disk image is malformed', damaged: { found: [{ lost: expect.stringMatching(/SQLITE_CORRUPT.*database disk image is malformed/) }] } });
    const journalled = async () => (await admin('GET', '/admin/journal?action=storage.activity-damaged')).body as Array<{ target: string; after: { lost: string } }>;
    expect(await journalled()).toEqual([expect.objectContaining({ target: 'activity.db', after: { lost: expect.stringMatching(/SQLITE_CORRUPT/) } })]);
    const alarmed = async () => ((await admin('GET', '/admin/alarms')).body.alarms as Array<{ key: string; summary: string }>).find((a) => a.key.startsWith('storage-activity-wal-loss'));
    clock.jump(10_000);
    await waitFor(async () => (await alarmed()) !== undefined, 10_000, 'the storage alarm for the damaged activity log');
    expect((await alarmed())?.summary).toMatch(/SQLITE_CORRUPT/);

    // Writes taken again (the waiting records written): no longer unavailable, still damaged until acknowledged.
    store.append = append;
    await t.dip.activity!.flush();
    expect((await admin('GET', '/admin/health')).body.activityLog).toMatchObject({ state: 'damaged', waiting: expect.any(Number) });
    expect((await admin('POST', '/admin/activity/damage/acknowledge')).status).toBe(200);
    expect((await admin('GET', '/admin/health')).body.activityLog).toMatchObject({ state: 'ok' });
    expect(await journalled()).toHaveLength(1);
  });
});

describe('which store errors are damage', () => {
  it('SQLITE_CORRUPT*, SQLITE_NOTADB and SQLITE_IOERR* are; a full disk, a busy file or any other error is not', () => {
    const journalled: string[] = [];
    const damage = new ActivityLogDamage({}, { clock: { now: () => 5 }, logger: { info() {}, warn() {}, error() {} }, journal: { append: async (e) => journalled.push(e.action) } });
    for (const code of ['SQLITE_FULL', 'SQLITE_BUSY', 'SQLITE_CONSTRAINT_PRIMARYKEY', 'EIO']) damage.met(new Database.SqliteError('no', code));
    damage.met(new Error('plain'));
    expect(damage.current()).toBeNull();
    for (const code of ['SQLITE_CORRUPT_INDEX', 'SQLITE_NOTADB', 'SQLITE_IOERR_READ']) {
      const one = new ActivityLogDamage({}, { clock: { now: () => 5 }, logger: { info() {}, warn() {}, error() {} }, journal: { append: async () => 0 } });
      one.met(new Database.SqliteError('bad', code));
      expect(one.current()?.found[0]?.lost).toContain(code);
    }
    expect(journalled).toEqual([]);
  });
});
