/**
 * A COMMIT in doubt on a primary that waits for a synchronous standby (docs/cluster.md, "An unanswered
 * commit"). A fault campaign's primary had `synchronous_standby_names = 'ANY 1 (ghost)'` (a standby that
 * never answers): the append's COMMIT waited until the client gave up, the store ended that session
 * (settleInDoubt), which makes PostgreSQL keep the transaction committed locally without any standby, then
 * found its row and answered 201, with `pg_stat_replication` empty: RPO 0 broken. And while it waited,
 * /admin/health said storage ok and no alarm rose.
 *
 * A private primary and a real streaming standby (test/helpers/postgres-standby.ts, initdb on free ports);
 * the standby the primary waits for is changed by ALTER SYSTEM and a reload.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { PgDatabase } from '../src/adapters/postgres/database.js';
import { standbysWaitedFor } from '../src/adapters/postgres/in-doubt.js';
import { PgMessageLog } from '../src/adapters/postgres/message-log.js';
import { freePorts } from '../src/cli/cluster/processes.js';
import { storageAlarms } from '../src/pipeline/alarm-sources.js';
import { COMMIT_IN_DOUBT } from '../src/ports/errors.js';
import { batch, message, sup } from './contract/fixtures.js';
import { FakeClock } from './helpers/clocks.js';
import { waitFor } from './helpers/dip-harness.js';
import { pausableProxy } from './helpers/pausable-proxy.js';
import { startPrimaryAndStandby, stopQuietly, waitForReplication, type PrimaryAndStandby } from './helpers/postgres-standby.js';

const DATABASE = 'opendip_sync';
/** How long a query goes unanswered before the client gives it up (35 s in production): a COMMIT waiting for the standby. */
const ANSWER_LOST_MS = 3_000;
const isCommit = (chunk: Buffer) => chunk[0] === 0x51 && chunk.includes('COMMIT');

