import { describe, expect, it } from 'vitest';
import type { PortalAccount } from '../../src/ports/portal-accounts.js';
import { useBackend, type BackendFactory } from './fixtures.js';

const account = (username: string, participantDipId: string | null, createdAt: number): PortalAccount => ({
  username,
  participantDipId,
  admin: participantDipId === null,
  displayName: username,
  passwordHash: 'scrypt$16384$8$1$c2FsdA$aGFzaA',
  totpSecretSealed: 'c2VhbGVk',
  lastTotpStep: 0,
  sessionEpoch: 0,
  disabled: false,
  createdAt,
  createdBy: 'test',
});

export function portalAccountsContract(name: string, open: BackendFactory): void {
  describe(`PortalAccounts contract: ${name}`, () => {
    const ctx = useBackend(open);

    it('creates an account once, finds it by name and by participant, and keeps updates across a reopen', async () => {
      const store = ctx.backend.portalAccounts;
      expect(await store.createAccount(account('alice', 'SUP0000001', 2))).toBe(true);
      expect(await store.createAccount(account('bob', 'SUP0000001', 1))).toBe(true);
      expect(await store.createAccount(account('op', null, 3))).toBe(true);
      // A taken name is refused and the first account stays as it was.
      expect(await store.createAccount({ ...account('alice', 'LDSO000001', 4), displayName: 'other' })).toBe(false);
      expect((await store.account('alice'))?.participantDipId).toBe('SUP0000001');
      expect(await store.account('nobody')).toBeUndefined();
      expect((await store.accounts('SUP0000001')).map((a) => a.username)).toEqual(['bob', 'alice']);
      expect((await store.accounts(null)).map((a) => a.username)).toEqual(['op']);
      expect(await store.accounts('LDSO000001')).toEqual([]);
      await store.updateAccount({ ...account('alice', 'SUP0000001', 2), lastTotpStep: 99, sessionEpoch: 3 });
      const reopened = await ctx.reopen();
      expect(await reopened.portalAccounts.account('alice')).toEqual({ ...account('alice', 'SUP0000001', 2), lastTotpStep: 99, sessionEpoch: 3 });
    });

    it('claims a TOTP step once: the same or an earlier step again is refused, a later one taken', async () => {
      const store = ctx.backend.portalAccounts;
      await store.createAccount(account('carol', 'SUP0000001', 1));
      const claims = [];
      for (const step of [5, 5, 4, 6]) claims.push(await store.claimTotpStep('carol', step));
      expect(claims).toEqual([true, false, false, true]);
      expect((await store.account('carol'))?.lastTotpStep).toBe(6);
      expect(await store.claimTotpStep('nobody', 7)).toBe(false);
    });

    it('keeps failed sign-ins by name, account or not, across a reopen, and forgets names whose failures are old', async () => {
      const store = ctx.backend.portalAccounts;
      await store.createAccount(account('dora', 'SUP0000001', 1));
      expect(await store.signInFailures('dora')).toEqual([]);
      await store.setSignInFailures('dora', [1_000, 2_000], 0);
      await store.setSignInFailures('no.such.name', [1_500], 0);
      // The account's record is not touched.
      expect(await store.account('dora')).toEqual(account('dora', 'SUP0000001', 1));
      const reopened = await ctx.reopen();
      expect(await reopened.portalAccounts.signInFailures('dora')).toEqual([1_000, 2_000]);
      expect(await reopened.portalAccounts.signInFailures('no.such.name')).toEqual([1_500]);
      // A write forgets every name whose last failure is older than its cut-off; none forgets the name.
      await reopened.portalAccounts.setSignInFailures('other', [3_000], 1_600);
      expect(await reopened.portalAccounts.signInFailures('no.such.name')).toEqual([]);
      expect(await reopened.portalAccounts.signInFailures('dora')).toEqual([1_000, 2_000]);
      await reopened.portalAccounts.setSignInFailures('dora', [], 0);
      expect(await reopened.portalAccounts.signInFailures('dora')).toEqual([]);
    });
  });
}
