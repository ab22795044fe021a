import { describe, expect, it } from 'vitest';
import type { SavedReport } from '../../src/domain/saved-report.js';
import { useBackend, type BackendFactory } from './fixtures.js';

const report = (id: string, owner: string, over: Partial<SavedReport> = {}): SavedReport => ({
  id,
  owner,
  participantDipId: 'SUP0000001',
  name: `report ${id}`,
  definition: { report: 'throughput', period: 'day', channels: ['IF-021'], sender: null, recipient: 'LDSO000001' },
  mailing: null,
  createdAt: 1_000,
  nextDueAt: null,
  ...over,
});

export function savedReportsContract(name: string, open: BackendFactory): void {
  describe(`SavedReports contract: ${name}`, () => {
    const ctx = useBackend(open);

    it("keeps a user's reports, oldest first, as saved, across a reopen; another user's are none of its", async () => {
      const store = ctx.backend.savedReports;
      const mailed = report('b', 'alice', { createdAt: 2_000, mailing: { to: 'alice@example.net', every: 'weekly', format: 'csv' }, nextDueAt: 5_000 });
      expect(await store.create(mailed, 20)).toBeNull();
      expect(await store.create(report('a', 'alice'), 20)).toBeNull();
      expect(await store.create(report('c', 'bob'), 20)).toBeNull();
      const store2 = (await ctx.reopen()).savedReports;
      expect(await store2.list('alice')).toEqual([report('a', 'alice'), mailed]);
      expect(await store2.get('alice', 'b')).toEqual(mailed);
      // Owner-checked in the store: bob's report is not alice's to read or delete.
      expect(await store2.get('alice', 'c')).toBeUndefined();
      expect(await store2.remove('alice', 'c')).toBe(false);
      expect(await store2.list('bob')).toHaveLength(1);
      expect(await store2.remove('alice', 'a')).toBe(true);
      expect(await store2.remove('alice', 'a')).toBe(false);
      expect((await store2.list('alice')).map((r) => r.id)).toEqual(['b']);
    });

    it("refuses a report past the owner's cap and a second of the same name, and counts per owner", async () => {
      const store = ctx.backend.savedReports;
      expect(await store.create(report('a', 'alice'), 2)).toBeNull();
      expect(await store.create(report('b', 'alice', { name: 'report a' }), 2)).toBe('name-taken');
      expect(await store.create(report('b', 'alice'), 2)).toBeNull();
      expect(await store.create(report('c', 'alice'), 2)).toBe('full');
      // Another user's name and cap are its own.
      expect(await store.create(report('d', 'bob', { name: 'report a' }), 2)).toBeNull();
      expect((await store.list('alice')).map((r) => r.id)).toEqual(['a', 'b']);
    });

    it('lists the reports due, longest due first, and lets exactly one claim of a due e-mail through', async () => {
      const store = ctx.backend.savedReports;
      const mailing = { to: 'a@example.net', every: 'daily', format: 'summary' } as const;
      await store.create(report('late', 'alice', { mailing, nextDueAt: 100 }), 20);
      await store.create(report('later', 'bob', { mailing, nextDueAt: 50 }), 20);
      await store.create(report('future', 'alice', { mailing, nextDueAt: 10_000 }), 20);
      await store.create(report('never', 'alice'), 20);
      expect((await store.due(200, 10)).map((r) => r.id)).toEqual(['later', 'late']);
      expect((await store.due(200, 1)).map((r) => r.id)).toEqual(['later']);
      // Two nodes claim the same e-mail at once: one moves it on, the other finds it moved.
      const claims = await Promise.all([store.claimDue('late', 100, 86_400_100), store.claimDue('late', 100, 86_400_100)]);
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect(await store.claimDue('late', 100, 86_400_100)).toBe(false);
      expect((await store.get('alice', 'late'))?.nextDueAt).toBe(86_400_100);
      expect((await store.due(200, 10)).map((r) => r.id)).toEqual(['later']);
      // A report not e-mailed is never due, nor claimed.
      expect(await store.claimDue('never', 0, 1)).toBe(false);
    });
  });
}
