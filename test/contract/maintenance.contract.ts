import { describe, expect, it } from 'vitest';
import type { MaintenanceNotice } from '../../src/domain/maintenance.js';
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
  });
}
