import type { MailRecipient, MailRecipients, RecipientAsk } from '../../ports/mail-recipients.js';
import type { PgDatabase } from './database.js';

/** Addresses asked and confirmed for the DIP's e-mail (src/ports/mail-recipients.ts), one row per scope and address. */
export class PgMailRecipients implements MailRecipients {
  constructor(private readonly d: PgDatabase) {}

  ask(r: MailRecipient, now: number): Promise<RecipientAsk> {
    return this.d.tx(async (c) => {
      // One upsert decides: a confirmed row or an unexpired request is left as it is (two nodes asking at once send one e-mail).
      const { rows } = await c.query<{ confirmed_at: string | null; requested: boolean }>(
        `INSERT INTO mail_recipients (scope, address, token_hash, requested_at, expires_at, confirmed_at) VALUES ($1, $2, $3, $4, $5, NULL)
         ON CONFLICT (scope, address) DO UPDATE SET token_hash = EXCLUDED.token_hash, requested_at = EXCLUDED.requested_at, expires_at = EXCLUDED.expires_at
           WHERE mail_recipients.confirmed_at IS NULL AND mail_recipients.expires_at <= $6
         RETURNING confirmed_at, true AS requested`,
        [r.scope, r.address, r.tokenHash, r.requestedAt, r.expiresAt, now],
      );
      if (rows.length) return 'requested';
      const { rows: had } = await c.query<{ confirmed_at: string | null }>('SELECT confirmed_at FROM mail_recipients WHERE scope = $1 AND address = $2', [r.scope, r.address]);
      return had[0]?.confirmed_at != null ? 'confirmed' : 'pending';
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
