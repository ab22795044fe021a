import { describe, expect, it } from 'vitest';
import type { PendingTotpEnrolment, PortalAccount, PortalRealm } from '../../src/ports/portal-accounts.js';
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

/** A reset's first password's expiry. */
const UNTIL = 9_000_000;

const enrolment = (username: string, tokenHash: string, startedAt: number, epoch = 0, realm: PortalRealm = 'operator'): PendingTotpEnrolment => ({
  realm,
  username,
  tokenHash,
  secretSealed: `sealed-${tokenHash}`,
  epoch,
  startedAt,
  expiresAt: startedAt + 600_000,
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
      expect((await store.account('user', 'alice'))?.participantDipId).toBe('SUP0000001');
      expect(await store.account('user', 'nobody')).toBeUndefined();
      expect((await store.accounts('SUP0000001')).map((a) => a.username)).toEqual(['bob', 'alice']);
      expect((await store.accounts(null)).map((a) => a.username)).toEqual(['op']);
      expect(await store.accounts('LDSO000001')).toEqual([]);
      expect(await store.claimTotpStep('user', 'alice', 99)).toBe(true);
      expect(await store.changeAccount('user', 'alice', { disabled: true })).toEqual({ ...account('alice', 'SUP0000001', 2), lastTotpStep: 99, disabled: true, sessionEpoch: 1 });
      const reopened = await ctx.reopen();
      expect(await reopened.portalAccounts.account('user', 'alice')).toEqual({ ...account('alice', 'SUP0000001', 2), lastTotpStep: 99, disabled: true, sessionEpoch: 1 });
    });

    it('keeps the two realms apart: one name is an operator and a user, each found, changed and counted in its own realm only', async () => {
      const store = ctx.backend.portalAccounts;
      const operator = { ...account('sam', null, 1), totpSecretSealed: null };
      const user = { ...account('sam', 'SUP0000001', 2), totpSecretSealed: null };
      expect(await store.createAccount(operator)).toBe(true);
      expect(await store.createAccount(user)).toBe(true);
      // Unique within a realm: among users across participants (the sign-in form asks for the name only).
      expect(await store.createAccount(account('sam', 'LDSO000001', 3))).toBe(false);
      expect(await store.createAccount(account('sam', null, 3))).toBe(false);
      expect(await store.account('operator', 'sam')).toEqual(operator);
      expect(await store.account('user', 'sam')).toEqual(user);
      expect((await store.accounts(null)).map((a) => a.username)).toEqual(['sam']);
      expect((await store.accounts('SUP0000001')).map((a) => a.username)).toEqual(['sam']);
      // A change, a claimed step, a counted session of one leaves the other as it was.
      expect(await store.changeAccount('user', 'sam', { disabled: true })).toMatchObject({ participantDipId: 'SUP0000001', disabled: true, sessionEpoch: 1 });
      expect(await store.claimTotpStep('operator', 'sam', 5)).toBe(true);
      expect(await store.claimTotpStep('user', 'sam', 5)).toBe(true);
      expect(await store.countSession('operator', 'sam')).toBe(1);
      expect(await store.countSession('operator', 'sam')).toBe(2);
      expect(await store.countSession('user', 'sam')).toBe(1);
      expect(await store.account('operator', 'sam')).toEqual({ ...operator, lastTotpStep: 5, sessionsIssued: 2 });
      // Each realm's attempts are its own: failures against the operator do not hold the user back.
      for (const at of [100, 101, 102]) await store.recordSignInAttempt('operator', 'sam', at, 0);
      expect((await store.recordSignInAttempt('user', 'sam', 103, 0)).attempts).toEqual([103]);
      await store.clearSignInAttempts('user', 'sam');
      expect((await store.recordSignInAttempt('operator', 'sam', 104, 0)).attempts).toEqual([100, 101, 102, 104]);
      // One pending enrolment per account, not per name; each completes on its own account.
      await store.changeAccount('user', 'sam', { disabled: false });
      const forOperator = enrolment('sam', 'hash-op-sam', 1_000);
      const forUser = enrolment('sam', 'hash-user-sam', 1_000, 2, 'user');
      expect(await store.startTotpEnrolment(forOperator)).toEqual(forOperator);
      expect(await store.startTotpEnrolment(forUser)).toEqual(forUser);
      expect(await store.totpEnrolment('hash-user-sam')).toEqual(forUser);
      expect(await store.completeTotpEnrolment('hash-user-sam', 2_000, { secretSealed: 'user-secret', step: 9 })).toMatchObject({ participantDipId: 'SUP0000001', totpSecretSealed: 'user-secret' });
      expect((await store.account('operator', 'sam'))?.totpSecretSealed).toBeNull();
      // A reset names its kind: the operator's factor reset leaves the user's, and the user's attempts.
      await store.recordSignInAttempt('user', 'sam', 200, 0);
      expect(await store.resetTotpFactor('sam', 'fresh', null, UNTIL)).toMatchObject({ account: { participantDipId: null, passwordHash: 'fresh' }, pendingEnrolment: true });
      expect(await store.account('user', 'sam')).toMatchObject({ totpSecretSealed: 'user-secret', passwordHash: user.passwordHash });
      expect((await store.recordSignInAttempt('user', 'sam', 201, 0)).attempts).toEqual([200, 201]);
      const reopened = await ctx.reopen();
      expect(await reopened.portalAccounts.account('user', 'sam')).toMatchObject({ participantDipId: 'SUP0000001', totpSecretSealed: 'user-secret' });
      expect(await reopened.portalAccounts.account('operator', 'sam')).toMatchObject({ participantDipId: null, passwordHash: 'fresh' });
    });

    it('claims a TOTP step once: the same or an earlier step again is refused, a later one taken', async () => {
      const store = ctx.backend.portalAccounts;
      await store.createAccount(account('carol', 'SUP0000001', 1));
      const claims = [];
      for (const step of [5, 5, 4, 6]) claims.push(await store.claimTotpStep('user', 'carol', step));
      expect(claims).toEqual([true, false, false, true]);
      expect((await store.account('user', 'carol'))?.lastTotpStep).toBe(6);
      expect(await store.claimTotpStep('user', 'nobody', 7)).toBe(false);
    });

    it('numbers sessions from the stored count, one number each when counted at once, kept by changes and a reopen', async () => {
      const store = ctx.backend.portalAccounts;
      await store.createAccount(account('sally', 'SUP0000001', 1));
      expect(await store.countSession('user', 'sally')).toBe(1);
      const together = await Promise.all([store.countSession('user', 'sally'), store.countSession('user', 'sally'), store.countSession('user', 'sally')]);
      expect([...together].sort()).toEqual([2, 3, 4]);
      // A change merges its fields: the count stays (and the epoch moves, as ever).
      expect((await store.changeAccount('user', 'sally', { disabled: false }))?.sessionsIssued).toBe(4);
      expect(await store.countSession('user', 'nobody')).toBeUndefined();
      expect((await (await ctx.reopen()).portalAccounts.account('user', 'sally'))?.sessionsIssued).toBe(4);
    });

    it('changes only the fields asked, raising the epoch from the stored one, and only while the conditions hold', async () => {
      const store = ctx.backend.portalAccounts;
      await store.createAccount(account('dora', 'SUP0000001', 1));
      // A password change prepared against epoch 0 after another node disabled the account (epoch 1): refused, the disable kept.
      expect((await store.changeAccount('user', 'dora', { disabled: true }))?.sessionEpoch).toBe(1);
      expect(await store.changeAccount('user', 'dora', { passwordHash: 'new', mustChangePassword: false }, { epoch: 0 })).toBeUndefined();
      expect(await store.changeAccount('user', 'dora', { passwordHash: 'new' }, { epoch: 1, enabled: true })).toBeUndefined();
      expect(await store.account('user', 'dora')).toEqual({ ...account('dora', 'SUP0000001', 1), disabled: true, sessionEpoch: 1 });
      expect(await store.changeAccount('user', 'dora', { disabled: false })).toMatchObject({ disabled: false, sessionEpoch: 2 });
      // A TOTP step claimed meanwhile is not put back by a change.
      expect(await store.claimTotpStep('user', 'dora', 7)).toBe(true);
      expect(await store.changeAccount('user', 'dora', { passwordHash: 'new', mustChangePassword: false }, { epoch: 2, enabled: true })).toEqual({
        ...account('dora', 'SUP0000001', 1),
        passwordHash: 'new',
        mustChangePassword: false,
        lastTotpStep: 7,
        sessionEpoch: 3,
      });
      expect(await store.changeAccount('user', 'nobody', {})).toBeUndefined();
    });

    it("disables or demotes an administrator only while another enabled one of its participant remains, checked in the write: of two at once, one stays", async () => {
      const store = ctx.backend.portalAccounts;
      const admin = (username: string, participantDipId: string) => ({ ...account(username, participantDipId, 1), admin: true, level: 'admin' as const });
      for (const name of ['ann', 'ben']) await store.createAccount(admin(name, 'SUP0000001'));
      // An enabled administrator of another participant, a disabled one and a user of this one do not count.
      await store.createAccount(admin('oth', 'SUP0000002'));
      await store.createAccount({ ...admin('old', 'SUP0000001'), disabled: true });
      await store.createAccount({ ...account('usr', 'SUP0000001', 1), level: 'operations' });
      // An account stored before levels counts by its administrator flag.
      const { level: _, ...flagOnly } = admin('pre', 'SUP0000003');
      await store.createAccount(flagOnly);
      expect(await store.changeAccount('user', 'pre', { disabled: true }, { keepingAdmin: true })).toBeUndefined();
      await store.createAccount(admin('pre2', 'SUP0000003'));
      expect(await store.changeAccount('user', 'pre', { disabled: true }, { keepingAdmin: true })).toMatchObject({ disabled: true });
      // Rounds of the last two disabling (or demoting) each other at once: always exactly one written.
      for (let round = 0; round < 10; round += 1) {
        const change = round % 2 === 0 ? { disabled: true } : { level: 'operations' as const, admin: false };
        const both = await Promise.all(['ann', 'ben'].map((name) => store.changeAccount('user', name, change, { keepingAdmin: true })));
        expect([round, both.filter(Boolean).length]).toEqual([round, 1]);
        const enabled = (await store.accounts('SUP0000001')).filter((a) => !a.disabled && a.level === 'admin').map((a) => a.username);
        expect([round, enabled.length]).toEqual([round, 1]);
        // The one written is put back for the next round.
        const written = both.find(Boolean)!;
        expect(await store.changeAccount('user', written.username, { disabled: false, level: 'admin', admin: true })).toMatchObject({ disabled: false });
      }
      // Without the condition the write is not held back (an operator may disable a participant's last administrator).
      expect(await store.changeAccount('user', 'oth', { disabled: true })).toMatchObject({ disabled: true });
    });

    it("keeps a user's level and changes it with the administrator flag in one write, sessions ended; a record stored before levels keeps none", async () => {
      const store = ctx.backend.portalAccounts;
      // Stored before levels (the record as older builds wrote it): nothing invented, levelOf reads it.
      await store.createAccount(account('old.user', 'SUP0000001', 1));
      expect(await store.account('user', 'old.user')).not.toHaveProperty('level');
      await store.createAccount({ ...account('vera', 'SUP0000001', 2), level: 'viewer' });
      expect((await store.account('user', 'vera'))?.level).toBe('viewer');
      expect(await store.changeAccount('user', 'vera', { level: 'admin', admin: true })).toEqual({ ...account('vera', 'SUP0000001', 2), level: 'admin', admin: true, sessionEpoch: 1 });
      expect(await store.changeAccount('user', 'old.user', { level: 'viewer', admin: false })).toMatchObject({ level: 'viewer', admin: false, sessionEpoch: 1 });
      const reopened = await ctx.reopen();
      expect(await reopened.portalAccounts.account('user', 'vera')).toMatchObject({ level: 'admin', admin: true });
      expect(await reopened.portalAccounts.account('user', 'old.user')).toMatchObject({ level: 'viewer', admin: false });
    });

    it('records sign-in attempts by name, account or not, one row each, forgetting those before the window', async () => {
      const store = ctx.backend.portalAccounts;
      const first = await store.recordSignInAttempt('user', 'no.such.name', 1_000, 0);
      expect(first.attempts).toEqual([1_000]);
      // Recorded at once (as on several nodes): each sees the others, none is lost.
      const together = await Promise.all([2_000, 2_000, 2_001].map((at) => store.recordSignInAttempt('user', 'no.such.name', at, 0)));
      expect(Math.max(...together.map((t) => t.attempts.length))).toBe(4);
      await store.forgetSignInAttempt(first.id);
      const reopened = await ctx.reopen();
      expect((await reopened.portalAccounts.recordSignInAttempt('user', 'no.such.name', 3_000, 0)).attempts).toEqual([2_000, 2_000, 2_001, 3_000]);
      // Those before the window are forgotten, for every name.
      expect((await reopened.portalAccounts.recordSignInAttempt('user', 'other', 4_000, 2_001)).attempts).toEqual([4_000]);
      expect((await reopened.portalAccounts.recordSignInAttempt('user', 'no.such.name', 4_000, 2_001)).attempts).toEqual([2_001, 3_000, 4_000]);
      await reopened.portalAccounts.clearSignInAttempts('user', 'no.such.name');
      expect((await reopened.portalAccounts.recordSignInAttempt('user', 'no.such.name', 5_000, 0)).attempts).toEqual([5_000]);
    });

    it('keeps one pending TOTP enrolment per account: a second start while it is pending is answered with the first, an expired one is replaced', async () => {
      const store = ctx.backend.portalAccounts;
      await store.createAccount({ ...account('erin', null, 1), totpSecretSealed: null });
      const first = enrolment('erin', 'hash-1', 1_000);
      expect(await store.startTotpEnrolment(first)).toEqual(first);
      // Started at once (as on two nodes): exactly one is stored, and both are told which.
      const racing = await Promise.all([enrolment('erin', 'hash-2', 2_000), enrolment('erin', 'hash-3', 2_000)].map((e) => store.startTotpEnrolment(e)));
      expect(racing).toEqual([first, first]);
      expect(await store.totpEnrolment('hash-1')).toEqual(first);
      expect(await store.totpEnrolment('hash-2')).toBeUndefined();
      const reopened = await ctx.reopen();
      expect(await reopened.portalAccounts.totpEnrolment('hash-1')).toEqual(first);
      // Once it has expired, a new start replaces it (and expired ones of other accounts are forgotten too).
      await reopened.portalAccounts.createAccount({ ...account('fay', null, 1), totpSecretSealed: null });
      await reopened.portalAccounts.startTotpEnrolment(enrolment('fay', 'hash-fay', 1_000));
      const later = enrolment('erin', 'hash-4', first.expiresAt);
      expect(await reopened.portalAccounts.startTotpEnrolment(later)).toEqual(later);
      expect(await reopened.portalAccounts.totpEnrolment('hash-1')).toBeUndefined();
      expect(await reopened.portalAccounts.totpEnrolment('hash-fay')).toBeUndefined();
    });

    it('forgets, as a start of the account, its pending enrolment begun under another epoch (it can never complete), and only that', async () => {
      const store = ctx.backend.portalAccounts;
      await store.createAccount({ ...account('jo', null, 1), totpSecretSealed: null });
      await store.createAccount({ ...account('kit', null, 1), totpSecretSealed: null });
      const old = enrolment('jo', 'hash-jo-1', 1_000);
      await store.startTotpEnrolment(old);
      await store.startTotpEnrolment(enrolment('kit', 'hash-kit', 1_000));
      // Disabled and enabled again (or signed out everywhere): the account's epoch moved on, the old
      // enrolment is void, and a start well before its expiry is not blocked by it.
      await store.changeAccount('operator', 'jo', { disabled: true });
      await store.changeAccount('operator', 'jo', { disabled: false });
      const fresh = enrolment('jo', 'hash-jo-2', 2_000, 2);
      expect(await store.startTotpEnrolment(fresh)).toEqual(fresh);
      expect(await store.totpEnrolment('hash-jo-1')).toBeUndefined();
      // Another account's enrolment of its own epoch stays; and one of the current epoch is not given up
      // to a start that read the account before it changed (an older epoch).
      expect(await store.totpEnrolment('hash-kit')).toEqual(enrolment('kit', 'hash-kit', 1_000));
      expect(await store.startTotpEnrolment(enrolment('jo', 'hash-jo-3', 3_000, 1))).toEqual(fresh);
      expect(await store.completeTotpEnrolment('hash-jo-2', 4_000, { secretSealed: 's', step: 1 })).toEqual(expect.objectContaining({ totpSecretSealed: 's', sessionEpoch: 3 }));
    });

    it('resets a second factor: secret cleared, the given password to be changed, sessions ended, the pending enrolment gone; nothing for no account', async () => {
      const store = ctx.backend.portalAccounts;
      const mia = { ...account('mia', null, 1), lastTotpStep: 7, sessionEpoch: 3 };
      await store.createAccount(mia);
      await store.createAccount({ ...account('ned', null, 1), totpSecretSealed: null });
      await store.startTotpEnrolment(enrolment('ned', 'hash-ned', 1_000));
      // Mia is locked out (five failed sign-ins): the reset forgets them, so her new password works at once.
      for (const at of [100, 101, 102, 103, 104]) await store.recordSignInAttempt('operator', 'mia', at, 0);
      const reset = { ...mia, totpSecretSealed: null, passwordHash: 'fresh', mustChangePassword: true, firstPasswordExpiresAt: UNTIL, sessionEpoch: 4 };
      expect(await store.resetTotpFactor('mia', 'fresh', null, UNTIL)).toEqual({ account: reset, hadFactor: true, pendingEnrolment: false });
      expect((await store.recordSignInAttempt('operator', 'mia', 200, 0)).attempts).toEqual([200]);
      expect(await store.resetTotpFactor('ned', 'fresh-ned', null, UNTIL)).toMatchObject({ account: { totpSecretSealed: null, sessionEpoch: 1 }, hadFactor: false, pendingEnrolment: true });
      expect(await store.totpEnrolment('hash-ned')).toBeUndefined();
      expect(await store.resetTotpFactor('nobody', 'x', null, UNTIL)).toBeUndefined();
      // Only an account of the kind asked for: a participant's user is no operator's, nor another
      // participant's, and an operator is no participant's user; each is left as it is, attempts and all.
      const pia = account('pia', '1000000001', 1);
      await store.createAccount(pia);
      await store.recordSignInAttempt('user', 'pia', 300, 0);
      expect(await store.resetTotpFactor('pia', 'x', null, UNTIL)).toBeUndefined();
      expect(await store.resetTotpFactor('pia', 'x', '1000000002', UNTIL)).toBeUndefined();
      expect(await store.account('user', 'pia')).toEqual(pia);
      expect((await store.recordSignInAttempt('user', 'pia', 301, 0)).attempts).toEqual([300, 301]);
      expect(await store.resetTotpFactor('mia', 'x', '1000000001', UNTIL)).toBeUndefined();
      expect(await store.account('operator', 'mia')).toEqual(reset);
      expect(await (await ctx.reopen()).portalAccounts.account('operator', 'mia')).toEqual(reset);
    });

    // secfix5 M2: accounts made before first passwords expired are given an expiry from the upgrade.
    it('gives every account still on a first password and with no expiry the one given, once; a cleared expiry, an own password and a set expiry are left', async () => {
      const store = ctx.backend.portalAccounts;
      await store.createAccount({ ...account('old', '1000000001', 1), totpSecretSealed: null, mustChangePassword: true });
      await store.createAccount({ ...account('legacy', null, 1), totpSecretSealed: null });
      await store.createAccount({ ...account('seeded', null, 1), mustChangePassword: true });
      await store.createAccount({ ...account('dated', null, 1), totpSecretSealed: null, mustChangePassword: true, firstPasswordExpiresAt: 5 });
      await store.createAccount(account('settled', null, 1));
      // Enrolled and chose their own: the expiry is cleared, and not given again.
      await store.createAccount({ ...account('chose', null, 1), totpSecretSealed: null, mustChangePassword: true, firstPasswordExpiresAt: 5 });
      await store.startTotpEnrolment(enrolment('chose', 'hash-chose', 1_000));
      await store.completeTotpEnrolment('hash-chose', 2_000, { secretSealed: 's', step: 1, passwordHash: 'own' });
      expect(await store.expireFirstPasswords(UNTIL)).toBe(3);
      expect(await store.expireFirstPasswords(UNTIL + 1)).toBe(0);
      const expiry = async (realm: PortalRealm, name: string) => (await store.account(realm, name))?.firstPasswordExpiresAt ?? null;
      expect([await expiry('user', 'old'), await expiry('operator', 'legacy'), await expiry('operator', 'seeded'), await expiry('operator', 'dated'), await expiry('operator', 'settled'), await expiry('operator', 'chose')]).toEqual([UNTIL, UNTIL, UNTIL, 5, null, null]);
    });

    it("resets a participant's user's factor when asked for that participant's, as an operator's is", async () => {
      const store = ctx.backend.portalAccounts;
      const pia = { ...account('pia', '1000000001', 1), sessionEpoch: 2 };
      await store.createAccount(pia);
      await store.startTotpEnrolment(enrolment('pia', 'hash-pia', 1_000, 2, 'user'));
      for (const at of [100, 101, 102, 103, 104]) await store.recordSignInAttempt('user', 'pia', at, 0);
      const reset = { ...pia, totpSecretSealed: null, passwordHash: 'fresh-pia', mustChangePassword: true, firstPasswordExpiresAt: UNTIL, sessionEpoch: 3 };
      expect(await store.resetTotpFactor('pia', 'fresh-pia', '1000000001', UNTIL)).toEqual({ account: reset, hadFactor: true, pendingEnrolment: true });
      expect(await store.totpEnrolment('hash-pia')).toBeUndefined();
      expect((await store.recordSignInAttempt('user', 'pia', 200, 0)).attempts).toEqual([200]);
      expect(await (await ctx.reopen()).portalAccounts.account('user', 'pia')).toEqual(reset);
    });

    it('completes an enrolment once, unexpired, only for an enabled account without a factor whose epoch has not moved', async () => {
      const store = ctx.backend.portalAccounts;
      const bare = { ...account('gil', null, 1), totpSecretSealed: null, mustChangePassword: true };
      await store.createAccount(bare);
      await store.startTotpEnrolment(enrolment('gil', 'hash-gil', 1_000));
      // Expired (at its expiry, not only after), or an unknown token: nothing changes.
      expect(await store.completeTotpEnrolment('hash-gil', 601_000, { secretSealed: 'x', step: 9 })).toBeUndefined();
      expect(await store.completeTotpEnrolment('hash-other', 2_000, { secretSealed: 'x', step: 9 })).toBeUndefined();
      // The account changed since the start (disabled, signed out): refused, the enrolment left to expire.
      await store.changeAccount('operator', 'gil', { disabled: true });
      expect(await store.completeTotpEnrolment('hash-gil', 2_000, { secretSealed: 'x', step: 9 })).toBeUndefined();
      await store.changeAccount('operator', 'gil', { disabled: false });
      expect(await store.completeTotpEnrolment('hash-gil', 2_000, { secretSealed: 'x', step: 9 })).toBeUndefined();
      expect(await store.account('operator', 'gil')).toEqual({ ...bare, sessionEpoch: 2 });

      await store.createAccount({ ...bare, username: 'hal' });
      await store.startTotpEnrolment(enrolment('hal', 'hash-hal', 1_000));
      const done = { ...bare, username: 'hal', totpSecretSealed: 'sealed-hash-hal', lastTotpStep: 9, passwordHash: 'chosen', mustChangePassword: false, sessionEpoch: 1 };
      expect(await store.completeTotpEnrolment('hash-hal', 600_999, { secretSealed: 'sealed-hash-hal', step: 9, passwordHash: 'chosen' })).toEqual(done);
      expect(await store.totpEnrolment('hash-hal')).toBeUndefined();
      // Good once; and an account that has a factor takes no other through a new enrolment.
      expect(await store.completeTotpEnrolment('hash-hal', 2_000, { secretSealed: 'again', step: 10 })).toBeUndefined();
      await store.startTotpEnrolment(enrolment('hal', 'hash-hal-2', 2_000, 1));
      expect(await store.completeTotpEnrolment('hash-hal-2', 3_000, { secretSealed: 'again', step: 10 })).toBeUndefined();
      const reopened = await ctx.reopen();
      expect(await reopened.portalAccounts.account('operator', 'hal')).toEqual(done);
      // Without a new password the one in force stays (and must still be changed).
      await reopened.portalAccounts.createAccount({ ...bare, username: 'ida' });
      await reopened.portalAccounts.startTotpEnrolment(enrolment('ida', 'hash-ida', 1_000));
      expect(await reopened.portalAccounts.completeTotpEnrolment('hash-ida', 2_000, { secretSealed: 's', step: 3 })).toEqual({ ...bare, username: 'ida', totpSecretSealed: 's', lastTotpStep: 3, sessionEpoch: 1 });
    });
  });
}
