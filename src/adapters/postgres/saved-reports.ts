import type { SavedReport, SavedReports, SaveRefusal } from '../../ports/saved-reports.js';
import { fromSavedReportRow, type SavedReportRow } from '../saved-report-row.js';
import type { PgDatabase } from './database.js';

/** Portal users' saved reports, one row each (src/ports/saved-reports.ts). */
export class PgSavedReports implements SavedReports {
  constructor(private readonly d: PgDatabase) {}

  create(r: SavedReport, max: number): Promise<SaveRefusal | null> {
    return this.d.tx(async (c) => {
      // The owner's saves one at a time (two nodes at once would each count max - 1 and both insert).
      await c.query("SELECT pg_advisory_xact_lock(hashtextextended('saved_reports:' || $1, 0))", [r.owner]);
      const { rows } = await c.query<{ n: string; named: string }>('SELECT count(*) AS n, count(*) FILTER (WHERE name = $2) AS named FROM saved_reports WHERE owner = $1', [r.owner, r.name]);
      if (Number(rows[0]!.n) >= max) return 'full';
      if (Number(rows[0]!.named) > 0) return 'name-taken';
      await c.query('INSERT INTO saved_reports (id, owner, name, record, created_at, next_due_at) VALUES ($1, $2, $3, $4, $5, $6)', [r.id, r.owner, r.name, JSON.stringify(r), r.createdAt, r.nextDueAt]);
      return null;
    });
  }

  async list(owner: string): Promise<SavedReport[]> {
    return (await this.d.query<SavedReportRow>('SELECT record, next_due_at FROM saved_reports WHERE owner = $1 ORDER BY created_at, id', [owner])).map(fromSavedReportRow);
  }

  async get(owner: string, id: string): Promise<SavedReport | undefined> {
    const [row] = await this.d.query<SavedReportRow>('SELECT record, next_due_at FROM saved_reports WHERE owner = $1 AND id = $2', [owner, id]);
    return row && fromSavedReportRow(row);
  }

  async remove(owner: string, id: string): Promise<boolean> {
    return ((await this.d.tx((c) => c.query('DELETE FROM saved_reports WHERE owner = $1 AND id = $2', [owner, id]))).rowCount ?? 0) > 0;
  }

  async due(now: number, limit: number): Promise<SavedReport[]> {
    return (await this.d.query<SavedReportRow>('SELECT record, next_due_at FROM saved_reports WHERE next_due_at <= $1 ORDER BY next_due_at, id LIMIT $2', [now, limit])).map(fromSavedReportRow);
  }

  async claimDue(id: string, dueAt: number, nextDueAt: number): Promise<boolean> {
    return (await this.d.tx((c) => c.query('UPDATE saved_reports SET next_due_at = $1 WHERE id = $2 AND next_due_at = $3', [nextDueAt, id, dueAt]))).rowCount === 1;
  }
}
