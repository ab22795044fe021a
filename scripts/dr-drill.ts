/**
 * Disaster-recovery drill for the cluster's system of record (docs/disaster-recovery.md): a PostgreSQL
 * of its own (initdb on a free port) is filled with at least a million archived messages spread over
 * ten days, backed up physically (pg_basebackup) and logically (pg_dump), destroyed, and restored from
 * each; the restore is timed until a DIP backend opened on it answers a replay query and the contents
 * match what was there before (counts and a digest of every transaction ID).
 *
 *   npx tsx scripts/dr-drill.ts [--messages 1000000] [--keep] [--json results.json]
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, chownSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { systemClock } from '../src/adapters/clock.js';
import { openPostgresBackend } from '../src/adapters/postgres/index.js';
import { createDays, dayBase, dayOf, dayStart } from '../src/adapters/postgres/partitions.js';
import { freePorts } from '../src/cli/cluster/processes.js';
import { postgresAccount, postgresBin, PrivatePostgres, runPostgresProgram } from '../src/cli/cluster/postgres.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const MESSAGES = Number(arg('messages') ?? 1_000_000);
const DAYS = 10;
const log = (m: string) => process.stderr.write(`[dr-drill] ${m}\n`);
const seconds = (ms: number) => Math.round(ms / 100) / 10;

async function timed<T>(what: string, fn: () => Promise<T> | T): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  log(`${what}: ${seconds(ms)} s`);
  return { value, ms };
}

/** What must survive: row counts and a digest of every transaction ID and queue position. */
async function fingerprint(url: string): Promise<string> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ m: string; e: string; h: string; d: string }>(
      `SELECT (SELECT count(*) FROM messages) AS m, (SELECT count(*) FROM queue_entries) AS e,
              (SELECT string_agg(recipient_dip_id || ':' || head || ':' || acked_seq, ',' ORDER BY id) FROM queues) AS h,
              (SELECT md5(string_agg(transaction_id, ',' ORDER BY id)) FROM messages) AS d`,
    );
    return JSON.stringify(rows[0]);
  } finally {
    await c.end();
  }
}

/** Archived traffic as ingest leaves it: batches of 100, each message to two recipients, sealed-size payloads. */
async function fill(url: string): Promise<void> {
  const today = dayOf(Date.now());
  const days = Array.from({ length: DAYS }, (_, i) => today - DAYS + i);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await createDays(c as unknown as pg.PoolClient, days);
    const perDay = Math.ceil(MESSAGES / DAYS);
    await c.query("INSERT INTO queues (recipient_dip_id, channel) VALUES ('1000000001', 'IF-021'), ('4000000001', 'IF-021') ON CONFLICT DO NOTHING");
    const { rows: queues } = await c.query<{ id: number }>('SELECT id FROM queues ORDER BY id');
    for (const [i, day] of days.entries()) {
      const base = dayBase(day);
      const t0 = dayStart(day);
      await c.query('BEGIN');
      await c.query(
        `INSERT INTO batches (id, channel, sender_dip_id, received_at, raw, signature)
         SELECT $1::bigint + b, 'IF-021', '2000000001', $2::bigint + b * 8640, decode(repeat(md5(b::text), 40), 'hex'), '{}'
           FROM generate_series(0, $3 - 1) AS b`,
        [base, t0, Math.ceil(perDay / 100)],
      );
      // ~700 bytes of incompressible payload, as AES-GCM sealing leaves an IF-021.
      await c.query(
        `INSERT INTO messages (id, batch_id, transaction_id, channel, event_code, sender_dip_id, sender_role, sender_ref, correlation_id, mpan,
                               received_at, replay_of, outbound, sealed)
         SELECT $1::bigint + n, $1::bigint + n / 100, 'T-IF-021-2000000001-SDS-' || $4 || '-' || lpad(to_hex($1::bigint + n), 16, '0'), 'IF-021', 'ActivePower',
                '2000000001', 'SDS', 'S-IF-021-2000000001-SDS-' || $4 || '-' || n, NULL, md5((n % 50000)::text),
                $2::bigint + (n * 86400000::bigint) / $3, NULL,
                decode(md5(n::text || 'a') || md5(n::text || 'b') || md5(n::text || 'c') || md5(n::text || 'd') || md5(n::text || 'e') ||
                       md5(n::text || 'f') || md5(n::text || 'g') || md5(n::text || 'h') || md5(n::text || 'i') || md5(n::text || 'j') ||
                       md5(n::text || 'k') || md5(n::text || 'l') || md5(n::text || 'm') || md5(n::text || 'n') || md5(n::text || 'o') ||
                       md5(n::text || 'p') || md5(n::text || 'q') || md5(n::text || 'r') || md5(n::text || 's') || md5(n::text || 't') ||
                       md5(n::text || 'u') || md5(n::text || 'v') || md5(n::text || 'w') || md5(n::text || 'x') || md5(n::text || 'y') ||
                       md5(n::text || 'z') || md5(n::text || 'A') || md5(n::text || 'B') || md5(n::text || 'C') || md5(n::text || 'D') ||
                       md5(n::text || 'E') || md5(n::text || 'F') || md5(n::text || 'G') || md5(n::text || 'H'), 'hex'), true
           FROM generate_series(0, $3 - 1) AS n`,
        [base, t0, perDay, new Date(t0).toISOString().slice(0, 10).replaceAll('-', '')],
      );
      await c.query(`INSERT INTO sender_refs (day, sender_dip_id, sender_ref) SELECT $1, sender_dip_id, sender_ref FROM messages WHERE id >= $2 AND id < $3`, [day, base, dayBase(day + 1)]);
      for (const q of queues) {
        await c.query(
          `INSERT INTO queue_entries (queue_id, seq, message_id) SELECT $1::int, $2::bigint + n + 1, $3::bigint + n FROM generate_series(0, $4 - 1) AS n`,
          [q.id, i * perDay, base, perDay],
        );
      }
      await c.query('UPDATE queues SET head = $1::bigint, acked_seq = $1::bigint', [(i + 1) * perDay]);
      await c.query('COMMIT');
      log(`day ${i + 1}/${DAYS}: ${perDay} messages`);
    }
    await c.query('INSERT INTO archived_channels (channel) VALUES ($1) ON CONFLICT DO NOTHING', ['IF-021']);
    await c.query('ANALYZE');
  } finally {
    await c.end();
  }
}

