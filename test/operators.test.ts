import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { login } from '../src/cli/admin-client.js';
import { DEFAULTS } from '../src/config.js';
import { ENROLMENT_JUST_FINISHED } from '../src/pipeline/portal-accounts.js';
import { totpCode } from '../src/security/portal-credentials.js';
import { batch, message } from './contract/fixtures.js';
import { startTestDip, type TestDip } from './helpers/dip-harness.js';
import { adminApi } from './helpers/admin.js';
import { ShiftableClock } from './helpers/clocks.js';
import { cliRuns } from './helpers/cli-budget.js';

interface Person {
  password: string;
  /** Set up at the person's first sign-in (the account is made without one). */
  totpSecret?: string;
}

interface Offer {
  token: string;
  secret: string;
  otpauthUri: string;
  expiresAt: string;
  newPasswordRequired: boolean;
}

describe('operator accounts', () => {
  let t: TestDip;
  let bootstrap: ReturnType<typeof adminApi>;
  /** Alice's password and TOTP secret, from her account's creation in the first test. */
  let alicePerson: Person;
  const clock = new ShiftableClock();
  /** The code `code` gave last (the one the last sign-in used). */
  let lastCode = '';
  /** Each sign-in needs a code of a time step not used before: the clock moves a step on for the next. */
  const code = (who: Person): string => {
    clock.jump(30_000);
    lastCode = totpCode(who.totpSecret!, clock.now());
    return lastCode;
  };
  /**
   * Signs in; the first time, setting up the person's TOTP (the password alone is answered with an
   * enrolment) and choosing their own password (their creator chose the first).
   */
  const signIn = async (name: string, who: Person) => {
    const anyone = adminApi(t, 'none');
    if (who.totpSecret === undefined) {
      const started = await anyone('POST', '/admin/session', { name, password: who.password });
      expect(started.status, JSON.stringify(started.body)).toBe(403);
      const offer = started.body.totpEnrolment as Offer;
      who.totpSecret = offer.secret;
      const newPassword = `${who.password}-mine`;
      const answer = await anyone('POST', '/admin/session/enrolment', { token: offer.token, code: code(who), newPassword });
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      who.password = newPassword;
      return answer.body as { token: string; expiresAt: string; operator: { name: string; role: string } };
    }
    const answer = await anyone('POST', '/admin/session', { name, password: who.password, code: code(who) });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
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
    // A person gets a first password (once), never a long-lived token, and no TOTP secret: that is set
    // up by the person at their first sign-in, so it never passes through whoever made the account.
    expect(created.body).toEqual({ operator: expect.objectContaining({ name: 'alice', role: 'admin', automation: false }), password: expect.any(String), passwordExpiresAt: expect.any(String) });
    // secfix5 M2: the first password stops signing in 72 h (portal.firstPasswordHours) after it was made, as the answer says.
    expect(Date.parse(created.body.passwordExpiresAt as string) - clock.now()).toBeGreaterThan(71 * 3_600_000);
    alicePerson = { password: created.body.password as string };
    // Every answer of the operator API is kept by no cache: these carry a password, a TOTP secret, tokens.
    expect(created.headers?.['cache-control']).toBe('no-store');

    // From now on the bootstrap token is refused for everything, with what to do instead.
    const refused = await bootstrap('GET', '/admin/whoami');
    expect(refused.status).toBe(401);
    expect(refused.body.error).toContain('the bootstrap token only creates the first admin account');
    expect(refused.body.error).toContain('dip login');
    expect((await bootstrap('POST', '/admin/operators', { name: 'mallory', role: 'admin' })).status).toBe(401);
    // Except for reading health, which the probes do with it (Dockerfile, Kubernetes, the balancer).
    expect((await bootstrap('GET', '/admin/health')).status).toBe(200);
    expect((await bootstrap('GET', '/admin/queues')).status).toBe(401);

    // Sign-in: a wrong password is refused as ever (nothing tells that the account has no factor yet).
    const anyone = adminApi(t, 'none');
    const wrong = await anyone('POST', '/admin/session', { name: 'alice', password: 'not her password', code: '000000' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('the name, password or code is wrong');
    // The right password starts her TOTP enrolment instead of a session (a code sent is not looked at):
    // a new secret, and a token good for 10 minutes that confirms it with a code.
    const firstPassword = alicePerson.password;
    const started = await anyone('POST', '/admin/session', { name: 'alice', password: firstPassword, code: '123456' });
    expect(started.status, JSON.stringify(started.body)).toBe(403);
    expect(started.headers?.['cache-control']).toBe('no-store');
    const offer = started.body.totpEnrolment as Offer;
    expect(offer).toEqual({
      token: expect.stringMatching(/^dipenrol_[\w-]{43}$/),
      secret: expect.stringMatching(/^[A-Z2-7]{32}$/),
      otpauthUri: `otpauth://totp/OpenDIP%20${t.config.environment}:alice?issuer=OpenDIP%20${t.config.environment}&secret=${offer.secret}&algorithm=SHA1&digits=6&period=30`,
      expiresAt: expect.any(String),
      newPasswordRequired: true,
    });
    // Ten minutes (the DIP's clock here runs with the wall clock's, shifted).
    expect(Date.parse(offer.expiresAt) - clock.now()).toBeGreaterThan(9 * 60_000);
    expect(Date.parse(offer.expiresAt) - clock.now()).toBeLessThanOrEqual(10 * 60_000);
    // Someone else with her password, meanwhile: refused, given no secret, and hers is not replaced. (An
    // empty code is no code, as the operator portal's form sends it: no 400.)
    const competing = await anyone('POST', '/admin/session', { name: 'alice', password: firstPassword, code: '' });
    expect(competing.status, JSON.stringify(competing.body)).toBe(409);
    expect(competing.body).toEqual({ error: expect.stringContaining(`already under way until ${offer.expiresAt}`), pendingUntil: offer.expiresAt });
    alicePerson.totpSecret = offer.secret;
    const firstCode = code(alicePerson);
    // The code confirms the secret only with a password of her own (the code is not used up meanwhile).
    const mustChoose = await anyone('POST', '/admin/session/enrolment', { token: offer.token, code: firstCode });
    expect(mustChoose.status).toBe(403);
    expect(mustChoose.body).toEqual({ error: expect.stringContaining('choose your own'), passwordChangeRequired: true });
    const same = await anyone('POST', '/admin/session/enrolment', { token: offer.token, code: firstCode, newPassword: firstPassword });
    expect(same.status).toBe(403);
    expect(same.body.error).toBe('the new password must differ from the current one');
    expect((await anyone('POST', '/admin/session/enrolment', { token: `${offer.token.slice(0, -2)}xx`, code: firstCode, newPassword: 'alice chose this one' })).status).toBe(401);
    const enrolled = await anyone('POST', '/admin/session/enrolment', { token: offer.token, code: firstCode, newPassword: 'alice chose this one' });
    expect(enrolled.status, JSON.stringify(enrolled.body)).toBe(200);
    expect(enrolled.headers?.['cache-control']).toBe('no-store');
    expect(enrolled.body).toMatchObject({ token: expect.stringMatching(/^dipsess_/), operator: { name: 'alice', role: 'admin' } });
    expect((await adminApi(t, enrolled.body.token)('GET', '/admin/whoami')).body).toEqual({ name: 'alice', role: 'admin' });
    alicePerson.password = 'alice chose this one';
    // The token is good once, and her factor is in force: no new enrolment, and no sign-in without a code.
    expect((await anyone('POST', '/admin/session/enrolment', { token: offer.token, code: firstCode, newPassword: 'alice chose again' })).status).toBe(401);
    expect((await anyone('POST', '/admin/session', { name: 'alice', password: alicePerson.password })).status).toBe(401);
    // The first password is no key any more.
    expect((await anyone('POST', '/admin/session', { name: 'alice', password: firstPassword, code: code(alicePerson), newPassword: 'the creator tries' })).status).toBe(401);
    const session = await signIn('alice', alicePerson);
    expect(session.token).toMatch(/^dipsess_/);
    expect(Date.parse(session.expiresAt) - clock.now()).toBeGreaterThan(59 * 60_000);
    expect(Date.parse(session.expiresAt) - clock.now()).toBeLessThanOrEqual(60 * 60_000);
    const alice = adminApi(t, session.token);
    expect((await alice('GET', '/admin/whoami')).body).toEqual({ name: 'alice', role: 'admin' });
    // The code just used is good once. (That code itself: one made now, on the wall clock beneath the
    // jumps, is the next step's once a step boundary has passed since the sign-in, and is rightly taken.)
    const replayed = await adminApi(t, 'none')('POST', '/admin/session', { name: 'alice', password: alicePerson.password, code: lastCode });
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
    // A queue the store has (a requeue of one it has not is 404): a recipient that pulls, one message waiting.
    await t.participant('1000000001', ['SUP']);
    expect(await t.dip.backend.log.append(batch([message(['1000000001'])]))).toEqual({ ok: true });
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
    expect(byBob.body).toEqual([expect.objectContaining({ actor: 'operator:bob', action: 'dead-letters.requeue', target: '1000000001/IF-021', before: { state: 'dead', count: 0, letters: [] }, after: { state: 'requeued', count: 0, positions: [], skipped: [] }, status: 200 })]);
    const creations = await alice('GET', '/admin/journal?action=operator.create');
    expect(creations.body.map((e: { actor: string; target: string }) => [e.actor, e.target])).toEqual([
      ['operator:alice', 'vera'],
      ['operator:alice', 'bob'],
      ['bootstrap', 'alice'],
      ['bootstrap', 'monitoring'],
    ]);
    // Her two sign-ins, the first (her enrolment's) with the password she chose (the journal says so, not what it is).
    const signIns = (await alice('GET', '/admin/journal?action=operator.sign-in&target=alice')).body as Array<{ after: Record<string, unknown> }>;
    expect(signIns.map((e) => e.after.passwordChanged ?? false)).toEqual([false, true]);
    expect(JSON.stringify(signIns)).not.toContain('alice chose this one');
    // Each step of her enrolment, the competing start included, and nothing of the secret or token.
    const enrolment = ((await alice('GET', '/admin/journal?target=alice')).body as Array<{ actor: string; action: string }>).filter((e) => e.action.startsWith('totp-enrolment.'));
    expect(enrolment.map((e) => [e.actor, e.action])).toEqual([
      ['operator:alice', 'totp-enrolment.complete'],
      ['operator:alice', 'totp-enrolment.refused'],
      ['operator:alice', 'totp-enrolment.start'],
    ]);
    expect(JSON.stringify(enrolment)).not.toMatch(new RegExp(`${offer.secret}|${offer.token}`));
    // Refused calls change nothing and are not acts: vera's refused requeue is not in the journal.
    expect((await alice('GET', '/admin/journal?actor=operator:vera&action=dead-letters.requeue')).body).toEqual([]);

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
    // A viewer signs out too (dip logout): ending one's own sessions changes nothing of the DIP.
    const veraAgain = adminApi(t, (await signIn('vera', veraMade.body as Person)).token);
    expect((await veraAgain('DELETE', '/admin/session')).status).toBe(204);
    expect((await veraAgain('GET', '/admin/whoami')).status).toBe(401);
  });

  it('dip login keeps a session for the dip commands that follow; dip logout ends it', cliRuns(5), async () => {
    const admin = adminApi(t, (await signIn('alice', alicePerson)).token);
    const made = await admin('POST', '/admin/operators', { name: 'carla', role: 'operator' });
    expect(made.status).toBe(201);
    const carla = made.body as Person;
    const session = join(mkdtempSync(join(tmpdir(), 'opendip-login-')), 'session.json');
    /** Runs dip with `input` on its standard input; `then`, given the output so far, may answer once more (and ends the input). */
    const dip = (args: string[], input = '', then?: (stdout: string) => string | undefined) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { env: { ...process.env, DIP_DATA_DIR: t.config.dataDir, DIP_ADMIN_PORT: String(t.dip.adminPort), DIP_OPERATOR_SESSION: session } }, (err, stdout, stderr) =>
          resolve({ code: err ? 1 : 0, stdout, stderr }),
        );
        if (!then) return void child.stdin?.end(input);
        child.stdin?.write(input);
        let seen = '';
        child.stdout?.on('data', (chunk: Buffer) => {
          seen += chunk.toString();
          const more = then(seen);
          if (more !== undefined && child.stdin?.writable) child.stdin.end(more);
        });
      });
    // Her first sign-in: the password (and no code) is answered with her TOTP secret to set up; the code
    // from it (for the DIP's clock, moved ahead of the wall clock) and a password of her own sign her in.
    // Her mistakes on the way are asked again, with the same enrolment (a new sign-in would be 409 until
    // it expires): a wrong code, a password too short (refused before it is sent), the password her
    // administrator chose (refused by the DIP, the code not used up); then the code and her own.
    let secret = '';
    const loggedIn = await dip(['login', '--name', 'carla'], `${carla.password}\n\n`, (stdout) => {
      secret = /secret: ([A-Z2-7]+)\n/.exec(stdout)?.[1] ?? '';
      if (!secret) return undefined;
      const right = code({ ...carla, totpSecret: secret });
      return `${right === '000000' ? '111111' : '000000'}\nshort\n${carla.password}\n${right}\n${right}\ncarla's own password\n`;
    });
    expect(loggedIn.stderr).toContain('the password must be at least 12 characters long: type it again');
    expect(loggedIn.stderr).toContain('the code is wrong');
    expect(loggedIn.stderr).toContain('the new password must differ from the current one\ntry again');
    expect(loggedIn.stdout.match(/secret: /g)).toHaveLength(1);
    expect(loggedIn.stdout).toContain(`otpauth URI: otpauth://totp/`);
    expect(loggedIn.stdout).toContain('signed in as carla until');
    expect(loggedIn.stdout).toContain('your authenticator set up, with your new password');
    expect(statSync(session).mode & 0o777).toBe(0o600);
    const who = await dip(['operator', 'whoami']);
    expect(JSON.parse(who.stdout)).toEqual({ name: 'carla', role: 'operator' });
    expect((await dip(['logout'])).code).toBe(0);
    // Someone whose enrolment is under way (started elsewhere) is told until when, not only refused.
    const dora = (await admin('POST', '/admin/operators', { name: 'dora', role: 'viewer' })).body as Person;
    const pending = (await adminApi(t, 'none')('POST', '/admin/session', { name: 'dora', password: dora.password })).body.totpEnrolment as Offer;
    const blocked = await dip(['login', '--name', 'dora'], `${dora.password}\n\n`);
    expect(blocked.code).toBe(1);
    expect(blocked.stderr).toContain(`run dip login again after ${pending.expiresAt}`);
    // Without a session the CLI falls back to the bootstrap token, which is refused now.
    const after = await dip(['operator', 'whoami']);
    expect(after.code).toBe(1);
    expect(after.stderr).toContain('the bootstrap token only creates the first admin account');
  });

  it('an admin resets the TOTP of a person who lost it: sessions end, a pending enrolment is dropped, a new first password (once, not cached) leads to a new enrolment; journalled', async () => {
    const admin = adminApi(t, (await signIn('alice', alicePerson)).token);
    const anyone = adminApi(t, 'none');
    const erik: Person = { password: (await admin('POST', '/admin/operators', { name: 'erik', role: 'viewer' })).body.password as string };
    const erikSession = adminApi(t, (await signIn('erik', erik)).token);
    const lostSecret = erik.totpSecret!;
    // Only an admin may reset a factor.
    expect((await erikSession('POST', '/admin/operators/alice/totp-reset')).status).toBe(403);
    // Trying without his authenticator, he made his name (and his address) wait: five failures, then 429 and Retry-After.
    for (let i = 0; i < 5; i++) expect((await anyone('POST', '/admin/session', { name: 'erik', password: erik.password, code: '000000' })).status).toBe(401);
    const held = await anyone('POST', '/admin/session', { name: 'erik', password: erik.password, code: '000000' });
    expect([held.status, held.headers?.['retry-after']]).toEqual([429, '1']);
    expect(held.body).toMatchObject({ error: expect.stringContaining('too many failed sign-ins') });
    const reset = await admin('POST', '/admin/operators/erik/totp-reset');
    expect(reset.status, JSON.stringify(reset.body)).toBe(200);
    expect(reset.body).toEqual({ operator: 'erik', password: expect.any(String), passwordExpiresAt: expect.any(String) });
    expect(Date.parse(reset.body.passwordExpiresAt as string) - clock.now()).toBeGreaterThan(71 * 3_600_000);
    expect(reset.headers?.['cache-control']).toBe('no-store');
    // His sessions ended; neither his password nor the lost secret signs in any more.
    expect((await erikSession('GET', '/admin/whoami')).status).toBe(401);
    expect((await anyone('POST', '/admin/session', { name: 'erik', password: erik.password, code: code({ ...erik, totpSecret: lostSecret }) })).status).toBe(401);
    // The new first password starts a new enrolment at once (the reset forgot his failures), with a new secret and his own password to choose.
    const again: Person = { password: reset.body.password as string };
    const started = await anyone('POST', '/admin/session', { name: 'erik', password: again.password });
    expect(started.status).toBe(403);
    expect(started.body.totpEnrolment).toMatchObject({ newPasswordRequired: true, secret: expect.not.stringMatching(lostSecret) });
    // A reset while an enrolment is under way drops it: its token is void, and a sign-in starts another at once (no 409).
    const pendingToken = (started.body.totpEnrolment as Offer).token;
    const second = await admin('POST', '/admin/operators/erik/totp-reset');
    const pendingSecret = (started.body.totpEnrolment as Offer).secret;
    expect((await anyone('POST', '/admin/session/enrolment', { token: pendingToken, code: code({ ...erik, totpSecret: pendingSecret }), newPassword: 'erik chose this one' })).status).toBe(401);
    const fresh: Person = { password: second.body.password as string };
    expect((await signIn('erik', fresh)).operator).toEqual({ name: 'erik', role: 'viewer' });
    expect(fresh.totpSecret).not.toBe(pendingSecret);
    // An automation account has no TOTP; a name of no account is 404.
    expect((await admin('POST', '/admin/operators/monitoring/totp-reset')).status).toBe(409);
    expect((await admin('POST', '/admin/operators/nobody/totp-reset')).status).toBe(404);
    // Nor one's own: a stolen session would make the account its own for good.
    const own = await admin('POST', '/admin/operators/alice/totp-reset');
    expect([own.status, own.body]).toEqual([409, { error: expect.stringContaining('cannot reset their own factor') }]);
    const journal = (await admin('GET', '/admin/journal?action=operator.totp-reset')).body as Array<{ actor: string; target: string; before: unknown; after: unknown }>;
    // Newest first: the second reset found an enrolment under way and no factor; the first, his factor.
    expect(journal.map((e) => [e.actor, e.target, e.before])).toEqual([
      ['operator:alice', 'erik', { hadFactor: false, pendingEnrolment: true }],
      ['operator:alice', 'erik', { hadFactor: true, pendingEnrolment: false }],
    ]);
    expect(JSON.stringify(journal)).not.toContain(reset.body.password as string);
  });

  it('dip login stops when the enrolment ends on the DIP mid-way (reset), instead of asking for codes until it expires', cliRuns(1), async () => {
    const admin = adminApi(t, (await signIn('alice', alicePerson)).token);
    const fay = (await admin('POST', '/admin/operators', { name: 'fay', role: 'viewer' })).body as Person;
    const session = join(mkdtempSync(join(tmpdir(), 'opendip-login-')), 'session.json');
    let secret = '';
    const ran = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'login', '--name', 'fay'], { env: { ...process.env, DIP_DATA_DIR: t.config.dataDir, DIP_ADMIN_PORT: String(t.dip.adminPort), DIP_OPERATOR_SESSION: session } }, (err, stdout, stderr) =>
        resolve({ code: err ? 1 : 0, stdout, stderr }),
      );
      child.stdin?.write(`${fay.password}\n\n`);
      let seen = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        if (secret !== '') return;
        secret = /secret: ([A-Z2-7]+)\n/.exec(seen)?.[1] ?? '';
        if (!secret) return;
        // Her factor is reset while she adds the secret to her app: the enrolment shown is void. Her right
        // code and password are typed twice, as a CLI that asked again would read them.
        const right = code({ ...fay, totpSecret: secret });
        void admin('POST', '/admin/operators/fay/totp-reset').then(() => child.stdin?.end(`${right}\nfay's own password\nfay's own password\n`.repeat(2)));
      });
    });
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain('the authenticator enrolment has ended');
    expect(ran.stderr).toContain('the authenticator was not set up: sign in again (dip login) to be given a new secret');
    // Not asked again for a code after the DIP said the enrolment had ended.
    expect(ran.stderr).not.toContain('try again (the same secret');
  });

  it('dip login says a factor set up meanwhile is to be used (409 "finished just now"), not to wait until the DIP\'s now', async () => {
    const now = new Date(clock.now()).toISOString();
    // The start/complete race cannot be timed from outside: a stand-in admin listener answers as the DIP does then.
    const stand = createServer((_req, res) => res.writeHead(409, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `${ENROLMENT_JUST_FINISHED}: sign in again with a code from it`, pendingUntil: now })));
    await new Promise<void>((r) => stand.listen(0, '127.0.0.1', r));
    try {
      const config = { ...t.config, adminPort: (stand.address() as AddressInfo).port };
      const refused = login(config, { name: 'gus', password: 'whatever it is', code: '' }, () => Promise.reject(new Error('no enrolment is offered')));
      await expect(refused).rejects.toThrow(/was set up by another sign-in a moment ago: sign in with a code from it \(dip login --name gus\)/);
      await expect(refused).rejects.not.toThrow(/still setting up|run dip login again after/);
    } finally {
      await new Promise((r) => stand.close(r));
    }
  });
});

describe('the bootstrap token as break-glass (operators.bootstrapBreakGlass: true)', () => {
  let t: TestDip;
  beforeAll(async () => {
    t = await startTestDip({ operators: { ...DEFAULTS.operators, bootstrapBreakGlass: true } });
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
