import type { AccountChange, PortalAccount, PortalAccounts } from '../../ports/portal-accounts.js';
import type { SqliteDatabase } from './database.js';

/** One row per account; the record is JSON (it holds only hashes and sealed secrets). */
export class SqlitePortalAccounts implements PortalAccounts {
  private readonly s;

  constructor(private readonly d: SqliteDatabase) {
    const db = d.db;
    this.s = {
      insert: db.prepare('INSERT INTO portal_accounts (username, participant_dip_id, record, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (username) DO NOTHING'),
      byName: db.prepare<[string], { record: string }>('SELECT record FROM portal_accounts WHERE username = ?'),
      ofParticipant: db.prepare<[string], { record: string }>('SELECT record FROM portal_accounts WHERE participant_dip_id = ? ORDER BY created_at, username'),
      operators: db.prepare<[], { record: string }>('SELECT record FROM portal_accounts WHERE participant_dip_id IS NULL ORDER BY created_at, username'),
      // json_patch merges the change's fields in; the epoch is raised from the stored one, not from a copy read earlier.
      change: db.prepare<[{ change: string; username: string; epoch: number | null; enabled: number }], { record: string }>(
        `UPDATE portal_accounts SET record = json_set(json_patch(record, @change), '$.sessionEpoch', json_extract(record, '$.sessionEpoch') + 1)
         WHERE username = @username AND (@epoch IS NULL OR json_extract(record, '$.sessionEpoch') = @epoch) AND (@enabled = 0 OR json_extract(record, '$.disabled') = 0) RETURNING record`,
      ),
      claimStep: db.prepare("UPDATE portal_accounts SET record = json_set(record, '$.lastTotpStep', ?) WHERE username = ? AND json_extract(record, '$.lastTotpStep') < ?"),
      attempt: db.prepare<[string, number], { id: number }>('INSERT INTO portal_sign_in_attempts (name, at) VALUES (?, ?) RETURNING id'),
      attempts: db.prepare<[string, number], { at: number }>('SELECT at FROM portal_sign_in_attempts WHERE name = ? AND at >= ? ORDER BY at, id'),
      forgetOld: db.prepare('DELETE FROM portal_sign_in_attempts WHERE at < ?'),
      forget: db.prepare('DELETE FROM portal_sign_in_attempts WHERE id = ?'),
      clear: db.prepare('DELETE FROM portal_sign_in_attempts WHERE name = ?'),
    };
  }

  async createAccount(a: PortalAccount): Promise<boolean> {
    return this.d.write(() => this.s.insert.run(a.username, a.participantDipId, JSON.stringify(a), a.createdAt).changes === 1);
  }

  async account(username: string): Promise<PortalAccount | undefined> {
    const row = this.s.byName.get(username);
    return row && (JSON.parse(row.record) as PortalAccount);
  }

  async accounts(participantDipId: string | null): Promise<PortalAccount[]> {
    const rows = participantDipId === null ? this.s.operators.all() : this.s.ofParticipant.all(participantDipId);
    return rows.map((r) => JSON.parse(r.record) as PortalAccount);
  }

  async changeAccount(username: string, change: AccountChange, when: { epoch?: number; enabled?: boolean } = {}): Promise<PortalAccount | undefined> {
    const epoch = when.epoch ?? null;
    const row = await this.d.write(() => this.s.change.get({ change: JSON.stringify(change), username, epoch, enabled: when.enabled ? 1 : 0 }));
    return row && (JSON.parse(row.record) as PortalAccount);
  }

  async claimTotpStep(username: string, step: number): Promise<boolean> {
    return this.d.write(() => this.s.claimStep.run(step, username, step).changes === 1);
  }

  async recordSignInAttempt(name: string, at: number, since: number): Promise<{ id: number; attempts: number[] }> {
    return this.d.write(() => {
      this.s.forgetOld.run(since);
      const { id } = this.s.attempt.get(name, at)!;
      return { id, attempts: this.s.attempts.all(name, since).map((r) => r.at) };
    });
  }

  async forgetSignInAttempt(id: number): Promise<void> {
    await this.d.write(() => this.s.forget.run(id));
  }

  async clearSignInAttempts(name: string): Promise<void> {
    await this.d.write(() => this.s.clear.run(name));
  }
}
