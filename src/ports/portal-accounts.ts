import type { UserLevel } from '../domain/portal-levels.js';

/**
 * Accounts of the people who use the portals: a participant's users (created by its administrator) and
 * the DIP's operators. Only hashes and sealed secrets are kept: the password as a scrypt (or, under FIPS mode, PBKDF2) hash, the TOTP
 * secret sealed by the at-rest sealer.
 */
/**
 * The two kinds of account, each a namespace of its own: a participant's users (the user portal) and the
 * DIP's operators (the operator portal and the operator API). A name taken in one says nothing of the
 * other, so no answer in one realm tells whether a name exists in the other (SECURITY.md "Portal
 * accounts"). Among users a name is unique across participants: the sign-in form asks for the name only.
 */
export type PortalRealm = 'user' | 'operator';

/** The realm an account belongs to: an operator's has no participant. */
export const realmOf = (a: Pick<PortalAccount, 'participantDipId'>): PortalRealm => (a.participantDipId === null ? 'operator' : 'user');

export interface PortalAccount {
  /** The sign-in name: unique within its realm (realmOf), not across the two. */
  username: string;
  /** The participant the user acts for; null for an operator of the DIP. */
  participantDipId: string | null;
  /** May create and disable the participant's users (an operator: the operator portal's user management). */
  admin: boolean;
  /**
   * A participant's user's level (src/domain/portal-levels.ts), `admin` exactly when `admin` is true.
   * Absent on operators' accounts and on users' stored before levels: read by levelOf (not rewritten).
   */
  level?: UserLevel;
  displayName: string;
  /** scrypt$N$r$p$salt$hash, or pbkdf2-sha256$iterations$salt$hash under FIPS mode (src/security/portal-credentials.ts). */
  passwordHash: string;
  /**
   * The TOTP secret (base32), sealed at rest (base64 of the sealed bytes). Null: no second factor yet: the
   * person enrols one at their first sign-in (PendingTotpEnrolment), so no secret travels from whoever
   * created the account to its owner.
   */
  totpSecretSealed: string | null;
  /** The last TOTP time step accepted: a code is good for one sign-in only. */
  lastTotpStep: number;
  /** Raised by sign-out and by disabling: every session issued under an older value is refused. */
  sessionEpoch: number;
  /**
   * Portal sessions ever started for the account (countSession); each session carries its number, and one
   * more than `portal.maxSessionsPerUser` behind this is ended. Absent on records made before: none.
   */
  sessionsIssued?: number;
  disabled: boolean;
  /**
   * The password is still the one its administrator chose and saw: the account signs in only by choosing
   * its own (absent on records made before this rule, which count as chosen).
   */
  mustChangePassword?: boolean;
  /**
   * When the account's first password (made at its creation, or by a reset of its factor) stops signing in,
   * epoch ms: until then it enrols a TOTP factor and chooses the person's own password; after it, only an
   * administrator's reset gives a new one. Null or absent once the person chose their own (or on accounts
   * made before, given one from the upgrade by expireFirstPasswords).
   */
  firstPasswordExpiresAt?: number | null;
  createdAt: number;
  createdBy: string;
}

/** What a change to an account may set; every change also ends the account's sessions (its epoch goes up by one). */
export type AccountChange = Partial<Pick<PortalAccount, 'passwordHash' | 'mustChangePassword' | 'firstPasswordExpiresAt' | 'disabled' | 'level' | 'admin'>>;

/** An account whose second factor was reset, and what it had before the reset. */
export interface TotpReset {
  account: PortalAccount;
  /** It had a TOTP secret in force. */
  hadFactor: boolean;
  /** An enrolment of it was under way (now dropped). */
  pendingEnrolment: boolean;
}

/**
 * An account's second factor being set up: started by a sign-in with the right password of an account
 * without one, in force once the person sends a code of this secret with the token before `expiresAt`.
 * One per account. The token is a random 256-bit value held only by the person: kept as its SHA-256.
 */
export interface PendingTotpEnrolment {
  realm: PortalRealm;
  username: string;
  /** SHA-256 (hex) of the enrolment token. */
  tokenHash: string;
  /** The new TOTP secret, sealed as PortalAccount.totpSecretSealed is. */
  secretSealed: string;
  /** The account's session epoch when it started: any change of the account since (disabled, signed out, new password) voids it. */
  epoch: number;
  startedAt: number;
  expiresAt: number;
}

/** What completing an enrolment writes beside the secret: the step of the code that confirmed it, and a password the person chose. */
export interface TotpActivation {
  secretSealed: string;
  step: number;
  passwordHash?: string;
}

/** When changeAccount writes (PortalAccounts.changeAccount). */
export interface ChangeCondition {
  epoch?: number;
  enabled?: boolean;
  keepingAdmin?: boolean;
}

