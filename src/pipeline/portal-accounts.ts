import { randomBytes } from 'node:crypto';
import type { Clock } from '../ports/clock.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import { realmOf, type ChangeCondition, type PortalAccount, type PortalAccounts, type PortalRealm, type TotpReset } from '../ports/portal-accounts.js';
import { levelOf, type UserLevel } from '../domain/portal-levels.js';
import type { ValueSealer } from '../ports/backend.js';
import { acceptTotp, hashPassword, newPassword, newTotpSecret, passwordProblem, totpUri, verifyPassword } from '../security/portal-credentials.js';
import type { SessionClaims } from '../security/portal-session.js';
import { secretHash } from '../security/api-key.js';
import { ACCOUNT_FREE_FAILURES, ACCOUNT_MAX_DELAY_MS, backoffMs, DEVICE_FREE_FAILURES, FAILURE_WINDOW_MS, retryAfterSeconds, sourceKey, SourceThrottle, waitAfter } from '../security/sign-in-throttle.js';

export const USERNAME_PATTERN = /^[a-z0-9][a-z0-9._-]{2,63}$/;

/**
 * Sign-ins to one name are checked one at a time, so each guess sees the failures before it and a code
 * is used once; beyond this many waiting, more are refused at once (a burst is not a queue to grow).
 */
const MAX_WAITING = 4;
/**
 * How long a TOTP enrolment started at a first sign-in waits for its confirming code: long enough to add
 * the secret to an app, short enough that a token left in a browser's history or a terminal's scrollback
 * is soon worth nothing.
 */
export const ENROLMENT_MS = 10 * 60_000;
/** How long a first password signs in for unless configured (`portal.firstPasswordHours`). */
export const FIRST_PASSWORD_MS = 72 * 3_600_000;

export interface NewAccount {
  username: string;
  displayName: string;
  participantDipId: string | null;
  admin: boolean;
  /** A participant's user's level (src/domain/portal-levels.ts); absent: `admin`, or `operations` (what a non-administrator always could). */
  level?: UserLevel;
  createdBy: string;
}

/**
 * What the administrator is shown once, to hand to the new user: nothing of it is kept in the clear. No
 * TOTP secret: the person sets theirs up at their first sign-in (signIn answers `enrol`).
 */
export interface FirstPassword {
  account: PortalAccount;
  password: string;
  /** When it stops signing in (epoch ms): whoever hands it over says so. */
  passwordExpiresAt: number;
}

/** How an answer or e-mail that hands over a first password says until when it signs in. */
export const firstPasswordLapse = (expiresAt: number): string => `it stops working at ${new Date(expiresAt).toISOString()} if not used by then (an administrator then resets it)`;

/**
 * A TOTP enrolment offered to a person who signed in with the right password and has no second factor:
 * the secret to add to their app, and the token that, sent back with a current code of it before
 * `expiresAt`, puts it in force (confirmEnrolment). Shown once; the DIP keeps the token's hash only.
 */
export interface EnrolmentOffer {
  token: string;
  secret: string;
  uri: string;
  expiresAt: number;
  /** The confirmation must also choose the person's own password (their administrator chose this one). */
  choosePassword: boolean;
}

/**
 * `choosePassword`: the password and code were right, but the account must choose its own password to
 * sign in. `enrol`: the password was right and the account has no second factor yet: it is set up first.
 * `enrolmentPending`: the same, but an enrolment is already under way until `until` (someone else may hold the password).
 */
export type SignIn =
  | { ok: true; account: PortalAccount }
  | { ok: false; problem: string; choosePassword?: true; enrol?: EnrolmentOffer; enrolmentPending?: { until: number }; enrolmentEnded?: true; retryAfterSeconds?: number };

/** How a refusal for failing too often begins (the operator API and `dip login` pass it on as it is). */
export const TOO_MANY = 'too many failed sign-ins';

/**
 * How an answer to an enrolment that no longer holds begins (expired, reset, finished, the account
 * disabled or signed out everywhere since): a client asking for codes stops on it, as no code can do.
 */
export const ENROLMENT_ENDED = 'the authenticator enrolment has ended';
/** How the 409 begins when the enrolment in the way was finished meanwhile: no wait helps, a code does. */
export const ENROLMENT_JUST_FINISHED = 'an authenticator enrolment for this account was finished just now';

/** SHA-256 (hex) of an enrolment token: a random 256-bit value needs no slow hash. */
const tokenHash = secretHash;
const ENROLMENT_TOKEN_PREFIX = 'dipenrol_';

/** The journal's actor for an account acting on itself. */
export const actorOf = (a: Pick<PortalAccount, 'username' | 'participantDipId'>): string => (a.participantDipId === null ? `operator:${a.username}` : `user:${a.participantDipId}:${a.username}`);

