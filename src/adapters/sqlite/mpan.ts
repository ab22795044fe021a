import { applyChange, isSlot, type Appointment, type AppointmentChange } from '../../domain/mpan-lookup.js';
import type { MpanStore } from '../../ports/mpan.js';
import type { SqliteDatabase } from './database.js';

export class SqliteMpanStore implements MpanStore {
  private readonly s;

  constructor(private readonly d: SqliteDatabase) {
    const db = d.db;
    this.s = {
      history: db.prepare<[string], { mpan: string; slot: string; dipId: string; fromMs: number; toMs: number | null }>(
        'SELECT mpan, slot, dip_id AS dipId, from_ms AS fromMs, to_ms AS toMs FROM mpan_appointments WHERE mpan = ? ORDER BY slot, from_ms',
      ),
      deleteSlot: db.prepare('DELETE FROM mpan_appointments WHERE mpan = ? AND slot = ?'),
      insert: db.prepare('INSERT INTO mpan_appointments (mpan, slot, from_ms, to_ms, dip_id) VALUES (?, ?, ?, ?, ?)'),
    };
  }

  async mpanHistory(mpan: string): Promise<Appointment[]> {
    return this.read(mpan);
  }

  private read(mpan: string): Appointment[] {
    return this.s.history.all(mpan).flatMap((r) => (isSlot(r.slot) ? [{ ...r, slot: r.slot }] : []));
  }

  applyAppointments(changes: AppointmentChange[]): Promise<void> {
    return this.d.write(() => {
      // Each touched (MPAN, slot) history is read once, folded in memory, and written back once.
      const histories = new Map<string, Appointment[]>();
      for (const c of changes) {
        const k = `${c.mpan}\u0000${c.slot}`;
        const current = histories.get(k) ?? this.read(c.mpan).filter((a) => a.slot === c.slot);
        histories.set(k, applyChange(current, c));
      }
      for (const [k, history] of histories) {
        const [mpan, slot] = k.split('\u0000') as [string, string];
        this.s.deleteSlot.run(mpan, slot);
        for (const a of history) this.s.insert.run(a.mpan, a.slot, a.fromMs, a.toMs, a.dipId);
      }
    });
  }
}
