import type { BucketCounts, BucketLatency, CountQuery, Granularity, LatencyAggregate } from '../ports/report-counts.js';

/**
 * Throughput and latency counted in SQL, for both engines (src/ports/report-counts.ts), by the rules
 * src/adapters/trace-rows.ts folds a trace with: a copy is delivered when its queue moved past it and no
 * dead letter stands, or when it was requeued and moved past again with a delivering call; its delivering
 * call is the first 2xx call that carried it (not before its dead letter; none while it lies dead); its
 * first attempt is the first call that carried it. The engines differ only in the few places a Dialect says.
 *
 * What is read: the period's messages by an index range over (channel, received_at) per channel (the
 * channels found by a skip scan of that index: no index is added to what ingest writes); their copies by
 * the message's index; the calls that can have carried them by queue and position (from the period's start,
 * each clipped to the positions the period's copies hold in its queue, then one row per position carried).
 */
export interface CountsDialect {
  /** A placeholder for a value, in the engine's style. */
  param(value: string | number): string;
  greatest(a: string, b: string): string;
  /** The first millisecond of the UTC month of `ms` (an expression). */
  monthStart(ms: string): string;
  /**
   * The CTEs that end in `d(seq, received_at, acked_seq, dl_at, dl_state, first_at, delivered_at)`: each
   * copy of `c` with its first call's start and its delivering call's end (null while its dead letter lies
   * dead), from the calls started at or after `from` (a placeholder) that carried a position of
   * `span(queue_id, lo, hi)`, each queue's positions the copies hold.
   */
  perCopy(from: string): string;
  /** WITH or WITH RECURSIVE, as the engine needs for `ch` and `x`. */
  with: string;
  /** Conditions on `m` (and on `e.message_id`) that also bound the message ids, where the engine partitions by them. */
  idBounds(fromMs: number, toMs: number, column: string): string[];
}

const WIDTH: Record<Exclude<Granularity, 'month'>, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

function bucketOf(d: CountsDialect, g: Granularity, ms: string): string {
  return g === 'month' ? d.monthStart(ms) : `(${ms} - ${ms} % ${WIDTH[g]})`;
}

/** The CTEs `ch`, `m` (messages counted), `c` (copies counted) and `d` (copies with their delivering call and first attempt). */
function copies(q: CountQuery, d: CountsDialect): string {
  const from = d.param(q.fromMs);
  const to = d.param(q.toMs);
  const where = [`m.received_at >= ${from}`, `m.received_at < ${to}`, 'm.replay_of IS NULL', ...d.idBounds(q.fromMs, q.toMs, 'm.id')];
  const copyFor = (who: string) => `EXISTS (SELECT 1 FROM queue_entries e JOIN queues qq ON qq.id = e.queue_id WHERE e.message_id = m.id AND qq.recipient_dip_id = ${who}${d.idBounds(q.fromMs, q.toMs, 'e.message_id').map((b) => ` AND ${b}`).join('')})`;
  if (q.sender !== undefined) where.push(`m.sender_dip_id = ${d.param(q.sender)}`);
  if (q.recipient !== undefined) where.push(copyFor(d.param(q.recipient)));
  const copyWhere: string[] = d.idBounds(q.fromMs, q.toMs, 'e.message_id');
  if (q.recipient !== undefined) copyWhere.push(`q.recipient_dip_id = ${d.param(q.recipient)}`);
  if (q.viewer !== undefined) {
    // Another recipient named: only what the viewer sent (of others' messages it sees its own copy only).
    const received = q.recipient === undefined || q.recipient === q.viewer;
    where.push(received ? `(m.sender_dip_id = ${d.param(q.viewer)} OR ${copyFor(d.param(q.viewer))})` : `m.sender_dip_id = ${d.param(q.viewer)}`);
    copyWhere.push(`(m.sender_dip_id = ${d.param(q.viewer)} OR q.recipient_dip_id = ${d.param(q.viewer)})`);
  }
  // The channels, each found by one seek of messages_channel_age (a skip scan), so the period is read as
  // one index range per channel: no full scan, and no index only reports would use. Those asked for are a
  // VALUES list, each once (a channel listed twice would join its messages twice).
  const asked = [...new Set(q.channels ?? [])];
  const ch = asked.length > 0
    ? `ch(channel) AS (VALUES ${asked.map((c) => `(CAST(${d.param(c)} AS TEXT))`).join(', ')})`
    : `ch(channel) AS (SELECT min(channel) FROM messages UNION ALL SELECT (SELECT min(m.channel) FROM messages m WHERE m.channel > ch.channel) FROM ch WHERE ch.channel IS NOT NULL)`;
  return `${d.with} ${ch},
  m AS (SELECT m.id, m.received_at, m.sender_dip_id FROM ch JOIN messages m ON m.channel = ch.channel WHERE ${where.join(' AND ')}),
  c AS MATERIALIZED (SELECT e.queue_id, e.seq, m.received_at, q.acked_seq, dl.at AS dl_at, dl.state AS dl_state
          FROM m JOIN queue_entries e ON e.message_id = m.id JOIN queues q ON q.id = e.queue_id
          LEFT JOIN dead_letters dl ON dl.queue_id = e.queue_id AND dl.seq = e.seq
         ${copyWhere.length ? `WHERE ${copyWhere.join(' AND ')}` : ''}),
  span AS (SELECT queue_id, min(seq) AS lo, max(seq) AS hi FROM c GROUP BY queue_id),
  ${d.perCopy(from)}`;
}