export interface PortalAccounts {
  /** Adds an account; false when the username is taken in the account's realm (nothing changed). */
  createAccount(account: PortalAccount): Promise<boolean>;
  account(realm: PortalRealm, username: string): Promise<PortalAccount | undefined>;
  /** A participant's users (a DIP ID), the operators (null), oldest first. */
  accounts(participantDipId: string | null): Promise<PortalAccount[]>;
  /**
   * Sets the fields of `change` and raises the session epoch by one in a single conditional write that
   * touches nothing else of the record, so changes made on several nodes at once never undo each other
   * (a password change on one node cannot put back an account another disabled). `when`: only while the
   * epoch is still `epoch`; with `enabled`, while the account is enabled; with `keepingAdmin`, while
   * another enabled administrator of its participant remains, checked in the same write against the
   * others' changes made at once (two administrators disabling each other: one of them stays). The
   * record as changed; undefined when there is no such account or a condition failed.
   */
  changeAccount(realm: PortalRealm, username: string, change: AccountChange, when?: ChangeCondition): Promise<PortalAccount | undefined>;
  /**
   * Records that a TOTP code of `step` signed in, only if no code of that step or a later one did: one
   * conditional write, so a code is good once across every node sharing the store. False: it was used.
   */
  claimTotpStep(realm: PortalRealm, username: string, step: number): Promise<boolean>;
  /**
   * Counts a new portal session of the account: raises its sessionsIssued by one (from the stored value, in
   * one write, so sign-ins on several nodes at once each get a number of their own) and answers the new
   * value, the session's number. Undefined: no such account.
   */
  countSession(realm: PortalRealm, username: string): Promise<number | undefined>;
  /**
   * Stores `e` as the account's pending enrolment unless one is pending already (one whose expiresAt is
   * after e.startedAt): one conditional write, so two sign-ins at once on two nodes cannot both start one
   * and neither can replace a secret someone is adding to their app. Forgotten first, in the same
   * transaction: expired enrolments of every account, and the account's pending one if it was started
   * under another session epoch than the account's stored one (the account was disabled, signed out
   * everywhere or otherwise changed since: that enrolment can never complete, so it must not block a new
   * one until it expires). Answers the enrolment pending afterwards: `e` if it was stored, else the one in
   * its way; undefined when the one in its way was completed (or removed) between the two (PostgreSQL's
   * READ COMMITTED statements see each other's commits): the caller starts nothing.
   */
  startTotpEnrolment(e: PendingTotpEnrolment): Promise<PendingTotpEnrolment | undefined>;
  /** The pending enrolment with this token hash, expired or not (the caller decides). */
  totpEnrolment(tokenHash: string): Promise<PendingTotpEnrolment | undefined>;
  /**
   * Completes an enrolment, in one transaction: removes the pending enrolment of `tokenHash` if it is
   * still unexpired at `now`, and puts its secret in force on the account (with `activation`'s step and
   * any new password, mustChangePassword cleared, the session epoch raised by one), only while the account
   * is enabled, has no second factor, and its epoch is still the enrolment's. The account as changed;
   * undefined (and nothing changed) when any of that fails.
   */
  completeTotpEnrolment(tokenHash: string, now: number, activation: TotpActivation): Promise<PortalAccount | undefined>;
  /**
   * Takes the account's second factor away (a person who lost theirs), in one transaction: the TOTP secret
   * cleared (null: the next sign-in enrols a new one), `passwordHash` in force and to be changed at that
   * sign-in (mustChangePassword), the session epoch raised by one (every session ends), and the account's
   * pending enrolment removed (its secret is not the one to take over), and the name's failed sign-in
   * attempts forgotten (else a person locked out could not use the new first password until the lockout
   * ends). `of`: the account must belong to this participant (a DIP ID), or be an operator's (null), read
   * in the same transaction, so that whoever may reset the factors of one kind of account cannot reset
   * another's of the same name (the realm follows from `of`). The account as changed and what it had before (for the journal);
   * undefined (nothing changed) when there is none of that kind. The new first password stops signing in at
   * `expiresAt` (firstPasswordExpiresAt).
   */
  resetTotpFactor(username: string, passwordHash: string, of: string | null, expiresAt: number): Promise<TotpReset | undefined>;
  /**
   * Gives every account still on a first password (no TOTP factor, or its password to be changed) and with
   * no firstPasswordExpiresAt yet that expiry: accounts made before first passwords expired get one from
   * the upgrade, not forever. One write; answers how many were given one (none on every later start).
   */
  expireFirstPasswords(expiresAt: number): Promise<number>;
  /**
   * Records a sign-in attempt of `name` in `realm` (an account's or not: they are counted alike, so no
   * count tells them apart; a name's failures in one realm hold back no sign-in in the other) at `at`, forgetting every attempt older than `since`; answers the row's id and the name's
   * attempts since `since`, oldest first, this one included. One row per attempt, so attempts counted at
   * once on several nodes are all counted.
   */
  recordSignInAttempt(realm: PortalRealm, name: string, at: number, since: number): Promise<{ id: number; attempts: number[] }>;
  /** Forgets one attempt (refused before any check, or not a failure). */
  forgetSignInAttempt(id: number): Promise<void>;
  /** Forgets every attempt of the name in the realm (it signed in). */
  clearSignInAttempts(realm: PortalRealm, name: string): Promise<void>;
}
