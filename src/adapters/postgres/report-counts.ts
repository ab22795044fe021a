import type pg from 'pg';
import type { BucketCounts, BucketLatency, CountQuery, ReportCounts } from '../../ports/report-counts.js';
import { countsSql, latencySql, perCopyBySets, toCounts, toLatency, type CountsDialect, type CountsRow, type LatencyRow } from '../report-counts-sql.js';
import type { PgDatabase } from './database.js';
import { dayBase, dayOf } from './partitions.js';
import { inTransaction } from './schema.js';

/**
 * How long one report count may run. The pool's statement and read timeouts are meant for ingest's writes
 * (30 s): a national day's count reads tens of millions of rows and was given up past them, as a 500.
 */
export const REPORT_COUNT_TIMEOUT_MS = 10 * 60_000;

/** PostgreSQL's side of report-counts-sql.ts: numbered parameters, generate_series, ids bounded by day. */
function dialect(): { d: CountsDialect; params: Array<string | number> } {
  const params: Array<string | number> = [];
  const d: CountsDialect = {
    param(value) {
      params.push(value);
      return `$${params.length}`;
    },
    greatest: (a, b) => `GREATEST(${a}, ${b})`,
    monthStart: (ms) => `(extract(epoch FROM date_trunc('month', to_timestamp((${ms}) / 1000.0) AT TIME ZONE 'UTC'))::bigint * 1000)`,
    // The journal's partitions from `from` on (it is partitioned by started_at), each call expanded to the
    // positions it carried: then hash joins on (queue_id, seq).
    perCopy: (from) =>
      perCopyBySets(`SELECT a.queue_id, g.seq, a.started_at, a.latency_ms, a.verdict
        FROM span s JOIN delivery_attempts a ON a.queue_id = s.queue_id AND a.last_seq >= s.lo AND a.first_seq <= s.hi AND a.started_at >= ${from}
        CROSS JOIN LATERAL generate_series(GREATEST(a.first_seq, s.lo), LEAST(a.last_seq, s.hi)) AS g(seq)`),
    with: 'WITH RECURSIVE',
    // Messages and their queue entries are partitioned by id, whose high bits are the day of receipt: the
    // bounds leave out every other day's partitions (as the archive's replay query does).
    idBounds: (fromMs, toMs, column) => {
      const lo = dayBase(dayOf(fromMs));
      const hi = dayBase(dayOf(toMs) + 1);
      return [...(Number.isSafeInteger(lo) ? [`${column} >= ${lo}`] : []), ...(Number.isSafeInteger(hi) ? [`${column} < ${hi}`] : [])];
    },
  };
  return { d, params };
}

/** Report counts over the archive and journal on PostgreSQL (src/ports/report-counts.ts). */
export class PgReportCounts implements ReportCounts {
  constructor(private readonly d: PgDatabase) {}

  async counts(q: CountQuery): Promise<BucketCounts[]> {
    const { d, params } = dialect();
    return toCounts(await this.read<CountsRow>(countsSql(q, d), params));
  }

  async latency(q: CountQuery): Promise<BucketLatency[]> {
    const { d, params } = dialect();
    return toLatency(await this.read<LatencyRow>(latencySql(q, d), params));
  }

  /** One read-only transaction with the report's own timeouts (node-postgres reads a query's own query_timeout; its types do not declare it). */
  private read<R extends pg.QueryResultRow>(text: string, values: Array<string | number>): Promise<R[]> {
    return inTransaction(this.d.pool, async (client) => {
      await client.query(`SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = ${REPORT_COUNT_TIMEOUT_MS}`);
      const query: pg.QueryConfig & { query_timeout: number } = { text, values, query_timeout: REPORT_COUNT_TIMEOUT_MS + 5_000 };
      return (await client.query<R>(query)).rows;
    });
  }
}
