import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeSync, closeSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openSqliteBackend, type SqliteBackend } from '../src/adapters/sqlite/index.js';
import { systemBootId, WalLossError } from '../src/adapters/sqlite/wal-guard.js';
import { walLossAlarms } from '../src/pipeline/alarm-sources.js';
import { openStorage } from '../src/assemble/storage.js';
import { openBackend } from '../src/adapters/backend.js';
import { loadConfig } from '../src/config.js';
import { Lifecycle } from '../src/lifecycle.js';
import type { Logger } from '../src/ports/logger.js';
import { SqliteActivityLog } from '../src/adapters/sqlite/activity-log.js';
import { chainEntries, GENESIS_HASH } from '../src/domain/activity.js';
import { verifyActivityLog } from '../src/pipeline/activity-recorder.js';
import { startActivityLog } from '../src/assemble/observability.js';
import { SqliteAlarmSubscriptions } from '../src/adapters/sqlite/alarm-subscriptions.js';
import { FakeClock } from './helpers/clocks.js';
import { exportSqlite } from '../src/adapters/sqlite/export.js';

/**
 * The fault campaign's finding: killed under load, the DIP's WAL deleted or overwritten, and the restart
 * went ahead as if nothing happened (messages answered 201 gone, their queue positions handed out again).
 */
const dir = () => mkdtempSync(join(tmpdir(), 'opendip-walguard-'));

/** Commits `n` journal entries through the real writer (its group commit and WAL sync). */
async function commit(backend: SqliteBackend, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await backend.journal.append({ at: i, actor: 'operator:test', action: 'test.write', target: `t${i}`, before: null, after: { pad: 'x'.repeat(3000) }, status: null });
}

/**
 * The files a kill -9 leaves: the database, its WAL and its wal-index, copied while the writer still has
 * them open (nothing checkpointed, nothing deleted), into a folder of their own.
 */
async function crashedCopy(entries = 40, bootId?: () => string | null): Promise<string> {
  const live = join(dir(), 'dip.db');
  const backend = openSqliteBackend(live, { clock: systemClock, ...(bootId ? { bootId } : {}) });
  await commit(backend, entries);
  const file = join(dir(), 'dip.db');
  for (const suffix of ['', '-wal', '-shm', '-boot']) if (existsSync(live + suffix)) copyFileSync(live + suffix, file + suffix);
  await backend.close();
  return file;
}

/** The WalLossError a start of `file` is refused with. */
function refusal(file: string): WalLossError {
  try {
    openSqliteBackend(file, { clock: systemClock });
  } catch (e) {
    if (e instanceof WalLossError) return e;
    throw e;
  }
  throw new Error('the start was not refused');
}

function overwrite(path: string, at: number, bytes: number): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.alloc(bytes, 0xa5), 0, bytes, at);
  closeSync(fd);
}