/** A DIP backend opened on the restored database answers a replay query (the archive is usable). */
async function serves(url: string): Promise<number> {
  const backend = await openPostgresBackend({ url, clock: systemClock, poolSize: 2 });
  try {
    const found = await backend.archive.findArchived({ recipientDipId: '1000000001', channel: 'IF-021', fromMs: dayStart(dayOf(Date.now()) - 3), limit: 100 });
    if (found.length !== 100) throw new Error(`replay on the restored database found ${found.length} messages, not 100`);
    return found.length;
  } finally {
    await backend.close();
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-dr-'));
  chmodSync(dir, 0o755);
  const [sourcePort, restorePort, logicalPort] = await freePorts(3);
  const source = new PrivatePostgres(join(dir, 'source'), sourcePort!);
  const results: Record<string, number | string> = { messages: MESSAGES };
  try {
    source.init();
    source.start();
    const url = `postgres://postgres@127.0.0.1:${sourcePort}/opendip`;
    execFileSync(postgresBin('createdb'), ['-h', '127.0.0.1', '-p', String(sourcePort), '-U', 'postgres', 'opendip']);
    await (await openPostgresBackend({ url, clock: systemClock, poolSize: 2 })).close();
    const filled = await timed(`fill ${MESSAGES} archived messages`, () => fill(url));
    results.fillSeconds = seconds(filled.ms);
    const before = await fingerprint(url);
    const size = execFileSync('du', ['-sm', source.data]).toString().split('\t')[0]!;
    results.databaseMb = Number(size);
    log(`source: ${before} (${size} MB on disk)`);

    // Physical backup: the whole instance, WAL included, ready to start as it is.
    const backupDir = join(dir, 'basebackup');
    mkdirSync(backupDir);
    if (process.getuid?.() === 0) chownSync(backupDir, postgresAccount().uid, postgresAccount().gid);
    const physical = await timed('pg_basebackup (plain, WAL streamed)', () =>
      runPostgresProgram('pg_basebackup', ['-h', '127.0.0.1', '-p', String(sourcePort), '-U', 'postgres', '-D', join(backupDir, 'data'), '-X', 'stream', '-c', 'fast']),
    );
    results.basebackupSeconds = seconds(physical.ms);
    // Logical backup: portable across versions, restorable in parallel.
    const dumpFile = join(dir, 'opendip.dump');
    const logical = await timed('pg_dump (custom format)', () =>
      execFileSync(postgresBin('pg_dump'), ['-h', '127.0.0.1', '-p', String(sourcePort), '-U', 'postgres', '-Fc', '-Z', '1', '-f', dumpFile, 'opendip']),
    );
    results.pgDumpSeconds = seconds(logical.ms);

    // The disaster: the server and its disk are gone.
    source.stop('immediate');
    rmSync(source.dir, { recursive: true, force: true });
    log('source destroyed');

    // Restore 1: the base backup copied to a new data directory and started (RTO from here).
    const restored = new PrivatePostgres(join(dir, 'restored'), restorePort!);
    const rto = await timed('restore from pg_basebackup until a DIP replays from it', async () => {
      mkdirSync(restored.dir, { recursive: true });
      cpSync(join(backupDir, 'data'), restored.data, { recursive: true });
      if (process.getuid?.() === 0) execFileSync('chown', ['-R', 'postgres:postgres', restored.dir]);
      chmodSync(restored.data, 0o700);
      restored.start();
      const restoredUrl = `postgres://postgres@127.0.0.1:${restorePort}/opendip`;
      await serves(restoredUrl);
      return fingerprint(restoredUrl);
    });
    if (rto.value !== before) throw new Error(`restored contents differ: ${rto.value} vs ${before}`);
    results.physicalRestoreSeconds = seconds(rto.ms);
    restored.stop('fast');

    // Restore 2: the logical dump into a new, empty instance (parallel restore).
    const fresh = new PrivatePostgres(join(dir, 'logical'), logicalPort!);
    fresh.init();
    fresh.start();
    const rto2 = await timed('restore from pg_dump (pg_restore -j 2) until a DIP replays from it', async () => {
      execFileSync(postgresBin('createdb'), ['-h', '127.0.0.1', '-p', String(logicalPort), '-U', 'postgres', 'opendip']);
      execFileSync(postgresBin('pg_restore'), ['-h', '127.0.0.1', '-p', String(logicalPort), '-U', 'postgres', '-d', 'opendip', '-j', '2', dumpFile]);
      const logicalUrl = `postgres://postgres@127.0.0.1:${logicalPort}/opendip`;
      await serves(logicalUrl);
      return fingerprint(logicalUrl);
    });
    if (rto2.value !== before) throw new Error(`restored contents differ: ${rto2.value} vs ${before}`);
    results.logicalRestoreSeconds = seconds(rto2.ms);
    fresh.stop('fast');
    log(`every restore matches the source: ${before}`);
    console.log(JSON.stringify(results, null, 2));
    const out = arg('json');
    if (out) writeFileSync(out, `${JSON.stringify({ ...results, at: new Date().toISOString() }, null, 2)}\n`);
  } finally {
    if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