/**
 * `perCopy` by sets: one row per position each call carried (`carried`), grouped per copy. For an engine
 * that hashes and sorts large sets well (PostgreSQL).
 */
export function perCopyBySets(carried: string): string {
  return `x AS (${carried}),
  firsts AS (SELECT queue_id, seq, min(started_at) AS first_at FROM x GROUP BY queue_id, seq),
  calls AS (SELECT x.queue_id, x.seq, min(x.started_at) AS call_at FROM x LEFT JOIN dead_letters dl ON dl.queue_id = x.queue_id AND dl.seq = x.seq
             WHERE x.verdict = 'delivered' AND (dl.at IS NULL OR x.started_at >= dl.at) GROUP BY x.queue_id, x.seq),
  ends AS (SELECT calls.queue_id, calls.seq, min(x.started_at + x.latency_ms) AS call_end FROM calls JOIN x ON x.queue_id = calls.queue_id AND x.seq = calls.seq AND x.started_at = calls.call_at AND x.verdict = 'delivered'
            GROUP BY calls.queue_id, calls.seq),
  d AS MATERIALIZED (SELECT c.seq, c.received_at, c.acked_seq, c.dl_at, c.dl_state, firsts.first_at,
               CASE WHEN c.dl_state = 'dead' THEN NULL ELSE ends.call_end END AS delivered_at
          FROM c LEFT JOIN firsts ON firsts.queue_id = c.queue_id AND firsts.seq = c.seq LEFT JOIN ends ON ends.queue_id = c.queue_id AND ends.seq = c.seq)`;
}

/** Kind 1 delivered, 2 pending, 3 an error (dead, requeued and not since delivered, discarded): trace-rows' states. */
const KIND = `CASE WHEN d.dl_state IS NULL THEN (CASE WHEN d.acked_seq >= d.seq THEN 1 ELSE 2 END)
  WHEN d.dl_state = 'requeued' AND d.acked_seq >= d.seq AND d.delivered_at IS NOT NULL THEN 1 ELSE 3 END`;

export function countsSql(q: CountQuery, d: CountsDialect): string {
  const cte = copies(q, d);
  const b = (ms: string) => bucketOf(d, q.granularity, ms);
  const dip = d.param(q.dipId);
  const one = (k: number) => `sum(CASE WHEN kind = ${k} THEN 1 ELSE 0 END)`;
  return `${cte},
  kinds AS (SELECT d.received_at, d.dl_at, d.delivered_at, ${KIND} AS kind FROM d),
  counted AS (
    SELECT ${b('m.received_at')} AS bucket, count(*) AS n_in, 0 AS n_out, 0 AS n_errors, 0 AS n_pending FROM m WHERE m.sender_dip_id <> ${dip} GROUP BY 1
    UNION ALL
    SELECT ${b('(CASE kind WHEN 1 THEN coalesce(delivered_at, received_at) WHEN 2 THEN received_at ELSE coalesce(dl_at, received_at) END)')}, 0, ${one(1)}, ${one(3)}, ${one(2)} FROM kinds GROUP BY 1)
  SELECT bucket, sum(n_in) AS n_in, sum(n_out) AS n_out, sum(n_errors) AS n_errors, sum(n_pending) AS n_pending FROM counted GROUP BY bucket ORDER BY bucket`;
}

