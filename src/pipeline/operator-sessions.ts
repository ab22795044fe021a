import type { OperatorRole } from '../domain/operators.js';
import type { Clock } from '../ports/clock.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { SessionClaims, SessionSigner } from '../security/portal-session.js';
import type { OperatorAccounts, OperatorIdentity } from './operators.js';
import type { PortalAccount } from '../ports/portal-accounts.js';
import type { PortalAccountService, SignIn } from './portal-accounts.js';

/** Bearer tokens from a sign-in start with this, so the operator API tells them from automation tokens at a glance. */
const PREFIX = 'dipsess_';

export interface OperatorSession {
  token: string;
  expiresAt: string;
  operator: { name: string; role: OperatorRole };
}

/**
 * `choosePassword`: right credentials, but the account signs in only with a password of its own
 * (newPassword). `enrol`: the right password of an account without a second factor: a TOTP enrolment
 * (confirmEnrolment finishes the sign-in); `enrolmentPending`: one is already under way.
 */
export type SessionAnswer = { ok: true; session: OperatorSession } | Extract<SignIn, { ok: false }>;

/**
 * Operators who are people sign in to the operator API (and `dip login`) with their name, password and
 * TOTP code (at the first sign-in, the TOTP is set up first: confirmEnrolment): the same credential and the same checks as the operator portal (src/pipeline/portal-accounts.ts:
 * scrypt, a code good once, failures throttled per name and per client address: src/security/sign-in-throttle.ts). The answer is a bearer token
 * signed with a key of its own in the data directory (so every node sharing it accepts the token, and a
 * portal cookie is no API token), good for `sessionMs`. Signing out, disabling the account or its portal
 * sign-in ends every session at once (the credential's epoch).
 */
export class OperatorSessions {
  constructor(
    private readonly deps: {
      operators: Pick<OperatorAccounts, 'person'>;
      accounts: Pick<PortalAccountService, 'signIn' | 'confirmEnrolment' | 'fromSession' | 'signOutOperatorEverywhere'>;
      signer: Pick<SessionSigner, 'issue' | 'read'>;
      journal: OperatorJournal;
      clock: Clock;
      sessionMs: number;
    },
  ) {}

  static isSessionToken(token: string): boolean {
    return token.startsWith(PREFIX);
  }

  async signIn(name: string, password: string, code: string, newPassword?: string, source?: string): Promise<SessionAnswer> {
    return this.session(newPassword, 'the name, password or code is wrong', (eligible) =>
      this.deps.accounts.signIn(name, password, code, { realm: 'operator', eligible, ...(source === undefined ? {} : { source }), ...(newPassword === undefined ? {} : { chosenPassword: newPassword }) }),
    );
  }

  /**
   * The second step of an operator's first sign-in (signIn answered `enrol`): the enrolment token and a
   * current code of the new secret (and, where the account's creator chose the password, a new one) put
   * the second factor in force, and the answer is a session as a sign-in's is.
   */
  async confirmEnrolment(token: string, code: string, newPassword?: string, source?: string): Promise<SessionAnswer> {
    return this.session(newPassword, 'the code is wrong: send a current code of the new secret', (eligible) =>
      this.deps.accounts.confirmEnrolment(token, code, { realm: 'operator', eligible, ...(source === undefined ? {} : { source }), ...(newPassword === undefined ? {} : { chosenPassword: newPassword }) }),
    );
  }

  /** Runs a sign-in step for an operator account in force, and issues the session (journalled) when it signs in. */
  private async session(newPassword: string | undefined, refusal: string, step: (eligible: (a: PortalAccount) => Promise<boolean>) => Promise<SignIn>): Promise<SessionAnswer> {
    const refused: SessionAnswer = { ok: false, problem: refusal };
    // The credential must be an operator's (not a participant's user), of an enabled operator account:
    // checked before the sign-in changes anything (a new password, the other sessions ended).
    const eligible = async (a: PortalAccount) => (await this.deps.operators.person(a.username)) !== undefined;
    const signed = await step(eligible);
    // What the person can act on is passed on (a wait, a password to choose, an enrolment); the rest is one refusal.
    if (!signed.ok) return signed.retryAfterSeconds !== undefined || signed.choosePassword || signed.enrol || signed.enrolmentPending || signed.enrolmentEnded ? signed : refused;
    const who = await this.deps.operators.person(signed.account.username);
    if (!who) return refused;
    const expiresAt = this.deps.clock.now() + this.deps.sessionMs;
    const { token } = this.deps.signer.issue({ username: who.name, realm: 'operator', epoch: signed.account.sessionEpoch, expiresAt });
    await this.deps.journal.append({ at: this.deps.clock.now(), actor: who.actor, action: 'operator.sign-in', target: who.name, before: null, after: { expiresAt: new Date(expiresAt).toISOString(), ...(newPassword === undefined ? {} : { passwordChanged: true }) }, status: null });
    return { ok: true, session: { token: `${PREFIX}${token}`, expiresAt: new Date(expiresAt).toISOString(), operator: { name: who.name, role: who.role } } };
  }

  /** The operator behind a session token that is signed, unexpired, of the credential's current epoch, and of an enabled account. */
  async identify(bearer: string): Promise<OperatorIdentity | undefined> {
    const claims = this.claims(bearer);
    if (!claims) return undefined;
    const account = await this.deps.accounts.fromSession(claims, 'operator');
    if (!account || account.participantDipId !== null) return undefined;
    return this.deps.operators.person(account.username);
  }

  /**
   * What a session token says, if this DIP signed it and it has not expired: checked without the store
   * (whether its epoch is still current and the account enabled is the store's to say, or OperatorMemory's).
   */
  claims(bearer: string): SessionClaims | undefined {
    if (!bearer.startsWith(PREFIX)) return undefined;
    const claims = this.deps.signer.read(bearer.slice(PREFIX.length), this.deps.clock.now());
    // This signer's key signs operator-API sessions only: one issued before sessions named their realm is an operator's.
    return claims && { ...claims, realm: claims.realm ?? 'operator' };
  }

  /**
   * Ends every session of an operator account, as disabling it does: enabled again, it signs in afresh.
   * Only a person's: an automation account has a token and no sessions, and its name may be a
   * participant's portal user's (names are unique among operator accounts only), whose sessions are not
   * the operator's to end. The credential is ended only if it is an operator's, for the same reason.
   */
  async endAll(who: Pick<OperatorIdentity, 'name' | 'automation'>): Promise<void> {
    if (who.automation) return;
    await this.deps.accounts.signOutOperatorEverywhere(who.name);
  }

  /** Ends every session of the person (the API's and the portal's); false for an automation account, which has none. */
  async signOut(who: OperatorIdentity): Promise<boolean> {
    if (who.automation) return false;
    await this.endAll(who);
    await this.deps.journal.append({ at: this.deps.clock.now(), actor: who.actor, action: 'operator.sign-out', target: who.name, before: null, after: null, status: null });
    return true;
  }
}
