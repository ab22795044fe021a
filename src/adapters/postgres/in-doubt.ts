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
  // PANIC or FATAL: the server ended the session (a PANIC every session) as it answered. A PANIC while the
  // commit record was flushed (a full WAL disk: 53100) leaves it to the recovery whether that record is in
  // the WAL it replays, so the SQLSTATE alone does not say "not committed".
  if (err.severity === 'PANIC' || err.severity === 'FATAL') return true;
  const code = err.code ?? '';
  return code.startsWith('08') || code.startsWith('57');
}

/** How long the old session is given to end once told to (pg_terminate_backend's wait, PostgreSQL 14+). */
const END_WAIT_MS = 5_000;

/** How long a commit found on the primary is given to be shown on its synchronous standbys (a standby a moment behind). */
const STANDBY_CATCH_UP_MS = 1_000;
const STANDBY_LOOK_EVERY_MS = 100;

/** Why it cannot be known whether a transaction whose COMMIT went unanswered committed (the old session not ended, the server unreachable). */
export const NOT_KNOWN = 'whether the transaction committed is not known';

/**
 * Finds out, on a new connection, whether a transaction whose COMMIT went unanswered committed: true or
 * false, or why it cannot be known (the server unreachable, the old session not ended in time, or a
 * commit on the primary that no synchronous standby is shown to have).
 *
 * The old session is ended first (pg_terminate_backend, waiting for it), unless it waits for its
 * synchronous standbys (wait_event SyncRep): ending that one would keep its transaction committed on the
 * primary alone, which delivery would then hand out and a failover lose; it is left waiting
 * (waitingForStandby). Any other session is ended because until then it may still be alive on the server, behind a broken path, with the COMMIT on its way, and a "not committed" read
 * before it ended could be made false a moment later. Once it has ended, its transaction's outcome is
 * final and `committed` reads it (whether a row the transaction wrote exists). After a failover the old
 * session is on the old server, and the new one has no such session (or one of another application).
 *
 * A row found proves only that the primary committed: a session ended while waiting for its synchronous
 * standbys (by an operator, or here when it began to wait just after it was looked at) leaves its
 * transaction committed locally, and a failover would lose it. So where the server waits for synchronous
 * standbys, it counts as committed only once as many standbys as it waits for are shown to have it (unconfirmed).
 */
export async function settleInDoubt(pool: pg.Pool, session: { pid: number; began: string } | undefined, committed: (c: pg.PoolClient) => Promise<boolean>): Promise<boolean | string> {
  // The session is named by the pid the server gave (PgDatabase.tx asks with BEGIN), not the client's
  // BackendKeyData: behind PgBouncer that is the pooler's key, which names no session, and ending it ended
  // nothing while the real session could still commit. Not known: nothing can be ended, so nothing is final.
  // A session with that pid that started after the transaction began is another, which reused the pid
  // once the old one had ended (its outcome is then final already): it is left alone.
  if (session === undefined) return NOT_KNOWN;
  try {
    return await withConnection(pool, async (c) => {
      // Looked at and ended in one statement: a session found waiting for its standbys is not ended.
      const { rows } = await c.query<{ ended: boolean | null }>(
        `SELECT CASE WHEN wait_event = 'SyncRep' THEN NULL ELSE pg_terminate_backend(pid, $2) END AS ended FROM pg_stat_activity
          WHERE pid = $1 AND pid <> pg_backend_pid() AND backend_start <= $3::timestamptz
            AND datname = current_database() AND application_name = current_setting('application_name')`,
        [session.pid, END_WAIT_MS, session.began],
      );
      if (rows[0]?.ended === null) return waitingForStandby(session.pid);
      if (rows[0]?.ended === false) return NOT_KNOWN;
      if (!(await committed(c))) return false;
      const unshown = await unconfirmed(c);
      return unshown === null ? true : `the transaction committed on the primary, but ${unshown}`;
    });
  } catch {
    return NOT_KNOWN;
  }
}

