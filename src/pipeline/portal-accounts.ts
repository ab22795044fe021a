import type { Clock } from '../ports/clock.js';
import type { PortalAccount, PortalAccounts } from '../ports/portal-accounts.js';
import type { ValueSealer } from '../ports/backend.js';
import { acceptTotp, hashPassword, newPassword, newTotpSecret, passwordProblem, totpUri, verifyPassword } from '../security/portal-credentials.js';
import type { SessionClaims } from '../security/portal-session.js';

export const USERNAME_PATTERN = /^[a-z0-9][a-z0-9._-]{2,63}$/;

/** Failed sign-ins an account takes within the window before it is locked for the rest of the window. */
const MAX_FAILURES = 5;
const FAILURE_WINDOW_MS = 15 * 60_000;
/**
 * Sign-ins to one name are checked one at a time, so each guess sees the failures before it and a code
 * is used once; beyond this many waiting, more are refused at once (a burst is not a queue to grow).
 */
const MAX_WAITING = 4;


export interface NewAccount {
  username: string;
  displayName: string;
  participantDipId: string | null;
  admin: boolean;
  createdBy: string;
}

/** What the administrator is shown once, to hand to the new user: nothing of it is kept in the clear. */
export interface Enrolment {
  account: PortalAccount;
  password: string;
  totpSecret: string;
  totpUri: string;
}

