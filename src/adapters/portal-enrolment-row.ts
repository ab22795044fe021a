import type { AccountChange, PendingTotpEnrolment, PortalAccount, PortalRealm, TotpActivation } from '../ports/portal-accounts.js';

/** A row of portal_totp_enrolments, as both stores read it (PostgreSQL's bigints as numbers: src/adapters/postgres/pool.ts). */
export interface EnrolmentRow {
  realm: PortalRealm;
  username: string;
  token_hash: string;
  secret_sealed: string;
  epoch: number;
  started_at: number;
  expires_at: number;
}

export const enrolmentOf = (r: EnrolmentRow): PendingTotpEnrolment => ({
  realm: r.realm,
  username: r.username,
  tokenHash: r.token_hash,
  secretSealed: r.secret_sealed,
  epoch: r.epoch,
  startedAt: r.started_at,
  expiresAt: r.expires_at,
});

/**
 * The fields a completed enrolment merges into the account record: the secret and the confirming code's
 * step, and a password the person chose (no longer the one their administrator saw); the first password's
 * expiry cleared.
 */
export const activationChange = (a: TotpActivation): AccountChange & Pick<PortalAccount, 'totpSecretSealed' | 'lastTotpStep'> => ({
  totpSecretSealed: a.secretSealed,
  lastTotpStep: a.step,
  // Enrolled: the first password's time is over (the account signs in with its factor from now on).
  firstPasswordExpiresAt: null,
  ...(a.passwordHash === undefined ? {} : { passwordHash: a.passwordHash, mustChangePassword: false }),
});
