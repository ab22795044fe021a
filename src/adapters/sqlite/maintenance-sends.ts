import type { MaintenanceOutbox, MaintenanceSend } from '../../ports/maintenance.js';
import { fromMaintenanceSendRow, type MaintenanceSendRow } from '../maintenance-send-row.js';
import type { SqliteDatabase } from './database.js';

/** Maintenance announcements not yet sent, one row each (src/ports/maintenance.ts). */
export class SqliteMaintenanceSends implements MaintenanceOutbox {
  private readonly s;

  constructor(private readonly d: SqliteDatabase) {
    const db = d.db;
    this.s = {
      insert: db.prepare('INSERT OR IGNORE INTO maintenance_sends (id, record, due_at) VALUES (?, ?, ?)'),
      due: db.prepare<[number, number], MaintenanceSendRow>('SELECT record, due_at FROM maintenance_sends WHERE due_at <= ? ORDER BY due_at, id LIMIT ?'),
      claim: db.prepare('UPDATE maintenance_sends SET due_at = ? WHERE id = ? AND due_at = ?'),
      remove: db.prepare('DELETE FROM maintenance_sends WHERE id = ?'),
    };
  }

  add(sends: readonly MaintenanceSend[]): Promise<void> {
    // One write: an act's sends are all recorded, or none.
    return this.d.write(() => {
      for (const send of sends) this.s.insert.run(send.id, JSON.stringify(send), send.dueAt);
    });
  }

  due(now: number, limit: number): Promise<MaintenanceSend[]> {
    return Promise.resolve(this.s.due.all(now, limit).map(fromMaintenanceSendRow));
  }

  claim(id: string, dueAt: number, leaseUntil: number): Promise<boolean> {
    return this.d.write(() => this.s.claim.run(leaseUntil, id, dueAt).changes === 1);
  }

  done(id: string): Promise<void> {
    return this.d.write(() => void this.s.remove.run(id));
  }
}
