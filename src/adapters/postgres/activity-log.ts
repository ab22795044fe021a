import { appendOnlyGuards } from './append-only.js';
import type pg from 'pg';
import { openPool } from './pool.js';
import { GENESIS_HASH, type ChainedActivity } from '../../domain/activity.js';
import { fromActivityRow, fromChainRow, type ActivityRow as Row, type ChainRow } from '../activity-row.js';
import type { ActivityFilter, ActivityLogStore, ActivityQuery, ChainInfo } from '../../ports/activity-log.js';
import { migrateStore } from './roles.js';
import { inTransaction, LOCKS } from './schema.js';


const SCHEMA = `
CREATE TABLE IF NOT EXISTS activity_chains (
  chain text PRIMARY KEY,
  started_at bigint NOT NULL,
  head_seq bigint NOT NULL DEFAULT 0,
  head_hash text NOT NULL,
  anchor_seq bigint NOT NULL DEFAULT 0,
  anchor_hash text NOT NULL
);
CREATE TABLE IF NOT EXISTS activity_log (
  chain text NOT NULL,
  seq bigint NOT NULL,
  at bigint NOT NULL,
  request_id text NOT NULL,
  listener text NOT NULL,
  caller text,
  acting_for text,
  remote text,
  method text NOT NULL,
  url text NOT NULL,
  status integer,
  duration_ms double precision NOT NULL,
  response_body text,
  prev_hash text NOT NULL,
  hash text NOT NULL,
  PRIMARY KEY (chain, seq)
);
CREATE INDEX IF NOT EXISTS activity_log_at ON activity_log (at, chain, seq);
CREATE INDEX IF NOT EXISTS activity_log_caller ON activity_log (caller, at);
ALTER TABLE activity_log ADD COLUMN IF NOT EXISTS acting_for text;
CREATE INDEX IF NOT EXISTS activity_log_acting_for ON activity_log (acting_for, at) WHERE acting_for IS NOT NULL;
-- Refused requests only: an accepted one (every 201) adds nothing to it.
CREATE INDEX IF NOT EXISTS activity_log_refused ON activity_log (at) WHERE status >= 400;
-- Append-only: a record is never changed, and no record nor chain is ever deleted (spec 5.8.1: audit logs
-- "cannot be accidentally or maliciously purged"); a database opened before carries the guards from its next
-- start (applySchema applies a changed schema). TRUNCATE fires no row trigger, hence a statement-level guard.
-- Their owner could drop a guard: a runtime role apart from it (storage.postgres.migrationUrl, roles.ts) holds
-- INSERT and SELECT only; in the weaker mode, one role, the hash chain shows what was done then.
${appendOnlyGuards('activity_log_append_only', 'activity log', [
  { table: 'activity_log', refuse: ['UPDATE', 'DELETE', 'TRUNCATE'] },
  // A chain's row holds its recorded head (updated as records are added), against which a deleted tail is
  // found: it goes no more than its records.
  { table: 'activity_chains', refuse: ['DELETE', 'TRUNCATE'] },
])}
`;

/**
 * A request looked up by the x-request-id its caller quotes (GET /admin/activity?requestId=). Added after
 * activity logs had grown large: built CONCURRENTLY, after the schema, so that recording requests goes on
 * while it is built (buildIndexConcurrently).
 */
const INDEXES = [{ name: 'activity_log_request_id', on: 'activity_log (request_id)' }] as const;

/** The conditions of a period and its filters but the caller, numbered from $1. */
function narrowed(fromMs: number, toMs: number, f: Omit<ActivityFilter, 'caller'>): { where: string; params: Array<string | number> } {
  const params: Array<string | number> = [fromMs, toMs];
  const where = ['at >= $1', 'at < $2'];
  if (f.requestId !== undefined) where.push(`request_id = $${params.push(f.requestId)}`);
  if (f.minStatus !== undefined) where.push(`status >= $${params.push(f.minStatus)}`);
  return { where: where.join(' AND '), params };
}

/**
 * The activity log on the cluster's PostgreSQL, over a small pool of its own so that its batches never
 * queue behind the message log's group commits. Every node appends to its own chain, so no two nodes
 * ever contend for a chain's head (a shared chain would serialise every node's writes on one row).
 */
export class PgActivityLog implements ActivityLogStore {
  readonly kind = 'postgres';

  private constructor(private readonly pool: pg.Pool) {}

