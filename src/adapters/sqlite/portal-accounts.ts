import { realmOf, type AccountChange, type ChangeCondition, type PendingTotpEnrolment, type PortalAccount, type PortalAccounts, type PortalRealm, type TotpActivation, type TotpReset } from '../../ports/portal-accounts.js';
import { activationChange, type EnrolmentRow, enrolmentOf } from '../portal-enrolment-row.js';
import type { SqliteDatabase } from './database.js';

/** One row per account, keyed by realm and name (PortalRealm); the record is JSON (it holds only hashes and sealed secrets). */
export class SqlitePortalAccounts implements PortalAccounts {
  private readonly s;

  constructor(private readonly d: SqliteDatabase) {
    const db = d.db;
    this.s = {
      insert: db.prepare('INSERT INTO portal_accounts (realm, username, participant_dip_id, record, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (realm, username) DO NOTHING'),
      byName: db.prepare<[PortalRealm, string], { record: string }>('SELECT record FROM portal_accounts WHERE realm = ? AND username = ?'),
      ofParticipant: db.prepare<[string], { record: string }>('SELECT record FROM portal_accounts WHERE participant_dip_id = ? ORDER BY created_at, username'),
      operators: db.prepare<[], { record: string }>('SELECT record FROM portal_accounts WHERE participant_dip_id IS NULL ORDER BY created_at, username'),
      // json_patch merges the change's fields in; the epoch is raised from the stored one, not from a copy read earlier.
      // With keepingAdmin, the other enabled administrators are counted in the same statement: SQLite's one
      // writer makes the check and the write one step, so two administrators disabling each other leave one.
      change: db.prepare<[{ change: string; realm: PortalRealm; username: string; epoch: number | null; enabled: number; keepingAdmin: number }], { record: string }>(
        `UPDATE portal_accounts SET record = json_set(json_patch(record, @change), '$.sessionEpoch', json_extract(record, '$.sessionEpoch') + 1)
         WHERE realm = @realm AND username = @username AND (@epoch IS NULL OR json_extract(record, '$.sessionEpoch') = @epoch) AND (@enabled = 0 OR json_extract(record, '$.disabled') = 0)
           AND (@keepingAdmin = 0 OR EXISTS (SELECT 1 FROM portal_accounts o WHERE o.realm = @realm AND o.participant_dip_id = portal_accounts.participant_dip_id AND o.username <> @username
             AND json_extract(o.record, '$.disabled') = 0 AND coalesce(json_extract(o.record, '$.level'), CASE WHEN json_extract(o.record, '$.admin') THEN 'admin' END) = 'admin'))
         RETURNING record`,
      ),
      countSession: db.prepare<[PortalRealm, string], { n: number }>(
        "UPDATE portal_accounts SET record = json_set(record, '$.sessionsIssued', coalesce(json_extract(record, '$.sessionsIssued'), 0) + 1) WHERE realm = ? AND username = ? RETURNING json_extract(record, '$.sessionsIssued') AS n",
      ),
      claimStep: db.prepare("UPDATE portal_accounts SET record = json_set(record, '$.lastTotpStep', ?) WHERE realm = ? AND username = ? AND json_extract(record, '$.lastTotpStep') < ?"),
      forgetExpiredEnrolments: db.prepare('DELETE FROM portal_totp_enrolments WHERE expires_at <= ?'),
      // The account's enrolment begun under an older epoch can never complete (see completeTotpEnrolment).
      forgetVoidEnrolment: db.prepare<[{ realm: PortalRealm; username: string }]>(
        "DELETE FROM portal_totp_enrolments WHERE realm = @realm AND username = @username AND epoch IS NOT (SELECT json_extract(record, '$.sessionEpoch') FROM portal_accounts WHERE realm = @realm AND username = @username)",
      ),
      startEnrolment: db.prepare<[PortalRealm, string, string, string, number, number, number]>(
        'INSERT INTO portal_totp_enrolments (realm, username, token_hash, secret_sealed, epoch, started_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (realm, username) DO NOTHING',
      ),
      enrolmentOf: db.prepare<[PortalRealm, string], EnrolmentRow>('SELECT * FROM portal_totp_enrolments WHERE realm = ? AND username = ?'),
      enrolmentByToken: db.prepare<[string], EnrolmentRow>('SELECT * FROM portal_totp_enrolments WHERE token_hash = ?'),
      forgetEnrolment: db.prepare('DELETE FROM portal_totp_enrolments WHERE token_hash = ?'),
      // Only an enabled account still without a second factor, of the epoch the enrolment began under.
      activate: db.prepare<[{ change: string; realm: PortalRealm; username: string; epoch: number }], { record: string }>(
        `UPDATE portal_accounts SET record = json_set(json_patch(record, @change), '$.sessionEpoch', json_extract(record, '$.sessionEpoch') + 1)
         WHERE realm = @realm AND username = @username AND json_type(record, '$.totpSecretSealed') = 'null' AND json_extract(record, '$.disabled') = 0 AND json_extract(record, '$.sessionEpoch') = @epoch RETURNING record`,
      ),
      // json_set, not json_patch: a merge patch would remove a field set to null rather than store the null.
      // IS, not =: null (an operator's account) is then a value like a DIP ID.
      resetFactor: db.prepare<[{ realm: PortalRealm; username: string; passwordHash: string; of: string | null; expiresAt: number }], { record: string }>(
        `UPDATE portal_accounts SET record = json_set(record, '$.totpSecretSealed', json('null'), '$.passwordHash', @passwordHash, '$.mustChangePassword', json('true'), '$.firstPasswordExpiresAt', @expiresAt, '$.sessionEpoch', json_extract(record, '$.sessionEpoch') + 1)
         WHERE realm = @realm AND username = @username AND participant_dip_id IS @of RETURNING record`,
      ),
      // A first password with no expiry: no factor yet, or its password still to be changed (a cleared expiry is absent: json_patch drops nulls).
      expireFirst: db.prepare<[number]>(
        `UPDATE portal_accounts SET record = json_set(record, '$.firstPasswordExpiresAt', ?)
         WHERE json_extract(record, '$.firstPasswordExpiresAt') IS NULL AND (json_type(record, '$.totpSecretSealed') IS NOT 'text' OR json_extract(record, '$.mustChangePassword') = 1)`,
      ),
      accountOf: db.prepare<[PortalRealm, string, string | null], { record: string }>('SELECT record FROM portal_accounts WHERE realm = ? AND username = ? AND participant_dip_id IS ?'),
      forgetEnrolmentOf: db.prepare<[PortalRealm, string]>('DELETE FROM portal_totp_enrolments WHERE realm = ? AND username = ?'),
      attempt: db.prepare<[PortalRealm, string, number], { id: number }>('INSERT INTO portal_sign_in_attempts (realm, name, at) VALUES (?, ?, ?) RETURNING id'),
      // Rows recorded before the realms (realm NULL) are counted in neither: they leave with the window.
      attempts: db.prepare<[PortalRealm, string, number], { at: number }>('SELECT at FROM portal_sign_in_attempts WHERE realm = ? AND name = ? AND at >= ? ORDER BY at, id'),
      forgetOld: db.prepare('DELETE FROM portal_sign_in_attempts WHERE at < ?'),
      forget: db.prepare('DELETE FROM portal_sign_in_attempts WHERE id = ?'),
      clear: db.prepare<[PortalRealm, string]>('DELETE FROM portal_sign_in_attempts WHERE realm = ? AND name = ?'),
    };
  }

