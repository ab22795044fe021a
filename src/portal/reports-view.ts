import { bucketStart, type Granularity, type LatencyStats } from '../pipeline/reports.js';
import { REPORT_PERIODS, type Period } from '../domain/saved-report.js';
import { html, select, timeChart, type Html } from './html.js';
import { utcAndUk, ukTime } from '../domain/uk-time.js';

export { PERIOD_NAMES, reportPeriod, type Period, type PeriodName } from '../domain/saved-report.js';

/**
 * The reports' charts, the same in both portals: throughput (messages in, copies delivered, errors, and
 * messages refused at submission when the rows count them) and
 * latency (end to end: minimum, median, average, 90th percentile and maximum, as the API gives them) over a period, from the reports API's rows (the user
 * portal's cut to the participant, the operator portal's across all participants).
 */

export interface ThroughputRow {
  bucket: string;
  in: number;
  out: number;
  errors: number;
  pending: number;
  /** The messages of refused submissions (from the API activity log; absent when it is not kept). */
  refusedMessages?: number;
}

export interface LatencyRow {
  bucket: string;
  endToEnd: LatencyStats;
  dipProcessing: LatencyStats;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Every bucket of the period, so that quiet hours show as zero rather than vanish from the axis. */
function buckets(p: Period): number[] {
  const step = p.granularity === 'hour' ? HOUR : DAY;
  const out: number[] = [];
  for (let t = bucketStart(p.fromMs, p.granularity); t < p.toMs; t += step) out.push(t);
  return out;
}

/**
 * A bucket's label: the reports' buckets are UTC hours and days, said so, with the UK local time they start
 * at beside them (a day's bucket starts at 01:00 BST in summer, not at the UK's midnight).
 */
export const bucketLabel = (t: number, g: Granularity): string => (g === 'hour' ? utcAndUk(t) : `${new Date(t).toISOString().slice(0, 10)} UTC (from ${ukTime(t).slice(11)})`);

export function periodForm(action: string, p: Period, extra: Html | null = null): Html {
  return html`<form method="get" action="${action}" class="search">${extra}${select('period', 'Period', Object.entries(REPORT_PERIODS).map(([value, v]) => ({ value, label: v.label })), p.name)} <button type="submit">Show</button></form>`;
}

export function reportCharts(p: Period, throughput: readonly ThroughputRow[], latency: readonly LatencyRow[]): Html {
  const ts = buckets(p);
  const labels = ts.map((t) => bucketLabel(t, p.granularity));
  const byBucket = <T extends { bucket: string }>(rows: readonly T[]) => new Map(rows.map((r) => [bucketStart(Date.parse(r.bucket), p.granularity), r]));
  const tp = byBucket(throughput);
  const lat = byBucket(latency);
  const count = (f: (r: ThroughputRow) => number) => ts.map((t) => { const r = tp.get(t); return r ? f(r) : 0; });
  const ms = (f: (s: LatencyStats) => number | null) => ts.map((t) => { const r = lat.get(t); return r ? f(r.endToEnd) : null; });
  return html`${timeChart('Throughput', labels, [
    { name: 'Messages in', kind: 'info', values: count((r) => r.in) },
    { name: 'Copies delivered', kind: 'ok', values: count((r) => r.out) },
    { name: 'Errors (dead letters)', kind: 'bad', values: count((r) => r.errors) },
    // Counted from the API activity log: a line only when it is kept (the rows then carry the column).
    ...(throughput.some((r) => r.refusedMessages !== undefined) ? [{ name: 'Messages refused at submission', kind: 'warn' as const, values: count((r) => r.refusedMessages ?? 0) }] : []),
  ], 'messages')}
${timeChart('End-to-end latency (received by the DIP to delivered)', labels, [
  { name: 'Minimum', kind: 'info', values: ms((s) => s.minMs) },
  { name: 'Median', kind: 'ok', values: ms((s) => s.p50Ms) },
  { name: 'Average', kind: 'ok', values: ms((s) => s.avgMs) },
  { name: '90th percentile', kind: 'warn', values: ms((s) => s.p90Ms) },
  { name: 'Maximum', kind: 'bad', values: ms((s) => s.maxMs) },
], 'ms')}`;
}
