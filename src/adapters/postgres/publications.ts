import type { InsertOutcome, PublicationIndex, PublicationOwed, PublicationQuery, PublicationRecord, PublicationWithdrawal, WithdrawalNoticeOwed } from '../../ports/publications.js';
import { PUBLICATION_COLUMNS, PUBLICATION_INSERT_COLUMNS, publicationFilter, publicationRecord, publicationValues, noticeColumns, SUPERSEDED, WITHDRAW, withdrawalOwed, withdrawalValues, CLAIM_NOTICE, RELEASE_NOTICE, claimRecipients, type PublicationRow } from '../publication-row.js';
import type { PgDatabase } from './database.js';

export class PgPublications implements PublicationIndex {
  constructor(private readonly d: PgDatabase) {}

  insert(record: PublicationRecord): Promise<InsertOutcome> {
    return this.d.tx(async (c): Promise<InsertOutcome> => {
      // The type as first published on the channel, whatever the case it is given in now.
      const spelt = (await c.query<{ type: string }>('SELECT publication_type AS type FROM publication_types WHERE channel = $1 AND lower(publication_type) = lower($2) ORDER BY publication_type = $2 DESC LIMIT 1', [record.channel, record.publicationType])).rows[0]?.type;
      const p = spelt === undefined ? record : { ...record, publicationType: spelt };
      await c.query('INSERT INTO publication_types (channel, publication_type, publisher_dip_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [p.channel, p.publicationType, p.publisherDipId]);
      // FOR SHARE: the type's owner cannot change under this insert (it never does, but the row is read in the same step).
      const owner = await c.query<{ publisher: string }>('SELECT publisher_dip_id AS publisher FROM publication_types WHERE channel = $1 AND publication_type = $2 FOR SHARE', [p.channel, p.publicationType]);
      const publisher = owner.rows[0]?.publisher;
      if (publisher !== undefined && publisher !== p.publisherDipId) return { ok: false, reason: 'owned-by-other', owner: publisher };
      const inserted = await c.query(
        `INSERT INTO publications (${PUBLICATION_INSERT_COLUMNS}) VALUES (${publicationValues(p, (f) => f).map((_, i) => `$${i + 1}`).join(', ')})
         ON CONFLICT (channel, publication_type, version) DO NOTHING`,
        publicationValues(p, (f) => f),
      );
      if (inserted.rowCount === 1) return p.publicationType === record.publicationType ? { ok: true } : { ok: true, publicationType: p.publicationType };
      const existing = await c.query<PublicationRow>(`SELECT ${PUBLICATION_COLUMNS} FROM publications WHERE channel = $1 AND publication_type = $2 AND version = $3`, [p.channel, p.publicationType, p.version]);
      return { ok: false, reason: 'version-exists', existing: publicationRecord(existing.rows[0]!) };
    });
  }

  async get(id: string): Promise<PublicationRecord | undefined> {
    const rows = await this.d.query<PublicationRow>(`SELECT ${PUBLICATION_COLUMNS} FROM publications WHERE id = $1`, [id]);
    return rows[0] && publicationRecord(rows[0]);
  }

  async find(q: PublicationQuery): Promise<PublicationRecord[]> {
    const { where, values } = publicationFilter(q, (i) => `$${i}`, true, (p) => `recipients::jsonb ? ${p}`);
    const rows = await this.d.query<PublicationRow>(`SELECT ${PUBLICATION_COLUMNS} FROM publications ${where} ORDER BY published_at DESC, id LIMIT $${values.length + 1}`, [...values, q.limit]);
    return rows.map(publicationRecord);
  }

  async superseded(channel: string, before: number, limit: number): Promise<PublicationRecord[]> {
    const rows = await this.d.query<PublicationRow>(`SELECT ${PUBLICATION_COLUMNS} FROM publications WHERE channel = $1 AND published_at < $2 AND ${SUPERSEDED} ORDER BY published_at LIMIT $3`, [
      channel,
      before,
      limit,
    ]);
    return rows.map(publicationRecord);
  }

  async channels(): Promise<string[]> {
    return (await this.d.query<{ channel: string }>('SELECT DISTINCT channel FROM publications')).map((r) => r.channel);
  }

  async remove(id: string): Promise<void> {
    await this.d.tx((c) => c.query('DELETE FROM publications WHERE id = $1', [id]));
  }

  async withdraw(id: string, w: PublicationWithdrawal): Promise<{ record: PublicationRecord; notice: WithdrawalNoticeOwed } | undefined> {
    // The row lock of the update orders it with a claim on another node: whichever commits second sees the first.
    const changed = await this.d.tx((c) => c.query<{ n: boolean; w: boolean | null }>(`${WITHDRAW((i) => `$${i}`, 'false')} RETURNING notice_queued AS n, withdrawal_notice_queued AS w`, withdrawalValues(id, w)));
    const row = changed.rows[0];
    const record = row && (await this.get(id));
    return row && record ? { record, notice: withdrawalOwed(row.n, row.w) } : undefined;
  }

  async claimNotice(id: string, at: number, recipients: readonly string[]): Promise<boolean> {
    return this.d.tx(async (c) => {
      // FOR UPDATE: a claim on another node waits, and adds its recipients to these, not in their place.
      const held = (await c.query<{ r: string | null }>('SELECT notice_recipients AS r FROM publications WHERE id = $1 FOR UPDATE', [id])).rows[0];
      return held !== undefined && (await c.query(CLAIM_NOTICE((i) => `$${i}`), [at, claimRecipients(held.r, recipients), id])).rowCount === 1;
    });
  }

  async releaseNotice(id: string, at: number): Promise<void> {
    await this.d.tx((c) => c.query(RELEASE_NOTICE((i) => `$${i}`, 'false'), [id, at]));
  }

  async noticeQueued(id: string, notice?: PublicationOwed): Promise<void> {
    const n = noticeColumns(notice, 'false');
    await this.d.tx((c) => c.query(`UPDATE publications SET ${n.column} = true${n.also} WHERE id = $1`, [id]));
  }

  async awaitingNotice(before: number, limit: number, notice?: PublicationOwed): Promise<PublicationRecord[]> {
    const n = noticeColumns(notice, 'false');
    const rows = await this.d.query<PublicationRow>(`SELECT ${PUBLICATION_COLUMNS} FROM publications WHERE ${n.awaiting} AND ${n.at} < $1 ORDER BY ${n.at} LIMIT $2`, [before, limit]);
    return rows.map(publicationRecord);
  }
}
