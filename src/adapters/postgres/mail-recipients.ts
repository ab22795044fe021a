import type { MailRecipient, MailRecipients, RecipientAsk, RecipientCap } from '../../ports/mail-recipients.js';
import type { PgDatabase } from './database.js';

/** Addresses asked and confirmed for the DIP's e-mail (src/ports/mail-recipients.ts), one row per scope and address. */
export class PgMailRecipients implements MailRecipients {
  constructor(private readonly d: PgDatabase) {}

  ask(r: MailRecipient, now: number, cap: RecipientCap): Promise<RecipientAsk> {
    return this.d.tx(async (c) => {
      // One scope's asks one at a time across every node: the count below is then read (READ COMMITTED: at its
      // statement, after the lock) with every earlier ask committed. Without it two nodes asking for two new
      // addresses at once each counted without the other's, and passed the cap by one.
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`opendip.mail-recipients:${r.scope}`]);
      // One upsert decides: a confirmed row or an unexpired request is left as it is (two nodes asking at once send
      // one e-mail), and nothing is recorded once the scope holds cap.max requests made since cap.since.
      const { rows } = await c.query<{ requested: boolean }>(
        `INSERT INTO mail_recipients (scope, address, token_hash, requested_at, expires_at, confirmed_at)
           SELECT $1, $2, $3, $4, $5, NULL WHERE (SELECT count(*) FROM mail_recipients WHERE scope = $1 AND requested_at >= $7) < $8
         ON CONFLICT (scope, address) DO UPDATE SET token_hash = EXCLUDED.token_hash, requested_at = EXCLUDED.requested_at, expires_at = EXCLUDED.expires_at
           WHERE mail_recipients.confirmed_at IS NULL AND mail_recipients.expires_at <= $6
         RETURNING true AS requested`,
        [r.scope, r.address, r.tokenHash, r.requestedAt, r.expiresAt, now, cap.since, cap.max],
      );
      if (rows.length) return 'requested';
      const { rows: had } = await c.query<{ confirmed_at: string | null; expires_at: string }>('SELECT confirmed_at, expires_at FROM mail_recipients WHERE scope = $1 AND address = $2', [r.scope, r.address]);
      const row = had[0];
      if (row?.confirmed_at != null) return 'confirmed';
      return row && Number(row.expires_at) > now ? 'pending' : 'limited';
    });
  }

  async confirm(tokenHash: string, now: number): Promise<{ scope: string; address: string } | undefined> {
    const rows = await this.d.tx(async (c) => (await c.query<{ scope: string; address: string }>('UPDATE mail_recipients SET token_hash = NULL, confirmed_at = $2 WHERE token_hash = $1 AND expires_at > $2 AND confirmed_at IS NULL RETURNING scope, address', [tokenHash, now])).rows);
    return rows[0];
  }

  async withdraw(tokenHash: string): Promise<void> {
    await this.d.tx((c) => c.query('DELETE FROM mail_recipients WHERE token_hash = $1 AND confirmed_at IS NULL', [tokenHash]));
  }

  async confirmed(scope: string, address: string): Promise<boolean> {
    return (await this.d.query<{ n: string }>('SELECT 1 AS n FROM mail_recipients WHERE scope = $1 AND address = $2 AND confirmed_at IS NOT NULL', [scope, address])).length > 0;
  }
}
