import type { BucketCounts, BucketLatency, CountQuery, ReportCounts } from '../../ports/report-counts.js';
import { countsSql, latencySql, toCounts, toLatency, type CountsDialect, type CountsRow, type LatencyRow } from '../report-counts-sql.js';
import type { SqliteDatabase } from './database.js';

/** SQLite's side of report-counts-sql.ts: named parameters, a recursive CTE for the positions a call carried. */
/** `params()` once the statement is built: the values its placeholders name. */
export function sqliteDialect(): { d: CountsDialect; params: () => Record<string, string | number> } {
  const values: Array<string | number> = [];
  const d: CountsDialect = {
    param(value) {
      values.push(value);
      return `@p${values.length}`;
    },
    greatest: (a, b) => `max(${a}, ${b})`,
    monthStart: (ms) => `(CAST(strftime('%s', (${ms}) / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000)`,
    // No generate_series in this build: each call's positions (clipped to its queue's span) one row a step.
    // Per copy, two short index range scans of delivery_attempts (queue_id, last_seq): a call that carried
    // position p has last_seq in [p, p + the widest call's span], the widest found once per queue.
    perCopy: (from) => {
      const carried = `FROM delivery_attempts a WHERE a.queue_id = c.queue_id AND a.last_seq >= c.seq AND a.last_seq <= c.seq + c.reach AND a.first_seq <= c.seq AND a.started_at >= ${from}`;
      return `reach AS (SELECT s.queue_id, coalesce(max(a.last_seq - a.first_seq), 0) AS reach FROM span s JOIN delivery_attempts a ON a.queue_id = s.queue_id AND a.last_seq >= s.lo AND a.first_seq <= s.hi AND a.started_at >= ${from} GROUP BY s.queue_id),
  cr AS (SELECT c.*, coalesce(r.reach, -1) AS reach FROM c LEFT JOIN reach r ON r.queue_id = c.queue_id),
  d AS MATERIALIZED (SELECT c.seq, c.received_at, c.acked_seq, c.dl_at, c.dl_state,
               (SELECT min(a.started_at) ${carried}) AS first_at,
               CASE WHEN c.dl_state = 'dead' THEN NULL ELSE (SELECT a.started_at + a.latency_ms ${carried} AND a.verdict = 'delivered' AND (c.dl_at IS NULL OR a.started_at >= c.dl_at) ORDER BY a.started_at, a.latency_ms LIMIT 1) END AS delivered_at
          FROM cr c)`;
    },
    with: 'WITH RECURSIVE',
    idBounds: () => [],
  };
  return { d, params: () => Object.fromEntries(values.map((v, i) => [`p${i + 1}`, v])) };
}

/** Report counts over the embedded store's archive and journal (src/ports/report-counts.ts). */
export class SqliteReportCounts implements ReportCounts {
  constructor(private readonly d: SqliteDatabase) {}

  async counts(q: CountQuery): Promise<BucketCounts[]> {
    return toCounts((await this.rows(q, countsSql)) as CountsRow[]);
  }

  async latency(q: CountQuery): Promise<BucketLatency[]> {
    return toLatency((await this.rows(q, latencySql)) as LatencyRow[]);
  }

  /** On the reader thread: a day's report over millions of messages takes tens of seconds (src/adapters/sqlite/reader.ts). */
  private async rows(q: CountQuery, build: (q: CountQuery, d: CountsDialect) => string): Promise<unknown[]> {
    const { d, params } = sqliteDialect();
    const sql = build(q, d);
    const [rows] = await this.d.reads.read([{ sql, params: params() }]);
    return rows!;
  }
}
