/**
 * Applying the PostgreSQL schema (src/adapters/postgres/schema.ts, applySchema): a node opening a store whose
 * schema is in place takes no table lock, so it never queues the other nodes' writers behind a lock request
 * (PostgreSQL locks a table for CREATE INDEX / ALTER TABLE … IF NOT EXISTS before it looks); a changed
 * schema is applied, and gives a table's lock up after a timeout, trying again, rather than hold writers.
 */

import pg from 'pg';
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { PgDatabase } from '../src/adapters/postgres/database.js';
import { BACKFILL_RETRY_MS, openPostgresBackend } from '../src/adapters/postgres/index.js';
import { FakeClock } from './helpers/clocks.js';
import { quietLogger, waitFor } from './helpers/dip-harness.js';
import { PgMessageLog } from '../src/adapters/postgres/message-log.js';
import { PgRegistry } from '../src/adapters/postgres/registry.js';
import { openPool } from '../src/adapters/postgres/pool.js';
import { applySchema, LOCKS, SCHEMA } from '../src/adapters/postgres/schema.js';
import { attemptId, batch, mds, message, sup } from './contract/fixtures.js';
import { PgArchive } from '../src/adapters/postgres/archive.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

describe('the PostgreSQL schema', () => {
  let db: TestDatabase;
  let url: string;
  let store: PgDatabase;
  /** A writer of another node, in the middle of its transaction. */
  let writer: pg.Client;
  let admin: pg.Client;
  beforeAll(async () => {
    db = await createTestDatabase('opendip_schema');
  });
  afterAll(async () => {
    await db?.drop();
  });
  beforeEach(async () => {
    url = await db.freshSchema();
    store = await PgDatabase.open({ url, clock: systemClock, poolSize: 2 });
    writer = new pg.Client({ connectionString: url });
    admin = new pg.Client({ connectionString: url });
    await Promise.all([writer.connect(), admin.connect()]);
  });
  afterEach(async () => {
    await writer.query('ROLLBACK').catch(() => {});
    await Promise.all([writer.end(), admin.end()]);
    await store.close();
  });

  /** Writers mid-transaction on the tables ingest writes (what each holds while it appends). */
  const holdWriterLocks = async (): Promise<void> => {
    await writer.query('BEGIN');
    for (const table of ['messages', 'batches', 'queue_entries', 'sender_refs', 'delivery_attempts']) await writer.query(`LOCK TABLE ${table} IN ROW EXCLUSIVE MODE`);
  };

  /** Lock requests of this database's sessions that wait (PostgreSQL's own view, no timing involved). */
  const waiting = async (): Promise<number> =>
    (await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted AND a.datname = current_database()')).rows[0]!.n;

  /** Settles `p`, failing as soon as any session of this database waits for a lock before it does. */
  const withoutWaiting = async <T>(p: Promise<T>): Promise<T> => {
    let settled = false;
    const result = p.finally(() => (settled = true));
    while (!settled) {
      expect(await waiting(), 'a session waited for a lock').toBe(0);
      await new Promise((r) => setImmediate(r));
    }
    return result;
  };

  it('opens a store whose schema is in place without taking a table lock', async () => {
    await holdWriterLocks();
    const second = await withoutWaiting(PgDatabase.open({ url, clock: systemClock, poolSize: 1 }));
    await second.close();
  });

  it('applies a changed schema (an upgrade): what the new version adds is made', async () => {
    await admin.query("UPDATE dip_schema_digests SET digest = 'an older version' WHERE lock_key = $1", [LOCKS.schema]);
    await admin.query('DROP INDEX messages_batch');
    const upgraded = await PgDatabase.open({ url, clock: systemClock, poolSize: 1 });
    await upgraded.close();
    expect((await admin.query("SELECT to_regclass('messages_batch') AS i")).rows[0].i).toBe('messages_batch');
    expect((await admin.query<{ digest: string }>('SELECT digest FROM dip_schema_digests WHERE lock_key = $1', [LOCKS.schema])).rows[0]!.digest).not.toBe('an older version');
    // And the version is now in place: the next opening takes no lock.
    await holdWriterLocks();
    await (await withoutWaiting(PgDatabase.open({ url, clock: systemClock, poolSize: 1 }))).close();
  });

  it('gives queues made before pulled positions (2026-12-03) the column: existing queues read 0, and pulls are recorded from then on', async () => {
    await admin.query("UPDATE dip_schema_digests SET digest = 'an older version' WHERE lock_key = $1", [LOCKS.schema]);
    await admin.query('ALTER TABLE queues DROP COLUMN pulled_seq');
    await admin.query("INSERT INTO queues (recipient_dip_id, channel, head, acked_seq) VALUES ('1000000001', 'IF-021', 5, 2)");
    const upgraded = await PgDatabase.open({ url, clock: systemClock, poolSize: 1 });
    try {
      const log = new PgMessageLog(upgraded);
      const queue = { recipientDipId: '1000000001', channel: 'IF-021' };
      expect(await log.queueState(queue)).toEqual({ ackedSeq: 2, headSeq: 5, pulledSeq: 0 });
      await log.markPulled(queue, 4);
      expect(await log.queueState(queue)).toEqual({ ackedSeq: 2, headSeq: 5, pulledSeq: 4 });
    } finally {
      await upgraded.close();
    }
  });

  /**
   * A store as a build before 2026-12-06 left it, with queues for `recipients`: the supplier acknowledged 1-2
   * (journalled as delivered); 3-4 then went stale, as did all of the other queue.
   */
  const beforeAcknowledgedPositions = async (recipients: string[]): Promise<void> => {
    const log = new PgMessageLog(store);
    await log.append(batch([1, 2, 3, 4].map(() => message(recipients))));
    await new PgArchive(store).recordAttempt({ attemptId: attemptId(), queue: sup, firstSeq: 1, lastSeq: 2, url: 'pull', startedAt: systemClock.now(), latencyMs: 0, status: null, verdict: 'delivered', error: null });
    await log.settle(sup, { upTo: 2 });
    for (const q of [sup, mds]) {
      const entries = await log.readQueue(q, (await log.queueState(q)).ackedSeq, 10, 1 << 20);
      await log.settle(q, { upTo: 4, deadLetters: entries.map((e) => ({ seq: e.seq, messageId: e.messageId, reason: 'stale' as const, status: null, detail: 'stale' })) });
    }
    await admin.query("UPDATE dip_schema_digests SET digest = 'an older version' WHERE lock_key = $1", [LOCKS.schema]);
    await admin.query('ALTER TABLE queues DROP COLUMN told_seq, DROP COLUMN told_from');
  };

  it("gives queues made before the acknowledged position was kept in them (2026-12-06) the columns, filled from the delivery journal as acknowledgements read it before", async () => {
    await beforeAcknowledgedPositions(['SUP0000001', 'MDS0000001']);
    const upgraded = await PgDatabase.open({ url, clock: systemClock, poolSize: 1 });
    try {
      const after = new PgMessageLog(upgraded);
      // The supplier's next acknowledgement accounts for 3-4 (its journal's last delivery reached 2); the
      // other queue's, with no delivery journalled, for all of it (up to 10,000 back, as before).
      expect(await after.acknowledge(sup, 4)).toBe(2);
      expect(await after.acknowledge(mds, 4)).toBe(0);
      // A queue made after the upgrade starts from nothing.
      await after.append(batch([message(['SUP0000002'])]));
      expect(await after.acknowledge({ recipientDipId: 'SUP0000002', channel: 'IF-021' }, 1)).toBe(0);
    } finally {
      await upgraded.close();
    }
    // The schema applied again (a later upgrade) leaves the positions as they are.
    await admin.query("UPDATE dip_schema_digests SET digest = 'an older version' WHERE lock_key = $1", [LOCKS.schema]);
    const again = await PgDatabase.open({ url, clock: systemClock, poolSize: 1 });
    try {
      expect(await new PgMessageLog(again).acknowledge(sup, 4)).toBe(2);
    } finally {
      await again.close();
    }
  });

  it('fills the acknowledged positions after the schema, not in its transaction: in batches, resumable, its readers right before and while it runs (settle2)', async () => {
    await beforeAcknowledgedPositions(['SUP0000001', 'MDS0000001', 'SUP0000003']);
    const upgraded = await PgDatabase.open({ url, clock: systemClock, poolSize: 1 });
    const told = async () => (await admin.query<{ r: string; told: number | null; from: number | null }>('SELECT recipient_dip_id AS r, told_seq::int AS told, told_from::int AS "from" FROM queues ORDER BY recipient_dip_id')).rows;
    try {
      // The schema step read no journal and wrote no queue row: every existing row is left to the backfill.
      expect(await told()).toEqual([
        { r: 'MDS0000001', told: null, from: null },
        { r: 'SUP0000001', told: null, from: null },
        { r: 'SUP0000003', told: null, from: null },
      ]);
      const after = new PgMessageLog(upgraded);
      // Read meanwhile as the journal says (2 for the supplier, 0 with none journalled); the acknowledgement fills its row.
      expect(await after.acknowledge(sup, 4)).toBe(2);
      // A queue made after the upgrade starts from 0 (the default), not left for the backfill.
      await after.append(batch([message(['SUP0000002'])]));
      // One queue per batch: the rows still NULL are filled, the one written meanwhile left as it is.
      expect(await after.backfillAcknowledged(1)).toBe(2);
      expect(await told()).toEqual([
        { r: 'MDS0000001', told: 0, from: 0 },
        { r: 'SUP0000001', told: 4, from: 2 },
        { r: 'SUP0000002', told: 0, from: 0 },
        { r: 'SUP0000003', told: 0, from: 0 },
      ]);
      // Resumable and idempotent: a run cut off leaves rows NULL, which the next run fills; nothing else moves.
      await admin.query("UPDATE queues SET told_seq = NULL, told_from = NULL WHERE recipient_dip_id = 'SUP0000003'");
      expect(await after.backfillAcknowledged()).toBe(1);
      expect(await after.backfillAcknowledged()).toBe(0);
      expect(await after.acknowledge(mds, 4)).toBe(0);
      expect(await after.acknowledge({ recipientDipId: 'SUP0000003', channel: 'IF-021' }, 4)).toBe(0);
    } finally {
      await upgraded.close();
    }
  });

  // A run that failed was swallowed (`.catch(() => 0)`): nobody was told, nothing tried again until the next
  // start, and nothing said whether it had finished.
  it('logs a backfill run that fails, runs it again later, and says when it has finished (dip_storage_backfill_pending)', async () => {
    await beforeAcknowledgedPositions(['SUP0000001', 'MDS0000001']);
    // Every write of a queue's row refused (as a full disk or a read-only server would) until the test lifts it.
    await admin.query(`CREATE TABLE refuse_queue_writes (refuse boolean); INSERT INTO refuse_queue_writes VALUES (true);
      CREATE FUNCTION refuse_queue_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF (SELECT refuse FROM refuse_queue_writes) THEN RAISE EXCEPTION 'queue writes refused by the test'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER refuse_queue_write BEFORE UPDATE ON queues FOR EACH ROW EXECUTE FUNCTION refuse_queue_write()`);
    const clock = new FakeClock(1_000_000);
    const warned: unknown[] = [];
    const logger = { ...quietLogger, warn: (obj: object, msg?: string) => void warned.push({ ...obj, msg }) };
    const backend = await openPostgresBackend({ url, clock, poolSize: 2, logger });
    try {
      await waitFor(() => warned.length > 0, 10_000, 'the failed run logged');
      expect(warned[0]).toMatchObject({ msg: expect.stringMatching(/could not fill the acknowledged positions/), retryInMs: BACKFILL_RETRY_MS });
      expect(backend.backfillPending()).toBe(true);
      await admin.query('UPDATE refuse_queue_writes SET refuse = false');
      await clock.advance(BACKFILL_RETRY_MS);
      await waitFor(() => !backend.backfillPending(), 10_000, 'the run again finished');
      expect((await admin.query('SELECT count(*)::int AS n FROM queues WHERE told_seq IS NULL')).rows[0]).toEqual({ n: 0 });
      expect(warned).toHaveLength(1);
    } finally {
      await backend.close();
    }
  });

  it('gives queue entries made before routed capacities were kept (2026-12-05) the column: existing ones read none (all receiving roles, as then)', async () => {
    const log = new PgMessageLog(store);
    await log.append(batch([message(['SUP0000001'])]));
    await admin.query("UPDATE dip_schema_digests SET digest = 'an older version' WHERE lock_key = $1", [LOCKS.schema]);
    await admin.query('ALTER TABLE queue_entries DROP COLUMN capacity');
    const upgraded = await PgDatabase.open({ url, clock: systemClock, poolSize: 1 });
    try {
      const after = new PgMessageLog(upgraded);
      await after.append(batch([message(['SUP0000001'], { capacities: { SUP0000001: 'LDSO' } })]));
      expect((await after.readQueue(sup, 0, 10, 1 << 20)).map((e) => e.capacity)).toEqual([null, 'LDSO']);
    } finally {
      await upgraded.close();
    }
  });

  it('gives webhooks made before who registered them was recorded (2026-12-05) the column: existing ones read null (not known)', async () => {
    const registry = new PgRegistry(store);
    await registry.putWebhook({ recipientDipId: 'SUP0000001', channel: 'IF-021', url: 'https://a', maxMessageCount: 1, maxPayloadKb: 1, registeredBy: 'SUP0000001' });
    await admin.query("UPDATE dip_schema_digests SET digest = 'an older version' WHERE lock_key = $1", [LOCKS.schema]);
    await admin.query('ALTER TABLE webhooks DROP COLUMN registered_by');
    const upgraded = await PgDatabase.open({ url, clock: systemClock, poolSize: 1 });
    try {
      const after = new PgRegistry(upgraded);
      await after.putWebhook({ recipientDipId: 'SUP0000001', channel: 'STATUS', url: 'https://b', maxMessageCount: 1, maxPayloadKb: 1, registeredBy: 'DCP0000001' });
      expect((await after.webhooks()).map((w) => [w.channel, w.registeredBy]).sort()).toEqual([['IF-021', null], ['STATUS', 'DCP0000001']]);
    } finally {
      await upgraded.close();
    }
  });

  it('gives publications made before notices were recorded queued (2026-12-03) the column: existing ones read as notified', async () => {
    await admin.query("UPDATE dip_schema_digests SET digest = 'an older version' WHERE lock_key = $1", [LOCKS.schema]);
    await admin.query('DROP INDEX publications_awaiting_notice');
    await admin.query('ALTER TABLE publications DROP COLUMN notice_queued');
    await admin.query(`INSERT INTO publications (id, channel, publication_type, version, publisher_dip_id, format, compression, file_name, public, size, sha256, published_at)
      VALUES ('before-the-column', 'REP-002', 'DUoS', '1', 'ISD0000001', 'csv', 'none', 'r.csv', false, 1, 'ab', 10)`);
    const upgraded = await PgDatabase.open({ url, clock: systemClock, poolSize: 1 });
    try {
      expect((await admin.query("SELECT to_regclass('publications_awaiting_notice') AS i")).rows[0].i).toBe('publications_awaiting_notice');
      expect((await admin.query("SELECT notice_queued FROM publications WHERE id = 'before-the-column'")).rows).toEqual([{ notice_queued: true }]);
    } finally {
      await upgraded.close();
    }
  });

  it('gives a journal made before attempt IDs (2026-12-03) the column and a unique index on every day', async () => {
    // What an older version left: the journal without the column or its index, and a record of today in it.
    await admin.query("UPDATE dip_schema_digests SET digest = 'an older version' WHERE lock_key = $1", [LOCKS.schema]);
    await admin.query('DROP INDEX delivery_attempts_attempt_id');
    await admin.query('ALTER TABLE delivery_attempts DROP COLUMN attempt_id');
    const insert = `INSERT INTO delivery_attempts (attempt_id, queue_id, first_seq, last_seq, url, started_at, latency_ms, status, verdict, error)
      VALUES ($1, 1, 1, 1, 'https://x', $2, 3, 200, 'delivered', NULL) ON CONFLICT (attempt_id, started_at) DO NOTHING`;
    const now = Date.now();
    await admin.query(`INSERT INTO delivery_attempts (queue_id, first_seq, last_seq, url, started_at, latency_ms, status, verdict, error) VALUES (1, 1, 1, 'https://x', $1, 3, 503, 'retry', NULL)`, [now]);
    await (await PgDatabase.open({ url, clock: systemClock, poolSize: 1 })).close();
    // Each day's partition has its part of the index (the ON CONFLICT's arbiter, whatever day a record falls on).
    const days = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'delivery_attempts'");
    const indexed = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'delivery_attempts_attempt_id'");
    expect(days.rows[0]!.n).toBeGreaterThan(0);
    expect(indexed.rows[0]!.n).toBe(days.rows[0]!.n);
    const id = '017f22e2-79b0-7cc3-98c4-dc0c0c07398f';
    await admin.query(insert, [id, now]);
    await admin.query(insert, [id, now]);
    const rows = await admin.query<{ attempt_id: string | null; verdict: string }>('SELECT attempt_id, verdict FROM delivery_attempts ORDER BY id');
    expect(rows.rows).toEqual([
      { attempt_id: null, verdict: 'retry' },
      { attempt_id: id, verdict: 'delivered' },
    ]);
  });

  it('applies an upgrade that takes longer than the statement and read timeouts ingest runs under (an index over a large journal)', async () => {
    await admin.query("UPDATE dip_schema_digests SET digest = 'an older version' WHERE lock_key = $1", [LOCKS.schema]);
    const pool = openPool({ url, max: 1, applicationName: 'schema-test', statementTimeoutMs: 200, queryTimeoutMs: 300 });
    try {
      // The stand-in for a long index build: the same DDL, then half a second of work in its transaction.
      await applySchema(pool, LOCKS.schema, `${SCHEMA};\nSELECT pg_sleep(0.5);`);
      expect((await admin.query<{ digest: string }>('SELECT digest FROM dip_schema_digests WHERE lock_key = $1', [LOCKS.schema])).rows[0]!.digest).not.toBe('an older version');
      // What ingest runs afterwards is still held to the pool's timeout (SET LOCAL ended with the upgrade):
      // read from the server, not timed (a slow query raced the client's own read timeout on a busy machine).
      const { rows } = await pool.query<{ statement_timeout: string }>('SHOW statement_timeout');
      expect(rows[0]!.statement_timeout).toBe('200ms');
    } finally {
      await pool.end();
    }
  });

  it('a node that opens while another applies a long upgrade waits for it instead of failing its open', async () => {
    await admin.query("UPDATE dip_schema_digests SET digest = 'an older version' WHERE lock_key = $1", [LOCKS.schema]);
    const pools = [1, 2].map((n) => openPool({ url, max: 1, applicationName: `node-${n}`, statementTimeoutMs: 200, queryTimeoutMs: 300 }));
    try {
      const slow = `${SCHEMA};\nSELECT pg_sleep(1);`;
      const first = applySchema(pools[0]!, LOCKS.schema, slow);
      // The second asks once the first holds the advisory lock (PostgreSQL's own view, no timing involved).
      const holding = async () =>
        (await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")).rows[0]!.n;
      while ((await holding()) === 0) await new Promise((r) => setImmediate(r));
      const second = applySchema(pools[1]!, LOCKS.schema, slow).then(() => 'applied', (e: Error & { code?: string }) => `${e.code ?? ''} ${e.message}`);
      await first;
      expect(await second).toBe('applied');
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it('puts the registry version row back on open (the digest does not watch rows)', async () => {
    await admin.query('DELETE FROM registry_version');
    await (await PgDatabase.open({ url, clock: systemClock, poolSize: 1 })).close();
    expect((await admin.query('SELECT id, version FROM registry_version')).rows).toEqual([{ id: 1, version: '0' }]);
  });

  it('makes the tables in a schema of their own when the search_path goes on to another deployment', async () => {
    // `url`'s schema holds a deployment; a second one in `staging` with search_path=staging,<that schema>.
    const first = new URL(url).searchParams.get('options')!.replace('-c search_path=', '');
    await admin.query('CREATE SCHEMA staging');
    const staging = new URL(url);
    staging.searchParams.set('options', `-c search_path=staging,${first}`);
    await (await PgDatabase.open({ url: staging.toString(), clock: systemClock, poolSize: 1 })).close();
    const made = await admin.query<{ t: string | null }>("SELECT to_regclass('staging.messages')::text AS t");
    expect(made.rows[0]!.t).toBe('staging.messages');
  });

  it('gives a table lock up after its timeout while writers hold the tables, and tries again until they let go', async () => {
    await admin.query("UPDATE dip_schema_digests SET digest = 'an older version' WHERE lock_key = $1", [LOCKS.schema]);
    await holdWriterLocks();
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      // One try: refused with PostgreSQL's lock timeout instead of waiting for as long as the writer takes.
      const once = await applySchema(pool, LOCKS.schema, SCHEMA, { timeoutMs: 50, tries: 1 }).then(() => null, (e: unknown) => e);
      expect((once as { code?: string }).code).toBe('55P03');
      // Many tries: it waits (a lock request shows), and is applied once the writer commits.
      let failed: unknown = null;
      const applying = applySchema(pool, LOCKS.schema, SCHEMA, { timeoutMs: 50, tries: 1_000 }).catch((e: unknown) => {
        failed = e;
      });
      while (failed === null && (await waiting()) === 0) await new Promise((r) => setImmediate(r));
      expect(failed).toBeNull();
      await writer.query('COMMIT');
      await applying;
      expect((await admin.query<{ digest: string }>('SELECT digest FROM dip_schema_digests WHERE lock_key = $1', [LOCKS.schema])).rows[0]!.digest).not.toBe('an older version');
    } finally {
      await pool.end();
    }
  });
});
