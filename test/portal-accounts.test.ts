import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteBackend, type SqliteBackend } from '../src/adapters/sqlite/index.js';
import { PortalAccountService } from '../src/pipeline/portal-accounts.js';
import { totpCode } from '../src/security/portal-credentials.js';
import { SessionSigner } from '../src/security/portal-session.js';
import { FakeClock } from './helpers/clocks.js';
import type { JournalEntry } from '../src/ports/operator-journal.js';

/** Portal sign-in rules, on a real SQLite store with the clock moved by the test. */
describe('portal accounts', () => {
  let backend: SqliteBackend;
  let clock: FakeClock;
  let accounts: PortalAccountService;
  // A sealer that visibly changes the secret, so a test would see it stored in the clear.
  const sealer = { seal: (p: Buffer | string) => Buffer.from(`sealed:${String(p)}`), open: (s: Buffer) => Buffer.from(s.toString().slice(7)) };

  beforeEach(() => {
    clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    backend = openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-portal-')), 'dip.db'), { clock });
    accounts = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id === '1000000001');
  });
  afterEach(async () => backend.close());

  /** The tests of other rules start from an account whose person has chosen their password (the first test covers that step). */
  async function enrol(req: Parameters<PortalAccountService['create']>[0]) {
    const enrolled = await accounts.create(req);
    if ('problem' in enrolled) throw new Error(enrolled.problem);
    // The test's stand-in for the person's first sign-in: the password stays the one the test knows.
    await backend.portalAccounts.changeAccount(enrolled.account.username, { mustChangePassword: false });
    return enrolled;
  }

  it("signs in the first time only by choosing a password of the person's own, which ends the sessions the first one could open", async () => {
    const enrolled = await accounts.create({ username: 'nina', displayName: 'Nina', participantDipId: '1000000001', admin: false, createdBy: 'an admin' });
    if ('problem' in enrolled) throw new Error(enrolled.problem);
    const code = totpCode(enrolled.totpSecret, clock.now());
    const asked = await accounts.signIn('nina', enrolled.password, code);
    expect(asked).toEqual({ ok: false, problem: expect.stringContaining('choose your own'), choosePassword: true });
    // Wrong credentials are still only wrong: nothing tells that a new password would be wanted.
    expect(await accounts.signIn('nina', 'not the password', code, { chosenPassword: 'a password of her own' })).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
    expect(await accounts.signIn('nina', enrolled.password, code, { chosenPassword: 'too short' })).toMatchObject({ ok: false, choosePassword: true, problem: expect.stringContaining('at least 12') });
    // The same code (not used up by those answers) with a password of her own signs in, in a new session epoch.
    const signed = await accounts.signIn('nina', enrolled.password, code, { chosenPassword: 'a password of her own' });
    expect(signed).toMatchObject({ ok: true, account: { mustChangePassword: false, sessionEpoch: 1 } });
    await clock.advance(30_000);
    expect((await accounts.signIn('nina', enrolled.password, totpCode(enrolled.totpSecret, clock.now()))).ok).toBe(false);
    await clock.advance(30_000);
    expect((await accounts.signIn('nina', 'a password of her own', totpCode(enrolled.totpSecret, clock.now()))).ok).toBe(true);
    // A participant's user is no operator: the operator realm refuses her as a wrong sign-in.
    await clock.advance(30_000);
    expect(await accounts.signIn('nina', 'a password of her own', totpCode(enrolled.totpSecret, clock.now()), { realm: 'operator' })).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
    expect((await accounts.signIn('nina', 'a password of her own', totpCode(enrolled.totpSecret, clock.now()), { realm: 'user' })).ok).toBe(true);
  });

  it('needs password and a fresh TOTP code; a code is good once; five failures lock the account', async () => {
    const made = await enrol({ username: 'Sam.Admin', displayName: 'Sam', participantDipId: '1000000001', admin: true, createdBy: 'test' });
    expect(made.account.username).toBe('sam.admin');
    const stored = await backend.portalAccounts.account('sam.admin');
    expect(JSON.stringify(stored)).not.toContain(made.password);
    expect(JSON.stringify(stored)).not.toContain(made.totpSecret);

    const code = totpCode(made.totpSecret, clock.now());
    expect((await accounts.signIn('sam.admin', 'wrong password!', code)).ok).toBe(false);
    expect((await accounts.signIn('sam.admin', made.password, code)).ok).toBe(true);
    // The same code again (a replayed sign-in) is refused.
    expect(await accounts.signIn('sam.admin', made.password, code)).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
    // A code from two periods ago is refused; the next period's is accepted.
    expect((await accounts.signIn('sam.admin', made.password, totpCode(made.totpSecret, clock.now() - 65_000))).ok).toBe(false);
    await clock.advance(30_000);
    expect((await accounts.signIn('sam.admin', made.password, totpCode(made.totpSecret, clock.now()))).ok).toBe(true);

    for (let i = 0; i < 5; i++) await accounts.signIn('sam.admin', 'wrong password!', '000000');
    await clock.advance(30_000);
    const locked = await accounts.signIn('sam.admin', made.password, totpCode(made.totpSecret, clock.now()));
    expect(locked.ok).toBe(false);
    expect(!locked.ok && locked.problem).toContain('too many failed sign-ins');
    await clock.advance(15 * 60_000);
    expect((await accounts.signIn('sam.admin', made.password, totpCode(made.totpSecret, clock.now()))).ok).toBe(true);
  });

  it('counts guesses sent at once one by one, takes a code once however many carry it, and refuses a burst past the few waiting', async () => {
    const made = await enrol({ username: 'rita', displayName: 'Rita', participantDipId: '1000000001', admin: false, createdBy: 'test' });
    const code = totpCode(made.totpSecret, clock.now());
    // Five sign-ins at once with the right password and code: one session, not five.
    const together = await Promise.all(Array.from({ length: 5 }, () => accounts.signIn('rita', made.password, code)));
    expect(together.filter((r) => r.ok)).toHaveLength(1);
    // Two nodes over one store (each its own service): the next code at both at once also signs in once.
    const otherNode = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id === '1000000001');
    await clock.advance(30_000);
    const next = totpCode(made.totpSecret, clock.now());
    const bothNodes = await Promise.all([accounts.signIn('rita', made.password, next), otherNode.signIn('rita', made.password, next)]);
    expect(bothNodes.filter((r) => r.ok)).toHaveLength(1);

    // The four that lost the race failed like any replayed code: four failures against the account.
    const tom = await enrol({ username: 'tom', displayName: 'Tom', participantDipId: '1000000001', admin: false, createdBy: 'test' });
    // Twelve wrong guesses at once: four wait their turn and are checked, each counted; the other eight
    // are refused before any check. One more failure makes five, and the right code is then refused.
    await clock.advance(30_000);
    const guesses = await Promise.all(Array.from({ length: 12 }, (_, i) => accounts.signIn('tom', tom.password, String(100000 + i))));
    const problems = guesses.map((g) => (g.ok ? 'ok' : g.problem));
    expect(problems.filter((p) => p === 'the username, password or code is wrong')).toHaveLength(4);
    expect(problems.filter((p) => p.startsWith('a sign-in with this username is already being checked'))).toHaveLength(8);
    expect((await accounts.signIn('tom', tom.password, '999999')).ok).toBe(false);
    const locked = await accounts.signIn('tom', tom.password, totpCode(tom.totpSecret, clock.now()));
    expect(!locked.ok && locked.problem).toContain('too many failed sign-ins');
  });

  it('counts an account\'s failures on every node sharing the store: three at one and two at another lock it at both', async () => {
    const made = await enrol({ username: 'vic', displayName: 'Vic', participantDipId: '1000000001', admin: false, createdBy: 'test' });
    const otherNode = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id === '1000000001');
    for (let i = 0; i < 3; i++) expect((await accounts.signIn('vic', 'wrong password!', '000000')).ok).toBe(false);
    for (let i = 0; i < 2; i++) expect((await otherNode.signIn('vic', 'wrong password!', '000000')).ok).toBe(false);
    for (const node of [accounts, otherNode]) {
      const locked = await node.signIn('vic', made.password, totpCode(made.totpSecret, clock.now()));
      expect(!locked.ok && locked.problem).toContain('too many failed sign-ins');
    }
    // The lock ends with the window; a success clears the count everywhere.
    await clock.advance(15 * 60_000);
    expect((await otherNode.signIn('vic', made.password, totpCode(made.totpSecret, clock.now()))).ok).toBe(true);
  });

  it('counts guesses sent at once to several nodes, each recorded before it is checked: five checked in all, the rest locked', async () => {
    const made = await enrol({ username: 'wes', displayName: 'Wes', participantDipId: '1000000001', admin: false, createdBy: 'test' });
    const nodes = [accounts, ...[1, 2].map(() => new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id === '1000000001'))];
    const guesses = await Promise.all(Array.from({ length: 12 }, (_, i) => nodes[i % 3]!.signIn('wes', 'wrong password!', String(100000 + i))));
    const problems = guesses.map((g) => (g.ok ? 'ok' : g.problem));
    expect(problems.filter((p) => p === 'the username, password or code is wrong')).toHaveLength(5);
    expect(problems.filter((p) => p.startsWith('too many failed sign-ins'))).toHaveLength(7);
    const locked = await nodes[2]!.signIn('wes', made.password, totpCode(made.totpSecret, clock.now()));
    expect(!locked.ok && locked.problem).toContain('too many failed sign-ins');
  });

  it('a first sign-in on one node does not undo a disable made on another meanwhile', async () => {
    const enrolled = await accounts.create({ username: 'xena', displayName: 'Xena', participantDipId: '1000000001', admin: false, createdBy: 'an admin' });
    if ('problem' in enrolled) throw new Error(enrolled.problem);
    const otherNode = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id === '1000000001');
    // This node's store: the administrator disables Xena on the other node just as her code is claimed here.
    const store = backend.portalAccounts;
    const racing = Object.create(store) as typeof store;
    racing.claimTotpStep = async (name, step) => {
      await otherNode.setDisabled('xena', true);
      return store.claimTotpStep(name, step);
    };
    const here = new PortalAccountService(racing, sealer, clock, 'OpenDIP DEV', (id) => id === '1000000001');
    const signed = await here.signIn('xena', enrolled.password, totpCode(enrolled.totpSecret, clock.now()), { chosenPassword: 'xena chose this one' });
    expect(signed.ok).toBe(false);
    expect(await backend.portalAccounts.account('xena')).toMatchObject({ disabled: true, mustChangePassword: true });
  });

  it('answers a name that is no account as it answers a wrong password, locking it alike on every node, and keeps nothing for a name no account can have', async () => {
    for (let i = 0; i < 5; i++) expect(await accounts.signIn('nobody.here', 'some password', '123456')).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
    const sixth = await accounts.signIn('nobody.here', 'some password', '123456');
    expect(!sixth.ok && sixth.problem).toContain('too many failed sign-ins');
    // Another node over the same store answers the same: a node of its own would tell the name from an account's.
    const otherNode = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id === '1000000001');
    const elsewhere = await otherNode.signIn('nobody.here', 'some password', '123456');
    expect(!elsewhere.ok && elsewhere.problem).toContain('too many failed sign-ins');
    // Not a possible name (too long): refused without a record, so junk names are no memory to fill.
    const junk = `a${'x'.repeat(100)}`;
    for (let i = 0; i < 6; i++) expect(await accounts.signIn(junk, 'p', '1')).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
  });

  it('changes a password only with the current one, under the sign-in lockout, ending every session', async () => {
    const made = await enrol({ username: 'uma', displayName: 'Uma', participantDipId: '1000000001', admin: false, createdBy: 'test' });
    for (let i = 0; i < 5; i++) expect(await accounts.changePassword('uma', 'a wrong guess!', 'new password 123')).toBe('the current password is wrong');
    expect(await accounts.changePassword('uma', made.password, 'new password 123')).toMatch(/^too many failed attempts/);
    await clock.advance(15 * 60_000);
    expect(await accounts.changePassword('uma', made.password, made.password)).toBe('the new password must differ from the current one');
    expect(await accounts.changePassword('uma', made.password, 'new password 123')).toBeNull();
    // Enrolled at epoch 1 (the stand-in first sign-in); the change ends every session.
    expect((await accounts.account('uma'))!.sessionEpoch).toBe(2);
    expect((await accounts.signIn('uma', 'new password 123', totpCode(made.totpSecret, clock.now()))).ok).toBe(true);
  });

  it('refuses a taken name, an unknown participant and a bad name; sign-out and disabling end sessions', async () => {
    expect(await accounts.create({ username: 'x', displayName: 'X', participantDipId: '1000000001', admin: false, createdBy: 't' })).toMatchObject({ problem: expect.stringContaining('3 to 64') });
    expect(await accounts.create({ username: 'nobody', displayName: 'N', participantDipId: '9999999999', admin: false, createdBy: 't' })).toEqual({ problem: '9999999999 is not a registered participant' });
    const made = await accounts.create({ username: 'olga', displayName: 'Olga', participantDipId: '1000000001', admin: false, createdBy: 't' });
    expect(await accounts.create({ username: 'OLGA', displayName: 'Other', participantDipId: null, admin: true, createdBy: 't' })).toEqual({ problem: "username 'olga' is taken" });
    if ('problem' in made) throw new Error(made.problem);

    const signer = new SessionSigner(Buffer.alloc(32, 7));
    const { token, claims } = signer.issue({ username: 'olga', epoch: 0, expiresAt: clock.now() + 1000 });
    expect(signer.read(token, clock.now())).toEqual(claims);
    expect(signer.read(`${token.slice(0, -2)}xx`, clock.now())).toBeUndefined();
    expect(signer.read(token, clock.now() + 1000)).toBeUndefined();
    expect(new SessionSigner(Buffer.alloc(32, 8)).read(token, clock.now())).toBeUndefined();

    expect(await accounts.fromSession(claims)).toBeDefined();
    await accounts.signOutEverywhere('olga');
    expect(await accounts.fromSession(claims)).toBeUndefined();
    const again = signer.issue({ username: 'olga', epoch: 1, expiresAt: clock.now() + 1000 }).claims;
    expect(await accounts.fromSession(again)).toBeDefined();
    await accounts.setDisabled('olga', true);
    expect(await accounts.fromSession({ ...again, epoch: 2 })).toBeUndefined();
    expect((await accounts.signIn('olga', made.password, totpCode(made.totpSecret, clock.now()))).ok).toBe(false);
  });

  describe('TOTP enrolment at the first sign-in (accounts made without a second factor)', () => {
    let journal: Array<Omit<JournalEntry, 'id'>>;
    let enrolling: PortalAccountService;
    const sha256 = (t: string) => createHash('sha256').update(t).digest('hex');
    const offerOf = (answer: Awaited<ReturnType<PortalAccountService['signIn']>>) => {
      if (answer.ok || !answer.enrol) throw new Error(`no enrolment offered: ${JSON.stringify(answer)}`);
      return answer.enrol;
    };
    beforeEach(() => {
      journal = [];
      enrolling = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', () => false, { append: async (e) => journal.push(e) });
    });
    async function operator(username: string) {
      const made = await enrolling.createEnrollingAtFirstSignIn({ username, displayName: username, participantDipId: null, admin: true, createdBy: 'operator:alice' });
      if ('problem' in made) throw new Error(made.problem);
      return made;
    }

    it('offers a secret for the right password only, keeps one enrolment at a time, and puts the secret in force with a current code and a chosen password', async () => {
      const made = await operator('olive');
      expect(made).not.toHaveProperty('totpSecret');
      expect((await backend.portalAccounts.account('olive'))?.totpSecretSealed).toBeNull();
      // A wrong password is a wrong sign-in like any other: nothing says the account has no factor.
      expect(await enrolling.signIn('olive', 'not the password', '')).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
      const offer = offerOf(await enrolling.signIn('olive', made.password, ''));
      expect(offer).toMatchObject({ token: expect.stringMatching(/^dipenrol_[\w-]{43}$/), secret: expect.stringMatching(/^[A-Z2-7]{32}$/), expiresAt: clock.now() + 10 * 60_000, choosePassword: true });
      expect(offer.uri).toBe(`otpauth://totp/OpenDIP%20DEV:olive?issuer=OpenDIP%20DEV&secret=${offer.secret}&algorithm=SHA1&digits=6&period=30`);
      // The store holds the token's hash and the secret sealed, neither in the clear.
      const pending = await backend.portalAccounts.totpEnrolment(sha256(offer.token));
      expect(pending).toMatchObject({ username: 'olive', secretSealed: expect.not.stringContaining(offer.secret) });
      expect(JSON.stringify(pending)).not.toContain(offer.token);

      // Another sign-in with the password while it is pending (someone else knows it?) gets no secret, and the first stays.
      const second = await enrolling.signIn('olive', made.password, '');
      expect(second).toEqual({ ok: false, problem: expect.stringContaining('already under way until'), enrolmentPending: { until: offer.expiresAt } });
      expect(await backend.portalAccounts.totpEnrolment(sha256(offer.token))).toEqual(pending);

      const code = totpCode(offer.secret, clock.now());
      // Her own password first (the code is not used up), not the one her administrator saw.
      expect(await enrolling.confirmEnrolment(offer.token, code)).toMatchObject({ ok: false, choosePassword: true, problem: expect.stringContaining('choose your own') });
      expect(await enrolling.confirmEnrolment(offer.token, code, { chosenPassword: made.password })).toMatchObject({ ok: false, choosePassword: true, problem: 'the new password must differ from the current one' });
      // An enrolment is no way into the other realm: there, it is no enrolment (no code will do).
      expect(await enrolling.confirmEnrolment(offer.token, code, { realm: 'user', chosenPassword: 'olive chose this one' })).toMatchObject({ ok: false, problem: expect.stringContaining('enrolment has ended'), enrolmentEnded: true });
      const done = await enrolling.confirmEnrolment(offer.token, code, { realm: 'operator', chosenPassword: 'olive chose this one' });
      expect(done).toMatchObject({ ok: true, account: { username: 'olive', mustChangePassword: false, sessionEpoch: 1, lastTotpStep: Math.floor(clock.now() / 30_000) } });
      // Good once; the code that confirmed it does not sign in again; the next one does, with her password.
      expect((await enrolling.confirmEnrolment(offer.token, code, { chosenPassword: 'olive chose this one' })).ok).toBe(false);
      expect((await enrolling.signIn('olive', 'olive chose this one', code)).ok).toBe(false);
      await clock.advance(30_000);
      expect((await enrolling.signIn('olive', made.password, totpCode(offer.secret, clock.now()))).ok).toBe(false);
      expect((await enrolling.signIn('olive', 'olive chose this one', totpCode(offer.secret, clock.now()))).ok).toBe(true);
      expect(journal.map((e) => [e.actor, e.action, e.target])).toEqual([
        ['operator:olive', 'totp-enrolment.start', 'olive'],
        ['operator:olive', 'totp-enrolment.refused', 'olive'],
        ['operator:olive', 'totp-enrolment.complete', 'olive'],
      ]);
      expect(JSON.stringify(journal)).not.toMatch(new RegExp(`${offer.secret}|${offer.token}|olive chose`));
    });

    it('counts a wrong code as a failed sign-in of the name (five lock it, for the password too), and ends an enrolment at its expiry', async () => {
      const made = await operator('otto');
      const offer = offerOf(await enrolling.signIn('otto', made.password, ''));
      const right = totpCode(offer.secret, clock.now());
      const wrong = right === '000000' ? '111111' : '000000';
      for (let i = 0; i < 5; i++) expect(await enrolling.confirmEnrolment(offer.token, wrong, { chosenPassword: 'otto chose this one' })).toMatchObject({ ok: false, problem: expect.stringContaining('the code is wrong') });
      expect(await enrolling.confirmEnrolment(offer.token, right, { chosenPassword: 'otto chose this one' })).toMatchObject({ ok: false, problem: expect.stringContaining('too many failed sign-ins') });
      expect(await enrolling.signIn('otto', made.password, '')).toMatchObject({ ok: false, problem: expect.stringContaining('too many failed sign-ins') });
      expect(journal.filter((e) => e.action === 'totp-enrolment.wrong-code')).toHaveLength(5);
      // The lock is over after 15 minutes, and so is the enrolment (10): its token is refused, a new sign-in offers a new secret.
      await clock.advance(15 * 60_000);
      expect((await enrolling.confirmEnrolment(offer.token, totpCode(offer.secret, clock.now()), { chosenPassword: 'otto chose this one' })).ok).toBe(false);
      const again = offerOf(await enrolling.signIn('otto', made.password, ''));
      expect(again.secret).not.toBe(offer.secret);
      expect((await enrolling.confirmEnrolment(again.token, totpCode(again.secret, clock.now()), { chosenPassword: 'otto chose this one' })).ok).toBe(true);
    });

    it('refuses to complete an enrolment of an account disabled (or signed out everywhere) since it began, and lets a new sign-in start another at once', async () => {
      const made = await operator('opal');
      const offer = offerOf(await enrolling.signIn('opal', made.password, ''));
      await enrolling.setDisabled('opal', true);
      await enrolling.setDisabled('opal', false);
      expect((await enrolling.confirmEnrolment(offer.token, totpCode(offer.secret, clock.now()), { chosenPassword: 'opal chose this one' })).ok).toBe(false);
      expect((await backend.portalAccounts.account('opal'))?.totpSecretSealed).toBeNull();
      // The void enrolment does not hold the account up until it expires: a minute on, a new one.
      await clock.advance(60_000);
      const again = offerOf(await enrolling.signIn('opal', made.password, ''));
      await enrolling.signOutEverywhere('opal');
      const third = offerOf(await enrolling.signIn('opal', made.password, ''));
      expect((await enrolling.confirmEnrolment(again.token, totpCode(again.secret, clock.now()), { chosenPassword: 'opal chose this one' })).ok).toBe(false);
      expect((await enrolling.confirmEnrolment(third.token, totpCode(third.secret, clock.now()), { chosenPassword: 'opal chose this one' })).ok).toBe(true);
    });
  });
});
