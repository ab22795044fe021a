import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { round, hostNow } from './util.js';

/** The servers the cluster backend's benchmark runs against (the services on these machines by default). */
export const BENCH_POSTGRES_URL = process.env.DIP_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const BENCH_NATS_SERVERS = (process.env.DIP_BENCH_NATS_SERVERS ?? '127.0.0.1:4222').split(',');

export interface PgInsertResult {
  rowBytes: number;
  rowsPerTransaction: number;
  /** Concurrent connections each committing its own transactions. */
  connections: number;
  rowsPerSecond: number;
  commitsPerSecond: number;
}

export interface BenchDatabase {
  url: string;
  /** What PostgreSQL keeps of it on disk (pg_database_size: tables, indexes, TOAST). */
  size(): Promise<number>;
  drop(): Promise<void>;
}

/** A database of its own for one benchmark step (dropped by `drop`). */
export async function benchDatabase(prefix: string): Promise<BenchDatabase> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: BENCH_POSTGRES_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(BENCH_POSTGRES_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async size() {
      const c = new pg.Client({ connectionString: u.toString() });
      await c.connect();
      try {
        const r = await c.query<{ bytes: string }>('SELECT pg_database_size(current_database()) AS bytes');
        return Number(r.rows[0]!.bytes);
      } finally {
        await c.end();
      }
    },
    async drop() {
      const c = new pg.Client({ connectionString: BENCH_POSTGRES_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** Durable inserts (synchronous_commit on, the server's default) of IF-021-sized rows, over loopback. */
export async function pgInsertRate(opts: { rows: string[]; rowsPerTransaction: number; connections: number; durationMs: number }): Promise<PgInsertResult> {
  const db = await benchDatabase('opendip_bench_raw');
  const pool = new pg.Pool({ connectionString: db.url, max: opts.connections });
  // An idle connection the server ends (a restart, an administrator) must not end the benchmark.
  pool.on('error', () => {});
  try {
    await pool.query('CREATE TABLE t (id bigserial PRIMARY KEY, body bytea NOT NULL)');
    let rows = 0;
    let commits = 0;
    let bytes = 0;
    const t0 = hostNow();
    await Promise.all(
      Array.from({ length: opts.connections }, async (_, w) => {
        const c = await pool.connect();
        try {
          for (let n = w; hostNow() - t0 < opts.durationMs; n += opts.connections) {
            const batch = Array.from({ length: opts.rowsPerTransaction }, (_, i) => Buffer.from(opts.rows[(n + i) % opts.rows.length]!));
            await c.query('INSERT INTO t (body) SELECT unnest($1::bytea[])', [batch]);
            rows += batch.length;
            commits += 1;
            bytes += batch.reduce((s, b) => s + b.length, 0);
          }
        } finally {
          c.release();
        }
      }),
    );
    const s = (hostNow() - t0) / 1000;
    return { rowBytes: Math.round(bytes / rows), rowsPerTransaction: opts.rowsPerTransaction, connections: opts.connections, rowsPerSecond: round(rows / s, 0), commitsPerSecond: round(commits / s, 0) };
  } finally {
    await pool.end();
    await db.drop();
  }
}

export interface JetStreamResult {
  messageBytes: number;
  /** Acknowledged publishes in flight at once. */
  inFlight: number;
  publishPerSecond: number;
  consumePerSecond: number;
}

/**
 * JetStream on the local server (a file-backed stream, R1: one server here): acknowledged publishes with
 * `inFlight` outstanding, then an ordered consumer reading them all back.
 */
export async function jetstreamRate(opts: { message: string; inFlight: number; durationMs: number }): Promise<JetStreamResult> {
  const nc = await connect({ servers: BENCH_NATS_SERVERS });
  const name = `bench_raw_${randomBytes(4).toString('hex')}`;
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name, subjects: [`${name}.>`], storage: 'file', num_replicas: 1 });
    const js = jetstream(nc);
    const body = Buffer.from(opts.message);
    let published = 0;
    const t0 = hostNow();
    await Promise.all(
      Array.from({ length: opts.inFlight }, async () => {
        while (hostNow() - t0 < opts.durationMs) {
          await js.publish(`${name}.m`, body);
          published += 1;
        }
      }),
    );
    const publishS = (hostNow() - t0) / 1000;
    const consumer = await js.consumers.get(name);
    const t1 = hostNow();
    let consumed = 0;
    const messages = await consumer.consume({ max_messages: 1000 });
    for await (const _m of messages) {
      if (++consumed >= published) break;
    }
    await messages.close();
    const consumeS = (hostNow() - t1) / 1000;
    await jsm.streams.delete(name);
    return { messageBytes: body.length, inFlight: opts.inFlight, publishPerSecond: round(published / publishS, 0), consumePerSecond: round(consumed / consumeS, 0) };
  } finally {
    await nc.close();
  }
}