describe('a WAL that lost committed transactions is refused at open', () => {
  it('a crash with the WAL intact opens as before, every committed entry there', async () => {
    const file = await crashedCopy();
    const backend = openSqliteBackend(file, { clock: systemClock });
    expect((await backend.journal.entries({ action: 'test.write', limit: 100 })).length).toBe(40);
    expect(backend.walLossAccepted).toBeNull();
    await backend.close();
  });

  it('a crash whose WAL was deleted is refused, naming the file, the frames expected and found, and what to do', async () => {
    const file = await crashedCopy();
    rmSync(`${file}-wal`);
    const error = refusal(file);
    const loss = error.loss;
    expect(loss).toMatchObject({ why: 'missing', foundFrames: 0, backfilledFrames: 0 });
    expect(loss.expectedFrames).toBeGreaterThan(40);
    expect(error.message).toContain(`${file}-wal`);
    expect(error.message).toContain('docs/disaster-recovery.md');
    expect(error.message).toContain('--accept-wal-loss');
    // The refusal leaves the evidence as it was: a second start is refused too.
    expect(existsSync(`${file}-shm`)).toBe(true);
    expect(() => openSqliteBackend(file, { clock: systemClock })).toThrow(WalLossError);
  });

  it('a crash whose WAL was overwritten at its third frame is refused: fewer valid frames than committed', async () => {
    const file = await crashedCopy();
    overwrite(`${file}-wal`, 32 + 2 * (24 + 4096), 4096);
    const loss = refusal(file).loss;
    expect(loss.why).toBe('short');
    expect(loss.foundFrames).toBeLessThan(3);
    expect(loss.expectedFrames).toBeGreaterThan(40);
  });

  it('an -shm older than its WAL (a power loss or a disk snapshot after the WAL started over) is not refused: nothing was lost', async () => {
    const live = join(dir(), 'dip.db');
    const backend = openSqliteBackend(live, { clock: systemClock });
    await commit(backend, 40);
    const stale = join(dir(), 'stale.shm');
    copyFileSync(`${live}-shm`, stale);
    // Every frame copied back and the WAL started over by the next write (salt-1 + 1): what a checkpoint
    // does while the -shm on disk still shows the older generation.
    const other = new Database(live);
    other.pragma('wal_checkpoint(RESTART)');
    other.close();
    await commit(backend, 5);
    const file = join(dir(), 'dip.db');
    for (const suffix of ['', '-wal']) copyFileSync(live + suffix, file + suffix);
    copyFileSync(stale, `${file}-shm`);
    await backend.close();
    const again = openSqliteBackend(file, { clock: systemClock });
    expect((await again.journal.entries({ action: 'test.write', limit: 100 })).length).toBe(45);
    expect(again.walLossAccepted).toBeNull();
    await again.close();
  });

  it('a clean close opens as before (no -shm left to compare)', async () => {
    const file = join(dir(), 'dip.db');
    const first = openSqliteBackend(file, { clock: systemClock });
    await commit(first, 10);
    await first.close();
    const again = openSqliteBackend(file, { clock: systemClock });
    expect((await again.journal.entries({ action: 'test.write', limit: 100 })).length).toBe(10);
    await again.close();
  });

  it('a torn or never-initialised -shm is not trusted (no refusal on what cannot be read)', async () => {
    const file = await crashedCopy();
    rmSync(`${file}-wal`);
    // The two header copies differ: caught mid-update, so the header says nothing.
    overwrite(`${file}-shm`, 48 + 16, 4);
    const backend = openSqliteBackend(file, { clock: systemClock });
    expect(backend.walLossAccepted).toBeNull();
    await backend.close();
  });

  it('with the override it starts, says what was lost, and raises a storage alarm', async () => {
    const file = await crashedCopy();
    rmSync(`${file}-wal`);
    const backend = openSqliteBackend(file, { clock: systemClock, acceptWalLoss: true });
    expect(backend.walLossAccepted).toMatch(/frames of committed transactions .* are lost\. Started anyway \(--accept-wal-loss\)/);
    const alarms = await walLossAlarms(() => backend.walLossAccepted ?? null, 1234)();
    expect(alarms).toEqual([expect.objectContaining({ rule: 'storage', participant: null, since: 1234, summary: backend.walLossAccepted })]);
    // It writes again, and a clean close leaves nothing to refuse at the next start.
    await commit(backend, 1);
    await backend.close();
    const again = openSqliteBackend(file, { clock: systemClock });
    expect(again.walLossAccepted).toBeNull();
    await again.close();
  });

  it('dip serve --accept-wal-loss: the start is logged and journalled (storage.accept-wal-loss); without it, the start fails naming the file', async () => {
    const file = await crashedCopy();
    rmSync(`${file}-wal`);
    const config = loadConfig({}, { dataDir: join(file, '..') });
    const errors: string[] = [];
    const logger: Logger = { info() {}, warn() {}, error: (_obj, msg) => void errors.push(String(msg)) };
    await expect(openStorage(config, systemClock, logger, new Lifecycle(logger))).rejects.toThrow(`${file}-wal is missing`);
    const life = new Lifecycle(logger);
    const storage = await openStorage(config, systemClock, logger, life, undefined, true);
    expect(errors).toContain('started accepting committed transactions the WAL lost');
    const [entry] = await storage.backend.journal.entries({ action: 'storage.accept-wal-loss', limit: 5 });
    expect(entry).toMatchObject({ actor: 'bootstrap', target: 'dip.db', after: { lost: storage.backend.walLossAccepted } });
    await life.stop();
  });
});

