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

    it("sets an account's failed sign-ins and nothing else of its record", async () => {
      const store = ctx.backend.portalAccounts;
      await store.createAccount(account('dora', 'SUP0000001', 1));
      // Another node disabled her after this one read the record: setting the failures keeps the disable.
      await store.updateAccount({ ...account('dora', 'SUP0000001', 1), disabled: true, sessionEpoch: 1 });
      await store.setFailedSignIns('dora', [1_000, 2_000]);
      expect(await store.account('dora')).toEqual({ ...account('dora', 'SUP0000001', 1), disabled: true, sessionEpoch: 1, failedSignIns: [1_000, 2_000] });
      await store.setFailedSignIns('dora', []);
      expect((await store.account('dora'))?.failedSignIns).toEqual([]);
      await store.setFailedSignIns('nobody', [1]);
      expect(await store.account('nobody')).toBeUndefined();
    });
  });
}