/** A sign-in step's recorded attempt: forgotten when the step was no failure, the name's attempts cleared when it succeeded. */
interface AttemptUnderway {
  notFailure(): Promise<void>;
  succeeded(): Promise<void>;
}

/** What the two sign-in steps are given beside the credential (see signIn). */
export interface SignInOptions {
  /** The client's address (src/security/address-list.ts clientAddress): throttled on its own failures (an IPv6 address by its /64). */
  source?: string;
  /**
   * The device cookie of the realm's portal the browser presented, as read (signature, expiry and realm checked: src/security/device-cookie.ts):
   * for the name signing in, and fewer than DEVICE_FREE_FAILURES failures of its own, the sign-in is
   * trusted (neither the name's wait nor the address's holds it). None (`dip login`): untrusted.
   */
  device?: { username: string; nonce: string };
  /** Whose accounts the name is looked up among: a participant's users or the operators (PortalRealm). */
  realm: PortalRealm;
  eligible?: (account: PortalAccount) => Promise<boolean>;
  chosenPassword?: string;
}

/**
 * The portals' accounts: created by an administrator (a participant's for its users, an operator for
 * operators and participants' first administrators), signed in with password + TOTP, signed out
 * everywhere by raising the session epoch.
 */
export class PortalAccountService {
  /** Each name's sign-ins in progress: the last one's end, and how many wait. */
  private readonly lines = new Map<string, { tail: Promise<unknown>; waiting: number }>();
  /** A hash checked when the name is no account, so that a wrong name takes as long as a wrong password. */
  private dummyHash: Promise<string> | null = null;
  /** Failed sign-ins per client address on this node (src/security/sign-in-throttle.ts). */
  private readonly sourceFailures = new SourceThrottle();
  /** Failed sign-ins per device cookie (its nonce) on this node: past DEVICE_FREE_FAILURES it is trusted no more. */
  private readonly deviceFailures = new SourceThrottle();

  constructor(
    private readonly store: PortalAccounts,
    private readonly sealer: Pick<ValueSealer, 'seal' | 'open'>,
    private readonly clock: Clock,
    private readonly issuer: string,
    private readonly participantExists: (dipId: string) => boolean,
    /** Where each step of a TOTP enrolment is recorded, as the operator API records sign-ins (null: not recorded, for tests of other things). */
    private readonly journal: Pick<OperatorJournal, 'append'> | null = null,
    /** How long a first password signs in for (`portal.firstPasswordHours`). */
    private readonly firstPasswordMs = FIRST_PASSWORD_MS,
  ) {}

  /**
   * Accounts still on a first password with no expiry (made before first passwords expired) are given one
   * from now, as a first password made now would be: run at start; none after the first start.
   */
  async expireOldFirstPasswords(): Promise<number> {
    return this.store.expireFirstPasswords(this.clock.now() + this.firstPasswordMs);
  }

  /**
   * An account without a second factor: its person sets up their TOTP at their first sign-in (signIn
   * answers `enrol`), so no secret passes through whoever made the account, who could otherwise sign in
   * as the person with the first password. Every account is made so, operators' and participants' users'
   * alike; accounts made earlier with a secret keep it.
   */
  async createEnrollingAtFirstSignIn(req: NewAccount): Promise<FirstPassword | { problem: string }> {
    const username = req.username.trim().toLowerCase();
    if (!USERNAME_PATTERN.test(username)) return { problem: `username '${req.username.slice(0, 64)}' must be 3 to 64 lower-case letters, digits, '.', '_' or '-'` };
    const displayName = req.displayName.trim();
    if (displayName.length === 0 || displayName.length > 100) return { problem: 'name must be 1 to 100 characters' };
    if (req.participantDipId !== null && !this.participantExists(req.participantDipId)) return { problem: `${req.participantDipId} is not a registered participant` };
    const password = newPassword();
    const now = this.clock.now();
    const expiresAt = now + this.firstPasswordMs;
    // Only a participant's user has a level; its administrator flag follows it, so that what checks the flag agrees.
    const level = req.participantDipId === null ? undefined : (req.level ?? levelOf(req));
    const account: PortalAccount = {
      username,
      participantDipId: req.participantDipId,
      admin: level === undefined ? req.admin : level === 'admin',
      ...(level === undefined ? {} : { level }),
      displayName,
      passwordHash: await hashPassword(password),
      totpSecretSealed: null,
      lastTotpStep: 0,
      sessionEpoch: 0,
      disabled: false,
      mustChangePassword: true,
      firstPasswordExpiresAt: expiresAt,
      createdAt: now,
      createdBy: req.createdBy,
    };
    // Taken among the accounts of its realm only (PortalRealm): whether an operator bears the name is not told here.
    if (!(await this.store.createAccount(account))) return { problem: `username '${username}' is taken` };
    return { account, password, passwordExpiresAt: expiresAt };
  }

