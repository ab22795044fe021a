/**
 * A day's throughput and latency report at volume: `npx tsx bench/report-counts.ts [--messages 2000000] [--engine sqlite,postgres]`
 *
 * Pre-loads a scratch store (SQLite: a temporary file; PostgreSQL: a fresh database on DIP_TEST_POSTGRES_URL
 * or the local server, dropped after) with `--messages` IF-021 messages received over one UTC day, four
 * copies each (four supplier queues), all delivered by webhook calls of 100 copies, one in a thousand
 * dead-lettered, plus a quarter as many on the day before (so the day is a range of the archive, not all of
 * it). Rows are written in SQL, not through the API: the store then holds what that many accepted and
 * delivered messages leave behind, with every index. Then times, for the day, the reports counted in the
 * store (operator, hourly; one recipient's view), and with `--before` as they were (every message's trace
 * read into memory; refused past 200,000 messages), and prints the SQLite query plan.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { systemClock } from '../src/adapters/clock.js';
import { dayBase, dayOf } from '../src/adapters/postgres/partitions.js';
import { openPostgresBackend } from '../src/adapters/postgres/index.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { countsSql } from '../src/adapters/report-counts-sql.js';
import { sqliteDialect } from '../src/adapters/sqlite/report-counts.js';
import { Reports, type ReportFilter } from '../src/pipeline/reports.js';
import type { Backend } from '../src/ports/backend.js';

const { values: flags } = parseArgs({ options: { messages: { type: 'string', default: '2000000' }, engine: { type: 'string', default: 'sqlite,postgres' }, before: { type: 'boolean', default: false } } });
const N = Number(flags.messages);
const BEFORE = Math.round(N / 4);
const DAY = 86_400_000;
const day = dayOf(Date.now()) - 1; // yesterday: PostgreSQL makes partitions from the day before today
const D0 = day * DAY;
const RECIPIENTS = ['1000000001', '1000000002', '1000000003', '1000000004'];
const CALL = 100;
const log = (s: string): void => void process.stderr.write(`[report-counts ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

/** Message i of the day (0…N-1) or of the day before (N…N+BEFORE-1): when it was received. */
const receivedAt = (i: number): number => (i < N ? D0 + Math.floor((i * DAY) / N) : D0 - DAY + Math.floor(((i - N) * DAY) / BEFORE));

/** Times a report and how long the event loop was held meanwhile (its longest delay: a report on the loop holds it throughout). */
async function time<T>(what: string, fn: () => Promise<T>): Promise<{ ms: number; value: T | Error }> {
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  // The monitor records the time between two of its ticks: its first tick must come before the report.
  await new Promise((resolve) => setTimeout(resolve, 50));
  const t = performance.now();
  let value: T | Error;
  try {
    value = await fn();
  } catch (err) {
    value = err as Error;
  }
  const ms = Math.round(performance.now() - t);
  // A loop held until now records its delay when its timer next fires: let it.
  await new Promise((resolve) => setTimeout(resolve, 50));
  lag.disable();
  log(`${what}: ${ms} ms, event loop held up to ${Math.round(lag.max / 1e6)} ms${value instanceof Error ? ` (refused: ${value.message.slice(0, 90)}…)` : ''}`);
  return { ms, value };
}

async function measure(engine: string, backend: Backend): Promise<void> {
  const f: ReportFilter = { fromMs: D0, toMs: D0 + DAY, granularity: 'hour' };
  const mpan = { history: async () => [] };
  const before = new Reports(backend.traces, mpan, () => Date.now(), '0000000000');
  const after = new Reports(backend.traces, mpan, () => Date.now(), '0000000000', null, { counts: backend.reportCounts });
  const op = { kind: 'operator' } as const;
  // The reports as they were (--before): every message's trace read into memory. Slow at any size (the
  // SQLite trace finds each copy's calls by scanning its queue's), so measured at small sizes only.
  if (flags.before) {
    await time(`${engine} before, day throughput (in memory)`, () => before.throughput(op, f));
    await time(`${engine} before, day latency (in memory)`, () => before.latency(op, f));
  }
  const tp = await time(`${engine} after, day throughput (hourly)`, () => after.throughput(op, f));
  await time(`${engine} after, day latency (hourly)`, () => after.latency(op, f));
  await time(`${engine} after, day throughput, one recipient's view`, () => after.throughput({ kind: 'participant', dipId: RECIPIENTS[0]! }, f));
  if (!(tp.value instanceof Error)) {
    const sum = tp.value.reduce((s, r) => ({ in: s.in + r.in, out: s.out + r.out, errors: s.errors + r.errors }), { in: 0, out: 0, errors: 0 });
    log(`${engine} day totals: ${JSON.stringify(sum)}`);
  }
}

