/**
 * The PostgreSQL store's health (src/adapters/postgres/database.ts) while the server refuses writes, as a
 * node connected to a read-only standby after a failover finds it (SQLSTATE 25006), or a full disk: a
 * transaction that only read (an append whose messages were all duplicates, a lookup) commits all the
 * same, and it called the store healthy again at once, so /ready, delivery and the `storage` alarm
 * flapped back to ok while every write was still refused. Only a transaction that wrote says so now.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgDatabase, PROBE_BYTES } from '../src/adapters/postgres/database.js';
import type { BackendHealth } from '../src/ports/backend.js';
import { FakeClock } from './helpers/clocks.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

describe('PostgreSQL store health while writes are refused', () => {
  let db: TestDatabase;
  let store: PgDatabase;
  const clock = new FakeClock();
  beforeAll(async () => {
    db = await createTestDatabase('opendip_health');
    // One session: what it is told to be (read-only), every statement of the store meets.
    store = await PgDatabase.open({ url: await db.freshSchema(), clock, poolSize: 1 });
  });
  afterAll(async () => {
    await store?.close();
    await db?.drop();
  });

  const write = () => store.tx((c) => c.query('INSERT INTO health_probe (at) VALUES (0)'));
  const readOnly = (on: boolean) => store.query(`SET default_transaction_read_only = ${on ? 'on' : 'off'}`);

  it('a read-only server: reads that commit leave it unavailable; the next write that commits, or the probe, makes it ok', async () => {
    const changes: Array<BackendHealth['state']> = [];
    store.onHealthChange((h) => changes.push(h.state));
    await readOnly(true);
    await expect(write()).rejects.toMatchObject({ kind: 'unavailable', code: '25006' });
    expect(store.health().state).toBe('unavailable');
    // A transaction that only reads commits on a read-only server: it says nothing of writes.
    expect(await store.tx(async (c) => (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM health_probe')).rows[0]!.n)).toBe(0);
    expect(store.health().state).toBe('unavailable');
    await readOnly(false);
    await write();
    expect(store.health().state).toBe('ok');

    // Nobody writes after the server takes writes again: the probe finds it out.
    await readOnly(true);
    await expect(write()).rejects.toMatchObject({ kind: 'unavailable' });
    await readOnly(false);
    const back = new Promise<void>((resolve) => store.onHealthChange((h) => h.state === 'ok' && resolve()));
    await clock.advance(2_000);
    await back;
    expect(changes).toEqual(['unavailable', 'ok', 'unavailable', 'ok']);
  });

  it('still unavailable for another reason: the health says the latest, not the first', async () => {
    await readOnly(true);
    await expect(write()).rejects.toMatchObject({ kind: 'unavailable', code: '25006' });
    expect(store.health()).toMatchObject({ state: 'unavailable', code: '25006', reason: expect.stringMatching(/read-only transaction/) });
    // Class 53, insufficient resources: what a full disk says (raised here; a read-only session may raise).
    const full = () => store.tx((c) => c.query("DO $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100'; END $$"));
    await expect(full()).rejects.toMatchObject({ kind: 'unavailable', code: '53100' });
    expect(store.health()).toMatchObject({ state: 'unavailable', code: '53100', reason: expect.stringMatching(/No space left on device/) });
    await readOnly(false);
    await write();
    expect(store.health().state).toBe('ok');
  });

  it('the probe writes as much as a large batch, into new space: a disk with room for a row but not a batch stays unavailable', async () => {
    // No full disk here: what the probe writes is read from the write-ahead log it made (other sessions
    // of the server add to it, never take from it). A one-row probe wrote about a hundred bytes.
    await readOnly(true);
    await expect(write()).rejects.toMatchObject({ kind: 'unavailable' });
    await readOnly(false);
    const lsn = async () => (await store.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'))[0]!.lsn;
    const before = await lsn();
    const back = new Promise<void>((resolve) => store.onHealthChange((h) => h.state === 'ok' && resolve()));
    await clock.advance(2_000);
    await back;
    const [wal] = await store.query<{ written: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::text AS written', [before]);
    expect(Number(wal!.written)).toBeGreaterThanOrEqual(PROBE_BYTES);
    // Emptied by TRUNCATE: no pages left for the next probe to reuse.
    const [table] = await store.query<{ size: string }>("SELECT (pg_relation_size(oid) + pg_relation_size(reltoastrelid))::text AS size FROM pg_class WHERE oid = 'health_probe'::regclass");
    expect(Number(table!.size)).toBe(0);
  });
});
