import { describe, expect, it } from 'vitest';
import { reportCharts, type Period } from '../src/portal/reports-view.js';

describe("the portals' throughput chart", () => {
  const period: Period = { name: 'day', fromMs: Date.parse('2026-12-04T10:00:00Z'), toMs: Date.parse('2026-12-04T12:00:00Z'), granularity: 'hour', label: '' };
  const row = (bucket: string, extra: object = {}) => ({ bucket, in: 3, out: 5, errors: 1, pending: 0, ...extra });
  const chart = (rows: Parameters<typeof reportCharts>[1]) => reportCharts(period, rows, []).text;

  it('draws the messages refused at submission beside those accepted, when the report counts them', () => {
    const text = chart([row('2026-12-04T10:00:00.000Z', { refused: 2, refusedMessages: 7 }), row('2026-12-04T11:00:00.000Z', { refused: 1, refusedMessages: 1 })]);
    expect(text).toContain('Messages in: total 6, highest 3 messages; Copies delivered: total 10, highest 5 messages; Errors (dead letters): total 2, highest 1 messages; Messages refused at submission: total 8, highest 7 messages');
  });

  it('draws no such line when the report does not count them (no activity log kept)', () => {
    expect(chart([row('2026-12-04T10:00:00.000Z')])).not.toContain('refused');
  });
});
