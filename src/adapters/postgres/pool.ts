import pg from 'pg';
import { isReadTimeout } from './errors.js';

/**
 * A connection pool to the cluster's PostgreSQL, as every store of a node opens one. What a server
 * restart, a failover or a killed session does to a connection must not take the node down, and what a
 * node frozen mid-transaction holds must not stop the other nodes:
 *  - every connection gets an 'error' listener for its whole life: pg emits a checked-out connection's
 *    failure on the connection (the pool only listens while it is idle), and with no listener Node ends
 *    the process; the query in flight fails with it, and that failure is answered (503, retried);
 *  - a session idle inside a transaction for `IDLE_IN_TRANSACTION_MS` is ended by the server, which
 *    releases its row locks (a node paused or cut off while holding a queue's lock would otherwise hold
 *    every other node's writes to that queue until it came back);
 *  - TCP keepalive, so a connection to a server that vanished is found dead without waiting for the
 *    kernel's two hours;
 *  - a query not answered within `QUERY_TIMEOUT_MS` fails on the client (a network partition that drops
 *    packets leaves a query unanswered, and the server's statement_timeout never hears of it: a fault
 *    campaign saw a request held 100 s and every connection of the pool stuck after the path was back).
 *    Longer than the server's statement timeout, so a slow statement is cancelled by the server first.
 */
export const IDLE_IN_TRANSACTION_MS = 10_000;
/**
 * How long a statement inside PgDatabase.tx waits for a lock (a queue's row, an advisory lock) before it
 * fails with lock_not_available and the transaction runs again. Shorter than IDLE_IN_TRANSACTION_MS on
 * purpose: a node cut off from the server leaves behind, besides the transaction that holds a queue's
 * lock, the ones queued for it; without a lock timeout each took the lock in turn and sat idle for the
 * 10 s (a campaign measured 20–30 s with no writes to those queues). With it, those give up while they
 * wait, and the queue is free again IDLE_IN_TRANSACTION_MS after the cut at most (plus this, when the
 * holder's lock was one of several it was taking).
 */
export const LOCK_TIMEOUT_MS = 2_000;
export const STATEMENT_TIMEOUT_MS = 30_000;
export const QUERY_TIMEOUT_MS = 35_000;

/** bigint columns hold epoch milliseconds, positions and ids, all below 2^53: read them as numbers. */
const types = new pg.TypeOverrides();
types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

export function openPool(options: { url: string; max: number; applicationName: string; statementTimeoutMs?: number; queryTimeoutMs?: number; idleInTransactionMs?: number }): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    idle_in_transaction_session_timeout: options.idleInTransactionMs ?? IDLE_IN_TRANSACTION_MS,
    query_timeout: options.queryTimeoutMs ?? QUERY_TIMEOUT_MS,
    // A statement that runs this long is given up by the server (a stuck lock, a failing-over server): the
    // write is answered 503 and tried again, instead of holding a request for ever.
    statement_timeout: options.statementTimeoutMs ?? STATEMENT_TIMEOUT_MS,
    application_name: options.applicationName,
    types,
  });
  // An idle connection the server closed: the pool drops it and the next query opens a new one.
  pool.on('error', () => {});
  pool.on('connect', (client) => {
    // The first is what ended it: pg follows the server's error (57P01) with "Connection terminated
    // unexpectedly", no code, when the socket ends, and that must not hide why.
    client.on('error', (err) => {
      if (!connectionErrors.has(client)) connectionErrors.set(client, err);
    });
  });
  return pool;
}

/** The error that ended each connection, as the server sent it (its later queries fail "not queryable", without it). */
const connectionErrors = new WeakMap<pg.ClientBase, unknown>();

/**
 * Whether the server ended this connection by an operator's or a supervisor's command (57P01
 * admin_shutdown: pg_terminate_backend, or a fast shutdown) rather than the connection being lost: the
 * session's transaction was rolled back, and a new connection may well work.
 */
export function endedByAdministrator(client: pg.ClientBase, err: unknown): boolean {
  const code = (e: unknown) => (e as { code?: unknown } | undefined)?.code;
  return code(err) === '57P01' || code(connectionErrors.get(client)) === '57P01';
}

/**
 * Runs `fn` on a connection of the pool and gives it back; a connection whose query went unanswered
 * (QUERY_TIMEOUT_MS), or that `fn` marks broken, is dropped rather than handed out again behind it.
 */
export async function withConnection<T>(pool: pg.Pool, fn: (client: pg.PoolClient, markBroken: (err: Error) => void) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    return await fn(client, (err) => (broken = err));
  } catch (err) {
    if (isReadTimeout(err)) broken = err as Error;
    throw err;
  } finally {
    client.release(broken);
  }
}
