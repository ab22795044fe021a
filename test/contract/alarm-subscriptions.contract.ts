import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AlarmSubscription, AlarmSubscriptionStore } from '../../src/ports/alarms.js';

export interface OpenedAlarmSubscriptions {
  store: AlarmSubscriptionStore;
  /** Opens the same store again (after `store.close()`), to prove what was put is kept. */
  reopen(): Promise<AlarmSubscriptionStore>;
  /**
   * Opens the store over a table made before subscriptions had thresholds (its DDL of then), holding
   * `old` as that version wrote it: what an upgrade finds.
   */
  beforeThresholds(old: AlarmSubscription): Promise<AlarmSubscriptionStore>;
}

/** The alarm_subscriptions table as made before thresholds (2026-12-05), in SQL both engines take. */
export const TABLE_BEFORE_THRESHOLDS = `CREATE TABLE alarm_subscriptions (
  id text PRIMARY KEY, owner text NOT NULL, rules text NOT NULL, email text, webhook_url text, created_at bigint NOT NULL)`;
/** A subscription as that version wrote its row (the values of an INSERT with six parameters). */
export const rowBeforeThresholds = (old: AlarmSubscription): unknown[] => [old.id, old.owner, JSON.stringify(old.rules), old.email, old.webhookUrl, old.createdAt];

const sub = (id: string, owner: string, createdAt: number, over: Partial<AlarmSubscription> = {}): AlarmSubscription => ({
  id, owner, rules: ['dead-letter', 'storage'], email: `${owner}@example.net`, webhookUrl: null, createdAt, ...over,
});

/** AlarmSubscriptionStore: every engine keeps, lists, updates and removes subscriptions the same way. */
export function alarmSubscriptionsContract(name: string, open: () => Promise<OpenedAlarmSubscriptions>): void {
  describe(`AlarmSubscriptionStore contract: ${name}`, () => {
    let ctx: OpenedAlarmSubscriptions;
    let store: AlarmSubscriptionStore;
    beforeEach(async () => {
      ctx = await open();
      store = ctx.store;
    });
    afterEach(async () => {
      await store.close();
    });

    it('lists every subscription, or one owner\'s, oldest first (then by ID), with what was put', async () => {
      expect(await store.list()).toEqual([]);
      const a = sub('b-2', 'operator', 2000, { rules: ['queue-depth'], email: null, webhookUrl: 'https://ops.example.net/hook' });
      const b = sub('a-1', '1000000001', 1000, { rules: ['dead-letter', 'webhook-failing', 'certificate-expiring', 'maintenance'] });
      const c = sub('a-2', '1000000001', 2000);
      for (const s of [a, b, c]) await store.put(s);
      expect(await store.list()).toEqual([b, c, a]);
      expect(await store.list('1000000001')).toEqual([b, c]);
      expect(await store.list('2000000001')).toEqual([]);
    });

    it('a put of an existing ID changes its rules and destinations, never its owner or creation time', async () => {
      await store.put(sub('s-1', '1000000001', 1000));
      await store.put(sub('s-1', '2000000001', 5000, { rules: ['storage'], email: null, webhookUrl: 'https://a.example.net/h' }));
      expect(await store.list()).toEqual([sub('s-1', '1000000001', 1000, { rules: ['storage'], email: null, webhookUrl: 'https://a.example.net/h' })]);
      expect(await store.list('2000000001')).toEqual([]);
    });

    it("removes a subscription only for its owner, and says whether there was one", async () => {
      await store.put(sub('s-1', '1000000001', 1000));
      expect(await store.remove('2000000001', 's-1')).toBe(false);
      expect((await store.list()).map((s) => s.id)).toEqual(['s-1']);
      expect(await store.remove('1000000001', 's-1')).toBe(true);
      expect(await store.remove('1000000001', 's-1')).toBe(false);
      expect(await store.list()).toEqual([]);
    });

    it("keeps a subscription's own thresholds, changes them with a put, and reads one without them as without (the operator's)", async () => {
      const own = sub('t-1', '1000000001', 1000, { rules: ['queue-age', 'dead-letter', 'delivery-latency'], thresholds: { queueAgeMinutes: 5, deliveryLatencySeconds: 45, deadLetters: { count: 0, windowMinutes: 60 }, channels: ['IF-021', 'IF-022'] } });
      const plain = sub('t-2', '1000000001', 2000);
      await store.put(own);
      await store.put(plain);
      expect(await store.list('1000000001')).toEqual([own, plain]);
      expect(Object.keys((await store.list())[1]!)).not.toContain('thresholds');
      // A put without them drops them (the operator's apply again), one with them replaces them.
      const { thresholds: _dropped, ...without } = own;
      await store.put(without);
      expect(await store.list('1000000001')).toEqual([without, plain]);
      await store.put({ ...plain, thresholds: { queueAgeMinutes: 120 } });
      await store.close();
      store = await ctx.reopen();
      expect(await store.list()).toEqual([without, { ...plain, thresholds: { queueAgeMinutes: 120 } }]);
    });

    it('opens a table made before thresholds, reads its rows as having none, and keeps thresholds put after', async () => {
      await store.close();
      const old = sub('o-1', '1000000001', 1000, { rules: ['queue-age'] });
      store = await ctx.beforeThresholds(old);
      expect(await store.list()).toEqual([old]);
      const later = sub('o-2', '1000000001', 2000, { rules: ['queue-age'], thresholds: { queueAgeMinutes: 10 } });
      await store.put(later);
      expect(await store.list()).toEqual([old, later]);
    });

    it('keeps what was put across a reopen', async () => {
      const s = sub('s-1', 'operator', 1000, { webhookUrl: 'https://ops.example.net/hook' });
      await store.put(s);
      await store.close();
      store = await ctx.reopen();
      expect(await store.list()).toEqual([s]);
    });
  });
}