  /**
   * `migrationUrl`: the tables' owner, which applies the schema (roles.ts); absent, `url`'s role does.
   * `onIndexWait`: told what an index build waits for (buildIndexConcurrently), for the start-up log.
   */
  static async open(url: string, migrationUrl?: string, onIndexWait?: (said: string) => void): Promise<PgActivityLog> {
    const pool = openPool({ url, max: 2, applicationName: 'opendip-activity' });
    try {
      await migrateStore(pool, migrationUrl, 'opendip-activity-owner', LOCKS.activitySchema, SCHEMA, INDEXES, onIndexWait);
    } catch (err) {
      await pool.end();
      throw err;
    }
    return new PgActivityLog(pool);
  }

  async append(records: readonly ChainedActivity[]): Promise<void> {
    const last = records.at(-1);
    if (!last) return;
    const col = <K extends keyof ChainedActivity>(k: K) => records.map((r) => r[k]);
    await inTransaction(this.pool, async (client) => {
      await client.query(
        `INSERT INTO activity_log (chain, seq, at, request_id, listener, caller, acting_for, remote, method, url, status, duration_ms, response_body, prev_hash, hash)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int[], $12::float8[], $13::text[], $14::text[], $15::text[])`,
        [col('chain'), col('seq'), col('at'), col('requestId'), col('listener'), col('caller'), records.map((r) => r.actingFor ?? null), col('remote'), col('method'), col('url'), col('status'), col('durationMs'), col('responseBody'), col('prevHash'), col('hash')],
      );
      await client.query('UPDATE activity_chains SET head_seq = $1, head_hash = $2 WHERE chain = $3', [last.seq, last.hash, last.chain]);
    });
  }

  async openChain(chain: string, at: number): Promise<void> {
    await this.pool.query('INSERT INTO activity_chains (chain, started_at, head_hash, anchor_hash) VALUES ($1, $2, $3, $3)', [chain, at, GENESIS_HASH]);
  }

  async chains(): Promise<ChainInfo[]> {
    const { rows } = await this.pool.query<ChainRow>('SELECT * FROM activity_chains ORDER BY started_at, chain');
    return rows.map(fromChainRow);
  }

  async chainRecords(chain: string, afterSeq: number, limit: number): Promise<ChainedActivity[]> {
    const { rows } = await this.pool.query<Row>('SELECT * FROM activity_log WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3', [chain, afterSeq, limit]);
    return rows.map(fromActivityRow);
  }

  async range(q: ActivityQuery & Omit<ActivityFilter, 'caller'>): Promise<ChainedActivity[]> {
    const a = q.after ?? { at: -1, chain: '', seq: 0 };
    const { where, params } = narrowed(q.fromMs, q.toMs, q);
    const n = params.length;
    const { rows } = await this.pool.query<Row>(`SELECT * FROM activity_log WHERE ${where} AND (at, chain, seq) > ($${n + 1}, $${n + 2}, $${n + 3}) ORDER BY at, chain, seq LIMIT $${n + 4}`, [
      ...params,
      a.at,
      a.chain,
      a.seq,
      q.limit,
    ]);
    return rows.map(fromActivityRow);
  }

  async recent(fromMs: number, toMs: number, limit: number, filter: ActivityFilter = {}): Promise<ChainedActivity[]> {
    const { where, params } = narrowed(fromMs, toMs, filter);
    if (filter.caller !== undefined) params.push(filter.caller);
    const caller = filter.caller === undefined ? '' : ` AND (caller = $${params.length} OR acting_for = $${params.length})`;
    const { rows } = await this.pool.query<Row>(`SELECT * FROM activity_log WHERE ${where}${caller} ORDER BY at DESC, chain DESC, seq DESC LIMIT $${params.length + 1}`, [...params, limit]);
    return rows.map(fromActivityRow);
  }

  async refusedSubmissions(q: ActivityQuery & { caller?: string }): Promise<ChainedActivity[]> {
    const a = q.after ?? { at: -1, chain: '', seq: 0 };
    // `status >= 400` as a literal, as the partial index says it (a parameter could not be proved to imply it); ILIKE: ingress takes any case.
    const { rows } = await this.pool.query<Row>(
      `SELECT * FROM activity_log WHERE status >= 400 AND at >= $1 AND at < $2 AND method = 'POST' AND url ILIKE '/dip-channel/%'
        AND ($3::text IS NULL OR caller = $3 OR acting_for = $3) AND (at, chain, seq) > ($4, $5, $6) ORDER BY at, chain, seq LIMIT $7`,
      [q.fromMs, q.toMs, q.caller ?? null, a.at, a.chain, a.seq, q.limit],
    );
    return rows.map(fromActivityRow);
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
