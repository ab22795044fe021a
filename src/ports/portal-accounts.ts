/**
 * Accounts of the people who use the portals: a participant's users (created by its administrator) and
 * the DIP's operators. Only hashes and sealed secrets are kept: the password as a scrypt hash, the TOTP
 * secret sealed by the at-rest sealer.
 */
export interface PortalAccount {
  /** Unique across the DIP (sign-in name). */
  username: string;
  /** The participant the user acts for; null for an operator of the DIP. */
  participantDipId: string | null;
  /** May create and disable the participant's users (an operator: the operator portal's user management). */
  admin: boolean;
  displayName: string;
  /** scrypt$N$r$p$salt$hash (src/security/password.ts). */
  passwordHash: string;
  /** The TOTP secret (base32), sealed at rest (base64 of the sealed bytes). */
  totpSecretSealed: string;
  /** The last TOTP time step accepted: a code is good for one sign-in only. */
  lastTotpStep: number;
  /** Raised by sign-out and by disabling: every session issued under an older value is refused. */
  sessionEpoch: number;
  disabled: boolean;
  /**
   * The password is still the one its administrator chose and saw: the account signs in only by choosing
   * its own (absent on records made before this rule, which count as chosen).
   */
  mustChangePassword?: boolean;
  createdAt: number;
  createdBy: string;
}

/** What a change to an account may set; every change also ends the account's sessions (its epoch goes up by one). */
export type AccountChange = Partial<Pick<PortalAccount, 'passwordHash' | 'mustChangePassword' | 'disabled'>>;

export interface PortalAccounts {
  /** Adds an account; false when the username is taken (nothing changed). */
  createAccount(account: PortalAccount): Promise<boolean>;
  account(username: string): Promise<PortalAccount | undefined>;
  /** A participant's users (a DIP ID), the operators (null), oldest first. */
  accounts(participantDipId: string | null): Promise<PortalAccount[]>;
  /**
   * Sets the fields of `change` and raises the session epoch by one in a single conditional write that
   * touches nothing else of the record, so changes made on several nodes at once never undo each other
   * (a password change on one node cannot put back an account another disabled). `when`: only while the
   * epoch is still `epoch` and, with `enabled`, the account is enabled. The record as changed; undefined
   * when there is no such account or a condition failed.
   */
  changeAccount(username: string, change: AccountChange, when?: { epoch?: number; enabled?: boolean }): Promise<PortalAccount | undefined>;
  /**
   * Records that a TOTP code of `step` signed in, only if no code of that step or a later one did: one
   * conditional write, so a code is good once across every node sharing the store. False: it was used.
   */
  claimTotpStep(username: string, step: number): Promise<boolean>;
  /**
   * Records a sign-in attempt of `name` (an account's or not: they are counted alike, so no count tells
   * them apart) at `at`, forgetting every attempt older than `since`; answers the row's id and the name's
   * attempts since `since`, oldest first, this one included. One row per attempt, so attempts counted at
   * once on several nodes are all counted.
   */
  recordSignInAttempt(name: string, at: number, since: number): Promise<{ id: number; attempts: number[] }>;
  /** Forgets one attempt (refused before any check, or not a failure). */
  forgetSignInAttempt(id: number): Promise<void>;
  /** Forgets every attempt of the name (it signed in). */
  clearSignInAttempts(name: string): Promise<void>;
}
