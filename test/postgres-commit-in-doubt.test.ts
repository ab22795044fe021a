/**
 * A COMMIT whose answer is lost (src/adapters/postgres/in-doubt.ts). Before, the store failed such an
 * append as unavailable and the participant was told "nothing of this batch was accepted" (503) although
 * the server may have committed it: its resend was then refused as duplicates, and the batch was
 * delivered. Now the append finds out on a new connection, after ending the old session so that its
 * outcome is final, and answers what happened.
 *
 * How the answer is lost: a TCP path (test/helpers/pausable-proxy.ts) that forwards the COMMIT and then
 * goes silent for that one connection, so the server commits and the client never hears it; and, for a
 * COMMIT that did not commit, a deferred trigger that makes COMMIT wait on a lock the test holds until
 * the client gives up waiting (its read timeout, shortened here) and the store ends that session.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { PgDatabase } from '../src/adapters/postgres/database.js';
import { PgMessageLog } from '../src/adapters/postgres/message-log.js';
import { COMMIT_IN_DOUBT, StoreError } from '../src/ports/errors.js';
import { batch, message, sup } from './contract/fixtures.js';
import { FakeClock } from './helpers/clocks.js';
import { pausableProxy, type PausableProxy } from './helpers/pausable-proxy.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

/** A simple-protocol query message ('Q') carrying COMMIT: the chunk after which the path breaks. */
const isCommit = (chunk: Buffer) => chunk[0] === 0x51 && chunk.includes('COMMIT');

/**
 * How long a query goes unanswered before the client gives it up: what ends the wait for a COMMIT whose
 * answer the proxy cut. 500 ms gave up on ordinary queries of a loaded machine too (clean-clone CI, load
 * 10: "Query read timeout" before the COMMIT was sent); 2 s keeps each case a few seconds.
 */
const ANSWER_LOST_MS = 2_000;

