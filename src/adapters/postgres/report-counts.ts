import type { BucketCounts, BucketLatency, CountQuery, ReportCounts } from '../../ports/report-counts.js';
import { countsSql, latencySql, perCopyBySets, toCounts, toLatency, type CountsDialect, type CountsRow, type LatencyRow } from '../report-counts-sql.js';
import type { PgDatabase } from './database.js';
import { dayBase, dayOf } from './partitions.js';

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
    const sql = countsSql(q, d);
    return toCounts((await this.d.pool.query<CountsRow>(sql, params)).rows);
  }

  async latency(q: CountQuery): Promise<BucketLatency[]> {
    const { d, params } = dialect();
    const sql = latencySql(q, d);
    return toLatency((await this.d.pool.query<LatencyRow>(sql, params)).rows);
  }
}
