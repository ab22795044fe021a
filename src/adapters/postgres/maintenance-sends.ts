import type { MaintenanceOutbox, MaintenanceSend } from '../../ports/maintenance.js';
import { fromMaintenanceSendRow, type MaintenanceSendRow } from '../maintenance-send-row.js';
import type { PgDatabase } from './database.js';

/** Maintenance announcements not yet sent, one row each (src/ports/maintenance.ts). */
export class PgMaintenanceSends implements MaintenanceOutbox {
  constructor(private readonly d: PgDatabase) {}

  async add(sends: readonly MaintenanceSend[]): Promise<void> {
    if (sends.length === 0) return;
    // One statement: an act's sends are all recorded, or none.
    await this.d.tx((c) =>
      c.query('INSERT INTO maintenance_sends (id, record, due_at) SELECT * FROM unnest($1::text[], $2::jsonb[], $3::bigint[]) ON CONFLICT DO NOTHING', [
        sends.map((s) => s.id),
        sends.map((s) => JSON.stringify(s)),
        sends.map((s) => s.dueAt),
      ]),
    );
  }

  async due(now: number, limit: number): Promise<MaintenanceSend[]> {
    return (await this.d.query<MaintenanceSendRow>('SELECT record, due_at FROM maintenance_sends WHERE due_at <= $1 ORDER BY due_at, id LIMIT $2', [now, limit])).map(fromMaintenanceSendRow);
  }

  async claim(id: string, dueAt: number, leaseUntil: number): Promise<boolean> {
    return (await this.d.tx((c) => c.query('UPDATE maintenance_sends SET due_at = $1 WHERE id = $2 AND due_at = $3', [leaseUntil, id, dueAt]))).rowCount === 1;
  }

  async done(id: string): Promise<void> {
    await this.d.tx((c) => c.query('DELETE FROM maintenance_sends WHERE id = $1', [id]));
  }
}
