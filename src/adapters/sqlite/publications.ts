import type { InsertOutcome, PublicationIndex, PublicationOwed, PublicationQuery, PublicationRecord, PublicationWithdrawal, WithdrawalNoticeOwed } from '../../ports/publications.js';
import { PUBLICATION_COLUMNS, PUBLICATION_INSERT_COLUMNS, publicationFilter, publicationRecord, publicationValues, noticeColumns, SUPERSEDED, WITHDRAW, withdrawalOwed, withdrawalValues, CLAIM_NOTICE, RELEASE_NOTICE, claimRecipients, type PublicationRow } from '../publication-row.js';
import type { SqliteDatabase } from './database.js';

export class SqlitePublications implements PublicationIndex {
  constructor(private readonly d: SqliteDatabase) {}

  insert(record: PublicationRecord): Promise<InsertOutcome> {
    const db = this.d.db;
    return this.d.write((): InsertOutcome => {
      // The type as first published on the channel, whatever the case it is given in now; the exact spelling
      // first, where two were stored before types were read in any case (each its own type, maybe its own owner).
      const spelt = db.prepare<[string, string, string], { type: string }>('SELECT publication_type AS type FROM publication_types WHERE channel = ? AND lower(publication_type) = lower(?) ORDER BY publication_type = ? DESC, rowid LIMIT 1').get(record.channel, record.publicationType, record.publicationType)?.type;
      const p = spelt === undefined ? record : { ...record, publicationType: spelt };
      db.prepare('INSERT OR IGNORE INTO publication_types (channel, publication_type, publisher_dip_id) VALUES (?, ?, ?)').run(p.channel, p.publicationType, p.publisherDipId);
      const owner = db.prepare<[string, string], { publisher: string }>('SELECT publisher_dip_id AS publisher FROM publication_types WHERE channel = ? AND publication_type = ?').get(p.channel, p.publicationType);
      if (owner && owner.publisher !== p.publisherDipId) return { ok: false, reason: 'owned-by-other', owner: owner.publisher };
      const existing = db
        .prepare<[string, string, string], PublicationRow>(`SELECT ${PUBLICATION_COLUMNS} FROM publications WHERE channel = ? AND publication_type = ? AND version = ?`)
        .get(p.channel, p.publicationType, p.version);
      if (existing) return { ok: false, reason: 'version-exists', existing: publicationRecord(existing) };
      {
        const values = publicationValues(p, (f) => (f ? 1 : 0));
        db.prepare(`INSERT INTO publications (${PUBLICATION_INSERT_COLUMNS}) VALUES (${values.map(() => '?').join(', ')})`).run(...values);
      }
      return p.publicationType === record.publicationType ? { ok: true } : { ok: true, publicationType: p.publicationType };
    });
  }

  async get(id: string): Promise<PublicationRecord | undefined> {
    const row = this.d.db.prepare<[string], PublicationRow>(`SELECT ${PUBLICATION_COLUMNS} FROM publications WHERE id = ?`).get(id);
    return row && publicationRecord(row);
  }

  async find(q: PublicationQuery): Promise<PublicationRecord[]> {
    const { where, values } = publicationFilter(q, () => '?', 1, (p) => `EXISTS (SELECT 1 FROM json_each(recipients) WHERE value = ${p})`);
    const rows = this.d.db.prepare<unknown[], PublicationRow>(`SELECT ${PUBLICATION_COLUMNS} FROM publications ${where} ORDER BY published_at DESC, id LIMIT ?`).all(...values, q.limit);
    return rows.map(publicationRecord);
  }

  async superseded(channel: string, before: number, limit: number): Promise<PublicationRecord[]> {
    const rows = this.d.db
      .prepare<[string, number, number], PublicationRow>(`SELECT ${PUBLICATION_COLUMNS} FROM publications WHERE channel = ? AND published_at < ? AND ${SUPERSEDED} ORDER BY published_at LIMIT ?`)
      .all(channel, before, limit);
    return rows.map(publicationRecord);
  }

  async channels(): Promise<string[]> {
    return this.d.db.prepare<[], { channel: string }>('SELECT DISTINCT channel FROM publications').all().map((r) => r.channel);
  }

  async remove(id: string): Promise<void> {
    await this.d.write(() => this.d.db.prepare('DELETE FROM publications WHERE id = ?').run(id));
  }

  async withdraw(id: string, w: PublicationWithdrawal): Promise<{ record: PublicationRecord; notice: WithdrawalNoticeOwed } | undefined> {
    const db = this.d.db;
    const owed = await this.d.write(() => {
      if (db.prepare(WITHDRAW(() => '?', '0')).run(...withdrawalValues(id, w)).changes !== 1) return undefined;
      const row = db.prepare<[string], { n: number; w: number | null }>('SELECT notice_queued AS n, withdrawal_notice_queued AS w FROM publications WHERE id = ?').get(id)!;
      return withdrawalOwed(row.n, row.w);
    });
    const record = owed === undefined ? undefined : await this.get(id);
    return record && owed ? { record, notice: owed } : undefined;
  }

  async claimNotice(id: string, at: number, recipients: readonly string[]): Promise<boolean> {
    const db = this.d.db;
    // One write: nothing (a withdrawal, another claim) comes between the read and the update.
    const changes = await this.d.write(() => {
      const held = db.prepare<[string], { r: string | null }>('SELECT notice_recipients AS r FROM publications WHERE id = ?').get(id);
      return held ? db.prepare(CLAIM_NOTICE(() => '?')).run(at, claimRecipients(held.r, recipients), id).changes : 0;
    });
    return changes === 1;
  }

  async releaseNotice(id: string, at: number): Promise<void> {
    await this.d.write(() => this.d.db.prepare(RELEASE_NOTICE(() => '?', '0')).run(id, at));
  }

  async noticeQueued(id: string, notice?: PublicationOwed): Promise<void> {
    const n = noticeColumns(notice, '0');
    await this.d.write(() => this.d.db.prepare(`UPDATE publications SET ${n.column} = 1${n.also} WHERE id = ?`).run(id));
  }

  async awaitingNotice(before: number, limit: number, notice?: PublicationOwed): Promise<PublicationRecord[]> {
    const n = noticeColumns(notice, '0');
    const rows = this.d.db.prepare<[number, number], PublicationRow>(`SELECT ${PUBLICATION_COLUMNS} FROM publications WHERE ${n.awaiting} AND ${n.at} < ? ORDER BY ${n.at} LIMIT ?`).all(before, limit);
    return rows.map(publicationRecord);
  }
}
