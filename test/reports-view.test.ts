import { describe, expect, it } from 'vitest';
import { reportCharts, reportPeriod } from '../src/portal/reports-view.js';

// An operator's review: the portal's latency chart showed only the median and 90th percentile where the API
// gives min/avg/max, and its buckets read "12-05 04:00": no year, no zone.
describe("the portals' report charts", () => {
  const now = Date.UTC(2026, 11, 5, 6, 30);
  const period = reportPeriod('day', now);
  const stats = { count: 3, minMs: 10, avgMs: 40, maxMs: 553_239, p50Ms: 20, p90Ms: 90, p99Ms: 99 };
  const none = { count: 0, minMs: null, avgMs: null, maxMs: null, p50Ms: null, p90Ms: null, p99Ms: null };
  const page = String(reportCharts(period, [{ bucket: '2026-12-05T04:00:00.000Z', in: 1, out: 1, errors: 0, pending: 0 }], [{ bucket: '2026-12-05T04:00:00.000Z', endToEnd: stats, dipProcessing: none }]));

  it('draws min, average and max beside the median and 90th percentile', () => {
    for (const name of ['Minimum', 'Average', 'Median', '90th percentile', 'Maximum']) expect(page).toContain(name);
    expect(page).toContain('553239');
  });

  it('labels buckets with their ISO date and UTC', () => {
    expect(page).toContain('2026-12-05 04:00 UTC');
    expect(page).not.toMatch(/>12-05 04:00</);
  });
});
