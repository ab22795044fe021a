import { describe, expect, it } from 'vitest';
import type { MaintenanceNotice } from '../../src/domain/maintenance.js';
import type { MaintenanceSend } from '../../src/ports/maintenance.js';
import { RecordConflictError } from '../../src/ports/registry.js';
import { useBackend, type BackendFactory } from './fixtures.js';

const notice = (id: string, version: number, over: Partial<MaintenanceNotice> = {}): MaintenanceNotice => ({
  id,
  version,
  start: Date.UTC(2026, 11, 5, 2),
  end: Date.UTC(2026, 11, 5, 3),
  text: 'Database upgrade',
  scope: { kind: 'dip' },
  state: 'published',
  publishedAt: 1_000,
  publishedBy: 'operator:alice',
  changedAt: 1_000 + version,
  changedBy: 'operator:alice',
  ...over,
});

export function maintenanceContract(name: string, open: BackendFactory): void {
  describe(`MaintenanceNotices contract: ${name}`, () => {
    const ctx = useBackend(open);

    it('keeps every version, lists the latest of each in publication order, refuses a stale or taken version, and survives a reopen', async () => {
      const store = ctx.backend.maintenance;
      expect(await store.list()).toEqual([]);
      expect(await store.history('MN-1')).toEqual([]);
      await store.put(notice('MN-2', 1, { publishedAt: 2_000 }));
      await store.put(notice('MN-1', 1, { scope: { kind: 'channels', channels: ['IF-021', 'IF-022'] } }));
      await store.put(notice('MN-1', 2, { text: 'Database upgrade, one hour later', scope: { kind: 'channels', channels: ['IF-021', 'IF-022'] } }));
      // The ID is taken; version 2 is no longer the latest: another writer came first.
      await expect(store.put(notice('MN-1', 1))).rejects.toBeInstanceOf(RecordConflictError);
      await expect(store.put(notice('MN-1', 2, { text: 'lost update' }))).rejects.toBeInstanceOf(RecordConflictError);
      await store.put(notice('MN-2', 2, { publishedAt: 2_000, state: 'withdrawn' }));
      const reopened = await ctx.reopen();
      const listed = await reopened.maintenance.list();
      expect(listed.map((n) => [n.id, n.version, n.state, n.text])).toEqual([
        ['MN-1', 2, 'published', 'Database upgrade, one hour later'],
        ['MN-2', 2, 'withdrawn', 'Database upgrade'],
      ]);
      expect(listed[0]).toEqual(notice('MN-1', 2, { text: 'Database upgrade, one hour later', scope: { kind: 'channels', channels: ['IF-021', 'IF-022'] } }));
      expect((await reopened.maintenance.history('MN-1')).map((n) => [n.version, n.text])).toEqual([
        [1, 'Database upgrade'],
        [2, 'Database upgrade, one hour later'],
      ]);
    });

    it('keeps an act\'s sends until done; each claimed once while due, again only after its lease; survives a reopen', async () => {
      const outbox = ctx.backend.maintenanceSends;
      const mail = (n: number, dueAt: number): Extract<MaintenanceSend, { kind: 'email' }> => ({ id: `MN-1@1#${n}`, noticeId: 'MN-1', dueAt, who: { participant: '1000000001' }, kind: 'email', to: `a${n}@p.example`, subject: 'DIP maintenance', text: 'Database upgrade\n' });
      const hook: MaintenanceSend = { id: 'MN-1@1#3', noticeId: 'MN-1', dueAt: 1_000, who: { subscription: 'S1' }, kind: 'webhook', url: 'https://p.example/alarms', event: { type: 'maintenance', kind: 'published', notice: { id: 'MN-1' } as never, at: 1_000 } };
      expect(await outbox.due(10_000, 10)).toEqual([]);
      await outbox.add([mail(1, 1_000), mail(2, 1_000), hook]);
      // Recorded again (a retried act): kept as it was.
      await outbox.add([{ ...mail(1, 1_000), to: 'changed@p.example' }]);
      expect(await outbox.due(999, 10)).toEqual([]);
      expect(await outbox.due(1_000, 10)).toEqual([mail(1, 1_000), mail(2, 1_000), hook]);
      expect((await outbox.due(1_000, 2)).map((s) => s.id)).toEqual(['MN-1@1#1', 'MN-1@1#2']);
      // One claim wins; a claim from the time it was due before is refused once it moved.
      expect(await outbox.claim('MN-1@1#1', 1_000, 61_000)).toBe(true);
      expect(await outbox.claim('MN-1@1#1', 1_000, 62_000)).toBe(false);
      expect((await outbox.due(60_000, 10)).map((s) => s.id)).toEqual(['MN-1@1#2', 'MN-1@1#3']);
      await outbox.done('MN-1@1#2');
      const reopened = await ctx.reopen();
      // The claimer died: due again at the end of its lease, for anyone.
      expect(await reopened.maintenanceSends.due(61_000, 10)).toEqual([hook, mail(1, 61_000)]);
      expect(await reopened.maintenanceSends.claim('MN-1@1#1', 61_000, 121_000)).toBe(true);
      await reopened.maintenanceSends.done('MN-1@1#1');
      await reopened.maintenanceSends.done('MN-1@1#3');
      await reopened.maintenanceSends.done('no-such-send');
      expect(await reopened.maintenanceSends.due(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
    });
  });
}