  /**
   * Password and TOTP code, both right, for an enabled account, not throttled by recent failures (see
   * attempt and src/security/sign-in-throttle.ts). The answer
   * to any failure is the same, and takes as long, so it does not tell which part was wrong or whether
   * the account exists. Sign-ins to one name run one at a time on a node (see MAX_WAITING); every
   * attempt is recorded in the store before it is checked, so attempts on several nodes at once are
   * all counted and the name's backoff holds cluster-wide (the source's is this node's).
   *
   * `realm`: the name is looked up among a participant's users ('user') or the operators ('operator'),
   * never both; `eligible`, a further check of the account (an operator account in force). Failing is a wrong sign-in,
   * decided before anything changes. `chosenPassword` replaces the password as the sign-in succeeds
   * (every other session ends). An account whose password its administrator chose must give one: until
   * then the answer is `choosePassword`, and the code is not used up (the person types it again with the
   * new password).
   */
  async signIn(usernameGiven: string, password: string, code: string, options: SignInOptions): Promise<SignIn> {
    const { chosenPassword, realm } = options;
    const username = usernameGiven.trim().toLowerCase();
    const refused: SignIn = { ok: false, problem: 'the username, password or code is wrong' };
    // No account can have such a name: nothing to look up, nothing to remember (an attacker's junk names
    // would otherwise be rows to grow).
    if (!USERNAME_PATTERN.test(username)) {
      const now = this.clock.now();
      return this.sourceThrottled(options.source, now) ?? (this.sourceFailed(options.source, now), refused);
    }
    return this.underThrottles(username, options, async (now, attempt) => {
      const account = await this.store.account(realm, username);
      const passwordOk = await verifyPassword(password, account ? account.passwordHash : await this.hashOfNoAccount());
      // A failure keeps its recorded attempt: that is the count.
      if (!account || !passwordOk || !(await this.acceptable(account, options, now))) return refused;
      const factor = this.totpSecret(account);
      if (factor === null) {
        // The right password of an account without a second factor: not a failure, and no session yet.
        await attempt.notFailure();
        return this.startEnrolment(account, now);
      }
      const step = acceptTotp(factor, code.trim(), now, account.lastTotpStep);
      if (step === null) return refused;
      const problem = await this.choiceProblem(account, chosenPassword, password);
      if (problem) {
        await attempt.notFailure();
        return { ok: false, problem, choosePassword: true };
      }
      // The code's step is claimed in the store, so it is good once on every node sharing it (this
      // node's line of sign-ins only holds back the ones sent here).
      if (!(await this.store.claimTotpStep(realm, username, step))) return refused;
      await attempt.succeeded();
      if (chosenPassword === undefined) return { ok: true, account: { ...account, lastTotpStep: step } };
      // Every session issued before ends (the administrator who knew the first password may hold one);
      // only while nobody has disabled the account or ended its sessions since it was read.
      const changed = await this.store.changeAccount(realm, username, { passwordHash: await hashPassword(chosenPassword), ...OWN_PASSWORD }, { epoch: account.sessionEpoch, enabled: true });
      return changed ? { ok: true, account: changed } : refused;
    });
  }

  /**
   * The second step of a first sign-in (signIn answered `enrol`): the enrolment's token and a current
   * code of its secret put the secret in force and sign in, as signIn does (a session may be issued on
   * this answer). Checked as a sign-in is, under the same throttles: a wrong code is a failed sign-in of
   * the name and of the source, so the offer is no way round the limit on guessing codes. An
   * account whose administrator chose its password must choose its own here (`choosePassword` until it
   * does; the code is not used up). The enrolment is good once, until it expires, and only while the
   * account is as it was when the enrolment began (not disabled or signed out everywhere since).
   */
  async confirmEnrolment(token: string, code: string, options: SignInOptions): Promise<SignIn> {
    const wrongCode: SignIn = { ok: false, problem: 'the code is wrong: send a current code of the new secret' };
    // Told apart from a wrong code, so that the person is not asked for codes no code can answer: only
    // whoever holds the token (256 random bits, not guessed) learns that it has ended.
    const ended: SignIn = { ok: false, problem: `${ENROLMENT_ENDED} (it expired, was reset or finished, or the account changed): sign in again with your password to start another`, enrolmentEnded: true };
    const hash = tokenHash(token);
    const pending = await this.store.totpEnrolment(hash);
    // A token that is no enrolment has no name to count against; one of the other realm's is none here.
    if (!pending || pending.expiresAt <= this.clock.now() || pending.realm !== options.realm) return ended;
    return this.underThrottles(pending.username, options, async (now, attempt) => {
      const account = await this.store.account(pending.realm, pending.username);
      if (!account || account.totpSecretSealed !== null || !(await this.acceptable(account, options, now))) return ended;
      const step = acceptTotp(this.open(pending.secretSealed, pending), code.trim(), now, account.lastTotpStep);
      if (step === null) {
        await this.audit(account, 'totp-enrolment.wrong-code', null, now);
        return wrongCode;
      }
      const { chosenPassword } = options;
      const problem = await this.choiceProblem(account, chosenPassword, null);
      if (problem) {
        await attempt.notFailure();
        return { ok: false, problem, choosePassword: true };
      }
      const activated = await this.store.completeTotpEnrolment(hash, now, { secretSealed: pending.secretSealed, step, ...(chosenPassword === undefined ? {} : { passwordHash: await hashPassword(chosenPassword) }) });
      if (!activated) return ended;
      await attempt.succeeded();
      await this.audit(account, 'totp-enrolment.complete', { passwordChanged: chosenPassword !== undefined }, now);
      return { ok: true, account: activated };
    });
  }

