import type { PortalAccount, PortalAccounts } from '../../ports/portal-accounts.js';
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
      update: db.prepare('UPDATE portal_accounts SET record = ? WHERE username = ?'),
      failures: db.prepare<[string], { failures: string }>('SELECT failures FROM portal_sign_in_failures WHERE name = ?'),
      setFailures: db.prepare('INSERT INTO portal_sign_in_failures (name, failures, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET failures = excluded.failures, updated_at = excluded.updated_at'),
      forgetFailures: db.prepare('DELETE FROM portal_sign_in_failures WHERE name = ?'),
      forgetOldFailures: db.prepare('DELETE FROM portal_sign_in_failures WHERE updated_at < ?'),
      claimStep: db.prepare("UPDATE portal_accounts SET record = json_set(record, '$.lastTotpStep', ?) WHERE username = ? AND json_extract(record, '$.lastTotpStep') < ?"),
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

  async updateAccount(a: PortalAccount): Promise<void> {
    await this.d.write(() => this.s.update.run(JSON.stringify(a), a.username));
  }

  async signInFailures(name: string): Promise<number[]> {
    const row = this.s.failures.get(name);
    return row ? (JSON.parse(row.failures) as number[]) : [];
  }

  async setSignInFailures(name: string, failures: readonly number[], forgetBefore: number): Promise<void> {
    await this.d.write(() => {
      if (failures.length === 0) this.s.forgetFailures.run(name);
      else this.s.setFailures.run(name, JSON.stringify(failures), failures[failures.length - 1]!);
      this.s.forgetOldFailures.run(forgetBefore);
    });
  }

  async claimTotpStep(username: string, step: number): Promise<boolean> {
    return this.d.write(() => this.s.claimStep.run(step, username, step).changes === 1);
  }
}
