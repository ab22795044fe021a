import type { PoolClient } from 'pg';
import { LOCKS } from './schema.js';

/**
 * Day partitions. Everything that grows with traffic is split by day so that retention detaches and drops
 * whole days: the purge costs the same at 40 million messages a day as at 40 (deleting rows would cost
 * a vacuumed row each, billions a year).
 *
 * Message and batch ids carry their day in their high bits: id = (day − 2020-01-01) × 2^37 + n, where n
 * comes from a sequence. A message's id alone then names its partition, queue entries are partitioned by
 * the id of the message they point at (and so are dropped with it), and ids stay below 2^53 (exact in
 * JavaScript) until the year 2199. 2^37 ids a day is 1,600 times the 15 billion a year the DIP plans for.
 */
const DAY_MS = 86_400_000;
const EPOCH_DAY = 18_262; // 2020-01-01
const ID_SPAN = 2 ** 37;

export const dayOf = (ms: number): number => Math.floor(ms / DAY_MS);
export const dayStart = (day: number): number => day * DAY_MS;
/** The first id of a day. */
export const dayBase = (day: number): number => (day - EPOCH_DAY) * ID_SPAN;
/** An id for the day from a sequence value. */
export const idFor = (day: number, sequenceValue: number): number => dayBase(day) + (sequenceValue % ID_SPAN);

/** Tables split by day, and the bounds of one day's partition in each. */
const TABLES: Record<string, (day: number) => [number, number]> = {
  messages: (d) => [dayBase(d), dayBase(d + 1)],
  batches: (d) => [dayBase(d), dayBase(d + 1)],
  queue_entries: (d) => [dayBase(d), dayBase(d + 1)],
  sender_refs: (d) => [d, d + 1],
  delivery_attempts: (d) => [dayStart(d), dayStart(d + 1)],
};
/** Dropped together when the archive's retention has passed (sender references last as long as their messages). */
export const ARCHIVE_TABLES = ['queue_entries', 'messages', 'batches', 'sender_refs'] as const;

const suffix = (day: number): string => new Date(dayStart(day)).toISOString().slice(0, 10).replaceAll('-', '');
export const partitionName = (table: string, day: number): string => `${table}_d${suffix(day)}`;


/** Creates the day's partitions in every table that lacks them (idempotent; safe from several nodes at once). */
export async function createDays(client: PoolClient, days: Iterable<number>): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query("SET LOCAL lock_timeout = '10s'");
    await client.query('SELECT pg_advisory_xact_lock($1)', [LOCKS.partitions]);
    for (const day of days) {
      for (const [table, bounds] of Object.entries(TABLES)) {
        const [from, to] = bounds(day);
        await client.query(`CREATE TABLE IF NOT EXISTS ${partitionName(table, day)} PARTITION OF ${table} FOR VALUES FROM (${from}) TO (${to})`);
      }
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** The days that have partitions in `table`, oldest first. */
export async function daysOf(client: PoolClient, table: string): Promise<number[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
      WHERE p.relname = $1 AND p.relnamespace = current_schema()::regnamespace`,
    [table],
  );
  const days: number[] = [];
  for (const { name } of rows) {
    const m = /_d(\d{4})(\d{2})(\d{2})$/.exec(name);
    if (m) days.push(dayOf(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))));
  }
  return days.sort((a, b) => a - b);
}

/**
 * Detaches (CONCURRENTLY: readers and writers of other days are not blocked) and drops one day of
 * `tables`. Must run outside a transaction.
 */
export async function dropDay(client: PoolClient, tables: readonly string[], day: number): Promise<void> {
  await client.query("SET lock_timeout = '5s'");
  try {
    for (const table of tables) {
      const name = partitionName(table, day);
      const attached = await client.query<{ pending: boolean }>(
        `SELECT i.inhdetachpending AS pending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace`,
        [name],
      );
      // A detach interrupted half way (a crash, a timeout) is finished rather than started again.
      const pending = attached.rows[0]?.pending;
      if (pending === true) await client.query(`ALTER TABLE ${table} DETACH PARTITION ${name} FINALIZE`);
      else if (pending === false) await client.query(`ALTER TABLE ${table} DETACH PARTITION ${name} CONCURRENTLY`);
      await client.query(`DROP TABLE IF EXISTS ${name}`);
    }
  } finally {
    await client.query('RESET lock_timeout');
  }
}
