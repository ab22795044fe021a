import { expect } from 'vitest';
import type { Backend } from '../../src/ports/backend.js';
import type { PortalAccount } from '../../src/ports/portal-accounts.js';

/**
 * The portal tables as builds before the realms made them (one namespace: the name alone the key), in
 * SQL both engines take, with an operator, a participant's user, the user's pending enrolment and one of a name
 * with no account (it can never complete: both engines drop it): what a
 * store upgraded in place must keep working (test/sqlite-store.test.ts, test/postgres-store.test.ts).
 */
export const preRealmDdl = (engine: 'sqlite' | 'postgres'): string => `
CREATE TABLE portal_accounts (username TEXT PRIMARY KEY, participant_dip_id TEXT, record ${engine === 'sqlite' ? 'TEXT' : 'jsonb'} NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE portal_sign_in_attempts (id ${engine === 'sqlite' ? 'INTEGER PRIMARY KEY AUTOINCREMENT' : 'bigserial PRIMARY KEY'}, name TEXT NOT NULL, at BIGINT NOT NULL);
CREATE TABLE portal_totp_enrolments (username TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, secret_sealed TEXT NOT NULL, epoch BIGINT NOT NULL, started_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);`;

const account = (username: string, participantDipId: string | null): PortalAccount => ({
  username,
  participantDipId,
  admin: true,
  displayName: username,
  passwordHash: 'scrypt$16384$8$1$c2FsdA$aGFzaA',
  totpSecretSealed: participantDipId === null ? 'c2VhbGVk' : null,
  lastTotpStep: 0,
  sessionEpoch: 4,
  disabled: false,
  createdAt: 1,
  createdBy: 'test',
});
export const PRE_REALM_OPERATOR = account('ops.olly', null);
export const PRE_REALM_USER = account('sam.admin', '1000000001');

/** The rows, as `INSERT` statements with their values in order (each engine binds them its own way). */
export const PRE_REALM_ROWS: Array<{ sql: string; values: Array<string | number | null> }> = [
  ...[PRE_REALM_OPERATOR, PRE_REALM_USER].map((a) => ({ sql: 'INSERT INTO portal_accounts (username, participant_dip_id, record, created_at) VALUES ($1, $2, $3, $4)', values: [a.username, a.participantDipId, JSON.stringify(a), a.createdAt] })),
  // A failure recorded before the realms: counted in neither realm after the upgrade.
  { sql: 'INSERT INTO portal_sign_in_attempts (name, at) VALUES ($1, $2)', values: ['sam.admin', 4] },
  { sql: 'INSERT INTO portal_totp_enrolments (username, token_hash, secret_sealed, epoch, started_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)', values: ['sam.admin', 'hash-sam', 'sealed-sam', 4, 1_000, 601_000] },
  { sql: 'INSERT INTO portal_totp_enrolments (username, token_hash, secret_sealed, epoch, started_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)', values: ['gone.user', 'hash-gone', 'sealed-gone', 4, 1_000, 601_000] },
];

/** What the upgraded store must answer: each account in its realm, the enrolment in the user's, and the realms now apart. */
export async function expectUpgradedInPlace(backend: Backend): Promise<void> {
  const store = backend.portalAccounts;
  expect(await store.account('operator', 'ops.olly')).toEqual(PRE_REALM_OPERATOR);
  expect(await store.account('user', 'sam.admin')).toEqual(PRE_REALM_USER);
  expect(await store.account('user', 'ops.olly')).toBeUndefined();
  expect(await store.totpEnrolment('hash-sam')).toMatchObject({ realm: 'user', username: 'sam.admin', epoch: 4 });
  expect(await store.totpEnrolment('hash-gone')).toBeUndefined(); // of no account: dropped, not made an operator's
  expect(await store.completeTotpEnrolment('hash-sam', 2_000, { secretSealed: 'sealed-sam', step: 1 })).toMatchObject({ username: 'sam.admin', totpSecretSealed: 'sealed-sam' });
  // The name is now free in the other realm, and taken in its own.
  expect(await store.createAccount({ ...PRE_REALM_USER, participantDipId: null })).toBe(true);
  expect(await store.createAccount({ ...PRE_REALM_OPERATOR, participantDipId: '1000000002' })).toBe(true);
  expect(await store.createAccount(PRE_REALM_USER)).toBe(false);
  expect((await store.recordSignInAttempt('user', 'sam.admin', 5, 0)).attempts).toEqual([5]);
}
