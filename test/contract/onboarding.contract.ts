import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OnboardingApplication } from '../../src/domain/onboarding.js';
import type { OnboardingApplications } from '../../src/ports/onboarding.js';

export interface OpenedOnboarding {
  store: OnboardingApplications;
  /** Opens the same store again (after `store.close()`), to prove what was put is kept. */
  reopen(): Promise<OnboardingApplications>;
}

const application = (id: string, createdAt: number, over: Partial<OnboardingApplication> = {}): OnboardingApplication => ({
  id, status: 'unverified', createdAt, verifyTokenHash: `hash-${id}`, verifyExpiresAt: createdAt + 1000, verifiedAt: null,
  companyName: `Company ${id}`, mpids: ['ABCD'], roles: ['SUP'], contactName: 'Ann Other', contactEmail: `${id}@company.example`, csrPem: '-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----\n',
  decidedAt: null, decidedBy: null, reason: null, dipId: null, username: null, ...over,
});
const roomy = { pending: 10, unverified: 10 };
const approval = { status: 'approved' as const, decidedAt: 5000, decidedBy: 'operator:ann', reason: null, dipId: '1000000001', username: 'ann.1000000001' };

/** OnboardingApplications: every engine counts, verifies and decides applications the same way. */
export function onboardingContract(name: string, open: () => Promise<OpenedOnboarding>): void {
  describe(`OnboardingApplications contract: ${name}`, () => {
    let ctx: OpenedOnboarding;
    let store: OnboardingApplications;
    beforeEach(async () => {
      ctx = await open();
      store = ctx.store;
    });
    afterEach(async () => {
      await store.close();
    });

    it('keeps an application as given and lists each status oldest first', async () => {
      const a = application('a', 2000);
      const b = application('b', 1000);
      expect(await store.create(a, roomy, 1000)).toBe(true);
      expect(await store.create(b, roomy, 1000)).toBe(true);
      expect(await store.get('a')).toEqual(a);
      expect(await store.get('nope')).toBeUndefined();
      expect(await store.list('unverified')).toEqual([b, a]);
      expect(await store.list('pending')).toEqual([]);
    });

    it('refuses an application past the cap of pending ones, counting only verified pending ones, not unverified, decided or expired ones', async () => {
      const limits = { pending: 1, unverified: 10 };
      expect(await store.create(application('a', 1000), limits, 1000)).toBe(true);
      expect(await store.create(application('b', 1000), limits, 1000)).toBe(true);
      expect(await store.create(application('c', 1000), limits, 1000)).toBe(true);
      await store.verify('hash-a', 1500);
      expect(await store.create(application('d', 1500), limits, 1500)).toBe(false);
      expect(await store.get('d')).toBeUndefined();
      await store.decide('a', approval);
      expect(await store.create(application('d', 1500), limits, 1500)).toBe(true);
      // b's link expired at 2000: forgotten.
      expect(await store.create(application('e', 2000), limits, 2000)).toBe(true);
      expect(await store.get('b')).toBeUndefined();
    });

    it('refuses an application past the cap of unverified ones, not counting expired ones or the one it replaces', async () => {
      const limits = { pending: 10, unverified: 2 };
      expect(await store.create(application('a', 1000), limits, 1000)).toBe(true);
      expect(await store.create(application('b', 1500), limits, 1500)).toBe(true);
      expect(await store.create(application('c', 1500), limits, 1500)).toBe(false);
      expect(await store.get('c')).toBeUndefined();
      // The same contact again (case aside) replaces its own unverified application: its old link is dead.
      const again = application('b2', 1600, { contactEmail: 'B@Company.Example', verifyTokenHash: 'hash-b2' });
      expect(await store.create(again, limits, 1600)).toBe(true);
      expect(await store.get('b')).toBeUndefined();
      expect(await store.verify('hash-b', 1700)).toBeUndefined();
      expect(await store.get('b2')).toEqual(again);
      // a's link expired at 2000: its place is free.
      expect(await store.create(application('c', 2000), limits, 2000)).toBe(true);
      expect((await store.list('unverified')).map((x) => x.id)).toEqual(['b2', 'c']);
    });

    it('keeps one unverified application per contact address, and does not replace a verified one', async () => {
      await store.create(application('a', 1000), roomy, 1000);
      await store.verify('hash-a', 1100);
      expect(await store.create(application('a2', 1200, { contactEmail: 'a@company.example' }), roomy, 1200)).toBe(true);
      expect(await store.create(application('a3', 1300, { contactEmail: 'a@company.example' }), roomy, 1300)).toBe(true);
      expect((await store.list('pending')).map((x) => x.id)).toEqual(['a']);
      expect((await store.list('unverified')).map((x) => x.id)).toEqual(['a3']);
    });

    it('forgets an unverified application (its link was never sent), never a verified one', async () => {
      await store.create(application('a', 1000), roomy, 1000);
      await store.create(application('b', 1000), roomy, 1000);
      await store.verify('hash-b', 1100);
      await store.forget('a');
      await store.forget('b');
      expect(await store.get('a')).toBeUndefined();
      expect(await store.get('b')).toMatchObject({ status: 'pending' });
    });

    it('puts an approval back to pending only while it is that approval', async () => {
      await store.create(application('a', 1000), roomy, 1000);
      const pending = await store.verify('hash-a', 1500);
      await store.decide('a', approval);
      expect(await store.undecide('a', approval.decidedAt + 1)).toBeUndefined();
      expect(await store.undecide('a', approval.decidedAt)).toEqual(pending);
      expect(await store.get('a')).toEqual(pending);
      expect(await store.undecide('a', approval.decidedAt)).toBeUndefined();
      await store.decide('a', { ...approval, status: 'rejected', reason: 'no' });
      expect(await store.undecide('a', approval.decidedAt)).toBeUndefined();
      expect(await store.get('a')).toMatchObject({ status: 'rejected' });
    });

    it('verifies once, with the right token, before the link expires', async () => {
      await store.create(application('a', 1000), roomy, 1000);
      expect(await store.verify('hash-x', 1500)).toBeUndefined();
      expect(await store.verify('hash-a', 2000)).toBeUndefined();
      const verified = await store.verify('hash-a', 1500);
      expect(verified).toMatchObject({ id: 'a', status: 'pending', verifyTokenHash: null, verifiedAt: 1500 });
      expect(await store.get('a')).toEqual(verified);
      expect(await store.verify('hash-a', 1500)).toBeUndefined();
      expect((await store.list('pending')).map((x) => x.id)).toEqual(['a']);
    });

    it('decides a pending application once; an unverified one not at all', async () => {
      await store.create(application('a', 1000), roomy, 1000);
      expect(await store.decide('a', approval)).toBeUndefined();
      await store.verify('hash-a', 1500);
      const decided = await store.decide('a', approval);
      expect(decided).toMatchObject({ status: 'approved', decidedBy: 'operator:ann', dipId: '1000000001', username: 'ann.1000000001' });
      expect(await store.decide('a', { ...approval, status: 'rejected', reason: 'too late' })).toBeUndefined();
      expect(await store.get('a')).toEqual(decided);
      expect((await store.list('approved')).map((x) => x.id)).toEqual(['a']);
    });

    it('of two decisions at once, exactly one is taken', async () => {
      await store.create(application('a', 1000), roomy, 1000);
      await store.verify('hash-a', 1500);
      const both = await Promise.all([store.decide('a', approval), store.decide('a', { ...approval, status: 'rejected', reason: 'no' })]);
      expect(both.filter((x) => x !== undefined)).toHaveLength(1);
    });

    it('keeps what was put across a reopen', async () => {
      await store.create(application('a', 1000), roomy, 1000);
      await store.verify('hash-a', 1500);
      await store.close();
      store = await ctx.reopen();
      expect(await store.get('a')).toMatchObject({ status: 'pending', verifiedAt: 1500 });
    });
  });
}
