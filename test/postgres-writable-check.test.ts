/**
 * A healthy PostgreSQL store asks the server every few seconds whether it takes writes
 * (src/adapters/postgres/database.ts, checkWritable). Before, an idle node whose connections had come to
 * land on a read-only server said ok (/ready, /health, the storage alarm) until a participant's submission
 * met 25006 and was answered 503; a load balancer could not take it out of rotation first.
 *
 * How "the node's connections now land on a read-only server" is reproduced, on the shared server and
 * without a standby: the test's database is given `default_transaction_read_only = on` for new sessions
 * (ALTER DATABASE, which sessions already open do not see), and the store's sessions are ended by the
 * server (pg_terminate_backend), as a failover ends them. The pool reconnects, and every new session is
 * read-only: a write meets 25006 as on a standby, and transaction_read_only reads 'on'. What this does not
 * reproduce is pg_is_in_recovery() being true (no standby here); the same check reads it in the same row.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgDatabase, WRITABLE_CHECK_MS } from '../src/adapters/postgres/database.js';
import type { BackendHealth } from '../src/ports/backend.js';
import { FakeClock } from './helpers/clocks.js';
import { waitFor } from './helpers/dip-harness.js';
import { createTestDatabase, POSTGRES_URL, type TestDatabase } from './helpers/postgres.js';

describe('PostgreSQL store: a server that stops taking writes is found before a write meets it', () => {
  let db: TestDatabase;
  let store: PgDatabase;
  let admin: pg.Client;
  const clock = new FakeClock();
  beforeAll(async () => {
    db = await createTestDatabase('opendip_writable');
    store = await PgDatabase.open({ url: await db.freshSchema(), clock, poolSize: 2 });
    // On the server's own database: the ALTER DATABASE below does not reach this session.
    admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
  });
  afterAll(async () => {
    await store?.close();
    await admin?.end();
    await db?.drop();
  });

  /**
   * New sessions of the test's database are read-only (on) or not; the store's open ones are ended, as by a
   * failover. First the store's own queries (a check or a probe the clock just started) are let finish: one
   * still running when its session is ended fails 57P01, or is run again on a new session of the other
   * kind, and moves health before the step under test (that failed clean-clone CI).
   */
  const serverReadOnly = async (on: boolean) => {
    await waitFor(() => store.pool.idleCount === store.pool.totalCount && store.pool.waitingCount === 0, 10_000, "the store's queries to finish");
    await admin.query(on ? `ALTER DATABASE ${db.name} SET default_transaction_read_only = on` : `ALTER DATABASE ${db.name} RESET default_transaction_read_only`);
    const open = store.pool.totalCount;
    expect(open).toBeGreaterThan(0);
    const gone = new Promise<void>((resolve) => {
      let left = open;
      const removed = () => {
        if (--left > 0) return;
        store.pool.off('remove', removed);
        resolve();
      };
      store.pool.on('remove', removed);
    });
    const { rowCount } = await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'opendip'", [db.name]);
    expect(rowCount).toBe(open);
    // The pool has dropped every ended session: the next query opens a new one, of the server as it is now.
    await gone;
  };
  const next = (state: BackendHealth['state']) => new Promise<BackendHealth>((resolve) => store.onHealthChange((h) => h.state === state && resolve(h)));

  it('a pool with every connection in use is not made to wait for the check', async () => {
    // Two connections (poolSize 2), both taken, as by writes in flight: a check that waited for one would
    // sit behind them, and past the pool's 5 s connection timeout call a busy store unavailable.
    const held = [await store.pool.connect(), await store.pool.connect()];
    try {
      await clock.advance(WRITABLE_CHECK_MS);
      expect(store.pool.waitingCount).toBe(0);
    } finally {
      for (const c of held) c.release();
    }
  });

  it('an idle node on a read-only server turns unavailable at the next check, without writing; the probe brings it back', { timeout: 20_000 }, async () => {
    const changes: Array<BackendHealth['state']> = [];
    store.onHealthChange((h) => changes.push(h.state));
    // A healthy store has its check scheduled; on a writable server the checks change nothing.
    expect(clock.pending()).toContain(WRITABLE_CHECK_MS);
    await store.tx((c) => c.query('INSERT INTO health_probe (at) VALUES (0)'));
    const checked = await store.query<{ n: number }>('SELECT 1 AS n'); // a connection in the pool to end later
    expect(checked).toHaveLength(1);
    await clock.advance(WRITABLE_CHECK_MS);
    expect(store.health().state).toBe('ok');

    await serverReadOnly(true);
    const down = next('unavailable');
    await clock.advance(WRITABLE_CHECK_MS);
    // Nobody wrote: the check found it, on a session that takes no writes (so it only read).
    expect(await down).toMatchObject({ state: 'unavailable', code: '25006', reason: expect.stringContaining('read-only') });
    expect(store.health().state).toBe('unavailable');

    // The probe, as after a failed write, keeps it unavailable while the server refuses writes.
    await expect(store.tx((c) => c.query('INSERT INTO health_probe (at) VALUES (1)'))).rejects.toMatchObject({ code: '25006' });
    await clock.advance(2_000);
    expect(store.health().state).toBe('unavailable');

    // Writable again (the old primary back, or the standby promoted): the probe's write makes it ok, and
    // the check runs again.
    await serverReadOnly(false);
    const up = next('ok');
    await clock.advance(2_000);
    await up;
    expect(changes).toEqual(['unavailable', 'ok']);
    expect(clock.pending()).toContain(WRITABLE_CHECK_MS);

    await serverReadOnly(true);
    const downAgain = next('unavailable');
    await clock.advance(WRITABLE_CHECK_MS);
    await downAgain;
    expect(changes).toEqual(['unavailable', 'ok', 'unavailable']);
  });

  it('a store already unavailable for a write that met the read-only server names why once its probe runs', { timeout: 20_000 }, async () => {
    // A failover seen first by a write, or by a read cut off mid-flight, not by the check: the probe that
    // follows asks the server why it takes no writes, as the check would have (pg_is_in_recovery() on a
    // standby), rather than leaving "cannot execute INSERT in a read-only transaction" on /admin/health.
    await serverReadOnly(false);
    const ok = next('ok');
    await clock.advance(2_000);
    await ok;
    await serverReadOnly(true);
    await expect(store.tx((c) => c.query('INSERT INTO health_probe (at) VALUES (2)'))).rejects.toMatchObject({ code: '25006' });
    expect(store.health()).toMatchObject({ state: 'unavailable', code: '25006', reason: expect.stringMatching(/cannot execute INSERT/) });
    const named = new Promise<BackendHealth>((resolve) => store.onHealthChange((h) => /transaction_read_only/.test(h.state === 'unavailable' ? h.reason : '') && resolve(h)));
    await clock.advance(2_000);
    expect(await named).toMatchObject({ state: 'unavailable', code: '25006', reason: expect.stringContaining('its sessions are read-only (transaction_read_only is on)') });
    // Named once: further probes leave it as it is.
    const changes: BackendHealth[] = [];
    store.onHealthChange((h) => changes.push(h));
    for (let i = 0; i < 2; i++) {
      await clock.advance(2_000);
      await waitFor(() => store.pool.idleCount === store.pool.totalCount && store.pool.waitingCount === 0, 10_000, 'the probe to finish');
    }
    expect(changes).toEqual([]);
    await serverReadOnly(false);
    const up = next('ok');
    await clock.advance(2_000);
    await up;
  });
});
