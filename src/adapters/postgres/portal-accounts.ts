import { realmOf, type AccountChange, type ChangeCondition, type PendingTotpEnrolment, type PortalAccount, type PortalAccounts, type PortalRealm, type TotpActivation, type TotpReset } from '../../ports/portal-accounts.js';
import { activationChange, type EnrolmentRow, enrolmentOf } from '../portal-enrolment-row.js';
import type { PgDatabase } from './database.js';

/**
 * The change ($1) merged into the record as SQLite's json_patch merges it (RFC 7396, one level): a field
 * given null is removed, not kept as null (a cleared firstPasswordExpiresAt reads alike from both stores).
 */
const MERGE_PATCH = "((record - ARRAY(SELECT key FROM jsonb_each($1::jsonb) WHERE value = 'null'::jsonb)) || jsonb_strip_nulls($1::jsonb))";

/** One row per account, keyed by realm and name (PortalRealm); the record is jsonb (it holds only hashes and sealed secrets). */
export class PgPortalAccounts implements PortalAccounts {
  constructor(private readonly d: PgDatabase) {}

  async createAccount(a: PortalAccount): Promise<boolean> {
    const r = await this.d.tx((c) =>
      c.query('INSERT INTO portal_accounts (realm, username, participant_dip_id, record, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (realm, username) DO NOTHING', [
        realmOf(a),
        a.username,
        a.participantDipId,
        JSON.stringify(a),
        a.createdAt,
      ]),
    );
    return r.rowCount === 1;
  }

  async account(realm: PortalRealm, username: string): Promise<PortalAccount | undefined> {
    const [row] = await this.d.query<{ record: PortalAccount }>('SELECT record FROM portal_accounts WHERE realm = $1 AND username = $2', [realm, username]);
    return row?.record;
  }

  async accounts(participantDipId: string | null): Promise<PortalAccount[]> {
    const rows =
      participantDipId === null
        ? await this.d.query<{ record: PortalAccount }>('SELECT record FROM portal_accounts WHERE participant_dip_id IS NULL ORDER BY created_at, username')
        : await this.d.query<{ record: PortalAccount }>('SELECT record FROM portal_accounts WHERE participant_dip_id = $1 ORDER BY created_at, username', [participantDipId]);
    return rows.map((r) => r.record);
  }

  async changeAccount(realm: PortalRealm, username: string, change: AccountChange, when: ChangeCondition = {}): Promise<PortalAccount | undefined> {
    // || merges the change's fields in; the epoch is raised from the stored one, not from a copy read earlier.
    const { rows } = await this.d.tx(async (c) => {
      // Under READ COMMITTED the UPDATE's EXISTS reads the others as they were when it began, so two
      // administrators disabling each other at once would each still see the other enabled (write skew).
      // Locking the participant's accounts first, in one order, makes the second wait for the first's
      // commit; its UPDATE, a new statement, then counts the others as they are.
      if (when.keepingAdmin === true) {
        await c.query('SELECT 1 FROM portal_accounts WHERE realm = $1 AND participant_dip_id = (SELECT participant_dip_id FROM portal_accounts WHERE realm = $1 AND username = $2) ORDER BY username FOR UPDATE', [realm, username]);
      }
      return c.query<{ record: PortalAccount }>(
        `UPDATE portal_accounts SET record = ${MERGE_PATCH} || jsonb_build_object('sessionEpoch', (record->>'sessionEpoch')::bigint + 1)
         WHERE realm = $5 AND username = $2 AND ($3::bigint IS NULL OR (record->>'sessionEpoch')::bigint = $3) AND (NOT $4::boolean OR NOT (record->>'disabled')::boolean)
           AND (NOT $6::boolean OR EXISTS (SELECT 1 FROM portal_accounts o WHERE o.realm = $5 AND o.participant_dip_id = portal_accounts.participant_dip_id AND o.username <> $2
             AND NOT (o.record->>'disabled')::boolean AND coalesce(o.record->>'level', CASE WHEN (o.record->>'admin')::boolean THEN 'admin' END) = 'admin'))
         RETURNING record`,
        [JSON.stringify(change), username, when.epoch ?? null, when.enabled === true, realm, when.keepingAdmin === true],
      );
    });
    return rows[0]?.record;
  }