export function latencySql(q: CountQuery, d: CountsDialect): string {
  const cte = copies(q, d);
  const b = (ms: string) => bucketOf(d, q.granularity, ms);
  // Nearest rank ceil(q * n) in integers (as reports.ts's latencyStats takes it): (n * pct + 99) / 100; the
  // value there is the least whose running count reaches it. Counted per distinct value first: latencies
  // are whole milliseconds and repeat, so the running sums go over a bucket's distinct values, not a sort
  // of all of them. DIP processing leaves out a copy first called only after it was dead-lettered (requeued
  // by an operator): its wait was the operator's, not the DIP's (see processingTime in reports.ts).
  const rank = (pct: number) => `min(CASE WHEN upto >= (n * ${pct} + 99) / 100 THEN v END)`;
  return `${cte},
  vals AS (SELECT ${b('d.received_at')} AS bucket, 0 AS k, d.delivered_at - d.received_at AS v FROM d WHERE d.delivered_at IS NOT NULL
           UNION ALL SELECT ${b('d.received_at')}, 1, ${d.greatest('0', 'd.first_at - d.received_at')} FROM d WHERE d.first_at IS NOT NULL AND (d.dl_at IS NULL OR d.first_at < d.dl_at)),
  hist AS (SELECT bucket, k, v, count(*) AS c FROM vals GROUP BY bucket, k, v),
  cum AS (SELECT bucket, k, v, c, CAST(sum(c) OVER (PARTITION BY bucket, k ORDER BY v ROWS UNBOUNDED PRECEDING) AS BIGINT) AS upto,
                 CAST(sum(c) OVER (PARTITION BY bucket, k) AS BIGINT) AS n FROM hist),
  stats AS (SELECT bucket, k, max(n) AS n, min(v) AS lo, max(v) AS hi, sum(v * c) AS total, ${rank(50)} AS p50, ${rank(90)} AS p90, ${rank(99)} AS p99 FROM cum GROUP BY bucket, k),
  buckets AS (SELECT DISTINCT ${b('m.received_at')} AS bucket FROM m)
  SELECT buckets.bucket, stats.k, stats.n, stats.lo, stats.hi, stats.total, stats.p50, stats.p90, stats.p99
    FROM buckets LEFT JOIN stats ON stats.bucket = buckets.bucket ORDER BY buckets.bucket, stats.k`;
}

/** A row of countsSql's answer (numbers may come back as strings: PostgreSQL's bigint and numeric). */
export interface CountsRow {
  bucket: number | string;
  n_in: number | string;
  n_out: number | string;
  n_errors: number | string;
  n_pending: number | string;
}

export interface LatencyRow {
  bucket: number | string;
  k: number | null;
  n: number | string | null;
  lo: number | string | null;
  hi: number | string | null;
  total: number | string | null;
  p50: number | string | null;
  p90: number | string | null;
  p99: number | string | null;
}

export function toCounts(rows: readonly CountsRow[]): BucketCounts[] {
  return rows.map((r) => ({ bucketMs: Number(r.bucket), in: Number(r.n_in), out: Number(r.n_out), errors: Number(r.n_errors), pending: Number(r.n_pending) }));
}

const NONE: LatencyAggregate = { count: 0, min: null, max: null, sum: null, p50: null, p90: null, p99: null };
const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

export function toLatency(rows: readonly LatencyRow[]): BucketLatency[] {
  const out = new Map<number, BucketLatency>();
  for (const r of rows) {
    const bucketMs = Number(r.bucket);
    let x = out.get(bucketMs);
    if (!x) out.set(bucketMs, (x = { bucketMs, endToEnd: NONE, dipProcessing: NONE }));
    if (r.k === null) continue;
    const agg: LatencyAggregate = { count: Number(r.n), min: num(r.lo), max: num(r.hi), sum: num(r.total), p50: num(r.p50), p90: num(r.p90), p99: num(r.p99) };
    if (Number(r.k) === 0) x.endToEnd = agg;
    else x.dipProcessing = agg;
  }
  return [...out.values()];
}