/** `choosePassword`: the password and code were right, but the account must choose its own password to sign in. */
export type SignIn = { ok: true; account: PortalAccount } | { ok: false; problem: string; choosePassword?: true };

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

  constructor(
    private readonly store: PortalAccounts,
    private readonly sealer: Pick<ValueSealer, 'seal' | 'open'>,
    private readonly clock: Clock,
    private readonly issuer: string,
    private readonly participantExists: (dipId: string) => boolean,
  ) {}

  async create(req: NewAccount): Promise<Enrolment | { problem: string }> {
    const username = req.username.trim().toLowerCase();
    if (!USERNAME_PATTERN.test(username)) return { problem: `username '${req.username.slice(0, 64)}' must be 3 to 64 lower-case letters, digits, '.', '_' or '-'` };
    const displayName = req.displayName.trim();
    if (displayName.length === 0 || displayName.length > 100) return { problem: 'name must be 1 to 100 characters' };
    if (req.participantDipId !== null && !this.participantExists(req.participantDipId)) return { problem: `${req.participantDipId} is not a registered participant` };
    const password = newPassword();
    const totpSecret = newTotpSecret();
    const sealed = this.sealer.seal(totpSecret);
    const account: PortalAccount = {
      username,
      participantDipId: req.participantDipId,
      admin: req.admin,
      displayName,
      passwordHash: await hashPassword(password),
      totpSecretSealed: Buffer.isBuffer(sealed) ? sealed.toString('base64') : `plain:${sealed}`,
      lastTotpStep: 0,
      sessionEpoch: 0,
      disabled: false,
      mustChangePassword: true,
      createdAt: this.clock.now(),
      createdBy: req.createdBy,
    };
    if (!(await this.store.createAccount(account))) return { problem: `username '${username}' is taken` };
    return { account, password, totpSecret, totpUri: totpUri(totpSecret, username, this.issuer) };
  }

  /**
   * Password and TOTP code, both right, for an enabled account, not locked by recent failures. The answer
   * to any failure is the same, and takes as long, so it does not tell which part was wrong or whether
   * the account exists. Sign-ins to one name run one at a time on a node (see MAX_WAITING); every
   * attempt is recorded in the store before it is checked, so attempts on several nodes at once are
   * all counted and at most MAX_FAILURES are checked in a window, cluster-wide.
   *
   * `realm`: the account must be a participant's user ('user') or an operator ('operator'); `eligible`,
   * a further check of the account (an operator account in force). Either failing is a wrong sign-in,
   * decided before anything changes. `chosenPassword` replaces the password as the sign-in succeeds
   * (every other session ends). An account whose password its administrator chose must give one: until
   * then the answer is `choosePassword`, and the code is not used up (the person types it again with the
   * new password).
   */
  async signIn(
    usernameGiven: string,
    password: string,
    code: string,
    options: { realm?: 'user' | 'operator'; eligible?: (account: PortalAccount) => Promise<boolean>; chosenPassword?: string } = {},
  ): Promise<SignIn> {
    const { realm, eligible, chosenPassword } = options;
    const username = usernameGiven.trim().toLowerCase();
    const refused: SignIn = { ok: false, problem: 'the username, password or code is wrong' };
    // No account can have such a name: nothing to look up, nothing to remember (an attacker's junk names
    // would otherwise be rows to grow).
    if (!USERNAME_PATTERN.test(username)) return refused;
    const busy: SignIn = { ok: false, problem: 'a sign-in with this username is already being checked: try again in a moment' };
    return this.oneAtATime(username, busy, async () => {
      const now = this.clock.now();
      const attempt = await this.attempt(username, now);
      if (!attempt.ok) return { ok: false, problem: `too many failed sign-ins: try again after ${attempt.lockedUntil}` };
      const account = await this.store.account(username);
      const passwordOk = await verifyPassword(password, account ? account.passwordHash : await this.hashOfNoAccount());
      const step = account && passwordOk ? acceptTotp(this.totpSecret(account), code.trim(), now, account.lastTotpStep) : null;
      const otherRealm = account !== undefined && realm !== undefined && (realm === 'operator') !== (account.participantDipId === null);
      // A failure keeps its recorded attempt: that is the count.
      if (!account || account.disabled || step === null || otherRealm || (eligible && !(await eligible(account)))) return refused;
      if (chosenPassword === undefined && account.mustChangePassword === true) {
        await this.store.forgetSignInAttempt(attempt.id);
        return { ok: false, problem: 'your administrator chose this password and saw it: choose your own to sign in', choosePassword: true };
      }
      const problem = chosenPassword === undefined ? null : (passwordProblem(chosenPassword) ?? (chosenPassword === password ? 'the new password must differ from the current one' : null));
      if (problem) {
        await this.store.forgetSignInAttempt(attempt.id);
        return { ok: false, problem, choosePassword: true };
      }
      // The code's step is claimed in the store, so it is good once on every node sharing it (this
      // node's line of sign-ins only holds back the ones sent here).
      if (!(await this.store.claimTotpStep(username, step))) return refused;
      await this.store.clearSignInAttempts(username);
      if (chosenPassword === undefined) return { ok: true, account: { ...account, lastTotpStep: step } };
      // Every session issued before ends (the administrator who knew the first password may hold one);
      // only while nobody has disabled the account or ended its sessions since it was read.
      const changed = await this.store.changeAccount(username, { passwordHash: await hashPassword(chosenPassword), mustChangePassword: false }, { epoch: account.sessionEpoch, enabled: true });
      return changed ? { ok: true, account: changed } : refused;
    });
  }

  /**
   * Records an attempt of the name before it is checked: refused (and forgotten: a refusal is not a
   * failure) when MAX_FAILURES attempts are already in the window. Names of no account cost a row each
   * only for the window (each row also cost its sender a password check).
   */
  private async attempt(username: string, now: number): Promise<{ ok: true; id: number } | { ok: false; lockedUntil: string }> {
    const { id, attempts } = await this.store.recordSignInAttempt(username, now, now - FAILURE_WINDOW_MS + 1);
    if (attempts.length <= MAX_FAILURES) return { ok: true, id };
    await this.store.forgetSignInAttempt(id);
    return { ok: false, lockedUntil: new Date(attempts[0]! + FAILURE_WINDOW_MS).toISOString() };
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

  /** The account a session belongs to, while the session's epoch is current and the account enabled. */
  async fromSession(claims: SessionClaims): Promise<PortalAccount | undefined> {
    const account = await this.store.account(claims.username);
    return account && !account.disabled && account.sessionEpoch === claims.epoch ? account : undefined;
  }

  /** Ends every session of the account (one conditional write: nothing running beside it can undo it). */
  async signOutEverywhere(username: string): Promise<void> {
    await this.store.changeAccount(username, {});
  }

  /** Disables or enables the account, ending its sessions. */
  async setDisabled(username: string, disabled: boolean): Promise<boolean> {
    return (await this.store.changeAccount(username, { disabled })) !== undefined;
  }

  /**
   * The account's own password change (its administrator chose the first): the current password is
   * checked under the same one-at-a-time rule and lockout as a sign-in, so a session left open is no
   * way to guess it. Every session ends.
   */
  async changePassword(username: string, current: string, next: string): Promise<string | null> {
    const problem = passwordProblem(next);
    if (problem) return problem;
    if (next === current) return 'the new password must differ from the current one';
    return this.oneAtATime(username, 'a password change for this account is already being checked: try again in a moment', async () => {
      const attempt = await this.attempt(username, this.clock.now());
      if (!attempt.ok) return `too many failed attempts: try again after ${attempt.lockedUntil}`;
      const account = await this.store.account(username);
      if (!account || account.disabled || !(await verifyPassword(current, account.passwordHash))) return 'the current password is wrong';
      await this.store.clearSignInAttempts(username);
      const changed = await this.store.changeAccount(username, { passwordHash: await hashPassword(next), mustChangePassword: false }, { epoch: account.sessionEpoch, enabled: true });
      return changed ? null : 'the account was changed meanwhile (disabled, or signed out everywhere): sign in again';
    });
  }

  account(username: string): Promise<PortalAccount | undefined> {
    return this.store.account(username);
  }

  accounts(participantDipId: string | null): Promise<PortalAccount[]> {
    return this.store.accounts(participantDipId);
  }

  private totpSecret(account: PortalAccount): string {
    const s = account.totpSecretSealed;
    return s.startsWith('plain:') ? s.slice(6) : this.sealer.open(Buffer.from(s, 'base64')).toString('utf8');
  }
}
