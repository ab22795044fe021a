import type { MailRecipient, MailRecipients, RecipientAsk, RecipientCap } from '../../ports/mail-recipients.js';
import type { SqliteDatabase } from './database.js';

/** Addresses asked and confirmed for the DIP's e-mail (src/ports/mail-recipients.ts), one row per scope and address. */
export class SqliteMailRecipients implements MailRecipients {
  private readonly s;

  constructor(private readonly d: SqliteDatabase) {
    const db = d.db;
    this.s = {
      get: db.prepare<[string, string], { confirmed_at: number | null; expires_at: number }>('SELECT confirmed_at, expires_at FROM mail_recipients WHERE scope = ? AND address = ?'),
      asked: db.prepare<[string, number], { n: number }>('SELECT count(*) AS n FROM mail_recipients WHERE scope = ? AND requested_at >= ?'),
      put: db.prepare('INSERT OR REPLACE INTO mail_recipients (scope, address, token_hash, requested_at, expires_at, confirmed_at) VALUES (?, ?, ?, ?, ?, NULL)'),
      byToken: db.prepare<[string, number], { scope: string; address: string }>('SELECT scope, address FROM mail_recipients WHERE token_hash = ? AND expires_at > ? AND confirmed_at IS NULL'),
      confirm: db.prepare('UPDATE mail_recipients SET token_hash = NULL, confirmed_at = ? WHERE token_hash = ?'),
      withdraw: db.prepare('DELETE FROM mail_recipients WHERE token_hash = ? AND confirmed_at IS NULL'),
    };
  }

  ask(r: MailRecipient, now: number, cap: RecipientCap): Promise<RecipientAsk> {
    return this.d.write(() => {
      const had = this.s.get.get(r.scope, r.address);
      if (had?.confirmed_at != null) return 'confirmed';
      if (had && had.expires_at > now) return 'pending';
      if ((this.s.asked.get(r.scope, cap.since)?.n ?? 0) >= cap.max) return 'limited';
      this.s.put.run(r.scope, r.address, r.tokenHash, r.requestedAt, r.expiresAt);
      return 'requested';
    });
  }

  confirm(tokenHash: string, now: number): Promise<{ scope: string; address: string } | undefined> {
    return this.d.write(() => {
      const row = this.s.byToken.get(tokenHash, now);
      if (!row) return undefined;
      this.s.confirm.run(now, tokenHash);
      return { scope: row.scope, address: row.address };
    });
  }

  confirmed(scope: string, address: string): Promise<boolean> {
    return Promise.resolve(this.s.get.get(scope, address)?.confirmed_at != null);
  }

  withdraw(tokenHash: string): Promise<void> {
    return this.d.write(() => {
      this.s.withdraw.run(tokenHash);
    });
  }
}
