import pg from 'pg';
import { withConnection } from './pool.js';

/**
 * A COMMIT sent whose answer never came (the connection lost, the read timed out, the session ended as it
 * committed) may have committed or not: the server may have written the commit record just before the
 * path broke. Only an error the server itself answered the COMMIT with (a deferred constraint, a
 * serialization failure) says it did not; 08 (connection) and 57 (operator intervention: a session ended
 * while waiting for its synchronous standbys has already committed locally) say nothing.
 */
export function commitInDoubt(err: unknown): boolean {
  if (!(err instanceof pg.DatabaseError)) return true;
  const code = err.code ?? '';
  return code.startsWith('08') || code.startsWith('57');
}

/** How long the old session is given to end once told to (pg_terminate_backend's wait, PostgreSQL 14+). */
const END_WAIT_MS = 5_000;

/**
 * Finds out, on a new connection, whether a transaction whose COMMIT went unanswered committed: true or
 * false, or null when it cannot be known (the server unreachable, the old session not ended in time).
 *
 * The old session is ended first (pg_terminate_backend, waiting for it): until then it may still be
 * alive on the server, behind a broken path, with the COMMIT on its way, and a "not committed" read
 * before it ended could be made false a moment later. Once it has ended, its transaction's outcome is
 * final and `committed` reads it (whether a row the transaction wrote exists). After a failover the old
 * session is on the old server, and the new one has no such session (or one of another application).
 */
export async function settleInDoubt(pool: pg.Pool, session: { pid: number; began: string } | undefined, committed: (c: pg.PoolClient) => Promise<boolean>): Promise<boolean | null> {
  // The session is named by the pid the server gave (PgDatabase.tx asks with BEGIN), not the client's
  // BackendKeyData: behind PgBouncer that is the pooler's key, which names no session, and ending it ended
  // nothing while the real session could still commit. Not known: nothing can be ended, so nothing is final.
  // A session with that pid that started after the transaction began is another, which reused the pid
  // once the old one had ended (its outcome is then final already): it is left alone.
  if (session === undefined) return null;
  try {
    return await withConnection(pool, async (c) => {
      const { rows } = await c.query<{ ended: boolean }>(
        `SELECT pg_terminate_backend(pid, $2) AS ended FROM pg_stat_activity
          WHERE pid = $1 AND pid <> pg_backend_pid() AND backend_start <= $3::timestamptz
            AND datname = current_database() AND application_name = current_setting('application_name')`,
        [session.pid, END_WAIT_MS, session.began],
      );
      if (rows[0]?.ended === false) return null;
      return committed(c);
    });
  } catch {
    return null;
  }
}