  /**
   * Offers a new secret, unless an enrolment of the account is under way: that one is left alone (not
   * replaced), so whoever else knows the password cannot swap the secret under a person adding it to their
   * app; the refusal is journalled, as it means two parties are signing in with one password.
   */
  private async startEnrolment(account: PortalAccount, now: number): Promise<SignIn> {
    const token = `${ENROLMENT_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const secret = newTotpSecret();
    const wanted = { realm: realmOf(account), username: account.username, tokenHash: tokenHash(token), secretSealed: this.sealed(secret, account), epoch: account.sessionEpoch, startedAt: now, expiresAt: now + ENROLMENT_MS };
    const pending = await this.store.startTotpEnrolment(wanted);
    // The enrolment in the way was finished between the store's two looks: the account has a factor now,
    // so a new enrolment would be pointless; the person signs in again (with a code, this time).
    if (!pending) return { ok: false, problem: `${ENROLMENT_JUST_FINISHED}: sign in again with a code from it`, enrolmentPending: { until: now } };
    const until = new Date(pending.expiresAt).toISOString();
    if (pending.tokenHash !== wanted.tokenHash) {
      await this.audit(account, 'totp-enrolment.refused', { pendingUntil: until }, now);
      return { ok: false, problem: `an authenticator enrolment for this account is already under way until ${until}: finish it there, or sign in again after it ends`, enrolmentPending: { until: pending.expiresAt } };
    }
    await this.audit(account, 'totp-enrolment.start', { expiresAt: until }, now);
    return {
      ok: false,
      problem: 'add this secret to your authenticator app, then send a code from it to finish signing in',
      enrol: { token, secret, uri: totpUri(secret, account.username, this.issuer), expiresAt: pending.expiresAt, choosePassword: account.mustChangePassword === true },
    };
  }

  /**
   * The account may sign in here: enabled, its first password (if it is on one) not expired, and eligible
   * (an operator account in force). It was looked up in the realm asked for. An expired first password is
   * refused as a wrong one is, so no answer tells that the name is an account.
   */
  private async acceptable(account: PortalAccount, { eligible }: SignInOptions, now: number): Promise<boolean> {
    return !account.disabled && !firstPasswordExpired(account, now) && (!eligible || (await eligible(account)));
  }

  /**
   * Why the sign-in cannot go on as it is: the account must choose its own password and gave none, or
   * gave one not acceptable (too short, or the current one; `current` when known, else checked against the hash).
   */
  private async choiceProblem(account: PortalAccount, chosen: string | undefined, current: string | null): Promise<string | null> {
    if (chosen === undefined) return account.mustChangePassword === true ? 'your administrator chose this password and saw it: choose your own to sign in' : null;
    const problem = passwordProblem(chosen);
    if (problem) return problem;
    const same = current === null ? await verifyPassword(chosen, account.passwordHash) : chosen === current;
    return same ? 'the new password must differ from the current one' : null;
  }

  private async audit(account: PortalAccount, action: string, after: unknown, at: number): Promise<void> {
    await this.journal?.append({ at, actor: actorOf(account), action, target: account.username, before: null, after, status: null });
  }

  /**
   * Records an attempt of the name before it is checked: an untrusted one is refused (and forgotten: a
   * refusal is not a failure) while the name's backoff runs (ACCOUNT_FREE_FAILURES in the window, then a
   * delay doubling to ACCOUNT_MAX_DELAY_MS after the last), from whatever address; a trusted one (the
   * name's device cookie) is not held. Names of no account are counted alike (no answer tells them
   * apart); a row each only for the window.
   */
  private async attempt(realm: PortalRealm, username: string, trusted: boolean, now: number): Promise<{ ok: true; id: number } | { ok: false; waitMs: number }> {
    const { id, attempts } = await this.store.recordSignInAttempt(realm, username, now, now - FAILURE_WINDOW_MS + 1);
    const before = attempts.length - 1;
    const waitMs = trusted || before === 0 ? 0 : waitAfter(attempts[before - 1]!, backoffMs(before, ACCOUNT_FREE_FAILURES, ACCOUNT_MAX_DELAY_MS), now);
    if (waitMs <= 0) return { ok: true, id };
    await this.store.forgetSignInAttempt(id);
    return { ok: false, waitMs };
  }

  /** The refusal of a source still waiting out its own backoff (nothing checked, nothing counted); null: it may try. */
  private sourceThrottled(source: string | undefined, now: number): (SignIn & { ok: false }) | null {
    const waitMs = source === undefined ? 0 : this.sourceFailures.waitMs(sourceKey(source), now);
    return waitMs > 0 ? this.throttled(waitMs, now) : null;
  }

  private sourceFailed(source: string | undefined, now: number): void {
    if (source !== undefined) this.sourceFailures.failed(sourceKey(source), now);
  }

  private throttled(waitMs: number, now: number): SignIn & { ok: false } {
    const seconds = retryAfterSeconds(waitMs);
    return { ok: false, problem: `${TOO_MANY}: try again after ${new Date(now + seconds * 1000).toISOString()}`, retryAfterSeconds: seconds };
  }

  /**
   * A sign-in step of the name (signIn, confirmEnrolment, changePassword) under its throttles: one at a
   * time on this node; unless trusted (the name's own device cookie, not failed too often), the source's
   * backoff and then the name's checked; its attempt recorded before anything is checked. `run` gets the
   * time and the attempt, to forget when the step turns out not to be a failure, or to end with when it
   * succeeds (an untrusted success clears the name's attempts; a trusted one leaves a stranger's failures
   * counted, forgetting only its own attempt); an attempt neither when `run` ends was a failure, and
   * counts against the source and the device cookie too. One place, so that no way of signing in can
   * drift from the others' limits on guessing.
   */
  private async guarded<T>(username: string, options: Pick<SignInOptions, 'source' | 'device' | 'realm'>, busy: T, refusal: (r: SignIn & { ok: false }) => T, run: (now: number, attempt: AttemptUnderway) => Promise<T>): Promise<T> {
    const { source, device, realm } = options;
    const isTrusted = (now: number) => device !== undefined && device.username === username && this.deviceFailures.failures(device.nonce, now) < DEVICE_FREE_FAILURES;
    // The name's own known browser has a lane of its own (one per device cookie), never queued behind
    // strangers trying the name: SECURITY.md promises the owner's browser is not kept out. A stranger's
    // source still waiting out its backoff is refused before it takes a place in the name's queue, and a
    // "busy" answer counts as one of its tries, so a flood that keeps the queue full backs itself off.
    const entered = this.clock.now();
    const trustedAtEntry = isTrusted(entered);
    if (!trustedAtEntry) {
      const early = this.sourceThrottled(source, entered);
      if (early) return refusal(early);
    }
    // A name's line is its realm's: an operator and a user of one name never wait for each other.
    const name = `${realm}\u0000${username}`;
    const lane = trustedAtEntry ? `${name}\u0000device:${device!.nonce}` : name;
    let ran = false;
    const result = await this.oneAtATime(lane, busy, async () => {
      ran = true;
      const now = this.clock.now();
      const trusted = isTrusted(now);
      const throttled = trusted ? null : this.sourceThrottled(source, now);
      if (throttled) return refusal(throttled);
      const attempt = await this.attempt(realm, username, trusted, now);
      if (!attempt.ok) return refusal(this.throttled(attempt.waitMs, now));
      let failure = true;
      const result = await run(now, {
        notFailure: async () => {
          failure = false;
          await this.store.forgetSignInAttempt(attempt.id);
        },
        succeeded: async () => {
          failure = false;
          await (trusted ? this.store.forgetSignInAttempt(attempt.id) : this.store.clearSignInAttempts(realm, username));
        },
      });
      if (failure) this.sourceFailed(source, now);
      if (failure && trusted) this.deviceFailures.failed(device!.nonce, now);
      return result;
    });
    if (!ran) this.sourceFailed(source, entered);
    return result;
  }

  private underThrottles(username: string, options: SignInOptions, run: (now: number, attempt: AttemptUnderway) => Promise<SignIn>): Promise<SignIn> {
    const busy: SignIn = { ok: false, problem: 'a sign-in with this username is already being checked: try again in a moment' };
    return this.guarded(username, options, busy, (r) => r, run);
  }

  private async oneAtATime<T>(name: string, busy: T, run: () => Promise<T>): Promise<T> {
    const line = this.lines.get(name) ?? { tail: Promise.resolve(), waiting: 0 };
    if (line.waiting >= MAX_WAITING) return busy;
    line.waiting += 1;
    this.lines.set(name, line);
    const mine = line.tail.then(run);
    line.tail = mine.catch(() => undefined);
    try {
      return await mine;
    } finally {
      line.waiting -= 1;
      if (line.waiting === 0) this.lines.delete(name);
    }
  }

  private hashOfNoAccount(): Promise<string> {
    this.dummyHash ??= hashPassword(newPassword());
    return this.dummyHash;
  }

  /**
   * The account a session belongs to, while the session's epoch is current and the account enabled, and,
   * with `maxSessions` (config `portal.maxSessionsPerUser`; 0: no cap), while fewer than that many of the
   * account's sessions were started after it (a numbered session: sessionNumber).
   */
  async fromSession(claims: SessionClaims, realm: PortalRealm, maxSessions = 0): Promise<PortalAccount | undefined> {
    // A session names its realm: one issued before the realms (none named) is ended, its person asked to
    // sign in again, since its name alone may now be an account of either (SessionClaims.realm).
    if (claims.realm !== realm) return undefined;
    const account = await this.store.account(realm, claims.username);
    if (!account || account.disabled || account.sessionEpoch !== claims.epoch) return undefined;
    return maxSessions > 0 && typeof claims.seq === 'number' && (account.sessionsIssued ?? 0) - claims.seq >= maxSessions ? undefined : account;
  }

  /**
   * A new portal session's number: the account's sessions are counted in the store (one write, every
   * node's counted), so the one `maxSessions` newer sessions have followed ends (fromSession), the oldest
   * first, whichever node it was started on and without a session table. Undefined: no such account.
   */
  async sessionNumber(realm: PortalRealm, username: string): Promise<number | undefined> {
    return this.store.countSession(realm, username);
  }

  /** Ends every session of the account (one conditional write: nothing running beside it can undo it). */
  async signOutEverywhere(realm: PortalRealm, username: string): Promise<void> {
    await this.store.changeAccount(realm, username, {});
  }

  /**
   * Ends every session of an operator's credential, and of no participant's user of the same name (the
   * operator API names the account by its operator name, and the realms are apart).
   */
  async signOutOperatorEverywhere(username: string): Promise<void> {
    await this.signOutEverywhere('operator', username);
  }

  /**
   * Disables or enables the account, ending its sessions; a participant's user's change is journalled as a
   * level change is: `user.disable` or `user.enable`, before and after, naming `actor` (the administrator
   * or operator who did it). An operator's credential is journalled by the operator API's call itself.
   * Undefined: no such account (nothing changed). `journalError`: changed, but its entry could not be written.
   */
  async setDisabled(actor: string, target: PortalAccount, disabled: boolean, when: ChangeCondition = {}): Promise<{ account: PortalAccount; journalError?: Error } | undefined> {
    const changed = await this.store.changeAccount(realmOf(target), target.username, { disabled }, when);
    if (!changed || realmOf(changed) === 'operator') return changed && { account: changed };
    const journalError = await this.journalled({
      at: this.clock.now(),
      actor,
      action: disabled ? 'user.disable' : 'user.enable',
      target: changed.username,
      before: { participant: target.participantDipId, disabled: target.disabled },
      after: { disabled, sessionsEnded: true },
      status: null,
    });
    return journalError ? { account: changed, journalError } : { account: changed };
  }

  /**
   * A participant's administrator disables or enables one of its participant's users (setDisabled), but
   * never their own account, nor the participant's last enabled administrator: a slip (or a stolen
   * session) must not leave the participant with nobody to manage its users. `target` was read as one of
   * `by`'s participant's users. `problem`: nothing changed.
   */
  async setUsersDisabled(by: PortalAccount, target: PortalAccount, disabled: boolean): Promise<{ account: PortalAccount; journalError?: Error } | { problem: string; status: 404 | 409 } | undefined> {
    if (disabled && target.username === by.username) return { problem: 'you cannot disable your own account: ask another administrator of your participant', status: 409 };
    const keepingAdmin = disabled && !target.disabled && levelOf(target) === 'admin' && target.participantDipId !== null;
    // The rule is the store's, in the write itself: a check read first would pass for two administrators disabling each other at once.
    const changed = await this.setDisabled(actorOf(by), target, disabled, { keepingAdmin });
    if (changed || !keepingAdmin) return changed;
    return (await this.store.account('user', target.username)) ? lastAdministrator(target) : undefined;
  }

  /**
   * The account's own password change (its administrator chose the first): the current password is
   * checked under the same one-at-a-time rule and throttles as a sign-in, so a session left open is no
   * way to guess it. Every session ends.
   */
  async changePassword(username: string, current: string, next: string, options: Pick<SignInOptions, 'source' | 'device' | 'realm'>): Promise<string | null> {
    const problem = passwordProblem(next);
    if (problem) return problem;
    if (next === current) return 'the new password must differ from the current one';
    const busy = 'a password change for this account is already being checked: try again in a moment';
    return this.guarded(username, options, busy, (r) => r.problem, async (_now, attempt) => {
      const account = await this.store.account(options.realm, username);
      if (!account || account.disabled || !(await verifyPassword(current, account.passwordHash))) return 'the current password is wrong';
      await attempt.succeeded();
      const changed = await this.store.changeAccount(options.realm, username, { passwordHash: await hashPassword(next), ...OWN_PASSWORD }, { epoch: account.sessionEpoch, enabled: true });
      return changed ? null : 'the account was changed meanwhile (disabled, or signed out everywhere): sign in again';
    });
  }

  /**
   * Takes away the second factor of an account whose owner lost it (their administrator's act): a new
   * first password (shown once, to be replaced at the next sign-in), every session ended, any pending
   * enrolment dropped; the next sign-in enrols a new secret as a first sign-in does. A password, not the
   * old one kept: whoever reset the factor must not be the only one who can sign in, and the person's own
   * password may be what was lost with the phone. The name's failed sign-ins are forgotten in the same
   * step, so a person held back by the name's backoff can use the new password at once. Undefined: no such account.
   */
  async resetTotpFactor(username: string, of: string | null): Promise<(FirstPassword & Omit<TotpReset, 'account'>) | undefined> {
    const password = newPassword();
    const expiresAt = this.clock.now() + this.firstPasswordMs;
    const reset = await this.store.resetTotpFactor(username, await hashPassword(password), of, expiresAt);
    return reset && { account: reset.account, password, passwordExpiresAt: expiresAt, hadFactor: reset.hadFactor, pendingEnrolment: reset.pendingEnrolment };
  }

  /**
   * A participant's administrator resets a user's lost factor (resetTotpFactor): only a user of the
   * administrator's own participant (the store checks it in the reset's transaction, so a name of another
   * participant or an operator is no account here), and not the administrator's own (whoever is signed
   * in still holds that factor: a stolen session would become the account for good). Journalled as
   * `user.totp-reset`, naming the administrator, as operators' resets are (`operator.totp-reset`).
   * `problem`: nothing changed. `journalError`: the reset is done but its entry could not be written (its
   * password is still answered, else the account is left with one nobody knows; the caller logs it).
   */
  async resetUsersFactor(by: PortalAccount, usernameGiven: string): Promise<(FirstPassword & { journalError?: Error }) | { problem: string; status: 403 | 404 | 409 }> {
    const username = usernameGiven.trim().toLowerCase();
    if (by.participantDipId === null || levelOf(by) !== 'admin') return { problem: "only a participant's administrators reset its users' authenticators", status: 403 };
    if (username === by.username) return { problem: 'you cannot reset your own authenticator: ask another administrator of your participant', status: 409 };
    const reset = await this.resetTotpFactor(username, by.participantDipId);
    if (!reset) return { problem: `${by.participantDipId} has no user '${usernameGiven.slice(0, 64)}'`, status: 404 };
    const entry = {
      at: this.clock.now(),
      actor: actorOf(by),
      action: 'user.totp-reset',
      target: reset.account.username,
      before: { hadFactor: reset.hadFactor, pendingEnrolment: reset.pendingEnrolment },
      after: { sessionsEnded: true, mustChangePassword: true, failedSignInsCleared: true },
      status: null,
    };
    const done = { account: reset.account, password: reset.password, passwordExpiresAt: reset.passwordExpiresAt };
    const journalError = await this.journalled(entry);
    return journalError ? { ...done, journalError } : done;
  }

  /**
   * A participant's administrator creates a user of its participant at the level chosen (the user portal's
   * Users page), journalled as `user.create` with the level, naming the administrator. `journalError`: made,
   * but its entry could not be written (the first password is still answered; the caller logs it).
   */
  async createUsersUser(by: PortalAccount, req: { username: string; displayName: string; level: UserLevel }): Promise<(FirstPassword & { journalError?: Error }) | { problem: string; status: 400 | 403 }> {
    if (by.participantDipId === null || levelOf(by) !== 'admin') return { problem: "only a participant's administrators create its users", status: 403 };
    return this.createUser({ actor: actorOf(by), createdBy: by.username }, { ...req, participantDipId: by.participantDipId });
  }

  /**
   * Creates a participant's user at the level chosen, journalled as `user.create` with the level, naming
   * `by.actor` (a participant's administrator: createUsersUser; or an operator, through
   * the operator API). `journalError`: made, but its entry could not be written (the first password is
   * still answered; the caller logs it).
   */
  async createUser(by: { actor: string; createdBy: string }, req: { username: string; displayName: string; level: UserLevel; participantDipId: string }): Promise<(FirstPassword & { journalError?: Error }) | { problem: string; status: 400 }> {
    const made = await this.createEnrollingAtFirstSignIn({ ...req, admin: req.level === 'admin', createdBy: by.createdBy });
    if ('problem' in made) return { problem: made.problem, status: 400 };
    const journalError = await this.journalled({ at: this.clock.now(), actor: by.actor, action: 'user.create', target: made.account.username, before: null, after: { participant: req.participantDipId, displayName: req.displayName, level: req.level }, status: null });
    return journalError ? { ...made, journalError } : made;
  }

  /**
   * A participant's administrator changes the level of one of its participant's users (not their own: a
   * participant must not lose its last administrator by a slip, and whoever holds a stolen session must not
   * keep what it takes away). One write with the administrator flag; every session of the user ends, so a
   * lowered level holds from the next request. Journalled as `user.level`, before and after. `problem`:
   * nothing changed.
   */
  async setUsersLevel(by: PortalAccount, usernameGiven: string, level: UserLevel): Promise<{ account: PortalAccount; journalError?: Error } | { problem: string; status: 403 | 404 | 409 }> {
    const username = usernameGiven.trim().toLowerCase();
    if (by.participantDipId === null || levelOf(by) !== 'admin') return { problem: "only a participant's administrators change its users' levels", status: 403 };
    if (username === by.username) return { problem: 'you cannot change your own level: ask another administrator of your participant', status: 409 };
    const target = await this.store.account('user', username);
    // Another participant's user is answered as if it did not exist (a participant never changes).
    if (!target || target.participantDipId !== by.participantDipId) return { problem: `${by.participantDipId} has no user '${usernameGiven.slice(0, 64)}'`, status: 404 };
    const before = levelOf(target);
    if (before === level) return { problem: `${username} is already a${level === 'viewer' ? '' : 'n'} ${level}`, status: 409 };
    const keepingAdmin = before === 'admin';
    const changed = await this.store.changeAccount('user', username, { level, admin: level === 'admin' }, { keepingAdmin });
    if (!changed) return keepingAdmin && (await this.store.account('user', username)) ? lastAdministrator(target) : { problem: `${by.participantDipId} has no user '${usernameGiven.slice(0, 64)}'`, status: 404 };
    const journalError = await this.journalled({ at: this.clock.now(), actor: actorOf(by), action: 'user.level', target: username, before: { level: before }, after: { level, sessionsEnded: true }, status: null });
    return journalError ? { account: changed, journalError } : { account: changed };
  }

  /** Appends a user administration's entry; the error if it could not be written (the act is done either way). */
  private async journalled(entry: Parameters<Pick<OperatorJournal, 'append'>['append']>[0]): Promise<Error | undefined> {
    try {
      await this.journal?.append(entry);
      return undefined;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  account(realm: PortalRealm, username: string): Promise<PortalAccount | undefined> {
    return this.store.account(realm, username.trim().toLowerCase());
  }

  accounts(participantDipId: string | null): Promise<PortalAccount[]> {
    return this.store.accounts(participantDipId);
  }

  /** The account's TOTP secret; null when it has none yet (it enrols at its next sign-in). */
  private totpSecret(account: PortalAccount): string | null {
    return account.totpSecretSealed === null ? null : this.open(account.totpSecretSealed, { realm: realmOf(account), username: account.username });
  }

  /** A TOTP secret as stored, bound to its account (an enrolment's secret becomes the account's as it is). */
  private sealed(secret: string, account: PortalAccount): string {
    const sealed = this.sealer.seal(secret, 'totpSecret', totpRecord({ realm: realmOf(account), username: account.username }));
    return Buffer.isBuffer(sealed) ? sealed.toString('base64') : `plain:${sealed}`;
  }

  private open(s: string, owner: { realm: PortalRealm; username: string }): string {
    return s.startsWith('plain:') ? s.slice(6) : this.sealer.open(Buffer.from(s, 'base64'), 'totpSecret', totpRecord(owner)).toString('utf8');
  }
}

/** Why a participant's administrator was not disabled or demoted: none other is enabled (nothing changed). */
function lastAdministrator(target: PortalAccount): { problem: string; status: 409 } {
  return { problem: `${target.username} is ${target.participantDipId ?? ''}'s last enabled administrator: make another user an administrator first`, status: 409 };
}

/** What a password the person chose sets: no longer their administrator's, so no first password's expiry. */
const OWN_PASSWORD = { mustChangePassword: false, firstPasswordExpiresAt: null } as const;

/**
 * The account is on a first password (no factor yet, or its password still to be changed) whose time is
 * over. One without an expiry (made before, until expireOldFirstPasswords gives it one) is not.
 */
export function firstPasswordExpired(a: Pick<PortalAccount, 'totpSecretSealed' | 'mustChangePassword' | 'firstPasswordExpiresAt'>, now: number): boolean {
  const onFirst = a.totpSecretSealed === null || a.mustChangePassword === true;
  return onFirst && typeof a.firstPasswordExpiresAt === 'number' && a.firstPasswordExpiresAt <= now;
}

/** What a TOTP secret is bound to: its account, by realm and name (names are unique within a realm only). */
function totpRecord(owner: { realm: PortalRealm; username: string }): string {
  return `${owner.realm}:${owner.username}`;
}
