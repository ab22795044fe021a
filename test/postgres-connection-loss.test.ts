/**
 * What a lost PostgreSQL connection does to a node (src/adapters/postgres/pool.ts): a session ended by the
 * server in the middle of a transaction (a restart, a failover, an operator's pg_terminate_backend) fails
 * that transaction as "unavailable", and the next one runs on a new connection; the process carries on.
 * Before, pg emitted the failure on the checked-out connection with no listener, and Node ended the
 * process. And a session idle inside a transaction is ended by the server after IDLE_IN_TRANSACTION_MS,
 * so a node frozen while it holds a queue's row lock does not hold the other nodes' writes.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { PgDatabase } from '../src/adapters/postgres/database.js';
import { IDLE_IN_TRANSACTION_MS } from '../src/adapters/postgres/pool.js';
import { StoreError } from '../src/ports/errors.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

describe('a PostgreSQL connection lost mid-transaction', () => {
  let db: TestDatabase;
  let store: PgDatabase;
  let admin: pg.Client;
  beforeAll(async () => {
    db = await createTestDatabase('opendip_connloss');
    store = await PgDatabase.open({ url: await db.freshSchema(), clock: systemClock, poolSize: 2 });
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await store?.close();
    await db?.drop();
  });

  it('fails that transaction as unavailable and carries on, on a new connection', async () => {
    const crashes: unknown[] = [];
    const onUncaught = (err: unknown) => crashes.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      // The transaction waits on a lock the test holds (no clock involved) until the server ends its session.
      await admin.query('SELECT pg_advisory_lock(4242)');
      const killed = store.tx(async (c) => {
        const { rows } = await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        const waiting = c.query('SELECT pg_advisory_lock(4242)');
        await admin.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
        await waiting;
      });
      const failure = await killed.then(() => null, (e: unknown) => e);
      expect(failure).toBeInstanceOf(StoreError);
      expect((failure as StoreError).kind).toBe('unavailable');
      await admin.query('SELECT pg_advisory_unlock(4242)');
      // Give a stray 'error' event its turn: with no listener it would end the process here.
      await new Promise((r) => setImmediate(r));
      expect(crashes).toEqual([]);
      expect(await store.tx(async (c) => (await c.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one)).toBe(1);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });

  it('gives up a query left unanswered (a partition that drops packets) as unavailable, and drops its connection at once', async () => {
    // A query the server holds (on a lock the test owns) stands for one whose answer never comes: the
    // client's read timeout, shortened here, is real time, the one wait this adapter has.
    const impatient = await PgDatabase.open({ url: store.options.url, clock: systemClock, poolSize: 1, queryTimeoutMs: 300 });
    try {
      await admin.query('SELECT pg_advisory_lock(4243)');
      const held = await impatient.tx((c) => c.query('SELECT pg_advisory_lock(4243)')).then(() => null, (e: unknown) => e);
      expect(held).toBeInstanceOf(StoreError);
      expect([(held as StoreError).kind, (held as StoreError).message]).toEqual(['unavailable', 'PostgreSQL: Query read timeout']);
      // The pool's one connection was dropped, not handed out again behind the query still waiting (with
      // the lock still held, a reused connection would time out again).
      expect(await impatient.tx(async (c) => (await c.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one)).toBe(1);
    } finally {
      await admin.query('SELECT pg_advisory_unlock(4243)');
      await impatient.close();
    }
  });

  it('forgets the queue rows a failed transaction made: the next one makes them again instead of missing them', async () => {
    // Found by a fault campaign: two nodes making the same new queue deadlocked, the retry took the
    // rolled-back row for made, and the submission got 500 "queue … was not locked before appending to it".
    const queue = { recipientDipId: '1000000099', channel: 'IF-021' };
    const failed = await store.tx(async (c) => {
      await store.lockQueues(c, [queue]);
      throw new Error('the transaction fails after making the queue row');
    }).then(() => null, (e: unknown) => e);
    expect(failed).toBeInstanceOf(StoreError);
    expect((await store.tx((c) => store.lockQueues(c, [queue]))).size).toBe(1);
  });

  it('has the server end a session idle inside a transaction', async () => {
    const setting = await store.tx(async (c) => (await c.query<{ idle_in_transaction_session_timeout: string }>('SHOW idle_in_transaction_session_timeout')).rows[0]!.idle_in_transaction_session_timeout);
    expect(setting).toBe(`${IDLE_IN_TRANSACTION_MS / 1000}s`);
  });
});