  async claimTotpStep(realm: PortalRealm, username: string, step: number): Promise<boolean> {
    const { rowCount } = await this.d.tx((c) =>
      c.query("UPDATE portal_accounts SET record = jsonb_set(record, '{lastTotpStep}', to_jsonb($1::bigint)) WHERE realm = $3 AND username = $2 AND (record->>'lastTotpStep')::bigint < $1", [step, username, realm]),
    );
    return rowCount === 1;
  }

  async countSession(realm: PortalRealm, username: string): Promise<number | undefined> {
    const { rows } = await this.d.tx((c) =>
      c.query<{ n: number }>(
        "UPDATE portal_accounts SET record = jsonb_set(record, '{sessionsIssued}', to_jsonb(coalesce((record->>'sessionsIssued')::integer, 0) + 1)) WHERE realm = $1 AND username = $2 RETURNING (record->>'sessionsIssued')::integer AS n",
        [realm, username],
      ),
    );
    return rows[0]?.n;
  }

  async startTotpEnrolment(e: PendingTotpEnrolment): Promise<PendingTotpEnrolment | undefined> {
    return this.d.tx(async (c) => {
      // Two starts at once: the second's insert waits for the first's row and then does nothing, and its
      // SELECT (a statement of its own, READ COMMITTED) reads the first's.
      await c.query('DELETE FROM portal_totp_enrolments WHERE expires_at <= $1', [e.startedAt]);
      // The account's enrolment begun under an older epoch can never complete (see completeTotpEnrolment).
      await c.query(
        `DELETE FROM portal_totp_enrolments e WHERE e.realm = $1 AND e.username = $2
         AND e.epoch IS DISTINCT FROM (SELECT (a.record->>'sessionEpoch')::bigint FROM portal_accounts a WHERE a.realm = e.realm AND a.username = e.username)`,
        [e.realm, e.username],
      );
      await c.query(
        'INSERT INTO portal_totp_enrolments (realm, username, token_hash, secret_sealed, epoch, started_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (realm, username) DO NOTHING',
        [e.realm, e.username, e.tokenHash, e.secretSealed, e.epoch, e.startedAt, e.expiresAt],
      );
      const { rows } = await c.query<EnrolmentRow>('SELECT * FROM portal_totp_enrolments WHERE realm = $1 AND username = $2', [e.realm, e.username]);
      // Empty: the row the insert gave way to was completed (deleted) by a commit between the two statements.
      const row = rows[0];
      return row && enrolmentOf(row);
    });
  }

  async totpEnrolment(tokenHash: string): Promise<PendingTotpEnrolment | undefined> {
    const [row] = await this.d.query<EnrolmentRow>('SELECT * FROM portal_totp_enrolments WHERE token_hash = $1', [tokenHash]);
    return row && enrolmentOf(row);
  }

  async completeTotpEnrolment(tokenHash: string, now: number, activation: TotpActivation): Promise<PortalAccount | undefined> {
    return this.d.tx(async (c) => {
      // Locked, so a second completion with the same token waits and then finds it gone.
      const { rows: pending } = await c.query<EnrolmentRow>('SELECT * FROM portal_totp_enrolments WHERE token_hash = $1 AND expires_at > $2 FOR UPDATE', [tokenHash, now]);
      const e = pending[0];
      if (!e) return undefined;
      // Only an enabled account still without a second factor, of the epoch the enrolment began under.
      const { rows } = await c.query<{ record: PortalAccount }>(
        `UPDATE portal_accounts SET record = ${MERGE_PATCH} || jsonb_build_object('sessionEpoch', (record->>'sessionEpoch')::bigint + 1)
         WHERE realm = $4 AND username = $2 AND record->'totpSecretSealed' = 'null'::jsonb AND NOT (record->>'disabled')::boolean AND (record->>'sessionEpoch')::bigint = $3 RETURNING record`,
        [JSON.stringify(activationChange(activation)), e.username, e.epoch, e.realm],
      );
      if (!rows[0]) return undefined;
      await c.query('DELETE FROM portal_totp_enrolments WHERE token_hash = $1', [tokenHash]);
      return rows[0].record;
    });
  }

