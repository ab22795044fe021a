import { execFile } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpCode } from '../src/security/portal-credentials.js';
import { startTestDip, type TestDip } from './helpers/dip-harness.js';
import { adminApi } from './helpers/admin.js';
import { ShiftableClock } from './helpers/clocks.js';

interface Person {
  password: string;
  totpSecret: string;
  /** Set once the person has chosen their own password (at their first sign-in). */
  chosen?: boolean;
}

describe('operator accounts', () => {
  let t: TestDip;
  let bootstrap: ReturnType<typeof adminApi>;
  /** Alice's password and TOTP secret, from her account's creation in the first test. */
  let alicePerson: Person;
  const clock = new ShiftableClock();
  /** Each sign-in needs a code of a time step not used before: the clock moves a step on for the next. */
  const code = (who: Person): string => {
    clock.jump(30_000);
    return totpCode(who.totpSecret, clock.now());
  };
  /** Signs in; the first time, choosing the person's own password (their creator chose the first). */
  const signIn = async (name: string, who: Person) => {
    const newPassword = who.chosen ? undefined : `${who.password}-mine`;
    const answer = await adminApi(t, 'none')('POST', '/admin/session', { name, password: who.password, code: code(who), ...(newPassword ? { newPassword } : {}) });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    if (newPassword) Object.assign(who, { password: newPassword, chosen: true });
    return answer.body as { token: string; expiresAt: string; operator: { name: string; role: string } };
  };

  beforeAll(async () => {
    t = await startTestDip({}, undefined, { clock });
    bootstrap = adminApi(t);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('the bootstrap token creates the first admin, then is refused; people sign in with password and TOTP for a short-lived token; each acts under its own name and role', async () => {
    // Before any admin account exists the bootstrap token works (and an automation account is no admin).
    expect((await bootstrap('GET', '/admin/whoami')).body).toEqual({ name: 'bootstrap', role: 'admin' });
    const auto = await bootstrap('POST', '/admin/operators', { name: 'monitoring', role: 'viewer', automation: true });
    expect(auto.status, JSON.stringify(auto.body)).toBe(201);
    expect(auto.body.token).toMatch(/^dipop_/);
    expect((await bootstrap('GET', '/admin/whoami')).status).toBe(200);
    const created = await bootstrap('POST', '/admin/operators', { name: 'alice', role: 'admin', displayName: 'Alice Admin' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    // A person gets a password and a TOTP secret (once), never a long-lived token.
    expect(created.body).toMatchObject({ operator: { name: 'alice', role: 'admin', automation: false }, totpUri: expect.stringMatching(/^otpauth:\/\/totp\//) });
    expect(created.body.token).toBeUndefined();
    alicePerson = created.body as Person;

    // From now on the bootstrap token is refused for everything, with what to do instead.
    const refused = await bootstrap('GET', '/admin/whoami');
    expect(refused.status).toBe(401);
    expect(refused.body.error).toContain('the bootstrap token only creates the first admin account');
    expect(refused.body.error).toContain('dip login');
    expect((await bootstrap('POST', '/admin/operators', { name: 'mallory', role: 'admin' })).status).toBe(401);

    // Sign-in: a wrong code or password is refused alike; the right ones give a bearer token.
    const wrong = await adminApi(t, 'none')('POST', '/admin/session', { name: 'alice', password: alicePerson.password, code: '000000' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('the name, password or code is wrong');
    expect((await adminApi(t, 'none')('POST', '/admin/session', { name: 'alice', password: 'not her password', code: code(alicePerson) })).status).toBe(401);
    // The password the bootstrap caller saw signs in only by being replaced: 403 without a new one (the
    // code is not used up), then the same code with a new password signs in.
    const firstPassword = alicePerson.password;
    const firstCode = code(alicePerson);
    const mustChoose = await adminApi(t, 'none')('POST', '/admin/session', { name: 'alice', password: firstPassword, code: firstCode });
    expect(mustChoose.status).toBe(403);
    expect(mustChoose.body).toEqual({ error: expect.stringContaining('choose your own'), passwordChangeRequired: true });
    const same = await adminApi(t, 'none')('POST', '/admin/session', { name: 'alice', password: firstPassword, code: firstCode, newPassword: firstPassword });
    expect(same.status).toBe(403);
    expect(same.body.error).toBe('the new password must differ from the current one');
    const chosen = await adminApi(t, 'none')('POST', '/admin/session', { name: 'alice', password: firstPassword, code: firstCode, newPassword: 'alice chose this one' });
    expect(chosen.status, JSON.stringify(chosen.body)).toBe(200);
    Object.assign(alicePerson, { password: 'alice chose this one', chosen: true });
    // The first password is no key any more.
    expect((await adminApi(t, 'none')('POST', '/admin/session', { name: 'alice', password: firstPassword, code: code(alicePerson), newPassword: 'the creator tries' })).status).toBe(401);
    const session = await signIn('alice', alicePerson);
    expect(session.token).toMatch(/^dipsess_/);
    expect(Date.parse(session.expiresAt) - clock.now()).toBeGreaterThan(59 * 60_000);
    expect(Date.parse(session.expiresAt) - clock.now()).toBeLessThanOrEqual(60 * 60_000);
    const alice = adminApi(t, session.token);
    expect((await alice('GET', '/admin/whoami')).body).toEqual({ name: 'alice', role: 'admin' });
    // The code just used is good once.
    const replayed = await adminApi(t, 'none')('POST', '/admin/session', { name: 'alice', password: alicePerson.password, code: totpCode(alicePerson.totpSecret, clock.now()) });
    expect(replayed.status).toBe(401);

    const bobMade = await alice('POST', '/admin/operators', { name: 'bob', role: 'operator', automation: true });
    const bob = adminApi(t, bobMade.body.token);
    const veraMade = await alice('POST', '/admin/operators', { name: 'vera', role: 'viewer' });
    const vera = adminApi(t, (await signIn('vera', veraMade.body as Person)).token);
    expect((await alice('POST', '/admin/operators', { name: 'bob', role: 'viewer' })).status).toBe(409);
    expect((await alice('POST', '/admin/operators', { name: 'no spaces', role: 'viewer' })).status).toBe(400);
    const autoAdmin = await alice('POST', '/admin/operators', { name: 'robot', role: 'admin', automation: true });
    expect(autoAdmin.status).toBe(400);
    expect(autoAdmin.body.error).toContain('automation accounts may be viewer or operator');
    expect((await alice('PATCH', '/admin/operators/bob', { role: 'admin' })).status).toBe(400);
    expect((await alice('PATCH', '/admin/operators/vera', { newToken: true })).status).toBe(400);

    // Roles: a viewer reads, an operator runs the DIP, only an admin manages accounts and security.
    expect((await vera('GET', '/admin/dead-letters')).status).toBe(200);
    expect((await vera('POST', '/admin/dead-letters/requeue', { recipientDipId: '1000000001', channel: 'IF-021' })).status).toBe(403);
    expect((await bob('POST', '/admin/dead-letters/requeue', { recipientDipId: '1000000001', channel: 'IF-021' })).status).toBe(200);
    expect((await bob('GET', '/admin/operators')).status).toBe(403);
    expect((await bob('POST', '/admin/keys/rotate')).status).toBe(403);
    // Message contents (personal data) are kept from viewers: an operator is told the transaction is unknown, a viewer why not.
    const evidence = '/admin/evidence/T-IF-021-0000000000-SDS-20260101-0000000000000000';
    expect((await bob('GET', evidence)).status).toBe(404);
    const contents = await vera('GET', evidence);
    expect(contents.status).toBe(403);
    // So is the API activity log: every caller's requests and (masked) answers.
    expect((await vera('GET', '/admin/activity')).status).toBe(403);
    expect((await bob('GET', '/admin/activity')).status).toBe(200);
    expect(contents.body.error).toContain('message contents (personal data) and the API activity log are for the operator and admin roles');
    expect((await vera('POST', '/admin/dead-letters/requeue', { recipientDipId: '1000000001', channel: 'IF-021' })).body.error).toContain('a viewer changes nothing');
    // The rules hold for the route the router runs, however its path is spelled (percent-encoded letters).
    expect((await vera('GET', '/admin/%65vidence/T-IF-021-0000000000-SDS-20260101-0000000000000000')).status).toBe(403);
    expect((await bob('GET', '/admin/%6Fperators')).status).toBe(403);
    expect((await bob('POST', '/admin/%6Fperators', { name: 'mallory', role: 'admin' })).status).toBe(403);
    expect((await bob('POST', '/admin/%6beys/rotate')).status).toBe(403);
    expect((await adminApi(t, 'dipop_not-a-token')('GET', '/admin/whoami')).status).toBe(401);
    expect((await adminApi(t, `${session.token.slice(0, -3)}xyz`)('GET', '/admin/whoami')).status).toBe(401);

    // Every act is attributable to its named operator, with what it changed.
    const byBob = await alice('GET', '/admin/journal?actor=operator:bob');
    expect(byBob.body).toEqual([expect.objectContaining({ actor: 'operator:bob', action: 'POST /admin/dead-letters/requeue', target: '1000000001/IF-021', status: 200 })]);
    const creations = await alice('GET', '/admin/journal?action=operator.create');
    expect(creations.body.map((e: { actor: string; target: string }) => [e.actor, e.target])).toEqual([
      ['operator:alice', 'vera'],
      ['operator:alice', 'bob'],
      ['bootstrap', 'alice'],
      ['bootstrap', 'monitoring'],
    ]);
    // Her two sign-ins, the first with the password she chose (the journal says so, not what it is).
    const signIns = (await alice('GET', '/admin/journal?action=operator.sign-in&target=alice')).body as Array<{ after: Record<string, unknown> }>;
    expect(signIns.map((e) => e.after.passwordChanged ?? false)).toEqual([false, true]);
    expect(JSON.stringify(signIns)).not.toContain('alice chose this one');
    // Refused calls change nothing and are not acts: vera's refused requeue is not in the journal.
    expect((await alice('GET', '/admin/journal?actor=operator:vera&action=POST%20%2Fadmin%2Fdead-letters%2Frequeue')).body).toEqual([]);

    // A disabled account stops at once (an automation token and a person's session alike); a new token replaces the old one.
    const disabled = await alice('PATCH', '/admin/operators/bob', { disabled: true });
    expect(disabled.body.operator).toMatchObject({ name: 'bob', disabled: true, version: 2 });
    expect((await bob('GET', '/admin/queues')).status).toBe(401);
    expect((await alice('PATCH', '/admin/operators/vera', { disabled: true })).status).toBe(200);
    const ended = await vera('GET', '/admin/queues');
    expect(ended.status).toBe(401);
    expect(ended.body.error).toContain('this session has ended');
    // Ended, not suspended: enabled again, her old session stays ended (she signs in afresh).
    expect((await alice('PATCH', '/admin/operators/vera', { disabled: false })).status).toBe(200);
    expect((await vera('GET', '/admin/queues')).status).toBe(401);
    const monitoring = adminApi(t, auto.body.token);
    expect((await monitoring('GET', '/admin/whoami')).body).toEqual({ name: 'monitoring', role: 'viewer' });
    const renewed = await alice('PATCH', '/admin/operators/monitoring', { newToken: true });
    expect((await monitoring('GET', '/admin/queues')).status).toBe(401);
    expect((await adminApi(t, renewed.body.token)('GET', '/admin/whoami')).body).toEqual({ name: 'monitoring', role: 'viewer' });
    const journalled = (await alice('GET', '/admin/journal?target=bob&action=operator.update')).body;
    expect(journalled[0]).toMatchObject({ actor: 'operator:alice', before: { disabled: false }, after: { disabled: true } });
    // Nobody sees a token or its hash again.
    expect(JSON.stringify((await alice('GET', '/admin/operators')).body)).not.toMatch(/tokenHash|dipop_/);

    // A session ends when it expires (60 minutes by default) …
    clock.jump(61 * 60_000);
    expect((await alice('GET', '/admin/whoami')).status).toBe(401);
    // … or when its operator signs out (which ends every session of the account).
    const again = adminApi(t, (await signIn('alice', alicePerson)).token);
    const other = adminApi(t, (await signIn('alice', alicePerson)).token);
    expect((await again('DELETE', '/admin/session')).status).toBe(204);
    expect((await other('GET', '/admin/whoami')).status).toBe(401);
  });

  it('dip login keeps a session for the dip commands that follow; dip logout ends it', async () => {
    const admin = adminApi(t, (await signIn('alice', alicePerson)).token);
    const made = await admin('POST', '/admin/operators', { name: 'carla', role: 'operator' });
    expect(made.status).toBe(201);
    const carla = made.body as Person;
    const session = join(mkdtempSync(join(tmpdir(), 'opendip-login-')), 'session.json');
    const dip = (args: string[], input = '') =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { env: { ...process.env, DIP_DATA_DIR: t.config.dataDir, DIP_ADMIN_PORT: String(t.dip.adminPort), DIP_OPERATOR_SESSION: session } }, (err, stdout, stderr) =>
          resolve({ code: err ? 1 : 0, stdout, stderr }),
        );
        child.stdin?.end(input);
      });
    // The DIP runs on a clock moved ahead of the wall clock: the code is for the DIP's time.
    // Her first sign-in must choose her own password, and the CLI says how.
    const first = await dip(['login', '--name', 'carla'], `${carla.password}\n${code(carla)}\n`);
    expect(first.code).toBe(1);
    expect(first.stderr).toContain('dip login --name carla --new-password');
    const loggedIn = await dip(['login', '--name', 'carla', '--new-password'], `${carla.password}\n${code(carla)}\ncarla's own password\n`);
    expect(loggedIn.stderr).toBe('');
    expect(loggedIn.stdout).toContain('signed in as carla until');
    expect(loggedIn.stdout).toContain('with your new password');
    expect(statSync(session).mode & 0o777).toBe(0o600);
    const who = await dip(['operator', 'whoami']);
    expect(JSON.parse(who.stdout)).toEqual({ name: 'carla', role: 'operator' });
    expect((await dip(['logout'])).code).toBe(0);
    // Without a session the CLI falls back to the bootstrap token, which is refused now.
    const after = await dip(['operator', 'whoami']);
    expect(after.code).toBe(1);
    expect(after.stderr).toContain('the bootstrap token only creates the first admin account');
  });
});

describe('the bootstrap token as break-glass (operators.bootstrapBreakGlass: true)', () => {
  let t: TestDip;
  beforeAll(async () => {
    t = await startTestDip({ operators: { bootstrapBreakGlass: true, sessionMinutes: 60 } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('keeps working after the first admin account exists, and its acts are journalled as bootstrap', async () => {
    const bootstrap = adminApi(t);
    expect((await bootstrap('POST', '/admin/operators', { name: 'alice', role: 'admin' })).status).toBe(201);
    expect((await bootstrap('GET', '/admin/whoami')).body).toEqual({ name: 'bootstrap', role: 'admin' });
    expect((await bootstrap('POST', '/admin/operators', { name: 'bruno', role: 'viewer' })).status).toBe(201);
    expect((await bootstrap('GET', '/admin/journal?target=bruno')).body).toEqual([expect.objectContaining({ actor: 'bootstrap', action: 'operator.create' })]);
  });
});
