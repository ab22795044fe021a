/**
 * Where people read times (the portals' maintenance and alarm tables, the reports' buckets, the maintenance
 * and alarm e-mails), UK local time is beside the UTC, one formatter (src/domain/uk-time.ts) for all.
 * Instants are injected on both sides of the spring change of 2026 (01:00 UTC on 29 March: GMT to BST).
 */
import { describe, expect, it } from 'vitest';
import { publicNotice, type MaintenanceNotice } from '../src/domain/maintenance.js';
import { Alarms } from '../src/pipeline/alarms.js';
import { Maintenance } from '../src/pipeline/maintenance.js';
import type { AlarmChannel } from '../src/ports/alarms.js';
import type { MaintenanceSend } from '../src/ports/maintenance.js';
import { noticeTable } from '../src/portal/maintenance-pages.js';
import { bucketLabel } from '../src/portal/reports-view.js';
import { FakeClock } from './helpers/clocks.js';
import { quietLogger } from './helpers/dip-harness.js';

const before = Date.parse('2026-03-29T00:30:00Z');
const after = Date.parse('2026-03-29T01:30:00Z');

describe('UK local time beside UTC, across the change to BST', () => {
  it("in the portals' maintenance table", () => {
    const n: MaintenanceNotice = { id: 'MN-1', version: 1, start: before, end: after, text: 'upgrade', scope: { kind: 'dip' }, state: 'published', publishedAt: 0, publishedBy: 'op', changedAt: 0, changedBy: 'op' };
    const page = String(noticeTable('Notices', [publicNotice(n)]));
    expect(page).toContain('<td>2026-03-29 00:30 UTC (00:30 GMT)</td><td>2026-03-29 01:30 UTC (02:30 BST)</td>');
  });

  it("in the reports' bucket labels (UTC buckets, the UK time they start at)", () => {
    expect(bucketLabel(Date.parse('2026-03-29T00:00:00Z'), 'hour')).toBe('2026-03-29 00:00 UTC (00:00 GMT)');
    expect(bucketLabel(Date.parse('2026-03-29T01:00:00Z'), 'hour')).toBe('2026-03-29 01:00 UTC (02:00 BST)');
    expect(bucketLabel(Date.parse('2026-03-29T00:00:00Z'), 'day')).toBe('2026-03-29 UTC (from 00:00 GMT)');
    expect(bucketLabel(Date.parse('2026-03-30T00:00:00Z'), 'day')).toBe('2026-03-30 UTC (from 01:00 BST)');
  });

  it('in the maintenance e-mail', async () => {
    const clock = new FakeClock(Date.parse('2026-03-28T12:00:00Z'));
    const notices: MaintenanceNotice[] = [];
    const sends: MaintenanceSend[] = [];
    const maintenance = new Maintenance({
      store: { put: async (n) => void notices.push(n), list: async () => notices, history: async (id) => notices.filter((n) => n.id === id) },
      outbox: { add: async (s) => void sends.push(...s), due: async () => [], claim: async () => false, done: async () => undefined },
      journal: { append: async () => 1, entries: async () => [] },
      clock,
      logger: quietLogger,
      knownChannel: () => true,
      channelsOf: () => new Set(),
      announce: { subscriptions: async () => [{ id: 'S1', owner: 'operator', rules: ['maintenance'], email: 'ops@example.net', webhookUrl: null, createdAt: 0 }], channel: { email: async () => undefined, webhook: async () => undefined } },
    });
    await maintenance.publish({ start: new Date(before).toISOString(), end: new Date(after).toISOString(), text: 'upgrade' }, 'op');
    const mail = sends.find((s) => s.kind === 'email');
    expect(mail?.kind === 'email' ? mail.text : '').toContain('window: 2026-03-29 00:30 UTC (00:30 GMT) to 2026-03-29 01:30 UTC (02:30 BST)');
    await maintenance.stop();
  });

  it('in the alarm e-mail (since, as of)', async () => {
    const clock = new FakeClock(after);
    const mails: string[] = [];
    const channel: AlarmChannel = { email: async (_to, _subject, text) => void mails.push(text), webhook: async () => undefined, close: async () => undefined };
    const condition = { key: 'storage-disk', rule: 'storage' as const, participant: null, summary: 'the disk is nearly full', since: before + 7_000 };
    const alarms = new Alarms([() => [condition]], { list: async () => [{ id: 'ops', owner: 'operator', rules: ['storage'], email: 'ops@example.net', webhookUrl: null, createdAt: 0 }] }, channel, { evaluateIntervalMs: 10_000, maxNoticesPerHour: 20 }, clock, quietLogger);
    await alarms.evaluate();
    expect(mails).toHaveLength(1);
    expect(mails[0]).toContain('since: 2026-03-29 00:30:07 UTC (00:30:07 GMT)');
    expect(mails[0]).toContain('as of: 2026-03-29 01:30 UTC (02:30 BST)');
  });
});
