import type { SavedReport, SavedReports, SaveRefusal } from '../../ports/saved-reports.js';
import { fromSavedReportRow, type SavedReportRow } from '../saved-report-row.js';
import type { SqliteDatabase } from './database.js';

/** Portal users' saved reports, one row each (src/ports/saved-reports.ts). */
export class SqliteSavedReports implements SavedReports {
  private readonly s;

  constructor(private readonly d: SqliteDatabase) {
    const db = d.db;
    this.s = {
      count: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM saved_reports WHERE owner = ?'),
      named: db.prepare<[string, string], { id: string }>('SELECT id FROM saved_reports WHERE owner = ? AND name = ?'),
      insert: db.prepare('INSERT INTO saved_reports (id, owner, name, record, created_at, next_due_at) VALUES (?, ?, ?, ?, ?, ?)'),
      list: db.prepare<[string], SavedReportRow>('SELECT record, next_due_at FROM saved_reports WHERE owner = ? ORDER BY created_at, id'),
      get: db.prepare<[string, string], SavedReportRow>('SELECT record, next_due_at FROM saved_reports WHERE owner = ? AND id = ?'),
      remove: db.prepare('DELETE FROM saved_reports WHERE owner = ? AND id = ?'),
      due: db.prepare<[number, number], SavedReportRow>('SELECT record, next_due_at FROM saved_reports WHERE next_due_at <= ? ORDER BY next_due_at, id LIMIT ?'),
      claim: db.prepare('UPDATE saved_reports SET next_due_at = ? WHERE id = ? AND next_due_at = ?'),
    };
  }

  create(r: SavedReport, max: number): Promise<SaveRefusal | null> {
    // One write: nothing else runs between the checks and the insert on the embedded store's one connection.
    return this.d.write(() => {
      if (this.s.count.get(r.owner)!.n >= max) return 'full';
      if (this.s.named.get(r.owner, r.name)) return 'name-taken';
      this.s.insert.run(r.id, r.owner, r.name, JSON.stringify(r), r.createdAt, r.nextDueAt);
      return null;
    });
  }

  list(owner: string): Promise<SavedReport[]> {
    return Promise.resolve(this.s.list.all(owner).map(fromSavedReportRow));
  }

  get(owner: string, id: string): Promise<SavedReport | undefined> {
    const row = this.s.get.get(owner, id);
    return Promise.resolve(row && fromSavedReportRow(row));
  }

  remove(owner: string, id: string): Promise<boolean> {
    return this.d.write(() => this.s.remove.run(owner, id).changes > 0);
  }

  due(now: number, limit: number): Promise<SavedReport[]> {
    return Promise.resolve(this.s.due.all(now, limit).map(fromSavedReportRow));
  }

  claimDue(id: string, dueAt: number, nextDueAt: number): Promise<boolean> {
    return this.d.write(() => this.s.claim.run(nextDueAt, id, dueAt).changes === 1);
  }
}
