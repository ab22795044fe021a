import { applyChange, isSlot, type Appointment, type AppointmentChange } from '../../domain/mpan-lookup.js';
import type { MpanStore } from '../../ports/mpan.js';
import { indexesByHash, isIndexValue } from '../../security/at-rest.js';
import type { PgDatabase } from './database.js';
import { KEYED_MPANS } from '../schema-generation.js';

type Row = { slot: string; dipId: string; fromMs: number; toMs: number | null };
// The mpan column holds the sealer's keyed hash of the MPAN (the MPAN itself where nothing seals): a
// history is read by the hash of the MPAN asked for, and given back under that MPAN.
const HISTORY = 'SELECT slot, dip_id AS "dipId", from_ms AS "fromMs", to_ms AS "toMs" FROM mpan_appointments WHERE mpan = $1 ORDER BY slot, from_ms';
const slotted = (mpan: string, rows: Row[]): Appointment[] => rows.flatMap((r) => (isSlot(r.slot) ? [{ mpan, ...r, slot: r.slot }] : []));
const MIGRATION = 'mpan-index';

/** MPAN appointment histories (the pipeline's MpanDirectory caches over them). */
export class PgMpanStore implements MpanStore {
  constructor(private readonly d: PgDatabase) {}

  async mpanHistory(mpan: string): Promise<Appointment[]> {
    return slotted(mpan, await this.d.query<Row>(HISTORY, [this.d.sealer.index(mpan)]));
  }

  async applyAppointments(changes: AppointmentChange[]): Promise<void> {
    if (changes.length === 0) return;
    const keyOf = new Map(changes.map((ch) => [ch.mpan, this.d.sealer.index(ch.mpan)]));
    await this.d.tx(async (c) => {
      // The touched MPANs are locked in order first: two nodes folding changes into one history wait for
      // each other instead of overwriting each other's fold.
      await c.query('SELECT pg_advisory_xact_lock(hashtext(m)) FROM unnest($1::text[]) AS m ORDER BY m', [[...new Set(keyOf.values())].sort()]);
      const histories = new Map<string, Appointment[]>();
      for (const ch of changes) {
        const k = `${ch.mpan}\u0000${ch.slot}`;
        const current = histories.get(k) ?? slotted(ch.mpan, (await c.query<Row>(HISTORY, [keyOf.get(ch.mpan)])).rows).filter((a) => a.slot === ch.slot);
        histories.set(k, applyChange(current, ch));
      }
      for (const [k, history] of histories) {
        const [mpan, slot] = k.split('\u0000') as [string, string];
        const key = keyOf.get(mpan)!;
        await c.query('DELETE FROM mpan_appointments WHERE mpan = $1 AND slot = $2', [key, slot]);
        await c.query('INSERT INTO mpan_appointments (mpan, slot, from_ms, to_ms, dip_id) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[])', [
          history.map(() => key),
          history.map((a) => a.slot),
          history.map((a) => a.fromMs),
          history.map((a) => a.toMs),
          history.map((a) => a.dipId),
        ]);
      }
    });
  }

  async indexStoredMpans(batchSize = 5_000): Promise<number> {
    if (!indexesByHash(this.d.sealer)) return 0;
    // Before the first row moves, and on every start after (a store rewritten by a build before the gate
    // has no record): from here a node of generation 1 would find no appointment (schema-generation.ts).
    await this.d.raiseGeneration(KEYED_MPANS);
    const done = await this.d.query('SELECT 1 FROM data_migrations WHERE name = $1', [MIGRATION]);
    if (done.length > 0) return 0;
    let rewritten = 0;
    // Keyset over the primary key, in whatever collation it has: a hashed row inserted behind the cursor
    // is met again and skipped, so the whole walk reads each row at most twice.
    for (let after = ''; ; ) {
      const { count, last } = await this.d.tx(async (c) => {
        // No lock per MPAN (thousands in one transaction would fill PostgreSQL's shared lock table): a node
        // serves only once its own start found the rewrite done, so no node of this build folds into a history
        // while it moves. Nodes starting together take turns per batch.
        await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [MIGRATION]);
        // Rows, not DISTINCT MPANs: an index range scan that stops at the limit (DISTINCT made PostgreSQL
        // aggregate the whole rest of the table per batch). An MPAN cut at the batch's end moves whole.
        const { rows } = await c.query<{ mpan: string }>('SELECT mpan FROM mpan_appointments WHERE mpan > $1 ORDER BY mpan LIMIT $2', [after, batchSize]);
        const keys = [...new Set(rows.map((r) => r.mpan))];
        const clear = keys.filter((k) => !isIndexValue(k));
        const hashed = clear.map((m) => this.d.sealer.index(m));
        // Insert-then-delete rather than UPDATE: should a hashed row already exist for the same key, it wins.
        const moved = await c.query(
          `INSERT INTO mpan_appointments (mpan, slot, from_ms, to_ms, dip_id)
             SELECT v.h, a.slot, a.from_ms, a.to_ms, a.dip_id FROM mpan_appointments a JOIN unnest($1::text[], $2::text[]) AS v(c, h) ON a.mpan = v.c
           ON CONFLICT DO NOTHING`,
          [clear, hashed],
        );
        await c.query('DELETE FROM mpan_appointments WHERE mpan = ANY($1::text[])', [clear]);
        return { count: moved.rowCount ?? 0, last: rows.length < batchSize ? undefined : keys.at(-1) };
      });
      rewritten += count;
      if (last === undefined) break;
      after = last;
    }
    await this.d.query('INSERT INTO data_migrations (name, done_at) VALUES ($1, $2) ON CONFLICT DO NOTHING', [MIGRATION, this.d.options.clock.now()]);
    return rewritten;
  }
}
