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

export interface PortalAccounts {
  /** Adds an account; false when the username is taken (nothing changed). */
  createAccount(account: PortalAccount): Promise<boolean>;
  account(username: string): Promise<PortalAccount | undefined>;
  /** A participant's users (a DIP ID), the operators (null), oldest first. */
  accounts(participantDipId: string | null): Promise<PortalAccount[]>;
  /** Replaces an existing account's record (same username). */
  updateAccount(account: PortalAccount): Promise<void>;
  /**
   * Records that a TOTP code of `step` signed in, only if no code of that step or a later one did: one
   * conditional write, so a code is good once across every node sharing the store. False: it was used.
   */
  claimTotpStep(username: string, step: number): Promise<boolean>;
  /**
   * A name's recent failed sign-ins (epoch ms, oldest first), whether or not an account has the name: kept
   * in the store, so every node sharing it counts the same, and alike for every name, so the count tells
   * nobody which names are accounts.
   */
  signInFailures(name: string): Promise<number[]>;
  /** Sets them (none: forgets the name), and forgets every name whose last failure is older than `forgetBefore`. */
  setSignInFailures(name: string, failures: readonly number[], forgetBefore: number): Promise<void>;
}