  async createAccount(a: PortalAccount): Promise<boolean> {
    return this.d.write(() => this.s.insert.run(realmOf(a), a.username, a.participantDipId, JSON.stringify(a), a.createdAt).changes === 1);
  }

  async account(realm: PortalRealm, username: string): Promise<PortalAccount | undefined> {
    const row = this.s.byName.get(realm, username);
    return row && (JSON.parse(row.record) as PortalAccount);
  }

  async accounts(participantDipId: string | null): Promise<PortalAccount[]> {
    const rows = participantDipId === null ? this.s.operators.all() : this.s.ofParticipant.all(participantDipId);
    return rows.map((r) => JSON.parse(r.record) as PortalAccount);
  }

  async changeAccount(realm: PortalRealm, username: string, change: AccountChange, when: ChangeCondition = {}): Promise<PortalAccount | undefined> {
    const epoch = when.epoch ?? null;
    const row = await this.d.write(() => this.s.change.get({ change: JSON.stringify(change), realm, username, epoch, enabled: when.enabled ? 1 : 0, keepingAdmin: when.keepingAdmin ? 1 : 0 }));
    return row && (JSON.parse(row.record) as PortalAccount);
  }

  async claimTotpStep(realm: PortalRealm, username: string, step: number): Promise<boolean> {
    return this.d.write(() => this.s.claimStep.run(step, realm, username, step).changes === 1);
  }

