import type { MaintenanceSend } from '../ports/maintenance.js';

/** A maintenance_sends row: PostgreSQL hands jsonb back parsed and bigint as text; SQLite text and numbers. The due time is the column's (claim moves it). */
export interface MaintenanceSendRow {
  record: string | MaintenanceSend;
  due_at: number | string;
}

export function fromMaintenanceSendRow(row: MaintenanceSendRow): MaintenanceSend {
  const record = typeof row.record === 'string' ? (JSON.parse(row.record) as MaintenanceSend) : row.record;
  return { ...record, dueAt: Number(row.due_at) };
}
