import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteBackend, type SqliteBackend } from '../src/adapters/sqlite/index.js';
import { PortalAccountService } from '../src/pipeline/portal-accounts.js';
import { realmOf } from '../src/ports/portal-accounts.js';
import { levelOf } from '../src/domain/portal-levels.js';
import { hashPassword, newPassword, newTotpSecret, totpCode } from '../src/security/portal-credentials.js';
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

  type NewAccount = Parameters<PortalAccountService['createEnrollingAtFirstSignIn']>[0];

  /**
   * The tests of other rules start from an account whose person has set up their authenticator and
   * chosen their password at their first sign-in (the enrolment tests below cover those steps); the
   * clock is then a step on, so the code that confirmed the enrolment is not the next test's.
   */
  async function enrol(req: NewAccount) {
    const made = await accounts.createEnrollingAtFirstSignIn(req);
    if ('problem' in made) throw new Error(made.problem);
    const first = await accounts.signIn(made.account.username, made.password, '', { realm: realmOf(made.account) });
    if (first.ok || !first.enrol) throw new Error(`no enrolment offered: ${JSON.stringify(first)}`);
    const password = `${made.password}-own`;
    const done = await accounts.confirmEnrolment(first.enrol.token, totpCode(first.enrol.secret, clock.now()), { realm: realmOf(made.account), chosenPassword: password });
    if (!done.ok) throw new Error(done.problem);
    await clock.advance(30_000);
    return { account: done.account, password, totpSecret: first.enrol.secret };
  }

  /**
   * An account made before every account enrolled at its first sign-in: with a TOTP secret its creator
   * saw, and the creator's password to replace. Such accounts keep working as they did.
   */
  async function madeWithSecret(req: NewAccount) {
    const password = newPassword();
    const totpSecret = newTotpSecret();
    const account = {
      ...req,
      passwordHash: await hashPassword(password),
      totpSecretSealed: sealer.seal(totpSecret).toString('base64'),
      lastTotpStep: 0,
      sessionEpoch: 0,
      disabled: false,
      mustChangePassword: true,
      createdAt: clock.now(),
    };
    expect(await backend.portalAccounts.createAccount(account)).toBe(true);
    return { account, password, totpSecret };
  }

  // secfix5 M2: a first password signed in to enrol however old it was (an invitation e-mail read years on).
  it('refuses a first password past its expiry as a wrong password is, until a reset gives a new one; an own password never expires', async () => {
    const made = await accounts.createEnrollingAtFirstSignIn({ username: 'fay', displayName: 'Fay', participantDipId: '1000000001', admin: false, createdBy: 'an admin' });
    if ('problem' in made) throw new Error(made.problem);
    expect(made.passwordExpiresAt).toBe(clock.now() + 72 * 3_600_000);
    expect(made.account.firstPasswordExpiresAt).toBe(made.passwordExpiresAt);
    const wrong = await accounts.signIn('fay', 'not the password', '', { realm: 'user' });
    await clock.advance(72 * 3_600_000 - 1);
    expect(await accounts.signIn('fay', made.password, '', { realm: 'user' })).toMatchObject({ ok: false, enrol: expect.anything() });
    await clock.advance(11 * 60_000);
    expect(await accounts.signIn('fay', made.password, '', { realm: 'user' })).toEqual(wrong);
    // An administrator's reset gives a new first password, with its own time.
    const reset = await accounts.resetTotpFactor('fay', '1000000001');
    expect(reset?.passwordExpiresAt).toBe(clock.now() + 72 * 3_600_000);
    expect(await accounts.signIn('fay', reset!.password, '', { realm: 'user' })).toMatchObject({ ok: false, enrol: expect.anything() });
    // An enrolled account's own password is not a first password: no expiry holds it.
    const own = await enrol({ username: 'gus', displayName: 'Gus', participantDipId: '1000000001', admin: false, createdBy: 'an admin' });
    expect(own.account.firstPasswordExpiresAt).toBeUndefined();
    await clock.advance(365 * 24 * 3_600_000);
    expect(await accounts.signIn('gus', own.password, totpCode(own.totpSecret, clock.now()), { realm: 'user' })).toMatchObject({ ok: true });
  });

  it('gives accounts made before first passwords expired an expiry from the upgrade (expireOldFirstPasswords), configurable', async () => {
    const hours = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id === '1000000001', null, 3_600_000);
    const old = await madeWithSecret({ username: 'hal', displayName: 'Hal', participantDipId: '1000000001', admin: false, createdBy: 'an admin' });
    expect(await hours.expireOldFirstPasswords()).toBe(1);
    await clock.advance(3_600_000);
    expect(await hours.signIn('hal', old.password, totpCode(old.totpSecret, clock.now()), { realm: 'user', chosenPassword: 'a password of his own' })).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
  });

  // secfix5 minor: an administrator could disable their own account, leaving the participant with none.
  it("refuses an administrator disabling their own account or the participant's last enabled administrator; another is disabled", async () => {
    const make = async (username: string, admin: boolean) => {
      const m = await accounts.createEnrollingAtFirstSignIn({ username, displayName: username, participantDipId: '1000000001', admin, createdBy: 'test' });
      if ('problem' in m) throw new Error(m.problem);
      return m.account;
    };
    const ada = await make('ada', true);
    const bob = await make('bob', true);
    const cy = await make('cyd', false);
    expect(await accounts.setUsersDisabled(ada, ada, true)).toEqual({ problem: 'you cannot disable your own account: ask another administrator of your participant', status: 409 });
    expect(await accounts.setUsersDisabled(ada, cy, true)).toMatchObject({ account: { username: 'cyd', disabled: true } });
    expect(await accounts.setUsersDisabled(ada, bob, true)).toMatchObject({ account: { username: 'bob', disabled: true } });
    // Ada is now the only enabled administrator: a session of bob's (ended, but read before) cannot disable her.
    expect(await accounts.setUsersDisabled(bob, ada, true)).toEqual({ problem: "ada is 1000000001's last enabled administrator: make another user an administrator first", status: 409 });
    expect((await accounts.account('user', 'ada'))?.disabled).toBe(false);
    // Enabling is never refused.
    expect(await accounts.setUsersDisabled(ada, bob, false)).toMatchObject({ account: { username: 'bob', disabled: false } });
  });

  // ctlroom review: the last-administrator check was read-then-write, so two administrators disabling (or
  // demoting) each other at once both passed and left the participant with none.
  it('keeps a participant one enabled administrator when its last two disable or demote each other at once', async () => {
    const make = async (username: string) => {
      const m = await accounts.createEnrollingAtFirstSignIn({ username, displayName: username, participantDipId: '1000000001', admin: true, createdBy: 'test' });
      if ('problem' in m) throw new Error(m.problem);
      return m.account;
    };
    const enabledAdmins = async () => (await accounts.accounts('1000000001')).filter((a) => !a.disabled && levelOf(a) === 'admin').map((a) => a.username);
    const ada = await make('ada');
    const bob = await make('bob');
    const disabled = await Promise.all([accounts.setUsersDisabled(ada, bob, true), accounts.setUsersDisabled(bob, ada, true)]);
    expect(disabled.filter((d) => d !== undefined && 'account' in d)).toHaveLength(1);
    expect(disabled.filter((d) => d !== undefined && 'problem' in d)).toEqual([{ problem: expect.stringMatching(/^(ada|bob) is 1000000001's last enabled administrator: make another user an administrator first$/), status: 409 }]);
    expect(await enabledAdmins()).toHaveLength(1);

    const cyd = await make('cyd');
    const dee = await make('dee');
    await accounts.setUsersDisabled(cyd, (await accounts.account('user', (await enabledAdmins()).find((n) => n !== 'cyd' && n !== 'dee')!))!, true);
    const demoted = await Promise.all([accounts.setUsersLevel(cyd, 'dee', 'operations'), accounts.setUsersLevel(dee, 'cyd', 'operations')]);
    expect(demoted.filter((d) => 'account' in d)).toHaveLength(1);
    expect(demoted.filter((d) => 'problem' in d)).toEqual([{ problem: expect.stringMatching(/^(cyd|dee) is 1000000001's last enabled administrator: make another user an administrator first$/), status: 409 }]);
    expect(await enabledAdmins()).toHaveLength(1);
  });

  it("signs an account made with a secret (before enrolment at the first sign-in) in the first time only by choosing a password of the person's own, which ends the sessions the first one could open", async () => {
    const enrolled = await madeWithSecret({ username: 'nina', displayName: 'Nina', participantDipId: '1000000001', admin: false, createdBy: 'an admin' });
    const code = totpCode(enrolled.totpSecret, clock.now());
    const asked = await accounts.signIn('nina', enrolled.password, code, { realm: 'user' });
    expect(asked).toEqual({ ok: false, problem: expect.stringContaining('choose your own'), choosePassword: true });
    // Wrong credentials are still only wrong: nothing tells that a new password would be wanted.
    expect(await accounts.signIn('nina', 'not the password', code, { realm: 'user', chosenPassword: 'a password of her own' })).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
    expect(await accounts.signIn('nina', enrolled.password, code, { realm: 'user', chosenPassword: 'too short' })).toMatchObject({ ok: false, choosePassword: true, problem: expect.stringContaining('at least 12') });
    // The same code (not used up by those answers) with a password of her own signs in, in a new session epoch.
    const signed = await accounts.signIn('nina', enrolled.password, code, { realm: 'user', chosenPassword: 'a password of her own' });
    expect(signed).toMatchObject({ ok: true, account: { mustChangePassword: false, sessionEpoch: 1 } });
    await clock.advance(30_000);
    expect((await accounts.signIn('nina', enrolled.password, totpCode(enrolled.totpSecret, clock.now()), { realm: 'user' })).ok).toBe(false);
    await clock.advance(30_000);
    expect((await accounts.signIn('nina', 'a password of her own', totpCode(enrolled.totpSecret, clock.now()), { realm: 'user' })).ok).toBe(true);
    // A participant's user is no operator: the operator realm refuses her as a wrong sign-in.
    await clock.advance(30_000);
    expect(await accounts.signIn('nina', 'a password of her own', totpCode(enrolled.totpSecret, clock.now()), { realm: 'operator' })).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
    expect((await accounts.signIn('nina', 'a password of her own', totpCode(enrolled.totpSecret, clock.now()), { realm: 'user' })).ok).toBe(true);
  });

  it('needs password and a fresh TOTP code; a code is good once; after five failures the name backs off (1 s, doubling to at most a minute), it is not locked', async () => {
    const made = await enrol({ username: 'Sam.Admin', displayName: 'Sam', participantDipId: '1000000001', admin: true, createdBy: 'test' });
    expect(made.account.username).toBe('sam.admin');
    const stored = await backend.portalAccounts.account('user', 'sam.admin');
    expect(JSON.stringify(stored)).not.toContain(made.password);
    expect(JSON.stringify(stored)).not.toContain(made.totpSecret);

    const code = totpCode(made.totpSecret, clock.now());
    expect((await accounts.signIn('sam.admin', 'wrong password!', code, { realm: 'user' })).ok).toBe(false);
    expect((await accounts.signIn('sam.admin', made.password, code, { realm: 'user' })).ok).toBe(true);
    // The same code again (a replayed sign-in) is refused.
    expect(await accounts.signIn('sam.admin', made.password, code, { realm: 'user' })).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
    // A code from two periods ago is refused; the next period's is accepted.
    expect((await accounts.signIn('sam.admin', made.password, totpCode(made.totpSecret, clock.now() - 65_000), { realm: 'user' })).ok).toBe(false);
    await clock.advance(30_000);
    expect((await accounts.signIn('sam.admin', made.password, totpCode(made.totpSecret, clock.now()), { realm: 'user' })).ok).toBe(true);

    // No device cookie: never trusted, so always held by the name's backoff.
    for (let i = 0; i < 5; i++) await accounts.signIn('sam.admin', 'wrong password!', '000000', { realm: 'user' });
    await clock.advance(30_000);
    const code2 = totpCode(made.totpSecret, clock.now());
    expect((await accounts.signIn('sam.admin', 'wrong password!', '000000', { realm: 'user' })).ok).toBe(false);
    const held = await accounts.signIn('sam.admin', made.password, code2, { realm: 'user' });
    expect(held).toEqual({ ok: false, problem: `too many failed sign-ins: try again after ${new Date(clock.now() + 2000).toISOString()}`, retryAfterSeconds: 2 });
    // Seven failures: 4 s; sixteen or more: a minute at most, never the window.
    await clock.advance(2_000);
    expect((await accounts.signIn('sam.admin', 'wrong password!', '000000', { realm: 'user' })).ok).toBe(false);
    expect(await accounts.signIn('sam.admin', made.password, code2, { realm: 'user' })).toMatchObject({ ok: false, retryAfterSeconds: 4 });
    for (let i = 0; i < 12; i++) {
      await clock.advance(60_000);
      expect((await accounts.signIn('sam.admin', 'wrong password!', '000000', { realm: 'user' })).ok).toBe(false);
    }
    expect(await accounts.signIn('sam.admin', made.password, code2, { realm: 'user' })).toMatchObject({ ok: false, retryAfterSeconds: 60 });
    await clock.advance(60_000);
    expect((await accounts.signIn('sam.admin', made.password, totpCode(made.totpSecret, clock.now()), { realm: 'user' })).ok).toBe(true);
  });

  it('counts guesses sent at once one by one, takes a code once however many carry it, and refuses a burst past the few waiting', async () => {
    const made = await enrol({ username: 'rita', displayName: 'Rita', participantDipId: '1000000001', admin: false, createdBy: 'test' });
    const code = totpCode(made.totpSecret, clock.now());
    // Five sign-ins at once with the right password and code: one session, not five.
    const together = await Promise.all(Array.from({ length: 5 }, () => accounts.signIn('rita', made.password, code, { realm: 'user' })));
    expect(together.filter((r) => r.ok)).toHaveLength(1);
    // Two nodes over one store (each its own service): the next code at both at once also signs in once.
    const otherNode = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id === '1000000001');
    await clock.advance(30_000);
    const next = totpCode(made.totpSecret, clock.now());
    const bothNodes = await Promise.all([accounts.signIn('rita', made.password, next, { realm: 'user' }), otherNode.signIn('rita', made.password, next, { realm: 'user' })]);
    expect(bothNodes.filter((r) => r.ok)).toHaveLength(1);

    // The four that lost the race failed like any replayed code: four failures against the account.
    const tom = await enrol({ username: 'tom', displayName: 'Tom', participantDipId: '1000000001', admin: false, createdBy: 'test' });
    // Twelve wrong guesses at once: four wait their turn and are checked, each counted; the other eight
    // are refused before any check. One more failure makes five, and the right code is then refused.
    await clock.advance(30_000);
    const guesses = await Promise.all(Array.from({ length: 12 }, (_, i) => accounts.signIn('tom', tom.password, String(100000 + i), { realm: 'user' })));
    const problems = guesses.map((g) => (g.ok ? 'ok' : g.problem));
    expect(problems.filter((p) => p === 'the username, password or code is wrong')).toHaveLength(4);
    expect(problems.filter((p) => p.startsWith('a sign-in with this username is already being checked'))).toHaveLength(8);
    expect((await accounts.signIn('tom', tom.password, '999999', { realm: 'user' })).ok).toBe(false);
    const locked = await accounts.signIn('tom', tom.password, totpCode(tom.totpSecret, clock.now()), { realm: 'user' });
    expect(!locked.ok && locked.problem).toContain('too many failed sign-ins');
  });

  it("signs the owner's known browser in past a stranger's flood of the name (a lane of its own), and counts the stranger's busy answers against its address", async () => {
    const made = await enrol({ username: 'alice', displayName: 'Alice', participantDipId: '1000000001', admin: false, createdBy: 'test' });
    const stranger = { realm: 'user', source: '192.0.2.66' } as const;
    const owner = { realm: 'user', source: '198.51.100.7', device: { username: 'alice', nonce: 'alice-browser' } } as const;
    // The review's flood: the stranger keeps the name's queue full with wrong passwords while the owner,
    // with her device cookie and a right code, signs in; she was refused "already being checked" 15-17 times in a row.
    const flood = Array.from({ length: 20 }, () => accounts.signIn('alice', 'wrong password!', '000000', stranger));
    const mine = accounts.signIn('alice', made.password, totpCode(made.totpSecret, clock.now()), owner);
    const answers = await Promise.all(flood);
    expect(await mine).toMatchObject({ ok: true });
    const busy = answers.filter((a) => !a.ok && a.problem.startsWith('a sign-in with this username is already being checked'));
    expect(busy.length).toBeGreaterThan(10);
    // Each busy answer was a try of the stranger's address: its backoff now runs, before any queue.
    const next = await accounts.signIn('alice', 'wrong password!', '000000', stranger);
    expect(next).toMatchObject({ ok: false, retryAfterSeconds: expect.any(Number) as number });
  });

  it('counts an account\'s failures on every node sharing the store: three at one and two at another lock it at both', async () => {
    const made = await enrol({ username: 'vic', displayName: 'Vic', participantDipId: '1000000001', admin: false, createdBy: 'test' });
    const otherNode = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id === '1000000001');
    for (let i = 0; i < 3; i++) expect((await accounts.signIn('vic', 'wrong password!', '000000', { realm: 'user' })).ok).toBe(false);
    for (let i = 0; i < 2; i++) expect((await otherNode.signIn('vic', 'wrong password!', '000000', { realm: 'user' })).ok).toBe(false);
    for (const node of [accounts, otherNode]) {
      const locked = await node.signIn('vic', made.password, totpCode(made.totpSecret, clock.now()), { realm: 'user' });
      expect(!locked.ok && locked.problem).toContain('too many failed sign-ins');
    }
    // The lock ends with the window; a success clears the count everywhere.
    await clock.advance(15 * 60_000);
    expect((await otherNode.signIn('vic', made.password, totpCode(made.totpSecret, clock.now()), { realm: 'user' })).ok).toBe(true);
  });

  it('counts guesses sent at once to several nodes, each recorded before it is checked: five checked in all, the rest locked', async () => {
    const made = await enrol({ username: 'wes', displayName: 'Wes', participantDipId: '1000000001', admin: false, createdBy: 'test' });
    const nodes = [accounts, ...[1, 2].map(() => new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id === '1000000001'))];
    const guesses = await Promise.all(Array.from({ length: 12 }, (_, i) => nodes[i % 3]!.signIn('wes', 'wrong password!', String(100000 + i), { realm: 'user' })));
    const problems = guesses.map((g) => (g.ok ? 'ok' : g.problem));
    expect(problems.filter((p) => p === 'the username, password or code is wrong')).toHaveLength(5);
    expect(problems.filter((p) => p.startsWith('too many failed sign-ins'))).toHaveLength(7);
    const locked = await nodes[2]!.signIn('wes', made.password, totpCode(made.totpSecret, clock.now()), { realm: 'user' });
    expect(!locked.ok && locked.problem).toContain('too many failed sign-ins');
  });

  it('a first sign-in on one node does not undo a disable made on another meanwhile', async () => {
    const enrolled = await madeWithSecret({ username: 'xena', displayName: 'Xena', participantDipId: '1000000001', admin: false, createdBy: 'an admin' });
    const otherNode = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id === '1000000001');
    // This node's store: the administrator disables Xena on the other node just as her code is claimed here.
    const store = backend.portalAccounts;
    const racing = Object.create(store) as typeof store;
    racing.claimTotpStep = async (realm, name, step) => {
      await otherNode.setDisabled('an admin', (await store.account('user', 'xena'))!, true);
      return store.claimTotpStep(realm, name, step);
    };
    const here = new PortalAccountService(racing, sealer, clock, 'OpenDIP DEV', (id) => id === '1000000001');
    const signed = await here.signIn('xena', enrolled.password, totpCode(enrolled.totpSecret, clock.now()), { realm: 'user', chosenPassword: 'xena chose this one' });
    expect(signed.ok).toBe(false);
    expect(await backend.portalAccounts.account('user', 'xena')).toMatchObject({ disabled: true, mustChangePassword: true });
  });

  it('answers a name that is no account as it answers a wrong password, locking it alike on every node, and keeps nothing for a name no account can have', async () => {
    for (let i = 0; i < 5; i++) expect(await accounts.signIn('nobody.here', 'some password', '123456', { realm: 'user' })).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
    const sixth = await accounts.signIn('nobody.here', 'some password', '123456', { realm: 'user' });
    expect(!sixth.ok && sixth.problem).toContain('too many failed sign-ins');
    // Another node over the same store answers the same: a node of its own would tell the name from an account's.
    const otherNode = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id === '1000000001');
    const elsewhere = await otherNode.signIn('nobody.here', 'some password', '123456', { realm: 'user' });
    expect(!elsewhere.ok && elsewhere.problem).toContain('too many failed sign-ins');
    // Not a possible name (too long): refused without a record, so junk names are no memory to fill.
    const junk = `a${'x'.repeat(100)}`;
    for (let i = 0; i < 6; i++) expect(await accounts.signIn(junk, 'p', '1', { realm: 'user' })).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
  });

  it('changes a password only with the current one, under the sign-in throttles, ending every session', async () => {
    const made = await enrol({ username: 'uma', displayName: 'Uma', participantDipId: '1000000001', admin: false, createdBy: 'test' });
    for (let i = 0; i < 5; i++) expect(await accounts.changePassword('uma', 'a wrong guess!', 'new password 123', { realm: 'user' })).toBe('the current password is wrong');
    expect(await accounts.changePassword('uma', made.password, 'new password 123', { realm: 'user' })).toMatch(/^too many failed sign-ins/);
    await clock.advance(15 * 60_000);
    expect(await accounts.changePassword('uma', made.password, made.password, { realm: 'user' })).toBe('the new password must differ from the current one');
    expect(await accounts.changePassword('uma', made.password, 'new password 123', { realm: 'user' })).toBeNull();
    // Enrolled at epoch 1 (the stand-in first sign-in); the change ends every session.
    expect((await accounts.account('user', 'uma'))!.sessionEpoch).toBe(2);
    expect((await accounts.signIn('uma', 'new password 123', totpCode(made.totpSecret, clock.now()), { realm: 'user' })).ok).toBe(true);
  });

  it("keeps operators' and users' names apart: no answer in one realm tells whether a name is the other's", async () => {
    const journal: unknown[] = [];
    const both = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id.startsWith('100000000'), { append: async (e) => journal.push(e) });
    const admin = await both.createEnrollingAtFirstSignIn({ username: 'sam.admin', displayName: 'Sam', participantDipId: '1000000001', admin: true, createdBy: 't' });
    const op = await both.createEnrollingAtFirstSignIn({ username: 'ops.olly', displayName: 'Olly', participantDipId: null, admin: true, createdBy: 't' });
    if ('problem' in admin || 'problem' in op) throw new Error('not made');
    // What a participant's administrator is told of an operator's name is what it is told of no name at all.
    const asUser = async (name: string) => ({
      level: await both.setUsersLevel(admin.account, name, 'viewer'),
      reset: await both.resetUsersFactor(admin.account, name),
      signIn: await both.signIn(name, op.password, '', { realm: 'user' }),
    });
    const named = (answers: Awaited<ReturnType<typeof asUser>>, name: string) => JSON.parse(JSON.stringify(answers).replaceAll(name, '<name>')) as unknown;
    expect(named(await asUser('ops.olly'), 'ops.olly')).toEqual(named(await asUser('no.one.at.all'), 'no.one.at.all'));
    // Nor is the name taken for a user: the operator's name is free among users (and the operator untouched).
    const squat = await both.createUsersUser(admin.account, { username: 'ops.olly', displayName: 'Not Olly', level: 'viewer' });
    expect(squat).toMatchObject({ account: { username: 'ops.olly', participantDipId: '1000000001', level: 'viewer' } });
    expect(await both.account('operator', 'ops.olly')).toMatchObject({ displayName: 'Olly', participantDipId: null });
    // The other way: a user's name is free among operators, and an operator's sign-in knows no user.
    expect(await both.createEnrollingAtFirstSignIn({ username: 'sam.admin', displayName: 'Sam the operator', participantDipId: null, admin: true, createdBy: 't' })).toMatchObject({ account: { participantDipId: null } });
    expect(await both.signIn('sam.admin', admin.password, '', { realm: 'operator' })).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
    // Each signs in with its own password in its own realm (a first sign-in: the enrolment is offered).
    expect(await both.signIn('ops.olly', op.password, '', { realm: 'operator' })).toMatchObject({ ok: false, enrol: { choosePassword: true } });
    expect(await both.signIn('ops.olly', op.password, '', { realm: 'user' })).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
    // An enrolment begun in one realm is none in the other.
    const offer = await both.signIn('sam.admin', admin.password, '', { realm: 'user' });
    if (offer.ok || !offer.enrol) throw new Error('no enrolment');
    expect(await both.confirmEnrolment(offer.enrol.token, totpCode(offer.enrol.secret, clock.now()), { realm: 'operator', chosenPassword: 'sam chose this one' })).toMatchObject({ ok: false, enrolmentEnded: true });
  });

  it('refuses a taken name, an unknown participant and a bad name; sign-out and disabling end sessions', async () => {
    expect(await accounts.createEnrollingAtFirstSignIn({ username: 'x', displayName: 'X', participantDipId: '1000000001', admin: false, createdBy: 't' })).toMatchObject({ problem: expect.stringContaining('3 to 64') });
    expect(await accounts.createEnrollingAtFirstSignIn({ username: 'nobody', displayName: 'N', participantDipId: '9999999999', admin: false, createdBy: 't' })).toEqual({ problem: '9999999999 is not a registered participant' });
    const made = await enrol({ username: 'olga', displayName: 'Olga', participantDipId: '1000000001', admin: false, createdBy: 't' });
    // Taken among users, whichever participant; an operator's name is another realm's (the next test).
    expect(await accounts.createEnrollingAtFirstSignIn({ username: 'OLGA', displayName: 'Other', participantDipId: '1000000001', admin: true, createdBy: 't' })).toEqual({ problem: "username 'olga' is taken" });

    const signer = new SessionSigner(Buffer.alloc(32, 7));
    const { token, claims } = signer.issue({ username: 'olga', realm: 'user', epoch: made.account.sessionEpoch, expiresAt: clock.now() + 1000 });
    expect(signer.read(token, clock.now())).toEqual(claims);
    expect(signer.read(`${token.slice(0, -2)}xx`, clock.now())).toBeUndefined();
    expect(signer.read(token, clock.now() + 1000)).toBeUndefined();
    expect(new SessionSigner(Buffer.alloc(32, 8)).read(token, clock.now())).toBeUndefined();

    expect(await accounts.fromSession(claims, 'user')).toBeDefined();
    // Another realm's session is no session here, nor one issued before sessions named their realm.
    expect(await accounts.fromSession(claims, 'operator')).toBeUndefined();
    const { realm: _none, ...unnamed } = claims;
    expect(await accounts.fromSession(unnamed, 'user')).toBeUndefined();
    await accounts.signOutEverywhere('user', 'olga');
    expect(await accounts.fromSession(claims, 'user')).toBeUndefined();
    const again = signer.issue({ username: 'olga', realm: 'user', epoch: made.account.sessionEpoch + 1, expiresAt: clock.now() + 1000 }).claims;
    expect(await accounts.fromSession(again, 'user')).toBeDefined();
    await accounts.setDisabled('test', made.account, true);
    expect(await accounts.fromSession({ ...again, epoch: again.epoch + 1 }, 'user')).toBeUndefined();
    expect((await accounts.signIn('olga', made.password, totpCode(made.totpSecret, clock.now()), { realm: 'user' })).ok).toBe(false);
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
      expect((await backend.portalAccounts.account('operator', 'olive'))?.totpSecretSealed).toBeNull();
      // A wrong password is a wrong sign-in like any other: nothing says the account has no factor.
      expect(await enrolling.signIn('olive', 'not the password', '', { realm: 'operator' })).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
      const offer = offerOf(await enrolling.signIn('olive', made.password, '', { realm: 'operator' }));
      expect(offer).toMatchObject({ token: expect.stringMatching(/^dipenrol_[\w-]{43}$/), secret: expect.stringMatching(/^[A-Z2-7]{32}$/), expiresAt: clock.now() + 10 * 60_000, choosePassword: true });
      expect(offer.uri).toBe(`otpauth://totp/OpenDIP%20DEV:olive?issuer=OpenDIP%20DEV&secret=${offer.secret}&algorithm=SHA1&digits=6&period=30`);
      // The store holds the token's hash and the secret sealed, neither in the clear.
      const pending = await backend.portalAccounts.totpEnrolment(sha256(offer.token));
      expect(pending).toMatchObject({ username: 'olive', secretSealed: expect.not.stringContaining(offer.secret) });
      expect(JSON.stringify(pending)).not.toContain(offer.token);

      // Another sign-in with the password while it is pending (someone else knows it?) gets no secret, and the first stays.
      const second = await enrolling.signIn('olive', made.password, '', { realm: 'operator' });
      expect(second).toEqual({ ok: false, problem: expect.stringContaining('already under way until'), enrolmentPending: { until: offer.expiresAt } });
      expect(await backend.portalAccounts.totpEnrolment(sha256(offer.token))).toEqual(pending);

      const code = totpCode(offer.secret, clock.now());
      // Her own password first (the code is not used up), not the one her administrator saw.
      expect(await enrolling.confirmEnrolment(offer.token, code, { realm: 'operator' })).toMatchObject({ ok: false, choosePassword: true, problem: expect.stringContaining('choose your own') });
      expect(await enrolling.confirmEnrolment(offer.token, code, { realm: 'operator', chosenPassword: made.password })).toMatchObject({ ok: false, choosePassword: true, problem: 'the new password must differ from the current one' });
      // An enrolment is no way into the other realm: there, it is no enrolment (no code will do).
      expect(await enrolling.confirmEnrolment(offer.token, code, { realm: 'user', chosenPassword: 'olive chose this one' })).toMatchObject({ ok: false, problem: expect.stringContaining('enrolment has ended'), enrolmentEnded: true });
      const done = await enrolling.confirmEnrolment(offer.token, code, { realm: 'operator', chosenPassword: 'olive chose this one' });
      expect(done).toMatchObject({ ok: true, account: { username: 'olive', mustChangePassword: false, sessionEpoch: 1, lastTotpStep: Math.floor(clock.now() / 30_000) } });
      // Good once; the code that confirmed it does not sign in again; the next one does, with her password.
      expect((await enrolling.confirmEnrolment(offer.token, code, { realm: 'operator', chosenPassword: 'olive chose this one' })).ok).toBe(false);
      expect((await enrolling.signIn('olive', 'olive chose this one', code, { realm: 'operator' })).ok).toBe(false);
      await clock.advance(30_000);
      expect((await enrolling.signIn('olive', made.password, totpCode(offer.secret, clock.now()), { realm: 'operator' })).ok).toBe(false);
      expect((await enrolling.signIn('olive', 'olive chose this one', totpCode(offer.secret, clock.now()), { realm: 'operator' })).ok).toBe(true);
      expect(journal.map((e) => [e.actor, e.action, e.target])).toEqual([
        ['operator:olive', 'totp-enrolment.start', 'olive'],
        ['operator:olive', 'totp-enrolment.refused', 'olive'],
        ['operator:olive', 'totp-enrolment.complete', 'olive'],
      ]);
      expect(JSON.stringify(journal)).not.toMatch(new RegExp(`${offer.secret}|${offer.token}|olive chose`));
    });

    it("makes a participant's user without a secret too: the user enrols at the first sign-in, in the user realm only", async () => {
      const users = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id === '1000000001', { append: async (e) => journal.push(e) });
      const made = await users.createEnrollingAtFirstSignIn({ username: 'ursula', displayName: 'Ursula', participantDipId: '1000000001', admin: false, createdBy: 'sam.admin' });
      if ('problem' in made) throw new Error(made.problem);
      expect(Object.keys(made).sort()).toEqual(['account', 'password', 'passwordExpiresAt']);
      expect(made.account).toMatchObject({ totpSecretSealed: null, mustChangePassword: true });
      // Her password at the operator portal: a wrong sign-in like any other, and no enrolment begun there.
      expect(await users.signIn('ursula', made.password, '', { realm: 'operator' })).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
      expect(await users.signIn('ursula', made.password, '', { realm: 'user', eligible: async () => false })).toEqual({ ok: false, problem: 'the username, password or code is wrong' });
      expect(journal).toEqual([]);
      const offer = offerOf(await users.signIn('ursula', made.password, '', { realm: 'user' }));
      expect(offer.choosePassword).toBe(true);
      const code = totpCode(offer.secret, clock.now());
      // Confirmed at the operator portal, or while no longer eligible: ended, no session, the enrolment left as it was.
      expect(await users.confirmEnrolment(offer.token, code, { realm: 'operator', chosenPassword: 'ursula chose this' })).toMatchObject({ ok: false, enrolmentEnded: true });
      expect(await users.confirmEnrolment(offer.token, code, { realm: 'user', eligible: async () => false, chosenPassword: 'ursula chose this' })).toMatchObject({ ok: false, enrolmentEnded: true });
      expect((await backend.portalAccounts.account('user', 'ursula'))?.totpSecretSealed).toBeNull();
      const done = await users.confirmEnrolment(offer.token, code, { realm: 'user', chosenPassword: 'ursula chose this' });
      expect(done).toMatchObject({ ok: true, account: { username: 'ursula', participantDipId: '1000000001', mustChangePassword: false, sessionEpoch: 1 } });
      await clock.advance(30_000);
      expect((await users.signIn('ursula', 'ursula chose this', totpCode(offer.secret, clock.now()), { realm: 'user' })).ok).toBe(true);
      expect(journal.map((e) => [e.actor, e.action, e.target])).toEqual([
        ['user:1000000001:ursula', 'totp-enrolment.start', 'ursula'],
        ['user:1000000001:ursula', 'totp-enrolment.complete', 'ursula'],
      ]);
    });

    it("lets a participant's administrator reset the factor of its own participant's users only, not their own, journalled", async () => {
      const users = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id.startsWith('100000000'), { append: async (e) => journal.push(e) });
      const person = async (username: string, participantDipId: string | null, admin = false) => {
        const made = await users.createEnrollingAtFirstSignIn({ username, displayName: username, participantDipId, admin, createdBy: 'test' });
        if ('problem' in made) throw new Error(made.problem);
        const offer = offerOf(await users.signIn(username, made.password, '', { realm: realmOf({ participantDipId }) }));
        const done = await users.confirmEnrolment(offer.token, totpCode(offer.secret, clock.now()), { realm: realmOf({ participantDipId }), chosenPassword: `${username} chose this` });
        if (!done.ok) throw new Error(done.problem);
        return { account: done.account, password: `${username} chose this`, secret: offer.secret };
      };
      const admin = await person('sam.admin', '1000000001', true);
      const ulla = await person('ulla', '1000000001');
      await person('olaf', '1000000002');
      const op = await person('ops.oscar', null, true);
      await clock.advance(30_000);
      journal.length = 0;
      const untouched = async () => [await users.account('user', 'sam.admin'), await users.account('user', 'olaf'), await users.account('operator', 'ops.oscar')];
      const before = await untouched();

      // Another participant's user, an operator, no one: the same 404, as if none existed; not one's own; not a user who is no administrator.
      expect(await users.resetUsersFactor(admin.account, 'olaf')).toEqual({ problem: "1000000001 has no user 'olaf'", status: 404 });
      expect(await users.resetUsersFactor(admin.account, 'ops.oscar')).toEqual({ problem: "1000000001 has no user 'ops.oscar'", status: 404 });
      expect(await users.resetUsersFactor(admin.account, 'nobody')).toMatchObject({ status: 404 });
      expect(await users.resetUsersFactor(admin.account, 'Sam.Admin')).toMatchObject({ status: 409, problem: expect.stringContaining('your own') });
      expect(await users.resetUsersFactor(ulla.account, 'sam.admin')).toMatchObject({ status: 403 });
      expect(await users.resetUsersFactor(op.account, 'ulla')).toMatchObject({ status: 403 });
      expect(await untouched()).toEqual(before);
      expect(journal).toEqual([]);

      // Locked out by guesses meanwhile; the reset forgets them.
      for (let i = 0; i < 5; i++) await users.signIn('ulla', 'a wrong guess!', '000000', { realm: 'user' });
      const reset = await users.resetUsersFactor(admin.account, 'ulla');
      if ('problem' in reset) throw new Error(reset.problem);
      expect(reset.account).toMatchObject({ username: 'ulla', totpSecretSealed: null, mustChangePassword: true, sessionEpoch: ulla.account.sessionEpoch + 1 });
      expect(reset.journalError).toBeUndefined();
      expect(journal).toEqual([
        { at: clock.now(), actor: 'user:1000000001:sam.admin', action: 'user.totp-reset', target: 'ulla', before: { hadFactor: true, pendingEnrolment: false }, after: { sessionsEnded: true, mustChangePassword: true, failedSignInsCleared: true }, status: null },
      ]);
      expect(JSON.stringify(journal)).not.toContain(reset.password);
      // Her old factor and password sign in no more; the new first password starts a new enrolment at once.
      expect((await users.signIn('ulla', ulla.password, totpCode(ulla.secret, clock.now()), { realm: 'user' })).ok).toBe(false);
      const offer = offerOf(await users.signIn('ulla', reset.password, '', { realm: 'user' }));
      expect(offer).toMatchObject({ choosePassword: true });
      expect(offer.secret).not.toBe(ulla.secret);
      expect(await users.confirmEnrolment(offer.token, totpCode(offer.secret, clock.now()), { realm: 'user', chosenPassword: 'ulla chose again' })).toMatchObject({ ok: true });
      // A journal that fails does not take the new password away: the reset is done, and said to be unjournalled.
      const failing = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', () => true, { append: async () => Promise.reject(new Error('journal full')) });
      const unjournalled = await failing.resetUsersFactor(admin.account, 'ulla');
      expect(unjournalled).toMatchObject({ password: expect.any(String), journalError: new Error('journal full') });
    });

    it("levels: a participant's administrator creates a user at a level and changes it, journalled; a user stored before levels reads as operations", async () => {
      const users = new PortalAccountService(backend.portalAccounts, sealer, clock, 'OpenDIP DEV', (id) => id.startsWith('100000000'), { append: async (e) => journal.push(e) });
      const made = async (username: string, participantDipId: string | null, admin: boolean) => {
        const m = await users.createEnrollingAtFirstSignIn({ username, displayName: username, participantDipId, admin, createdBy: 'test' });
        if ('problem' in m) throw new Error(m.problem);
        return m.account;
      };
      const admin = await made('sam.admin', '1000000001', true);
      const ops = await made('otis', '1000000001', false);
      const other = await made('olaf', '1000000002', false);
      const operator = await made('ops.oscar', null, true);
      // Made without a level named: the administrator flag says which (as the operator API and onboarding make them).
      expect([levelOf(admin), levelOf(ops), operator.level]).toEqual(['admin', 'operations', undefined]);
      // An account stored before levels (no field): what a non-administrator could do then.
      const { level: _dropped, ...legacy } = { ...ops, username: 'old.olga' };
      await backend.portalAccounts.createAccount(legacy);
      expect(levelOf((await users.account('user', 'old.olga'))!)).toBe('operations');
      journal.length = 0;

      // By the Users page: the level chosen, journalled with the administrator's name.
      const vera = await users.createUsersUser(admin, { username: 'vera', displayName: 'Vera', level: 'viewer' });
      if ('problem' in vera) throw new Error(vera.problem);
      expect(vera.account).toMatchObject({ participantDipId: '1000000001', level: 'viewer', admin: false, createdBy: 'sam.admin' });
      expect(await users.createUsersUser(ops, { username: 'vince', displayName: 'Vince', level: 'admin' })).toMatchObject({ status: 403 });
      expect(await users.createUsersUser(operator, { username: 'vince', displayName: 'Vince', level: 'viewer' })).toMatchObject({ status: 403 });
      expect(await users.account('user', 'vince')).toBeUndefined();

      expect(await users.setUsersLevel(ops, 'vera', 'admin')).toMatchObject({ status: 403 });
      expect(await users.setUsersLevel(admin, 'olaf', 'viewer')).toEqual({ problem: "1000000001 has no user 'olaf'", status: 404 });
      expect(await users.setUsersLevel(admin, 'ops.oscar', 'viewer')).toMatchObject({ status: 404 });
      expect(await users.setUsersLevel(admin, 'sam.admin', 'viewer')).toMatchObject({ status: 409, problem: expect.stringContaining('your own') });
      expect(await users.setUsersLevel(admin, 'vera', 'viewer')).toMatchObject({ status: 409, problem: 'vera is already a viewer' });
      expect(await users.account('user', 'olaf')).toEqual(other);

      const raised = await users.setUsersLevel(admin, 'vera', 'admin');
      expect(raised).toMatchObject({ account: { level: 'admin', admin: true, sessionEpoch: vera.account.sessionEpoch + 1 } });
      const lowered = await users.setUsersLevel(admin, 'old.olga', 'viewer');
      expect(lowered).toMatchObject({ account: { level: 'viewer', admin: false } });
      expect(journal.map((e) => [e.actor, e.action, e.target, e.before, e.after])).toEqual([
        ['user:1000000001:sam.admin', 'user.create', 'vera', null, expect.objectContaining({ participant: '1000000001', level: 'viewer' })],
        ['user:1000000001:sam.admin', 'user.level', 'vera', { level: 'viewer' }, { level: 'admin', sessionsEnded: true }],
        ['user:1000000001:sam.admin', 'user.level', 'old.olga', { level: 'operations' }, { level: 'viewer', sessionsEnded: true }],
      ]);
      // Disabling and enabling a user is journalled as a level change is, before and after, naming who did it.
      journal.length = 0;
      expect(await users.setDisabled('user:1000000001:sam.admin', raised && 'account' in raised ? raised.account : admin, true)).toMatchObject({ account: { username: 'vera', disabled: true } });
      expect(await users.setDisabled('operator:ops.oscar', (await users.account('user', 'vera'))!, false)).toMatchObject({ account: { username: 'vera', disabled: false } });
      expect(journal.map((e) => [e.actor, e.action, e.target, e.before, e.after])).toEqual([
        ['user:1000000001:sam.admin', 'user.disable', 'vera', { participant: '1000000001', disabled: false }, { disabled: true, sessionsEnded: true }],
        ['operator:ops.oscar', 'user.enable', 'vera', { participant: '1000000001', disabled: true }, { disabled: false, sessionsEnded: true }],
      ]);
      // An operator's credential is journalled by the operator API's call, not here.
      await users.setDisabled('operator:alice', operator, true);
      expect(journal).toHaveLength(2);
    });

    it('counts a wrong code as a failed sign-in of the name (five lock it, for the password too), and ends an enrolment at its expiry', async () => {
      const made = await operator('otto');
      const offer = offerOf(await enrolling.signIn('otto', made.password, '', { realm: 'operator' }));
      const right = totpCode(offer.secret, clock.now());
      const wrong = right === '000000' ? '111111' : '000000';
      for (let i = 0; i < 5; i++) expect(await enrolling.confirmEnrolment(offer.token, wrong, { realm: 'operator', chosenPassword: 'otto chose this one' })).toMatchObject({ ok: false, problem: expect.stringContaining('the code is wrong') });
      expect(await enrolling.confirmEnrolment(offer.token, right, { realm: 'operator', chosenPassword: 'otto chose this one' })).toMatchObject({ ok: false, problem: expect.stringContaining('too many failed sign-ins') });
      expect(await enrolling.signIn('otto', made.password, '', { realm: 'operator' })).toMatchObject({ ok: false, problem: expect.stringContaining('too many failed sign-ins') });
      expect(journal.filter((e) => e.action === 'totp-enrolment.wrong-code')).toHaveLength(5);
      // The lock is over after 15 minutes, and so is the enrolment (10): its token is refused, a new sign-in offers a new secret.
      await clock.advance(15 * 60_000);
      expect((await enrolling.confirmEnrolment(offer.token, totpCode(offer.secret, clock.now()), { realm: 'operator', chosenPassword: 'otto chose this one' })).ok).toBe(false);
      const again = offerOf(await enrolling.signIn('otto', made.password, '', { realm: 'operator' }));
      expect(again.secret).not.toBe(offer.secret);
      expect((await enrolling.confirmEnrolment(again.token, totpCode(again.secret, clock.now()), { realm: 'operator', chosenPassword: 'otto chose this one' })).ok).toBe(true);
    });

    it('refuses to complete an enrolment of an account disabled (or signed out everywhere) since it began, and lets a new sign-in start another at once', async () => {
      const made = await operator('opal');
      const offer = offerOf(await enrolling.signIn('opal', made.password, '', { realm: 'operator' }));
      await enrolling.setDisabled('operator:alice', made.account, true);
      await enrolling.setDisabled('operator:alice', made.account, false);
      expect((await enrolling.confirmEnrolment(offer.token, totpCode(offer.secret, clock.now()), { realm: 'operator', chosenPassword: 'opal chose this one' })).ok).toBe(false);
      expect((await backend.portalAccounts.account('operator', 'opal'))?.totpSecretSealed).toBeNull();
      // The void enrolment does not hold the account up until it expires: a minute on, a new one.
      await clock.advance(60_000);
      const again = offerOf(await enrolling.signIn('opal', made.password, '', { realm: 'operator' }));
      await enrolling.signOutEverywhere('operator', 'opal');
      const third = offerOf(await enrolling.signIn('opal', made.password, '', { realm: 'operator' }));
      expect((await enrolling.confirmEnrolment(again.token, totpCode(again.secret, clock.now()), { realm: 'operator', chosenPassword: 'opal chose this one' })).ok).toBe(false);
      expect((await enrolling.confirmEnrolment(third.token, totpCode(third.secret, clock.now()), { realm: 'operator', chosenPassword: 'opal chose this one' })).ok).toBe(true);
    });
  });
});
