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
      failures: db.prepare("UPDATE portal_accounts SET record = json_set(record, '$.failedSignIns', json(?)) WHERE username = ?"),
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

  async setFailedSignIns(username: string, failures: readonly number[]): Promise<void> {
    await this.d.write(() => this.s.failures.run(JSON.stringify(failures), username));
  }

  async claimTotpStep(username: string, step: number): Promise<boolean> {
    return this.d.write(() => this.s.claimStep.run(step, username, step).changes === 1);
  }
}