/** The files a kill -9 leaves of activity.db: `n` records on chain `c` committed (synced), nothing checkpointed. */
async function crashedActivityCopy(n = 30): Promise<string> {
  const live = join(dir(), 'activity.db');
  const store = new SqliteActivityLog(live);
  await store.openChain('c', 1);
  const entries = Array.from({ length: n }, (_, i) => ({ requestId: `r${i}`, at: 1000 + i, listener: 'participant', caller: null, remote: null, method: 'GET', url: '/x', status: 200, durationMs: 1, responseBody: 'y'.repeat(2000) }));
  await store.append(chainEntries('c', { seq: 0, hash: GENESIS_HASH }, entries).records);
  const file = join(dir(), 'activity.db');
  for (const suffix of ['', '-wal', '-shm']) copyFileSync(live + suffix, file + suffix);
  await store.close();
  return file;
}

describe('dip migrate export reads dip.db through the same guard', () => {
  it('a store whose WAL lost acknowledged messages is refused, not exported short of them', async () => {
    // The schema and some writes in the file itself (checkpointed), the latest only in the WAL, as after a kill -9.
    const live = join(dir(), 'dip.db');
    const backend = openSqliteBackend(live, { clock: systemClock });
    await commit(backend, 5);
    const side = new Database(live);
    side.pragma('wal_checkpoint(TRUNCATE)');
    side.close();
    await commit(backend, 40);
    const file = join(dir(), 'dip.db');
    for (const suffix of ['', '-wal', '-shm', '-boot']) if (existsSync(live + suffix)) copyFileSync(live + suffix, file + suffix);
    await backend.close();
    rmSync(`${file}-wal`);
    expect(() => [...exportSqlite(file, 0)]).toThrow(WalLossError);
    // An intact crash exports as before.
    expect([...exportSqlite(await crashedCopy(), 0)].length).toBeGreaterThan(0);
  });
});