function preloadSqlite(file: string): void {
  const db = new Database(file);
  db.pragma('synchronous = OFF');
  const t = performance.now();
  db.transaction(() => {
    for (const [i, r] of RECIPIENTS.entries()) db.prepare("INSERT INTO queues (id, recipient_dip_id, channel, acked_seq) VALUES (?, ?, 'IF-021', ?)").run(i + 1, r, N + BEFORE);
    const total = N + BEFORE;
    // Oldest first, as they arrived: the day before, then the day.
    const order = (k: number) => (k < BEFORE ? N + k : k - BEFORE);
    const msg = db.prepare("INSERT INTO messages (id, transaction_id, channel, event_code, sender_dip_id, sender_role, received_at, outbound) VALUES (?, ?, 'IF-021', 'ActivePower', ?, 'SDS', ?, x'00')");
    const entry = db.prepare('INSERT INTO queue_entries (queue_id, seq, message_id) VALUES (?, ?, ?)');
    const call = db.prepare("INSERT INTO delivery_attempts (queue_id, first_seq, last_seq, url, started_at, latency_ms, status, verdict) VALUES (?, ?, ?, 'https://sup.example/dip', ?, 20, 200, 'delivered')");
    const dead = db.prepare("INSERT INTO dead_letters (queue_id, seq, message_id, reason, status, detail, at) VALUES (?, ?, ?, 'rejected', 400, 'refused', ?)");
    for (let k = 0; k < total; k++) {
      const i = order(k);
      const at = receivedAt(i);
      msg.run(k + 1, `T-${k}`, `200000000${k % 8}`, at);
      for (let q = 1; q <= RECIPIENTS.length; q++) {
        entry.run(q, k + 1, k + 1);
        if (k % 1000 === 999) dead.run(q, k + 1, k + 1, at + 300);
        if ((k + 1) % CALL === 0 || k === total - 1) call.run(q, k - (k % CALL) + 1, k + 1, at + 200 + q);
      }
    }
  })();
  db.close();
  log(`sqlite: ${N + BEFORE} messages pre-loaded in ${Math.round((performance.now() - t) / 1000)} s`);
}

function planSqlite(file: string): void {
  const db = new Database(file, { readonly: true });
  const { d, params } = sqliteDialect();
  const sql = countsSql({ fromMs: D0, toMs: D0 + DAY, granularity: 'hour', dipId: '0000000000' }, d);
  const plan = db.prepare<[Record<string, string | number>], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`).all(params());
  log(`sqlite plan:\n  ${plan.map((r) => r.detail).join('\n  ')}`);
  db.close();
}

async function sqlite(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-report-counts-'));
  const file = join(dir, 'dip.db');
  try {
    await openSqliteBackend(file, { clock: systemClock }).close();
    preloadSqlite(file);
    planSqlite(file);
    const backend = openSqliteBackend(file, { clock: systemClock });
    await measure('sqlite', backend);
    await backend.close();
  } finally {
    if (!process.env.KEEP) rmSync(dir, { recursive: true, force: true }); else log(`kept ${file}, day ${D0}`);
  }
}

async function postgres(): Promise<void> {
  const server = process.env.DIP_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const name = `opendip_bench_counts_${process.pid}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const u = new URL(server);
  u.pathname = `/${name}`;
  const url = u.toString();
  try {
    // Partitions are made around the clock's day: yesterday's, for the day and the day before it.
    const backend = await openPostgresBackend({ url, clock: { ...systemClock, now: () => D0 + DAY / 2 } });
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const t = performance.now();
    await c.query(`INSERT INTO queues (id, recipient_dip_id, channel, head, acked_seq) SELECT g, '100000000' || g, 'IF-021', $1, $1 FROM generate_series(1, 4) g`, [N + BEFORE]);
    // Message k (1-based, oldest first) of the day before, then of the day; its id in its day's partition.
    const load = async (from: number, count: number, d: number, d0: number, perDay: number) =>
      c.query(
        `WITH k AS (SELECT g AS k, $4::bigint + (g - $1) * $5::bigint / $6 AS at, $3::bigint + g AS id FROM generate_series($1::bigint, $2::bigint) g),
              m AS (INSERT INTO messages (id, transaction_id, channel, event_code, sender_dip_id, sender_role, received_at, outbound, sealed)
                    SELECT id, 'T-' || k, 'IF-021', 'ActivePower', '200000000' || (k % 8), 'SDS', at, '\\x00', false FROM k RETURNING id)
         INSERT INTO queue_entries (queue_id, seq, message_id) SELECT q, k.k, k.id FROM k CROSS JOIN generate_series(1, 4) q`,
        [from, from + count - 1, dayBase(d), d0, DAY, perDay],
      );
    await load(1, BEFORE, day - 1, D0 - DAY, BEFORE);
    await load(BEFORE + 1, N, day, D0, N);
    const atOf = `CASE WHEN k <= ${BEFORE} THEN ${D0 - DAY} + (k - 1) * ${DAY}::bigint / ${BEFORE} ELSE ${D0} + (k - ${BEFORE + 1}) * ${DAY}::bigint / ${N} END`;
    await c.query(`INSERT INTO delivery_attempts (queue_id, first_seq, last_seq, url, started_at, latency_ms, status, verdict)
      SELECT q, k - ${CALL - 1}, k, 'https://sup.example/dip', ${atOf} + 200 + q, 20, 200, 'delivered' FROM generate_series(${CALL}, ${N + BEFORE}, ${CALL}) k CROSS JOIN generate_series(1, 4) q`);
    await c.query(`INSERT INTO dead_letters (queue_id, seq, message_id, reason, status, detail, at)
      SELECT e.queue_id, e.seq, e.message_id, 'rejected', 400, 'refused', m.received_at + 300 FROM queue_entries e JOIN messages m ON m.id = e.message_id WHERE e.seq % 1000 = 0`);
    await c.query('ANALYZE');
    await c.end();
    log(`postgres: ${N + BEFORE} messages pre-loaded in ${Math.round((performance.now() - t) / 1000)} s`);
    await measure('postgres', backend);
    await backend.close();
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

for (const engine of flags.engine.split(',')) {
  if (engine === 'sqlite') await sqlite();
  else if (engine === 'postgres') await postgres();
  else throw new Error(`unknown engine ${engine}`);
}