describe('PostgreSQL: a COMMIT whose answer is lost', () => {
  let db: TestDatabase;
  let url: string;
  let look: PgDatabase;
  let admin: pg.Client;
  let proxy: PausableProxy;
  beforeAll(async () => {
    db = await createTestDatabase('opendip_indoubt');
    url = await db.freshSchema();
    look = await PgDatabase.open({ url, clock: systemClock, poolSize: 2 });
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    proxy = await pausableProxy(new URL(url));
  });
  afterAll(async () => {
    await proxy?.close();
    await admin?.end();
    await look?.close();
    await db?.drop();
  });

  const stored = async (transactionId: string) => (await look.query('SELECT 1 FROM messages WHERE transaction_id = $1', [transactionId])).length;
  /** Sessions the server has whose client is the proxy (their client_port, the proxy's upstream socket's). */
  const sessionsThroughProxy = async () =>
    (await admin.query('SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND client_port = ANY($2::int[])', [db.name, proxy.upstreamPorts()])).rowCount;

  /**
   * Runs `body` with COMMIT held: a deferred trigger waits for the test's advisory lock, so the client's
   * read timeout (500 ms) gives up on COMMIT with the transaction still open on the server.
   */
  const withCommitHeld = async (body: (store: PgDatabase) => Promise<void>) => {
    const schema = new URL(url).searchParams.get('options')!.match(/search_path=(\w+)/)![1]!;
    await admin.query(`CREATE OR REPLACE FUNCTION ${schema}.hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_lock(4251); RETURN NULL; END $$`);
    await admin.query(`CREATE CONSTRAINT TRIGGER hold_commit AFTER UPDATE ON ${schema}.queues DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${schema}.hold_commit()`);
    await admin.query('SELECT pg_advisory_lock(4251)');
    const store = await PgDatabase.open({ url, clock: systemClock, poolSize: 2, queryTimeoutMs: ANSWER_LOST_MS });
    try {
      await body(store);
    } finally {
      await admin.query('SELECT pg_advisory_unlock(4251)');
      await admin.query(`DROP TRIGGER hold_commit ON ${schema}.queues`);
      await store.close();
    }
  };

  it('that committed: the append is answered as accepted, once, after the old session was ended', async () => {
    const store = await PgDatabase.open({ url: proxy.url, clock: systemClock, poolSize: 2, queryTimeoutMs: ANSWER_LOST_MS });
    try {
      const health: string[] = [];
      store.onHealthChange((h) => health.push(h.state));
      proxy.cutAfter(isCommit);
      const m = message([sup.recipientDipId]);
      expect(await new PgMessageLog(store).append(batch([m]))).toEqual({ ok: true });
      expect(await stored(m.transactionId)).toBe(1);
      // The session whose answer was lost, alive on the server behind the silent path (the proxy still
      // holds its upstream connection), was ended: the server has no session through the proxy beyond
      // the pool's own connections (the cut one was dropped from the pool).
      expect(await sessionsThroughProxy()).toBe(store.pool.totalCount);
      expect(health).toEqual([]);
      // The queue holds it once: a resend would be a duplicate, not a second copy.
      const again = await new PgMessageLog(store).append(batch([{ ...m }]));
      expect(again).toMatchObject({ ok: false, duplicates: [m.senderUniqueReference] });
    } finally {
      await store.close();
    }
  });

  it('of a page of replay copies that committed: the copies are taken as written (a requeue job goes on from its new cursor)', async () => {
    const store = await PgDatabase.open({ url: proxy.url, clock: systemClock, poolSize: 2, queryTimeoutMs: ANSWER_LOST_MS });
    try {
      const log = new PgMessageLog(store);
      const m = message([sup.recipientDipId]);
      expect(await log.append(batch([m]))).toEqual({ ok: true });
      const [original] = await look.query<{ id: number }>('SELECT id FROM messages WHERE transaction_id = $1', [m.transactionId]);
      const copy = { originalId: original!.id, transactionId: `${m.transactionId}-R`, receivedAt: Date.now(), outbound: m.outbound, recipientDipId: sup.recipientDipId, capacity: null };
      proxy.cutAfter(isCommit);
      await log.appendReplayCopies([copy], sup);
      expect(await stored(copy.transactionId)).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('that did not commit: the append fails as unavailable, nothing stored (not "in doubt")', () =>
    withCommitHeld(async (store) => {
      const m = message([sup.recipientDipId]);
      const failed = await new PgMessageLog(store).append(batch([m])).then(
        () => null,
        (e: unknown) => e,
      );
      expect(failed).toBeInstanceOf(StoreError);
      expect(failed).toMatchObject({ kind: 'unavailable', message: 'PostgreSQL: Query read timeout' });
      expect((failed as StoreError).code).not.toBe(COMMIT_IN_DOUBT);
      // Its session was ended (so the COMMIT cannot complete later) and nothing of it is there.
      expect(await stored(m.transactionId)).toBe(0);
      const waiting = await admin.query("SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", [db.name]);
      expect(waiting.rowCount).toBe(0);
    }));

  it('that did not commit, in a group whose first batch has no message: not taken for committed (nothing to look for in that batch)', () =>
    // The look is for a message the transaction wrote: it was the first batch's first message, and a
    // first batch with none made the append look for nothing and answer every batch of the group stored.
    withCommitHeld(async (store) => {
      const log = new PgMessageLog(store);
      const m = message([sup.recipientDipId]);
      // Appended in one turn: one group, the empty batch first.
      const outcomes = await Promise.allSettled([log.append(batch([])), log.append(batch([m]))]);
      expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
      expect(await stored(m.transactionId)).toBe(0);
    }));

  it('behind a pooler (PgBouncer: the pid the client was given is not its session\'s), still ends the session that sent COMMIT', () =>
    // PgBouncer hands each client a key of its own, not the server session's pid: ending "the client's
    // pid" ended nothing, the look found no message while the session still waited to commit, and the
    // batch was answered "nothing accepted" and then stored. Made so here by giving every connection a
    // pid no session has.
    withCommitHeld(async (store) => {
      store.pool.on('acquire', (c) => Object.assign(c, { processID: 1 }));
      const m = message([sup.recipientDipId]);
      await expect(new PgMessageLog(store).append(batch([m]))).rejects.toMatchObject({ kind: 'unavailable' });
      const waiting = await admin.query("SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", [db.name]);
      expect(waiting.rowCount).toBe(0);
      await admin.query('SELECT pg_advisory_unlock(4251)');
      await admin.query('SELECT pg_advisory_lock(4251)'); // withCommitHeld releases it
      expect(await stored(m.transactionId)).toBe(0);
    }));

  it('that committed but wrote nothing (every message a duplicate): does not call an unavailable store healthy', async () => {
    // Only a transaction that wrote says writes succeed again (PgDatabase.tx): one that only read commits
    // on a read-only server too. Settled as committed, it called the store healthy all the same.
    // The fake clock starts no probe or check that could move health meanwhile.
    const store = await PgDatabase.open({ url: proxy.url, clock: new FakeClock(Date.now()), poolSize: 2, queryTimeoutMs: ANSWER_LOST_MS });
    try {
      const log = new PgMessageLog(store);
      const m = message([sup.recipientDipId]);
      expect(await log.append(batch([m]))).toEqual({ ok: true });
      const health: string[] = [];
      store.onHealthChange((h) => health.push(h.state));
      // A read that ends its own session, on each try (query runs one ended by an operator once more):
      // the store turns unavailable at once, with no timeout to wait for.
      await expect(store.query('SELECT pg_terminate_backend(pg_backend_pid())')).rejects.toMatchObject({ kind: 'unavailable', code: '57P01' });
      expect(health).toEqual(['unavailable']);
      proxy.cutAfter(isCommit);
      expect(await log.append(batch([{ ...m }]))).toMatchObject({ ok: false, duplicates: [m.senderUniqueReference] });
      expect(health).toEqual(['unavailable']);
    } finally {
      await store.close();
    }
  });

  it('that cannot be checked (no way to tell which rows it wrote): fails with COMMIT_IN_DOUBT, never "nothing stored"', async () => {
    const store = await PgDatabase.open({ url: proxy.url, clock: systemClock, poolSize: 2, queryTimeoutMs: ANSWER_LOST_MS });
    try {
      await look.query('CREATE TABLE IF NOT EXISTS in_doubt_rows (n int)');
      proxy.cutAfter(isCommit);
      const failed = await store.tx((c) => c.query('INSERT INTO in_doubt_rows VALUES (1)')).then(
        () => null,
        (e: unknown) => e,
      );
      expect(failed).toMatchObject({ kind: 'unavailable', code: COMMIT_IN_DOUBT, message: expect.stringContaining('whether the transaction committed is not known') });
      // And indeed it had committed.
      expect(await look.query('SELECT n FROM in_doubt_rows')).toEqual([{ n: 1 }]);
    } finally {
      await store.close();
    }
  });
});
