import { applyChange, isSlot, type Appointment, type AppointmentChange } from '../../domain/mpan-lookup.js';
import type { MpanStore } from '../../ports/mpan.js';
import { indexesByHash, isIndexValue } from '../../security/at-rest.js';
import type { SqliteDatabase } from './database.js';
import { KEYED_MPANS } from '../schema-generation.js';
import { raiseGeneration, storedGeneration } from './schema.js';

const MIGRATION = 'mpan-index';

/**
 * MPAN appointment histories. The mpan column holds the sealer's keyed hash of the MPAN (the MPAN itself
 * where nothing seals): a history is read by the hash of the MPAN asked for, and given back under that MPAN.
 */
export class SqliteMpanStore implements MpanStore {
  private readonly s;

  constructor(private readonly d: SqliteDatabase) {
    const db = d.db;
    this.s = {
      history: db.prepare<[string], { slot: string; dipId: string; fromMs: number; toMs: number | null }>(
        'SELECT slot, dip_id AS dipId, from_ms AS fromMs, to_ms AS toMs FROM mpan_appointments WHERE mpan = ? ORDER BY slot, from_ms',
      ),
      deleteSlot: db.prepare('DELETE FROM mpan_appointments WHERE mpan = ? AND slot = ?'),
      insert: db.prepare('INSERT INTO mpan_appointments (mpan, slot, from_ms, to_ms, dip_id) VALUES (?, ?, ?, ?, ?)'),
      keysAfter: db.prepare<[string, number], { mpan: string }>('SELECT mpan FROM mpan_appointments WHERE mpan > ? ORDER BY mpan LIMIT ?'),
      move: db.prepare('INSERT OR IGNORE INTO mpan_appointments (mpan, slot, from_ms, to_ms, dip_id) SELECT ?, slot, from_ms, to_ms, dip_id FROM mpan_appointments WHERE mpan = ?'),
      deleteMpan: db.prepare('DELETE FROM mpan_appointments WHERE mpan = ?'),
      migrated: db.prepare<[string], { name: string }>('SELECT name FROM data_migrations WHERE name = ?'),
      markMigrated: db.prepare('INSERT OR IGNORE INTO data_migrations (name, done_at) VALUES (?, ?)'),
    };
  }

  async mpanHistory(mpan: string): Promise<Appointment[]> {
    return this.read(mpan, this.d.sealer.index(mpan));
  }

  private read(mpan: string, key: string): Appointment[] {
    return this.s.history.all(key).flatMap((r) => (isSlot(r.slot) ? [{ mpan, ...r, slot: r.slot }] : []));
  }

  applyAppointments(changes: AppointmentChange[]): Promise<void> {
    const keyOf = new Map(changes.map((c) => [c.mpan, this.d.sealer.index(c.mpan)]));
    return this.d.write(() => {
      // Each touched (MPAN, slot) history is read once, folded in memory, and written back once.
      const histories = new Map<string, Appointment[]>();
      for (const c of changes) {
        const k = `${c.mpan}\u0000${c.slot}`;
        const current = histories.get(k) ?? this.read(c.mpan, keyOf.get(c.mpan)!).filter((a) => a.slot === c.slot);
        histories.set(k, applyChange(current, c));
      }
      for (const [k, history] of histories) {
        const [mpan, slot] = k.split('\u0000') as [string, string];
        const key = keyOf.get(mpan)!;
        this.s.deleteSlot.run(key, slot);
        for (const a of history) this.s.insert.run(key, a.slot, a.fromMs, a.toMs, a.dipId);
      }
    });
  }

  async indexStoredMpans(batchSize = 5_000): Promise<number> {
    if (!indexesByHash(this.d.sealer)) return 0;
    // Before the first row moves, and on a start after that finds it unrecorded, as on PostgreSQL
    // (schema-generation.ts); read first, so that a start once it is recorded writes nothing.
    if ((storedGeneration(this.d.db) ?? 1) < KEYED_MPANS) await this.d.write(() => raiseGeneration(this.d.db, KEYED_MPANS, this.d.options.clock.now()));
    if (this.s.migrated.get(MIGRATION)) return 0;
    let rewritten = 0;
    // Keyset over the primary key: a hashed row inserted behind the cursor is met again and skipped.
    for (let after = ''; ; ) {
      const last = await this.d.write(() => {
        // Rows, as PostgreSQL's walk does (an MPAN cut at the batch's end moves whole).
        const rows = this.s.keysAfter.all(after, batchSize);
        const keys = [...new Set(rows.map((r) => r.mpan))];
        for (const clear of keys.filter((k) => !isIndexValue(k))) {
          // Insert-then-delete rather than UPDATE: should a hashed row already exist for the same key, it wins.
          rewritten += this.s.move.run(this.d.sealer.index(clear), clear).changes;
          this.s.deleteMpan.run(clear);
        }
        return rows.length < batchSize ? undefined : keys.at(-1);
      });
      if (last === undefined) break;
      after = last;
    }
    await this.d.write(() => this.s.markMigrated.run(MIGRATION, this.d.options.clock.now()));
    return rewritten;
  }
}