describe('activity.db: a WAL that lost committed activity records is reported and accepted, not refused', () => {
  it('opens without the override, says what was lost, and keeps the loss in the file itself (dip audit verify shows it)', async () => {
    const file = await crashedActivityCopy();
    rmSync(`${file}-wal`);
    const clock = new FakeClock(5_000);
    const store = new SqliteActivityLog(file, clock);
    expect(store.lostOnOpen).toMatch(new RegExp(`${file}-wal is missing: .* frames of committed transactions \\(API activity records, audit evidence of requests already answered\\) are lost`));
    // The lost tail and its chain's head went together: the chains left verify, so only this tells the gap.
    const report = await verifyActivityLog(store);
    expect(report).toMatchObject({ ok: true, walLosses: [{ at: 5_000, lost: store.lostOnOpen }] });
    await store.close();
    // Recorded durably: a later open (another process, dip audit verify) still reports it, and finds nothing new.
    const again = new SqliteActivityLog(file, clock);
    expect(again.lostOnOpen).toBeNull();
    expect((await verifyActivityLog(again)).walLosses).toHaveLength(1);
    await again.close();
  });

  it('an intact crash of activity.db reports nothing', async () => {
    const file = await crashedActivityCopy();
    const store = new SqliteActivityLog(file, systemClock);
    expect(store.lostOnOpen).toBeNull();
    expect((await store.chainRecords('c', 0, 100)).length).toBe(30);
    expect((await verifyActivityLog(store)).walLosses).toEqual([]);
    await store.close();
  });

  it('dip serve: the start goes on, logs the loss, journals storage.activity-wal-loss, and records it on its new chain', async () => {
    const file = await crashedActivityCopy();
    rmSync(`${file}-wal`);
    const config = loadConfig({}, { dataDir: join(file, '..') });
    const errors: string[] = [];
    const logger: Logger = { info() {}, warn() {}, error: (_obj, msg) => void errors.push(String(msg)) };
    const life = new Lifecycle(logger);
    const storage = await openStorage(config, systemClock, logger, life);
    const activity = await startActivityLog(config, systemClock, logger, life, storage.backend.journal);
    expect(activity?.lostOnOpen).toMatch(/API activity records/);
    expect(errors).toContain('activity log: started accepting API activity records its WAL lost (audit evidence gone)');
    const [entry] = await storage.backend.journal.entries({ action: 'storage.activity-wal-loss', limit: 5 });
    expect(entry).toMatchObject({ actor: 'bootstrap', target: 'activity.db', after: { lost: activity?.lostOnOpen } });
    await activity!.recorder.flush();
    const onChain = await activity!.store.chainRecords(activity!.recorder.chain, 0, 10);
    expect(onChain).toEqual([expect.objectContaining({ listener: 'activity-log', method: 'WAL-LOSS', status: null })]);
    expect(JSON.parse(onChain[0]!.responseBody!)).toMatchObject({ lost: activity?.lostOnOpen });
    await life.stop();
  });

  it('dip audit verify run first after the crash takes the loss; the next dip serve still announces it, once', async () => {
    const file = await crashedActivityCopy();
    rmSync(`${file}-wal`);
    const audit = new SqliteActivityLog(file, systemClock);
    expect(audit.lostOnOpen).toMatch(/API activity records/);
    expect((await verifyActivityLog(audit)).walLosses).toHaveLength(1);
    await audit.close();
    const config = loadConfig({}, { dataDir: join(file, '..') });
    const serve = async () => {
      const errors: string[] = [];
      const logger: Logger = { info() {}, warn() {}, error: (_obj, msg) => void errors.push(String(msg)) };
      const life = new Lifecycle(logger);
      const storage = await openStorage(config, systemClock, logger, life);
      const activity = (await startActivityLog(config, systemClock, logger, life, storage.backend.journal))!;
      await activity.recorder.flush();
      const journalled = await storage.backend.journal.entries({ action: 'storage.activity-wal-loss', limit: 5 });
      const onChain = (await activity.store.chainRecords(activity.recorder.chain, 0, 10)).filter((r) => r.method === 'WAL-LOSS');
      await life.stop();
      return { lostOnOpen: activity.lostOnOpen, errors, journalled, onChain };
    };
    // It found nothing itself (the loss was taken by the audit), yet logs, journals, alarms and records it.
    const first = await serve();
    expect(first.lostOnOpen).toMatch(/API activity records/);
    expect(first.errors).toContain('activity log: started accepting API activity records its WAL lost (audit evidence gone)');
    expect(first.journalled).toEqual([expect.objectContaining({ action: 'storage.activity-wal-loss', after: { lost: first.lostOnOpen } })]);
    expect(first.onChain).toHaveLength(1);
    // Announced once: the next start says nothing of it (no second journal entry, no alarm).
    const second = await serve();
    expect([second.lostOnOpen, second.errors, second.journalled.length, second.onChain]).toEqual([null, [], 1, []]);
  });

  it('the storage alarm for an activity loss has a key of its own beside the message store\'s', async () => {
    const alarms = await walLossAlarms(() => 'lost', 7, 'node-a', 'storage-activity-wal-loss')();
    expect(alarms).toEqual([expect.objectContaining({ key: 'storage-activity-wal-loss:node-a', rule: 'storage', summary: 'lost', since: 7 })]);
  });
});

