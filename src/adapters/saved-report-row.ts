import type { SavedReport } from '../domain/saved-report.js';

/** A saved report as both SQL stores keep it: the whole record as JSON, with the columns it is found by. */
export interface SavedReportRow {
  record: string | SavedReport;
  next_due_at: number | string | null;
}

/** PostgreSQL hands jsonb back parsed and bigint as text; SQLite text and numbers. The due time is the column's (claimDue moves it). */
export const fromSavedReportRow = (r: SavedReportRow): SavedReport => {
  const record = typeof r.record === 'string' ? (JSON.parse(r.record) as SavedReport) : r.record;
  return { ...record, nextDueAt: r.next_due_at === null ? null : Number(r.next_due_at) };
};
