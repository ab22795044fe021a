import { applyChange, isSlot, type Appointment, type AppointmentChange } from '../../domain/mpan-lookup.js';
import type { MpanStore } from '../../ports/mpan.js';
import type { PgDatabase } from './database.js';

type Row = { mpan: string; slot: string; dipId: string; fromMs: number; toMs: number | null };
const HISTORY = 'SELECT mpan, slot, dip_id AS "dipId", from_ms AS "fromMs", to_ms AS "toMs" FROM mpan_appointments WHERE mpan = $1 ORDER BY slot, from_ms';
const slotted = (rows: Row[]): Appointment[] => rows.flatMap((r) => (isSlot(r.slot) ? [{ ...r, slot: r.slot }] : []));

/** MPAN appointment histories (the pipeline's MpanDirectory caches over them). */
export class PgMpanStore implements MpanStore {
  constructor(private readonly d: PgDatabase) {}

  async mpanHistory(mpan: string): Promise<Appointment[]> {
    return slotted(await this.d.query<Row>(HISTORY, [mpan]));
  }

  async applyAppointments(changes: AppointmentChange[]): Promise<void> {
    if (changes.length === 0) return;
    await this.d.tx(async (c) => {
      // The touched MPANs are locked in order first: two nodes folding changes into one history wait for
      // each other instead of overwriting each other's fold.
      const mpans = [...new Set(changes.map((ch) => ch.mpan))].sort();
      await c.query('SELECT pg_advisory_xact_lock(hashtext(m)) FROM unnest($1::text[]) AS m ORDER BY m', [mpans]);
      const histories = new Map<string, Appointment[]>();
      for (const ch of changes) {
        const k = `${ch.mpan}\u0000${ch.slot}`;
        const current = histories.get(k) ?? slotted((await c.query<Row>(HISTORY, [ch.mpan])).rows).filter((a) => a.slot === ch.slot);
        histories.set(k, applyChange(current, ch));
      }
      for (const [k, history] of histories) {
        const [mpan, slot] = k.split('\u0000') as [string, string];
        await c.query('DELETE FROM mpan_appointments WHERE mpan = $1 AND slot = $2', [mpan, slot]);
        await c.query('INSERT INTO mpan_appointments (mpan, slot, from_ms, to_ms, dip_id) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[])', [
          history.map((a) => a.mpan),
          history.map((a) => a.slot),
          history.map((a) => a.fromMs),
          history.map((a) => a.toMs),
          history.map((a) => a.dipId),
        ]);
      }
    });
  }
}
