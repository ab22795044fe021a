import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteActivityLog } from '../src/adapters/sqlite/activity-log.js';
import { startActivityLog } from '../src/assemble/observability.js';
import { DEFAULTS, loadConfig } from '../src/config.js';
import { Lifecycle } from '../src/lifecycle.js';
import { activityLogAlarms, diskSpaceAlarms } from '../src/pipeline/alarm-sources.js';
import type { DiskSpace } from '../src/ports/backend.js';
import { readDiskSpace } from '../src/adapters/disk-space.js';
import { ActivityRecorder, verifyActivityLog, type RequestRecord } from '../src/pipeline/activity-recorder.js';
import type { ActivityLogStore } from '../src/ports/activity-log.js';
import { FakeClock } from './helpers/clocks.js';
import { quietLogger } from './helpers/dip-harness.js';

const DAY = 86_400_000;
const request = (i: number, at: number): RequestRecord => ({ requestId: `r${i}`, at, listener: 'participant', caller: 'A', remote: null, method: 'GET', url: '/x', status: 200, durationMs: 1, rawBody: null });

describe('the API activity log is never purged by the DIP (spec 5.8.1: read-only, cannot be purged)', () => {
  it('keeps records older than a year with the default settings (a scheduled purge deleted them at 365 days)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'opendip-activity-'));
    const clock = new FakeClock();
    const life = new Lifecycle(quietLogger);
    const started = await startActivityLog({ ...DEFAULTS, dataDir }, clock, quietLogger, life, { append: () => Promise.reject(new Error('nothing to journal: the activity log lost nothing')) });
    const { recorder, store } = started!;
    // A request answered two years ago (its record's time is what a purge judged by).
    recorder.record(request(1, clock.now() - 2 * 365 * DAY));
    await recorder.flush();
    // Past a purge interval (purgeIntervalSeconds, 600), every timer the log set running as it falls due.
    await clock.advance(DEFAULTS.purgeIntervalSeconds * 1000 + 1_000);
    expect((await store.chainRecords(recorder.chain, 0, 10)).map((r) => r.requestId)).toEqual(['r1']);
    expect((await store.chains())[0]!.anchor.seq).toBe(0);
    await life.stop();
  });

  it('refuses a configuration that sets a retention for it, saying why', () => {
    const d = mkdtempSync(join(tmpdir(), 'opendip-config-'));
    writeFileSync(join(d, 'dip.config.yaml'), ['observability:', '  activityLog:', '    retentionDays: 365'].join('\n'));
    expect(() => loadConfig({ DIP_DATA_DIR: d })).toThrow(/observability\.activityLog\.retentionDays.*never deleted.*dip audit export/);
  });
});

/** A recorder on a fresh SQLite activity log whose appends fail while `down.is` is true. */
function recorderOnFlakyStore(maxPending: number) {
  const real = new SqliteActivityLog(join(mkdtempSync(join(tmpdir(), 'opendip-activity-')), 'activity.db'));
  const down = { is: false };
  const store: ActivityLogStore = Object.assign(Object.create(real) as ActivityLogStore, {
    append: async (records: Parameters<ActivityLogStore['append']>[0]) => {
      if (down.is) throw new Error('database or disk is full');
      await real.append(records);
    },
  });
  const clock = new FakeClock();
  const recorder = new ActivityRecorder(store, { label: 'test', flushIntervalMs: 1_000, maxBatch: 100, maxBodyBytes: 1000, maxPending }, clock, quietLogger);
  return { real, down, clock, recorder };
}

describe('the activity log backlog full: back-pressure, not dropped records', () => {
  it('stops accepting new requests at the cap, keeps every served one, counts the refused and records them once it can', async () => {
    const { real, down, clock, recorder } = recorderOnFlakyStore(3);
    await recorder.start();
    down.is = true;
    for (let i = 1; i <= 3; i++) recorder.record(request(i, clock.now()));
    await clock.advance(1_000);
    expect(recorder.accepting()).toBe(false);
    // A request already being served when the cap was reached is kept, never dropped.
    recorder.record(request(4, clock.now()));
    // Requests refused 503 for the full backlog are counted (one record sums them up later).
    recorder.refused(request(5, clock.now()));
    recorder.refused(request(6, clock.now() + 5));
    expect(recorder.status()).toMatchObject({ waiting: 4, refused: 2, full: true });
    expect(recorder.status().failing).not.toBeNull();
    const alarm = await activityLogAlarms(() => recorder.status(), clock)();
    expect(alarm[0]!.summary).toMatch(/new requests are refused 503 \(2 so far\)/);

    down.is = false;
    await clock.advance(1_000);
    await recorder.flush(); // the tick's write, on the thread pool, finished
    expect(recorder.accepting()).toBe(true);
    expect(recorder.status()).toMatchObject({ waiting: 0, refused: 2, full: false, failing: null });
    const stored = await real.chainRecords(recorder.chain, 0, 10);
    expect(stored.map((r) => r.requestId).slice(0, 4)).toEqual(['r1', 'r2', 'r3', 'r4']);
    // The refusals' summary: how many, when, on which listener; on the same chain, which still verifies.
    const summary = stored[4]!;
    expect(summary).toMatchObject({ listener: 'activity-log', method: 'REFUSED', status: 503 });
    expect(JSON.parse(summary.responseBody!)).toMatchObject({ refused: 2, from: clock.now() - 1_000, to: clock.now() - 995, listeners: { participant: 2 } });
    expect(await verifyActivityLog(real)).toMatchObject({ ok: true, records: 5 });
    await recorder.stop();
    await real.close();
  });
});

describe("the data volume's free space (the activity log grows for ever: spec 5.8.1)", () => {
  it("raises the storage alarm below storage.minFreeDiskMb, saying the activity log's size and what to do; none above it", async () => {
    const clock = new FakeClock();
    const MB = 1024 * 1024;
    let reading: DiskSpace = { path: '/data', freeBytes: 900 * MB, activityLogBytes: 3_000 * MB };
    const source = diskSpaceAlarms(() => reading, 1024, clock);
    const [alarm] = await source();
    expect(alarm).toMatchObject({ rule: 'storage', key: 'storage-disk', participant: null, since: clock.now() });
    expect(alarm!.summary).toMatch(/\/data has 900 MB free, below storage\.minFreeDiskMb \(1024 MB\).*activity log.*3000 MB.*dip audit export/);
    reading = { ...reading, freeBytes: 2_000 * MB };
    expect(await source()).toEqual([]);
    // The real volume of a temporary folder is read (statfs), and the activity log's files summed.
    const dataDir = mkdtempSync(join(tmpdir(), 'opendip-disk-'));
    writeFileSync(join(dataDir, 'activity.db'), Buffer.alloc(4096));
    writeFileSync(join(dataDir, 'activity.db-wal'), Buffer.alloc(1024));
    const real = readDiskSpace(dataDir, join(dataDir, 'activity.db'));
    expect(real.freeBytes).toBeGreaterThan(0);
    expect(real.activityLogBytes).toBe(5120);
    expect(readDiskSpace(dataDir, null).activityLogBytes).toBeNull();
  });
});