describe('the boot the -shm was written in: after a reboot it is not trusted, after a process crash it is', () => {
  /**
   * A crash whose -shm counts one commit more than the WAL holds: what a power cut leaves when the kernel
   * wrote the -shm back between a group's commit and its WAL sync (that group was never acknowledged),
   * and, within one boot, what a WAL truncated by hand leaves.
   */
  async function shmAheadOfWal(bootId: () => string | null): Promise<string> {
    const file = await crashedCopy(40, bootId);
    truncateSync(`${file}-wal`, statSync(`${file}-wal`).size - (24 + 4096));
    return file;
  }

  it('the boot ID changed since the file was opened (a power loss, a reboot): the -shm is not trusted and the start goes on', async () => {
    const file = await shmAheadOfWal(() => 'boot-a');
    expect(readFileSync(`${file}-boot`, 'utf8')).toBe('boot-a');
    const backend = openSqliteBackend(file, { clock: systemClock, bootId: () => 'boot-b' });
    expect(backend.walLossAccepted).toBeNull();
    // This boot's mark, for the next start to compare with.
    expect(readFileSync(`${file}-boot`, 'utf8')).toBe('boot-b');
    await backend.close();
  });

  it('the same boot ID (a process crash, kill -9): the -shm is trustworthy and the guard refuses', async () => {
    const file = await shmAheadOfWal(() => 'boot-a');
    const error = (() => {
      try {
        openSqliteBackend(file, { clock: systemClock, bootId: () => 'boot-a' });
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(WalLossError);
    expect((error as WalLossError).loss.why).toBe('short');
  });

  it('no boot ID to compare (another system, or no mark left by an earlier version): the guard applies as before', async () => {
    const none = await shmAheadOfWal(() => null);
    expect(existsSync(`${none}-boot`)).toBe(false);
    expect(() => openSqliteBackend(none, { clock: systemClock, bootId: () => 'boot-b' })).toThrow(WalLossError);
    const unmarked = await shmAheadOfWal(() => 'boot-a');
    rmSync(`${unmarked}-boot`);
    expect(() => openSqliteBackend(unmarked, { clock: systemClock, bootId: () => 'boot-b' })).toThrow(WalLossError);
  });

  it("reads this machine's boot ID on Linux (a UUID, the same at every read), and null elsewhere", () => {
    const id = systemBootId();
    if (process.platform === 'linux') {
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(systemBootId()).toBe(id);
    } else expect(id).toBeNull();
  });
});

describe('only the first opener checks the WAL: processes the writer starts beside itself do not scan it again', () => {
  it('an open beside the writer (a delivery process, an ingest thread) runs no check and leaves the boot mark alone', async () => {
    const file = await crashedCopy(40, () => 'boot-a');
    // Evidence a check would refuse on, and one that says which boot it is: neither is looked at.
    rmSync(`${file}-wal`);
    const beside = openSqliteBackend(file, { clock: systemClock, bootId: () => 'boot-b', besideWriter: true });
    expect(beside.walLossAccepted).toBeNull();
    expect(readFileSync(`${file}-boot`, 'utf8')).toBe('boot-a');
    await beside.close();
  });

  it('openBackend passes it through (what src/topology/delivery-process.ts and ingest-thread.ts give)', async () => {
    const file = await crashedCopy();
    rmSync(`${file}-wal`);
    const config = loadConfig({}, { dataDir: join(file, '..') });
    const { backend } = await openBackend(config, { clock: systemClock, besideWriter: true });
    expect(backend.walLossAccepted ?? null).toBeNull();
    await backend.close();
  });
});

/**
 * The fault campaign's finding: after a kill -9, `rm activity.db activity.db-wal activity.db-shm` and a start
 * made a fresh log (activityLog ok, dip audit verify ok:true): everything before gone, nothing saying so.
 * dip.db, which survives, keeps the identity of the activity log it was started beside.
 */
describe('activity.db vanished or replaced: dip.db remembers the log it was started beside', () => {
  async function crashedPair(): Promise<{ folder: string; activity: string; dipDb: string }> {
    const folder = dir();
    const dipDb = join(folder, 'dip.db');
    const backend = openSqliteBackend(dipDb, { clock: systemClock });
    const activity = join(folder, 'activity.db');
    const store = new SqliteActivityLog(activity, systemClock, { witness: dipDb });
    expect(store.lostOnOpen).toBeNull();
    await store.openChain('c', 1);
    await store.append(chainEntries('c', { seq: 0, hash: GENESIS_HASH }, [{ requestId: 'r', at: 1000, listener: 'participant', caller: null, remote: null, method: 'GET', url: '/x', status: 200, durationMs: 1, responseBody: null }]).records);
    await store.close();
    await backend.close();
    return { folder, activity, dipDb };
  }

  it('a deleted activity.db is reported at the next open (kept in the new file, shown by dip audit verify), once', async () => {
    const { activity, dipDb } = await crashedPair();
    for (const suffix of ['', '-wal', '-shm']) rmSync(activity + suffix, { force: true });
    const store = new SqliteActivityLog(activity, new FakeClock(9_000), { witness: dipDb });
    expect(store.lostOnOpen).toMatch(/the API activity log .*activity\.db that dip\.db was started beside \(log [0-9a-f-]{36}, last opened [^)]*\) is gone: .*a new, empty log/);
    expect(await verifyActivityLog(store)).toMatchObject({ ok: true, walLosses: [{ at: 9_000, lost: store.lostOnOpen }] });
    await store.close();
    const again = new SqliteActivityLog(activity, systemClock, { witness: dipDb });
    expect(again.lostOnOpen).toBeNull();
    expect((await verifyActivityLog(again)).walLosses).toHaveLength(1);
    await again.close();
  });

  it('another activity.db put in its place is reported too; the same one reopened is not', async () => {
    const { activity, dipDb } = await crashedPair();
    const same = new SqliteActivityLog(activity, systemClock, { witness: dipDb });
    expect(same.lostOnOpen).toBeNull();
    await same.close();
    const other = await crashedPair();
    for (const suffix of ['', '-wal', '-shm']) rmSync(activity + suffix, { force: true });
    copyFileSync(other.activity, activity);
    const store = new SqliteActivityLog(activity, systemClock, { witness: dipDb });
    expect(store.lostOnOpen).toMatch(/is gone: activity\.db is another log/);
    await store.close();
  });

  it('dip serve: the start goes on and reports it as a WAL loss is (logged, journalled, on the new chain)', async () => {
    const { folder, activity } = await crashedPair();
    for (const suffix of ['', '-wal', '-shm']) rmSync(activity + suffix, { force: true });
    const config = loadConfig({}, { dataDir: folder });
    const logger: Logger = { info() {}, warn() {}, error() {} };
    const life = new Lifecycle(logger);
    const storage = await openStorage(config, systemClock, logger, life);
    const started = await startActivityLog(config, systemClock, logger, life, storage.backend.journal);
    expect(started?.lostOnOpen).toMatch(/is gone/);
    const [entry] = await storage.backend.journal.entries({ action: 'storage.activity-wal-loss', limit: 5 });
    expect(entry).toMatchObject({ target: 'activity.db', after: { lost: started?.lostOnOpen } });
    await life.stop();
  });
});

/**
 * The fault campaign's finding: activity.db symlinked to a volume of its own failed to start with ENOENT
 * on activity.db-wal (SQLite makes the -wal and -shm beside the real file; the DIP looked beside the link).
 */
describe('a database file that is a symlink (on a volume of its own)', () => {
  it('dip.db and activity.db open, write, crash-check and reopen through the link; the companions are beside the real file', async () => {
    const volume = dir();
    const data = dir();
    for (const name of ['dip.db', 'activity.db']) {
      new Database(join(volume, name)).close();
      symlinkSync(join(volume, name), join(data, name));
    }
    const backend = openSqliteBackend(join(data, 'dip.db'), { clock: systemClock });
    await commit(backend, 3);
    const store = new SqliteActivityLog(join(data, 'activity.db'), systemClock, { witness: join(data, 'dip.db') });
    await store.openChain('c', 1);
    expect(existsSync(join(volume, 'activity.db-wal'))).toBe(true);
    await store.close();
    await backend.close();
    const again = openSqliteBackend(join(data, 'dip.db'), { clock: systemClock });
    expect(await again.journal.entries({ action: 'test.write', limit: 10 })).toHaveLength(3);
    await again.close();
    const reopened = new SqliteActivityLog(join(data, 'activity.db'), systemClock, { witness: join(data, 'dip.db') });
    expect(reopened.lostOnOpen).toBeNull();
    expect((await reopened.chains()).map((c) => c.chain)).toEqual(['c']);
    await reopened.close();
  });
});

/**
 * alarms.db, a third SQLite file in WAL mode (alarm subscriptions, the alarms announced), was not checked:
 * a WAL lost after a kill -9 silently dropped subscriptions made lately (their owners never told again).
 */
describe('alarms.db: a WAL that lost subscriptions is reported and accepted, not refused', () => {
  const subscription = (id: string) => ({ id, owner: 'operator', rules: ['storage' as const], email: 'ops@example.test', webhookUrl: null, createdAt: 1 });

  async function crashedAlarms(): Promise<string> {
    const live = join(dir(), 'alarms.db');
    const store = new SqliteAlarmSubscriptions(live);
    for (let i = 0; i < 5; i++) await store.put(subscription(`s${i}`));
    const file = join(dir(), 'alarms.db');
    for (const suffix of ['', '-wal', '-shm', '-boot']) if (existsSync(live + suffix)) copyFileSync(live + suffix, file + suffix);
    await store.close();
    return file;
  }

  it('a deleted WAL: the open goes on and says what was lost (subscriptions), naming the file', async () => {
    const file = await crashedAlarms();
    rmSync(`${file}-wal`);
    const store = new SqliteAlarmSubscriptions(file);
    expect(store.lostOnOpen).toMatch(new RegExp(`${file}-wal is missing: .*alarm subscriptions`));
    await store.close();
  });

  it('an intact crash reports nothing and keeps every subscription', async () => {
    const file = await crashedAlarms();
    const store = new SqliteAlarmSubscriptions(file);
    expect(store.lostOnOpen).toBeNull();
    expect(await store.list()).toHaveLength(5);
    await store.close();
  });

  it('the storage alarm for it has a key of its own', async () => {
    expect(await walLossAlarms(() => 'lost', 7, undefined, 'storage-alarms-wal-loss')()).toEqual([expect.objectContaining({ key: 'storage-alarms-wal-loss', rule: 'storage' })]);
  });
});

/**
 * The fault campaign's finding: 64 KiB of junk written into the middle of activity.db after a kill -9; the
 * DIP started, health said the log was ok, and only dip audit verify noticed.
 */
describe('activity.db damaged: found at open (quick_check) and reported', () => {
  it('junk in the middle of the file is reported at open, naming the file and what SQLite found', async () => {
    const live = join(dir(), 'activity.db');
    const store = new SqliteActivityLog(live);
    await store.openChain('c', 1);
    const entries = Array.from({ length: 400 }, (_, i) => ({ requestId: `r${i}`, at: 1000 + i, listener: 'participant', caller: null, remote: null, method: 'GET', url: '/x', status: 200, durationMs: 1, responseBody: 'y'.repeat(2000) }));
    await store.append(chainEntries('c', { seq: 0, hash: GENESIS_HASH }, entries).records);
    // The records into the file itself, then one more in the WAL: the files as a kill -9 leaves them.
    const side = new Database(live);
    side.pragma('wal_checkpoint(TRUNCATE)');
    side.close();
    await store.append(chainEntries('c', (await store.chains())[0]!.head, [{ ...entries[0]!, requestId: 'r400' }]).records);
    const crashed = join(dir(), 'crashed');
    mkdirSync(crashed);
    for (const suffix of ['', '-wal', '-shm']) copyFileSync(`${live}${suffix}`, join(crashed, `activity.db${suffix}`));
    await store.close();
    const image = join(crashed, 'activity.db');
    overwrite(image, Math.floor(statSync(image).size / 2 / 4096) * 4096, 65_536);
    const damaged = new SqliteActivityLog(image, systemClock);
    expect(damaged.lostOnOpen).toMatch(new RegExp(`${image} is damaged \\(PRAGMA quick_check: .+\\)`, 's'));
    await damaged.close();
  });

  it('after a clean stop the file is not read through (the check costs ~1.5 s a GiB, and the log is never purged)', async () => {
    const live = join(dir(), 'activity.db');
    const store = new SqliteActivityLog(live);
    await store.openChain('c', 1);
    const entries = Array.from({ length: 400 }, (_, i) => ({ requestId: `r${i}`, at: 1000 + i, listener: 'participant', caller: null, remote: null, method: 'GET', url: '/x', status: 200, durationMs: 1, responseBody: 'y'.repeat(2000) }));
    await store.append(chainEntries('c', { seq: 0, hash: GENESIS_HASH }, entries).records);
    await store.close();
    expect(existsSync(`${live}-wal`)).toBe(false);
    overwrite(live, Math.floor(statSync(live).size / 2 / 4096) * 4096, 65_536);
    // quick_check would name the damage; a clean stop's open does not look (dip audit verify does).
    const reopened = new SqliteActivityLog(live, systemClock);
    expect(reopened.lostOnOpen).toBeNull();
    await reopened.close();
  });
});