  async resetTotpFactor(username: string, passwordHash: string, of: string | null, expiresAt: number): Promise<TotpReset | undefined> {
    return this.d.tx(async (c) => {
      // Read and locked in the same transaction as the change, so what the journal says it had is what was
      // reset. IS NOT DISTINCT FROM: null (an operator's account) is then a value like a DIP ID.
      const realm = realmOf({ participantDipId: of });
      const before = await c.query<{ record: PortalAccount }>('SELECT record FROM portal_accounts WHERE realm = $3 AND username = $1 AND participant_dip_id IS NOT DISTINCT FROM $2 FOR UPDATE', [username, of, realm]);
      if (!before.rows[0]) return undefined;
      // || keeps a null it is given (unlike a merge patch): the secret is stored as null, not dropped.
      const { rows } = await c.query<{ record: PortalAccount }>(
        `UPDATE portal_accounts SET record = (record || $1::jsonb) || jsonb_build_object('sessionEpoch', (record->>'sessionEpoch')::bigint + 1)
         WHERE realm = $4 AND username = $2 AND participant_dip_id IS NOT DISTINCT FROM $3 RETURNING record`,
        [JSON.stringify({ totpSecretSealed: null, passwordHash, mustChangePassword: true, firstPasswordExpiresAt: expiresAt }), username, of, realm],
      );
      if (!rows[0]) return undefined;
      const dropped = await c.query('DELETE FROM portal_totp_enrolments WHERE realm = $1 AND username = $2', [realm, username]);
      await c.query('DELETE FROM portal_sign_in_attempts WHERE realm = $1 AND name = $2', [realm, username]);
      return { account: rows[0].record, hadFactor: before.rows[0].record.totpSecretSealed !== null, pendingEnrolment: (dropped.rowCount ?? 0) > 0 };
    });
  }

  async expireFirstPasswords(expiresAt: number): Promise<number> {
    // A first password with no expiry (absent, or null once cleared): no factor yet, or its password still to be changed.
    const n = await this.d.tx((c) =>
      c.query(
        `UPDATE portal_accounts SET record = record || jsonb_build_object('firstPasswordExpiresAt', $1::bigint)
         WHERE coalesce(record->'firstPasswordExpiresAt', 'null'::jsonb) = 'null'::jsonb
           AND (coalesce(record->'totpSecretSealed', 'null'::jsonb) = 'null'::jsonb OR (record->>'mustChangePassword')::boolean IS TRUE)`,
        [expiresAt],
      ),
    );
    return n.rowCount ?? 0;
  }

  async recordSignInAttempt(realm: PortalRealm, name: string, at: number, since: number): Promise<{ id: number; attempts: number[] }> {
    return this.d.tx(async (c) => {
      // One name's attempts are recorded one at a time across every node, so each counts all before it.
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`opendip.sign-in:${realm}:${name}`]);
      await c.query('DELETE FROM portal_sign_in_attempts WHERE at < $1', [since]);
      const { rows } = await c.query<{ id: number }>('INSERT INTO portal_sign_in_attempts (realm, name, at) VALUES ($1, $2, $3) RETURNING id', [realm, name, at]);
      // Rows recorded before the realms (realm NULL) are counted in neither: they leave with the window.
      const seen = await c.query<{ at: number }>('SELECT at FROM portal_sign_in_attempts WHERE realm = $1 AND name = $2 AND at >= $3 ORDER BY at, id', [realm, name, since]);
      return { id: rows[0]!.id, attempts: seen.rows.map((r) => r.at) };
    });
  }

  async forgetSignInAttempt(id: number): Promise<void> {
    await this.d.tx((c) => c.query('DELETE FROM portal_sign_in_attempts WHERE id = $1', [id]));
  }

  async clearSignInAttempts(realm: PortalRealm, name: string): Promise<void> {
    await this.d.tx((c) => c.query('DELETE FROM portal_sign_in_attempts WHERE realm = $1 AND name = $2', [realm, name]));
  }
}