describe('PostgreSQL with a synchronous standby: a COMMIT whose answer is lost', () => {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-sync-standby-'));
  let servers: PrimaryAndStandby;
  let admin: pg.Client;
  let url: string;

  const waitingForStandby = async () => (await admin.query("SELECT 1 FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND datname = $1", [DATABASE])).rowCount;
  /** Which standbys the primary waits for (ALTER SYSTEM, reload): a name no standby has is one that never answers. */
  const syncStandbys = async (names: string) => {
    await admin.query(`ALTER SYSTEM SET synchronous_standby_names = '${names}'`);
    await admin.query('SELECT pg_reload_conf()');
    await waitFor(async () => (await admin.query<{ s: string }>("SELECT current_setting('synchronous_standby_names') AS s")).rows[0]!.s === names, 10_000, 'the reload', 20);
    if (names !== servers.standbyName) return;
    // The commits still waiting are released when the standby next reports its position: at once when it
    // is sent new WAL (a switch to the next segment), else only at its status interval (10 s).
    await waitFor(async () => (await admin.query('SELECT pg_switch_wal()'), (await waitingForStandby()) === 0), 20_000, 'the commits waiting for the standby to be released', 100);
  };
  /**
   * A message appended while the primary waits for a standby that never answers ('ANY 1 (ghost)'): its
   * COMMIT in doubt. `resend` runs with the log and the message; the standby is named again after it.
   */
  const withAnOriginalInDoubt = async (resend: (log: PgMessageLog, m: ReturnType<typeof message>) => Promise<void>) => {
    const store = await PgDatabase.open({ url, clock: systemClock, poolSize: 3, queryTimeoutMs: ANSWER_LOST_MS });
    try {
      const log = new PgMessageLog(store);
      await syncStandbys('ANY 1 (ghost)');
      const m = message([sup.recipientDipId]);
      await expect(log.append(batch([m]))).rejects.toMatchObject({ code: COMMIT_IN_DOUBT });
      await resend(log, m);
    } finally {
      await syncStandbys(servers.standbyName);
      await store.close();
    }
  };
  const stored = async (transactionId: string) => (await admin.query('SELECT 1 FROM messages WHERE transaction_id = $1', [transactionId])).rowCount;

  beforeAll(async () => {
    chmodSync(dir, 0o755); // PostgreSQL runs as its own account
    const [primaryPort, standbyPort] = await freePorts(2);
    servers = startPrimaryAndStandby({ dir, primaryPort: primaryPort!, standbyPort: standbyPort! });
    await waitForReplication(servers.primary, servers.standbyName, 'sync');
    const root = new pg.Client({ connectionString: servers.primary.url });
    await root.connect();
    await root.query(`CREATE DATABASE ${DATABASE}`);
    await root.end();
    const u = new URL(servers.primary.url);
    u.pathname = `/${DATABASE}`;
    url = u.toString();
    admin = new pg.Client({ connectionString: url });
    await admin.connect();
  }, 120_000);
  afterAll(async () => {
    await admin?.end();
    stopQuietly(servers?.standby);
    stopQuietly(servers?.primary);
    rmSync(dir, { recursive: true, force: true });
  });

  it('on a standby that never acknowledges: answered COMMIT_IN_DOUBT (never accepted), and health and the storage alarm say the standby does not acknowledge', async () => {
    // Opened while the standby answers: opening writes (the schema, the day partitions).
    const store = await PgDatabase.open({ url, clock: systemClock, poolSize: 3, queryTimeoutMs: ANSWER_LOST_MS, writableCheckMs: 100, syncWaitAlarmMs: 500 });
    try {
      await syncStandbys('ANY 1 (ghost)');
      const m = message([sup.recipientDipId]);
      const appended = new PgMessageLog(store).append(batch([m])).then(
        (r) => ({ answered: r }),
        (e: unknown) => ({ failed: e }),
      );
      // While the COMMIT waits: the store is not called healthy, and the storage alarm rises.
      await waitFor(() => store.health().state !== 'ok', ANSWER_LOST_MS, 'the health to tell of the COMMIT waiting for the standby', 20);
      expect(store.health()).toMatchObject({ state: 'unavailable', reason: expect.stringMatching(/the standby does not acknowledge.*ANY 1 \(ghost\)/) });
      // Without the wait for a lasting outage (STORAGE_LASTING_MS): what the alarm says is what is tested here.
      const alarms = storageAlarms(() => store.health(), systemClock, undefined, 0)();
      expect(alarms).toMatchObject([{ rule: 'storage', summary: expect.stringContaining('the standby does not acknowledge') }]);

      const outcome = await appended;
      expect(outcome).toMatchObject({ failed: { kind: 'unavailable', code: COMMIT_IN_DOUBT, message: expect.stringContaining('waits for a synchronous standby') } });
      // The session is left waiting (ending it would make PostgreSQL keep the transaction on the primary
      // alone, and delivery hand out what a failover loses): the row stays invisible meanwhile.
      expect(await stored(m.transactionId)).toBe(0);
      expect(await waitingForStandby()).toBeGreaterThanOrEqual(1);
      // A standby acknowledges: the COMMIT completes, and the row is there.
      await syncStandbys(servers.standbyName);
      expect(await stored(m.transactionId)).toBe(1);
    } finally {
      // The standby it waits for again: whatever still waits (the health probe's COMMIT) completes.
      await syncStandbys(servers.standbyName);
      await store.close();
    }
  }, 60_000);

  it('on a standby that never acknowledges, with every connection of the pool waiting for it: health still says so', async () => {
    // The writable check skips a busy pool (it would only queue behind the writes): every connection
    // waiting for the standby is when it is needed most.
    const store = await PgDatabase.open({ url, clock: systemClock, poolSize: 2, queryTimeoutMs: ANSWER_LOST_MS, writableCheckMs: 100, syncWaitAlarmMs: 500 });
    try {
      await syncStandbys('ANY 1 (ghost)');
      const write = () => store.tx((c) => c.query('INSERT INTO health_probe (at, pad) VALUES (0, NULL)')).catch((e: unknown) => e);
      const writes = [write(), write()];
      await waitFor(() => store.pool.idleCount === 0 && store.pool.totalCount === 2, ANSWER_LOST_MS, 'both connections in use', 20);
      await waitFor(() => store.health().state !== 'ok', ANSWER_LOST_MS, 'the health to tell of the COMMITs waiting for the standby', 20);
      expect(store.health()).toMatchObject({ state: 'unavailable', code: 'SYNC_STANDBY_WAIT', reason: expect.stringContaining('the standby does not acknowledge') });
      expect(await Promise.all(writes)).toMatchObject([{ code: COMMIT_IN_DOUBT }, { code: COMMIT_IN_DOUBT }]);
    } finally {
      await syncStandbys(servers.standbyName);
      await store.close();
    }
  }, 60_000);

  it('while the standby does not acknowledge, the health probe runs one at a time (each waits for it)', async () => {
    // A probe writes and commits, so it waits for the standby too, until the client gives up: one every
    // 2 s, stacked, took every connection of the pool. The fake clock runs the probe's timer at will.
    const clock = new FakeClock(Date.now());
    const store = await PgDatabase.open({ url, clock, poolSize: 4, queryTimeoutMs: 10_000 });
    try {
      await syncStandbys('ANY 1 (ghost)');
      // A read its session's end fails: unavailable at once, and probing starts.
      await expect(store.query('SELECT pg_terminate_backend(pg_backend_pid())')).rejects.toMatchObject({ kind: 'unavailable' });
      await clock.advance(2_000);
      await waitFor(async () => (await waitingForStandby()) === 1, 5_000, 'the first probe to wait for the standby', 20);
      for (let i = 0; i < 5; i++) await clock.advance(2_000);
      // A read through the pool after the ticks: any probe they started has asked for its connection by then.
      await store.query('SELECT 1');
      expect({ connections: store.pool.totalCount, queued: store.pool.waitingCount }).toEqual({ connections: 2, queued: 0 });
      expect(await waitingForStandby()).toBe(1);
    } finally {
      await syncStandbys(servers.standbyName);
      await store.close();
    }
  }, 60_000);

  it('a resend of a batch the primary alone committed (a session ended while waiting for the standby): COMMIT_IN_DOUBT, not MSG1006, until a standby has it', async () => {
    await withAnOriginalInDoubt(async (log, m) => {
      // An operator (or an older version of the node) ends the waiting sessions: committed on the primary alone.
      await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND datname = $1", [DATABASE]);
      await waitFor(async () => (await stored(m.transactionId)) === 1, 5_000, 'the row committed on the primary alone', 20);
      // The resend finds its references, in a transaction that writes nothing (so whose COMMIT waits for no standby).
      await expect(log.append(batch([m]))).rejects.toMatchObject({ kind: 'unavailable', code: COMMIT_IN_DOUBT, message: expect.stringContaining('no synchronous standby is shown to have it') });
      await syncStandbys(servers.standbyName);
      expect(await log.append(batch([m]))).toMatchObject({ ok: false, duplicates: [m.senderUniqueReference] });
    });
  }, 60_000);

  it('a resend while the first COMMIT still waits for the standby: never answered MSG1006 before a standby has the original', async () => {
    await withAnOriginalInDoubt(async (log, m) => {
      // The original is invisible, but its reference's index entry is there: the resend's claim waits for it.
      const resent = await log.append(batch([m])).then(
        (r) => ({ answered: r }),
        (e: unknown) => ({ failed: e }),
      );
      // Its lock waits run out (lock_timeout, retried within the store's budget): 503, never "already accepted".
      expect(resent).toMatchObject({ failed: { kind: 'unavailable', code: '55P03' } });
      await syncStandbys(servers.standbyName);
      expect(await log.append(batch([m]))).toMatchObject({ ok: false, duplicates: [m.senderUniqueReference] });
    });
  }, 60_000);

  it('that reached the standby: answered as accepted (the standby is shown to have it)', async () => {
    const proxy = await pausableProxy(new URL(url));
    const store = await PgDatabase.open({ url: proxy.url, clock: systemClock, poolSize: 2, queryTimeoutMs: ANSWER_LOST_MS });
    try {
      await waitForReplication(servers.primary, servers.standbyName, 'sync');
      proxy.cutAfter(isCommit);
      const m = message([sup.recipientDipId]);
      expect(await new PgMessageLog(store).append(batch([m]))).toEqual({ ok: true });
      expect(await stored(m.transactionId)).toBe(1);
      expect(store.health()).toEqual({ state: 'ok' });
    } finally {
      await store.close();
      await proxy.close();
    }
  }, 60_000);
});

describe('how many standbys synchronous_standby_names makes a commit wait for', () => {
  it('reads FIRST n, ANY n and n (…), and a plain list as its first one', () => {
    expect(['ANY 2 (a, b, c)', 'any 1 (ghost)', 'FIRST 3 (a, b, c)', '2 (a, b)', 'a, b', '*', ' "s1" '].map(standbysWaitedFor)).toEqual([2, 1, 3, 2, 1, 1, 1]);
  });
});
