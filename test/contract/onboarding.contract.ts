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
      expect(await store.create(a, 10, 1000)).toBe(true);
      expect(await store.create(b, 10, 1000)).toBe(true);
      expect(await store.get('a')).toEqual(a);
      expect(await store.get('nope')).toBeUndefined();
      expect(await store.list('unverified')).toEqual([b, a]);
      expect(await store.list('pending')).toEqual([]);
    });

    it('refuses an application past the cap of waiting ones, counting unverified and pending, not decided or expired ones', async () => {
      expect(await store.create(application('a', 1000), 2, 1000)).toBe(true);
      expect(await store.create(application('b', 1000), 2, 1000)).toBe(true);
      expect(await store.create(application('c', 1000), 2, 1000)).toBe(false);
      expect(await store.get('c')).toBeUndefined();
      await store.verify('hash-a', 1500);
      await store.decide('a', approval);
      expect(await store.create(application('c', 1000), 2, 1500)).toBe(true);
      // b's link expired at 2000: forgotten, its place free.
      expect(await store.create(application('d', 2000), 2, 2000)).toBe(true);
      expect(await store.get('b')).toBeUndefined();
    });

    it('verifies once, with the right token, before the link expires', async () => {
      await store.create(application('a', 1000), 10, 1000);
      expect(await store.verify('hash-x', 1500)).toBeUndefined();
      expect(await store.verify('hash-a', 2000)).toBeUndefined();
      const verified = await store.verify('hash-a', 1500);
      expect(verified).toMatchObject({ id: 'a', status: 'pending', verifyTokenHash: null, verifiedAt: 1500 });
      expect(await store.get('a')).toEqual(verified);
      expect(await store.verify('hash-a', 1500)).toBeUndefined();
      expect((await store.list('pending')).map((x) => x.id)).toEqual(['a']);
    });

    it('decides a pending application once; an unverified one not at all', async () => {
      await store.create(application('a', 1000), 10, 1000);
      expect(await store.decide('a', approval)).toBeUndefined();
      await store.verify('hash-a', 1500);
      const decided = await store.decide('a', approval);
      expect(decided).toMatchObject({ status: 'approved', decidedBy: 'operator:ann', dipId: '1000000001', username: 'ann.1000000001' });
      expect(await store.decide('a', { ...approval, status: 'rejected', reason: 'too late' })).toBeUndefined();
      expect(await store.get('a')).toEqual(decided);
      expect((await store.list('approved')).map((x) => x.id)).toEqual(['a']);
    });

    it('of two decisions at once, exactly one is taken', async () => {
      await store.create(application('a', 1000), 10, 1000);
      await store.verify('hash-a', 1500);
      const both = await Promise.all([store.decide('a', approval), store.decide('a', { ...approval, status: 'rejected', reason: 'no' })]);
      expect(both.filter((x) => x !== undefined)).toHaveLength(1);
    });

    it('keeps what was put across a reopen', async () => {
      await store.create(application('a', 1000), 10, 1000);
      await store.verify('hash-a', 1500);
      await store.close();
      store = await ctx.reopen();
      expect(await store.get('a')).toMatchObject({ status: 'pending', verifiedAt: 1500 });
    });
  });
}
