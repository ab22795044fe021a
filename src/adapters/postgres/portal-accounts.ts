import type { PortalAccount, PortalAccounts } from '../../ports/portal-accounts.js';
import type { PgDatabase } from './database.js';

/** One row per account; the record is jsonb (it holds only hashes and sealed secrets). */
export class PgPortalAccounts implements PortalAccounts {
  constructor(private readonly d: PgDatabase) {}

  async createAccount(a: PortalAccount): Promise<boolean> {
    const r = await this.d.tx((c) =>
      c.query('INSERT INTO portal_accounts (username, participant_dip_id, record, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING', [a.username, a.participantDipId, JSON.stringify(a), a.createdAt]),
    );
    return r.rowCount === 1;
  }

  async account(username: string): Promise<PortalAccount | undefined> {
    const [row] = await this.d.query<{ record: PortalAccount }>('SELECT record FROM portal_accounts WHERE username = $1', [username]);
    return row?.record;
  }

  async accounts(participantDipId: string | null): Promise<PortalAccount[]> {
    const rows =
      participantDipId === null
        ? await this.d.query<{ record: PortalAccount }>('SELECT record FROM portal_accounts WHERE participant_dip_id IS NULL ORDER BY created_at, username')
        : await this.d.query<{ record: PortalAccount }>('SELECT record FROM portal_accounts WHERE participant_dip_id = $1 ORDER BY created_at, username', [participantDipId]);
    return rows.map((r) => r.record);
  }

  async updateAccount(a: PortalAccount): Promise<void> {
    await this.d.tx((c) => c.query('UPDATE portal_accounts SET record = $1 WHERE username = $2', [JSON.stringify(a), a.username]));
  }

  async signInFailures(name: string): Promise<number[]> {
    const [row] = await this.d.query<{ failures: string }>('SELECT failures FROM portal_sign_in_failures WHERE name = $1', [name]);
    return row ? (JSON.parse(row.failures) as number[]) : [];
  }

  async setSignInFailures(name: string, failures: readonly number[], forgetBefore: number): Promise<void> {
    await this.d.tx(async (c) => {
      if (failures.length === 0) await c.query('DELETE FROM portal_sign_in_failures WHERE name = $1', [name]);
      else
        await c.query(
          'INSERT INTO portal_sign_in_failures (name, failures, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET failures = excluded.failures, updated_at = excluded.updated_at',
          [name, JSON.stringify(failures), failures[failures.length - 1]!],
        );
      await c.query('DELETE FROM portal_sign_in_failures WHERE updated_at < $1', [forgetBefore]);
    });
  }

  async claimTotpStep(username: string, step: number): Promise<boolean> {
    const { rowCount } = await this.d.tx((c) =>
      c.query("UPDATE portal_accounts SET record = jsonb_set(record, '{lastTotpStep}', to_jsonb($1::bigint)) WHERE username = $2 AND (record->>'lastTotpStep')::bigint < $1", [step, username]),
    );
    return rowCount === 1;
  }
}