  async countSession(realm: PortalRealm, username: string): Promise<number | undefined> {
    return this.d.write(() => this.s.countSession.get(realm, username)?.n);
  }

  async startTotpEnrolment(e: PendingTotpEnrolment): Promise<PendingTotpEnrolment | undefined> {
    return this.d.write(() => {
      this.s.forgetExpiredEnrolments.run(e.startedAt);
      this.s.forgetVoidEnrolment.run({ realm: e.realm, username: e.username });
      this.s.startEnrolment.run(e.realm, e.username, e.tokenHash, e.secretSealed, e.epoch, e.startedAt, e.expiresAt);
      return enrolmentOf(this.s.enrolmentOf.get(e.realm, e.username)!);
    });
  }

  async totpEnrolment(tokenHash: string): Promise<PendingTotpEnrolment | undefined> {
    const row = this.s.enrolmentByToken.get(tokenHash);
    return row && enrolmentOf(row);
  }

  async completeTotpEnrolment(tokenHash: string, now: number, activation: TotpActivation): Promise<PortalAccount | undefined> {
    return this.d.write(() => {
      const pending = this.s.enrolmentByToken.get(tokenHash);
      if (!pending || pending.expires_at <= now) return undefined;
      const row = this.s.activate.get({ change: JSON.stringify(activationChange(activation)), realm: pending.realm, username: pending.username, epoch: pending.epoch });
      if (!row) return undefined;
      this.s.forgetEnrolment.run(tokenHash);
      return JSON.parse(row.record) as PortalAccount;
    });
  }

  async resetTotpFactor(username: string, passwordHash: string, of: string | null, expiresAt: number): Promise<TotpReset | undefined> {
    return this.d.write(() => {
      // Read in the same transaction as the change, so what the journal says it had is what was reset.
      const realm = realmOf({ participantDipId: of });
      const before = this.s.accountOf.get(realm, username, of);
      const row = this.s.resetFactor.get({ realm, username, passwordHash, of, expiresAt });
      if (!before || !row) return undefined;
      const pendingEnrolment = this.s.forgetEnrolmentOf.run(realm, username).changes > 0;
      this.s.clear.run(realm, username);
      return { account: JSON.parse(row.record) as PortalAccount, hadFactor: (JSON.parse(before.record) as PortalAccount).totpSecretSealed !== null, pendingEnrolment };
    });
  }

  async expireFirstPasswords(expiresAt: number): Promise<number> {
    return this.d.write(() => this.s.expireFirst.run(expiresAt).changes);
  }

  async recordSignInAttempt(realm: PortalRealm, name: string, at: number, since: number): Promise<{ id: number; attempts: number[] }> {
    return this.d.write(() => {
      this.s.forgetOld.run(since);
      const { id } = this.s.attempt.get(realm, name, at)!;
      return { id, attempts: this.s.attempts.all(realm, name, since).map((r) => r.at) };
    });
  }

  async forgetSignInAttempt(id: number): Promise<void> {
    await this.d.write(() => this.s.forget.run(id));
  }

  async clearSignInAttempts(realm: PortalRealm, name: string): Promise<void> {
    await this.d.write(() => this.s.clear.run(realm, name));
  }
}