/**
 * Why a session left waiting for its synchronous standbys is in doubt, said for the operator. Its commit is
 * flushed on the primary but stays invisible to every other session until a standby acknowledges it (then
 * it is committed everywhere it must be) or the session is ended (then it is committed on the primary
 * alone, which a failover loses: so it is not ended here). Its connection is already given up by the pool
 * (dropped on the client side); the server session lives on, holding a connection slot, until then.
 */
function waitingForStandby(pid: number): string {
  return `the COMMIT waits for a synchronous standby to acknowledge it (session ${pid}, wait_event SyncRep in pg_stat_activity): it completes, and is seen, once one does`;
}

interface StandbyRow {
  names: string;
  level: string;
  /** Standbys the primary waits for (sync_state sync or quorum) whose position (as synchronous_commit asks) has reached the commit. */
  holding: number;
  streaming: string | null;
  /** The role may read the standbys' positions (pg_read_all_stats): NULL to others. */
  readable: boolean;
}

/**
 * Null when a commit the primary made (ended before this is asked) is on as many synchronous standbys
 * as the server waits for, or when it waits for none; else why not, said for the operator.
 *
 * The commit's own position is not known to another session; the primary's flushed WAL position, read
 * after the old session ended, is at or past it (a commit is flushed locally before its wait for the
 * standbys begins). A standby a moment behind that is given STANDBY_CATCH_UP_MS. The position compared is
 * the one synchronous_commit waits for: written (remote_write), flushed (on) or applied (remote_apply).
 */
export async function unconfirmed(c: pg.PoolClient): Promise<string | null> {
  const { rows } = await c.query<{ target: string }>('SELECT pg_current_wal_flush_lsn()::text AS target');
  const target = rows[0]!.target;
  for (let waited = 0; ; waited += STANDBY_LOOK_EVERY_MS) {
    const { rows: standby } = await c.query<StandbyRow>(
      `SELECT s.names, s.level, pg_has_role('pg_read_all_stats', 'USAGE') AS readable,
              (SELECT count(*)::int FROM pg_stat_replication r WHERE r.sync_state IN ('sync', 'quorum')
                  AND CASE s.level WHEN 'remote_apply' THEN r.replay_lsn WHEN 'remote_write' THEN r.write_lsn ELSE r.flush_lsn END >= $1::pg_lsn) AS holding,
              (SELECT string_agg(application_name || ' (' || coalesce(sync_state, 'state not readable without pg_read_all_stats') || ')', ', ') FROM pg_stat_replication) AS streaming
         FROM (SELECT current_setting('synchronous_standby_names') AS names, current_setting('synchronous_commit') AS level) s`,
      [target],
    );
    const r = standby[0]!;
    if (r.names.trim() === '' || !['on', 'remote_write', 'remote_apply'].includes(r.level)) return null;
    if (r.holding >= standbysWaitedFor(r.names)) return null;
    if (!r.readable) return `the database role may not read the standbys' positions (grant it pg_monitor or pg_read_all_stats), so no synchronous standby is shown to have it`;
    if (waited >= STANDBY_CATCH_UP_MS) return `no synchronous standby is shown to have it (synchronous_standby_names '${r.names}', synchronous_commit ${r.level}; standbys streaming: ${r.streaming ?? 'none'})`;
    await c.query(`SELECT pg_sleep(${STANDBY_LOOK_EVERY_MS / 1000})`);
  }
}

/**
 * How many standbys synchronous_standby_names makes a commit wait for: `FIRST n (…)`, `ANY n (…)` or
 * `n (…)` say n; a plain list (the older form) means its first one.
 */
export function standbysWaitedFor(names: string): number {
  const n = /^\s*(?:(?:first|any)\s+)?(\d+)\s*\(/i.exec(names)?.[1];
  return n === undefined ? 1 : Number(n);
}
