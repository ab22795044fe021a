/**
 * The activity log's request-ID index (src/adapters/postgres/activity-log.ts), added when activity logs were
 * already large: built CONCURRENTLY after the schema (buildIndexConcurrently), so recording requests goes on
 * while it is built; an INVALID index an interrupted build left is dropped and built again.
 */

import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PgActivityLog } from '../src/adapters/postgres/activity-log.js';
import { buildIndexConcurrently, LOCKS } from '../src/adapters/postgres/schema.js';
import { waitFor } from './helpers/dip-harness.js';
import { databaseForDescribe, queryOnce } from './helpers/postgres.js';

const INDEX = 'activity_log_request_id';
const INSERT = `INSERT INTO activity_log (chain, seq, at, request_id, listener, method, url, duration_ms, prev_hash, hash)
  VALUES ($1, $2, 0, $3, 'api', 'GET', '/', 1, 'p', 'h')`;

describe("PostgreSQL: the activity log's request-ID index", () => {
  const db = databaseForDescribe();
  let url: string;
  const clients: pg.Client[] = [];
  const client = async (): Promise<pg.Client> => {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => {});
    await c.connect();
    clients.push(c);
    return c;
  };
  const q = <R extends pg.QueryResultRow>(sql: string, values: unknown[] = []) => queryOnce<R>(url, sql, values);
  const index = async () => (await q<{ valid: boolean; unique: boolean }>('SELECT indisvalid AS valid, indisunique AS unique FROM pg_index WHERE indexrelid = to_regclass($1)', [INDEX]))[0];

  beforeEach(async () => {
    url = await db.freshSchema();
    await (await PgActivityLog.open(url)).close();
    // A database of the version before the index. Its schema's digest is left as it is, so what runs is the
    // build alone: an upgrade's applySchema also takes each table's lock for a moment (CREATE INDEX IF NOT
    // EXISTS of the indexes there already), given up after SCHEMA_LOCK.timeoutMs and tried again.
    await q(`DROP INDEX ${INDEX}`);
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.end().catch(() => {});
  });

  it('is built while requests go on being recorded, a writer in the middle of its transaction included', async () => {
    const holder = await client();
    await holder.query("SET application_name = 'a-backup'");
    await holder.query('BEGIN');
    await holder.query(INSERT, ['node-a', 1, 'r1']);
    const said: string[] = [];
    const opening = PgActivityLog.open(url, undefined, (s) => said.push(s));
    await waitFor(
      async () => (await q<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'opendip-activity' AND wait_event_type = 'Lock'"))[0]!.n > 0,
      20_000,
      'the upgrade waiting for the open transaction',
    );
    // Another node records a request meanwhile: not held behind the build (a plain CREATE INDEX's ShareLock
    // request queues every INSERT behind it until the writer above ends).
    const writer = await client();
    await writer.query("SET lock_timeout = '1s'");
    await writer.query(INSERT, ['node-b', 1, 'r2']);
    await holder.query('COMMIT');
    await (await opening).close();
    expect(await index()).toEqual({ valid: true, unique: false });
    expect((await q<{ n: number }>('SELECT count(*)::int AS n FROM activity_log'))[0]!.n).toBe(2);
    // The start said what it waited on, before it waited (settle2). How many: at least the holder's; the count is
    // of the moment, so a poll of waitFor's running then is counted too (CI, 2026-12-06: '2 transaction(s)').
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/^building index activity_log_request_id by CREATE INDEX CONCURRENTLY: it waits for the \d+ transaction\(s\) open in this database to end .*a-backup \(idle in transaction\)/);
  });

  it('finds its index in a schema whose name is mixed case (settle2)', async () => {
    await q('CREATE SCHEMA "Mixed_Case"');
    const u = new URL(url);
    u.searchParams.set('options', '-c search_path="Mixed_Case"');
    const mixed = u.toString();
    await (await PgActivityLog.open(mixed)).close();
    const valid = await queryOnce<{ valid: boolean; schema: string }>(mixed, 'SELECT i.indisvalid AS valid, n.nspname AS schema FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = $1', [INDEX]);
    expect(valid.find((r) => r.schema === 'Mixed_Case')).toEqual({ valid: true, schema: 'Mixed_Case' });
    // Opened again: read as present, not built again (nor failing on a schema folded to lower case).
    const pool = new pg.Pool({ connectionString: mixed, max: 1 });
    try {
      expect(await buildIndexConcurrently(pool, { name: INDEX, on: 'activity_log (request_id)' })).toBe('present');
    } finally {
      await pool.end();
    }
  });

  it('drops an INVALID index an interrupted build left, and builds it again', async () => {
    await q(`${INSERT.replaceAll('$1', "'node-a'").replaceAll('$2', '1').replaceAll('$3', "'same'")}; ${INSERT.replaceAll('$1', "'node-a'").replaceAll('$2', '2').replaceAll('$3', "'same'")}`);
    // A build that fails part way leaves its index in the catalogue, INVALID (as one cut off does).
    await expect(q(`CREATE UNIQUE INDEX CONCURRENTLY ${INDEX} ON activity_log (request_id)`)).rejects.toThrow(/could not create unique index/);
    expect(await index()).toEqual({ valid: false, unique: true });
    await (await PgActivityLog.open(url)).close();
    expect(await index()).toEqual({ valid: true, unique: false });
  });

  it('leaves the build to the session that holds its lock, without waiting for it', async () => {
    const other = await client();
    await other.query('SELECT pg_advisory_lock($1)', [LOCKS.concurrentIndex]);
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      expect(await buildIndexConcurrently(pool, { name: INDEX, on: 'activity_log (request_id)' })).toBe('elsewhere');
      expect(await index()).toBeUndefined();
      await other.query('SELECT pg_advisory_unlock($1)', [LOCKS.concurrentIndex]);
      expect(await buildIndexConcurrently(pool, { name: INDEX, on: 'activity_log (request_id)' })).toBe('built');
      expect(await buildIndexConcurrently(pool, { name: INDEX, on: 'activity_log (request_id)' })).toBe('present');
    } finally {
      await pool.end();
    }
  });
});
