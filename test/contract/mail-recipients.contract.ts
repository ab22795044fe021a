import { describe, expect, it } from 'vitest';
import type { MailRecipient, RecipientCap } from '../../src/ports/mail-recipients.js';
import { useBackend, type BackendFactory } from './fixtures.js';

const request = (scope: string, address: string, tokenHash: string, expiresAt: number, requestedAt = 1_000): MailRecipient => ({ scope, address, tokenHash, requestedAt, expiresAt, confirmedAt: null });
const roomy: RecipientCap = { since: 0, max: 1_000 };

export function mailRecipientsContract(name: string, open: BackendFactory): void {
  describe(`MailRecipients contract: ${name}`, () => {
    const ctx = useBackend(open);

    it('asks once while a request is open, confirms by its token once and before it expires, per scope, across a reopen', async () => {
      const store = ctx.backend.mailRecipients;
      expect(await store.ask(request('user:alice', 'a@example.net', 'h1', 5_000), 1_000, roomy)).toBe('requested');
      expect(await store.ask(request('user:alice', 'a@example.net', 'h2', 6_000), 2_000, roomy)).toBe('pending');
      expect(await store.confirmed('user:alice', 'a@example.net')).toBe(false);
      // The second request was not recorded: its token confirms nothing.
      expect(await store.confirm('h2', 2_000)).toBeUndefined();
      const store2 = (await ctx.reopen()).mailRecipients;
      expect(await store2.confirm('h1', 4_999)).toEqual({ scope: 'user:alice', address: 'a@example.net' });
      expect(await store2.confirm('h1', 4_999)).toBeUndefined();
      expect(await store2.confirmed('user:alice', 'a@example.net')).toBe(true);
      expect(await store2.confirmed('user:bob', 'a@example.net')).toBe(false);
      expect(await store2.ask(request('user:alice', 'a@example.net', 'h3', 9_000), 10_000, roomy)).toBe('confirmed');
    });

    it('an expired request confirms nothing, and a new one may then be asked', async () => {
      const store = ctx.backend.mailRecipients;
      expect(await store.ask(request('user:bob', 'b@example.net', 'e1', 5_000), 1_000, roomy)).toBe('requested');
      expect(await store.confirm('e1', 5_000)).toBeUndefined();
      expect(await store.ask(request('user:bob', 'b@example.net', 'e2', 9_000), 5_000, roomy)).toBe('requested');
      expect(await store.confirm('e2', 6_000)).toEqual({ scope: 'user:bob', address: 'b@example.net' });
    });

    it('a withdrawn request (its e-mail not sent) is forgotten: the next ask records a new one; a confirmed address is never withdrawn', async () => {
      const store = ctx.backend.mailRecipients;
      expect(await store.ask(request('user:carol', 'c@example.net', 'w1', 50_000), 1_000, roomy)).toBe('requested');
      await store.withdraw('w1');
      expect(await store.confirm('w1', 2_000)).toBeUndefined();
      expect(await store.ask(request('user:carol', 'c@example.net', 'w2', 50_000), 2_000, roomy)).toBe('requested');
      expect(await store.confirm('w2', 3_000)).toEqual({ scope: 'user:carol', address: 'c@example.net' });
      await store.withdraw('w2');
      expect(await store.confirmed('user:carol', 'c@example.net')).toBe(true);
    });

    it('asks at most cap.max addresses of one scope in the window (open, confirmed or expired), other scopes and an open or confirmed address unaffected', async () => {
      const store = ctx.backend.mailRecipients;
      const cap = (now: number): RecipientCap => ({ since: now - 10_000, max: 3 });
      expect(await store.ask(request('alarm:X', 'v+1@example.net', 'c1', 2_000, 1_000), 1_000, cap(1_000))).toBe('requested');
      expect(await store.ask(request('alarm:X', 'v+2@example.net', 'c2', 2_000, 1_000), 1_000, cap(1_000))).toBe('requested');
      expect(await store.confirm('c2', 1_500)).toEqual({ scope: 'alarm:X', address: 'v+2@example.net' });
      expect(await store.ask(request('alarm:X', 'v+3@example.net', 'c3', 9_000, 3_000), 3_000, cap(3_000))).toBe('requested');
      expect(await store.ask(request('alarm:X', 'v+4@example.net', 'c4', 9_000, 4_000), 4_000, cap(4_000))).toBe('limited');
      expect(await store.confirm('c4', 4_500)).toBeUndefined();
      // v+1's request expired at 2 000 and still counts: asked again, it is limited too.
      expect(await store.ask(request('alarm:X', 'v+1@example.net', 'c9', 9_000, 4_000), 4_000, cap(4_000))).toBe('limited');
      // What is open or confirmed answers so, whatever the cap.
      expect(await store.ask(request('alarm:X', 'v+3@example.net', 'c5', 9_000, 4_000), 4_000, cap(4_000))).toBe('pending');
      expect(await store.ask(request('alarm:X', 'v+2@example.net', 'c6', 9_000, 4_000), 4_000, cap(4_000))).toBe('confirmed');
      expect(await store.ask(request('alarm:Y', 'v+4@example.net', 'c7', 9_000, 4_000), 4_000, cap(4_000))).toBe('requested');
      // Once the window moved past the first two, one more may be asked.
      expect(await store.ask(request('alarm:X', 'v+4@example.net', 'c8', 20_000, 12_000), 12_000, cap(12_000))).toBe('requested');
    });

    // On PostgreSQL the count and the insert were one statement but not one at a time: two nodes asking for new
    // addresses of one owner at once each counted the other's request as not there, and passed the cap by one.
    it('never passes cap.max however many writers ask for new addresses of one scope at once', async () => {
      const store = ctx.backend.mailRecipients;
      const cap: RecipientCap = { since: 0, max: 3 };
      for (const round of [1, 2, 3, 4, 5]) {
        const scope = `report:race${round}`;
        expect(await store.ask(request(scope, 'first@example.net', `r${round}-0`, 9_000), 1_000, cap)).toBe('requested');
        expect(await store.ask(request(scope, 'second@example.net', `r${round}-1`, 9_000), 1_000, cap)).toBe('requested');
        // Eight writers (PostgreSQL: eight sessions of the pool) race for the one place left.
        const asked = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => store.ask(request(scope, `racer${i}@example.net`, `r${round}-racer${i}`, 9_000), 1_000, cap)));
        expect(asked.filter((a) => a === 'requested')).toHaveLength(1);
        expect(asked.filter((a) => a === 'limited')).toHaveLength(7);
      }
    });
  });
}
