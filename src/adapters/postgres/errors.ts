import { StoreError } from '../../ports/errors.js';

/**
 * SQLSTATE classes and codes after which trying again later can succeed, because the server is busy,
 * restarting, failing over, out of space or unreachable (src/ports/errors.ts). Everything else is a
 * problem with the statement or the data: permanent for the write that met it.
 */
// 28: the server refuses this role or address (pg_hba.conf, a password changed): an operator's fix, not the
// statement's fault; until then nothing can be stored, so callers are told to come back (503), not 500.
const UNAVAILABLE_CLASSES = ['08', '28', '53', '57', '58'];
const UNAVAILABLE_CODES = new Set([
  '40001', // serialization_failure (retried first: see PgDatabase.tx)
  '40P01', // deadlock_detected (likewise)
  '25006', // read_only_sql_transaction: connected to a standby during a failover
  '55P03', // lock_not_available
  '55000', // object_not_in_prerequisite_state (e.g. a detach still pending)
  // idle_in_transaction_session_timeout: the server ended a session it saw idle in a transaction (the
  // node was frozen, or cut off and the answer arrives once the path heals). Rolled back: try again.
  '25P03',
]);
/** Node's socket errors: no server to talk to right now. */
const UNAVAILABLE_SOCKET = /^(?:ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)$/;

/**
 * ENOENT is "unavailable" only as the connection's own socket raises it: connect() to a Unix socket that is
 * gone while its server is down (node's net module: syscall 'connect', the socket's path as its address).
 * Any other ENOENT is a file the configuration names and that is not there (a client certificate or key,
 * a CA file that node-postgres reads with open()): no wait makes it appear, so it stays a clear permanent
 * error rather than a 503 whose queues wait for ever (settle2).
 */
const socketGone = (error: unknown): boolean => (error as { syscall?: unknown })?.syscall === 'connect';
/** node-postgres raises these without a code when a connection dies or cannot be had in time. */
const UNAVAILABLE_MESSAGE = /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended|not queryable|Query read timeout/i;

/** node-postgres gave up waiting for a query's answer (QUERY_TIMEOUT_MS): the connection is of no more use. */
export const isReadTimeout = (err: unknown): boolean => err instanceof Error && err.message === 'Query read timeout';

/** A statement gave up waiting for a lock (lock_timeout): another session holds it, the server is fine. */
export const isLockTimeout = (err: unknown): boolean => (err as { code?: unknown })?.code === '55P03';

/** Errors worth running the whole transaction again for at once, before calling the server unavailable. */
export const isRetryable = (err: unknown): boolean => {
  const code = (err as { code?: unknown })?.code;
  return code === '40001' || code === '40P01';
};

export function classifyPgError(error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const code = typeof (error as { code?: unknown })?.code === 'string' ? (error as { code: string }).code : null;
  const message = error instanceof Error ? error.message : String(error);
  const unavailable =
    code !== null
      ? UNAVAILABLE_CODES.has(code) || UNAVAILABLE_CLASSES.includes(code.slice(0, 2)) || UNAVAILABLE_SOCKET.test(code) || (code === 'ENOENT' && socketGone(error))
      : UNAVAILABLE_MESSAGE.test(message);
  return new StoreError(unavailable ? 'unavailable' : 'permanent', `PostgreSQL: ${message}`, code, { cause: error });
}
