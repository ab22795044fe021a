import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, fdatasync, fdatasyncSync } from 'node:fs';
import { GENESIS_HASH, type ChainedActivity } from '../../domain/activity.js';
import { fromActivityRow, fromChainRow, type ActivityRow as Row, type ChainRow } from '../activity-row.js';
import type { ActivityFilter, ActivityLogStore, ActivityLoss, ActivityQuery, ChainInfo } from '../../ports/activity-log.js';
import type { Clock } from '../../ports/clock.js';
import { capFileSize, openWalFile } from './wal-file.js';
import { realFile } from './private-file.js';
import { describeWalLoss } from './wal-guard.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS activity_chains (
  chain TEXT PRIMARY KEY,
  started_at INTEGER NOT NULL,
  head_seq INTEGER NOT NULL DEFAULT 0,
  head_hash TEXT NOT NULL,
  anchor_seq INTEGER NOT NULL DEFAULT 0,
  anchor_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS activity_log (
  chain TEXT NOT NULL,
  seq INTEGER NOT NULL,
  at INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  listener TEXT NOT NULL,
  caller TEXT,
  acting_for TEXT,
  remote TEXT,
  method TEXT NOT NULL,
  url TEXT NOT NULL,
  status INTEGER,
  duration_ms REAL NOT NULL,
  response_body TEXT,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL,
  PRIMARY KEY (chain, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS activity_log_at ON activity_log (at, chain, seq);
CREATE INDEX IF NOT EXISTS activity_log_caller ON activity_log (caller, at);
-- A request looked up by the x-request-id its caller quotes (GET /admin/activity?requestId=): built on the
-- next open of a file made before.
CREATE INDEX IF NOT EXISTS activity_log_request_id ON activity_log (request_id);
-- Append-only: a record is never changed, and no record nor chain is ever deleted (spec 5.8.1: audit logs
-- "cannot be accidentally or maliciously purged"). IF NOT EXISTS: a file made before gets the guards it lacks
-- when next opened. A chain's row holds its recorded head, against which a deleted tail is found.
CREATE TRIGGER IF NOT EXISTS activity_log_no_update BEFORE UPDATE ON activity_log
  BEGIN SELECT RAISE(ABORT, 'the activity log is append-only: its records cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS activity_log_no_delete BEFORE DELETE ON activity_log
  BEGIN SELECT RAISE(ABORT, 'the activity log is append-only: its records cannot be deleted (spec 5.8.1)'); END;
CREATE TRIGGER IF NOT EXISTS activity_chains_no_delete BEFORE DELETE ON activity_chains
  BEGIN SELECT RAISE(ABORT, 'the activity log is append-only: its records cannot be deleted (spec 5.8.1)'); END;
-- Each open that found the WAL short of committed records (wal-guard.ts): the lost tail took its chain's
-- head with it, so the chains still verify; this is the evidence of the gap, kept as the records are.
CREATE TABLE IF NOT EXISTS activity_wal_losses (at INTEGER NOT NULL, lost TEXT NOT NULL);
-- The log's identity, made with the file (or at the first open of a file made before): dip.db keeps it
-- (WITNESS), so that a log deleted or replaced is told from the first start of a new one.
CREATE TABLE IF NOT EXISTS activity_log_identity (log_id TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS activity_wal_losses_no_update BEFORE UPDATE ON activity_wal_losses
  BEGIN SELECT RAISE(ABORT, 'the activity log is append-only: its records cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS activity_wal_losses_no_delete BEFORE DELETE ON activity_wal_losses
  BEGIN SELECT RAISE(ABORT, 'the activity log is append-only: its records cannot be deleted (spec 5.8.1)'); END;
-- The losses a \`dip serve\` has logged, journalled, alarmed and recorded on its chain: one found by another
-- opener (\`dip audit verify\` run first after the crash) is announced by the next serve (unannouncedWalLosses).
CREATE TABLE IF NOT EXISTS activity_wal_losses_announced (at INTEGER NOT NULL, lost TEXT NOT NULL);
-- The losses an operator acknowledged (POST /admin/activity/damage/acknowledge): until then GET /admin/health
-- says the log is damaged and the \`storage\` alarm holds, across restarts. Append-only: who and when stays.
CREATE TABLE IF NOT EXISTS activity_wal_losses_acknowledged (at INTEGER NOT NULL, lost TEXT NOT NULL, by TEXT NOT NULL, acknowledged_at INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS activity_wal_losses_acknowledged_no_update BEFORE UPDATE ON activity_wal_losses_acknowledged
  BEGIN SELECT RAISE(ABORT, 'the activity log is append-only: its records cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS activity_wal_losses_acknowledged_no_delete BEFORE DELETE ON activity_wal_losses_acknowledged
  BEGIN SELECT RAISE(ABORT, 'the activity log is append-only: its records cannot be deleted (spec 5.8.1)'); END;
`;

/**
 * In dip.db, which survives what happens to activity.db: the identity of the activity log the DIP was last
 * started beside (one row).
 */
const WITNESS = 'CREATE TABLE IF NOT EXISTS activity_log_witness (log_id TEXT NOT NULL, seen_at INTEGER NOT NULL)';
/** The losses no serve has announced yet (by value: a VACUUM may renumber rowids). */
const UNANNOUNCED = 'WHERE NOT EXISTS (SELECT 1 FROM activity_wal_losses_announced a WHERE a.at = l.at AND a.lost = l.lost)';
/** The losses no operator has acknowledged yet (by value, as UNANNOUNCED). */
const UNACKNOWLEDGED = 'WHERE NOT EXISTS (SELECT 1 FROM activity_wal_losses_acknowledged a WHERE a.at = l.at AND a.lost = l.lost)';

/** The conditions of a period and its filters but the caller (named parameters: only those used are given). */
function narrowed(fromMs: number, toMs: number, f: Omit<ActivityFilter, 'caller'>): { where: string; params: Record<string, string | number> } {
  const where = ['at >= @from', 'at < @to', ...(f.requestId !== undefined ? ['request_id = @requestId'] : []), ...(f.minStatus !== undefined ? ['status >= @minStatus'] : [])];
  const params = { from: fromMs, to: toMs, ...(f.requestId !== undefined ? { requestId: f.requestId } : {}), ...(f.minStatus !== undefined ? { minStatus: f.minStatus } : {}) };
  return { where: where.join(' AND '), params };
}

/**
 * The activity log in a SQLite file of its own beside the message store: its writes never wait for, nor
 * hold, the message log's write lock, and its retention is its own. Each append is one transaction made
 * durable by an fdatasync of the WAL on the thread pool (the event loop never waits on the disk).
 */
export class SqliteActivityLog implements ActivityLogStore {
  readonly kind = 'sqlite';
  private readonly db: Database.Database;
  private readonly walFd: number | null;
  private readonly s;
  private readonly appendTx: (records: readonly ChainedActivity[]) => void;
  /**
   * Committed records the WAL had lost when this process opened the file (a WAL deleted or damaged after
   * a crash), described; else null. Accepted, not refused as dip.db's loss is: a refusal brings nothing
   * back (a backup restored loses more, the records written since it), and going on harms nothing further
   * (this process writes a chain of its own, and no position or number is handed out again). So it is
   * made known instead: kept in the file (activity_wal_losses, what dip audit verify reports), and, in
   * `dip serve`, logged, journalled, alarmed and recorded on the new chain (src/assemble/observability.ts):
   * the losses no serve announced yet (unannouncedWalLosses), so one found by `dip audit verify` too.
   */
  readonly lostOnOpen: string | null;
  /** That loss when the damaged file would not take its note: announced all the same. */
  private readonly unkept: string | null;
  /** When this process opened the file: the time of a loss the file would not keep (unkept). */
  private readonly openedAt: number;

  /**
   * `witness`: the message store's file (dip.db), which keeps this log's identity (activity_log_witness):
   * an activity.db deleted (a fresh, empty log made in its place) or replaced by another log is a loss
   * told at this open as a WAL's is, and accepted for the same reasons. Absent (tests, a dip.db not made
   * yet): no such check.
   */
  constructor(file: string, clock: Pick<Clock, 'now'> = { now: Date.now }, options: { witness?: string } = {}) {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator's data directory (configuration)
    const existed = file !== ':memory:' && existsSync(file);
    // A WAL left beside the file: the last process to have it open did not close it (a crash, kill -9, a
    // power cut); a clean close checkpoints and removes it. Only then is the whole file read for damage:
    // the log is never purged, and at ~1.5 s a GiB every start would grow with it.
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator's data directory (configuration)
    const afterUncleanStop = existed && existsSync(`${realFile(file)}-wal`);
    const opened = openWalFile(file, SCHEMA, undefined, { acceptLoss: true });
    ({ db: this.db, walFd: this.walFd } = opened);
    const db = this.db;
    const damaged = afterUncleanStop ? quickCheck(db, file) : null;
    // A damaged file's identity may be unreadable: its witness is compared at the next open of a sound one.
    const vanished = options.witness === undefined || damaged !== null ? null : witnessed(options.witness, this.identity(clock), existed, clock);
    const walLost = opened.lossAccepted && describeWalLoss(opened.lossAccepted, 'accepted', 'activity');
    this.lostOnOpen = [walLost, damaged, vanished?.lost ?? null].filter((l) => l !== null).join(' ') || null;
    let unkept: string | null = null;
    if (this.lostOnOpen !== null) {
      try {
        db.prepare('INSERT INTO activity_wal_losses (at, lost) VALUES (?, ?)').run(clock.now(), this.lostOnOpen);
        // Durable before anything else is written: once opened, the -shm that showed the loss is rebuilt.
        if (this.walFd !== null) fdatasyncSync(this.walFd);
      } catch (e) {
        // A damaged file may refuse even this: the loss is still logged, journalled and alarmed (unkept).
        if (damaged === null) throw e;
        unkept = this.lostOnOpen;
      }
    }
    this.unkept = unkept;
    this.openedAt = clock.now();
    // Only once the loss is kept in the new log: a crash before this reports it again, never not at all.
    vanished?.accept();
    // Logs made before acting_for was kept (an ALTER is not an UPDATE: the append-only trigger allows it).
    if (!db.prepare<[], { name: string }>('PRAGMA table_info(activity_log)').all().some((c) => c.name === 'acting_for')) db.exec('ALTER TABLE activity_log ADD COLUMN acting_for TEXT');
    db.exec('CREATE INDEX IF NOT EXISTS activity_log_acting_for ON activity_log (acting_for, at) WHERE acting_for IS NOT NULL');
    // Refused requests only: an accepted one (every 201) adds nothing to it.
    db.exec('CREATE INDEX IF NOT EXISTS activity_log_refused ON activity_log (at) WHERE status >= 400');
    this.s = {
      // Bound by position: named parameters took a copy of each record and a lookup per name.
      insert: db.prepare(
        `INSERT INTO activity_log (chain, seq, at, request_id, listener, caller, acting_for, remote, method, url, status, duration_ms, response_body, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      head: db.prepare<[number, string, string]>('UPDATE activity_chains SET head_seq = ?, head_hash = ? WHERE chain = ?'),
      open: db.prepare<[string, number, string, string]>('INSERT INTO activity_chains (chain, started_at, head_hash, anchor_hash) VALUES (?, ?, ?, ?)'),
      chains: db.prepare<[], ChainRow>('SELECT * FROM activity_chains ORDER BY started_at, chain'),
      chainRecords: db.prepare<[string, number, number], Row>('SELECT * FROM activity_log WHERE chain = ? AND seq > ? ORDER BY seq LIMIT ?'),
      // `status >= 400` as the partial index says it, so the planner may use it; LIKE is ASCII case-insensitive here.
      refused: db.prepare<[{ from: number; to: number; at: number; chain: string; seq: number; caller: string | null; limit: number }], Row>(
        `SELECT * FROM activity_log WHERE status >= 400 AND at >= @from AND at < @to AND method = 'POST' AND url LIKE '/dip-channel/%'
          AND (@caller IS NULL OR caller = @caller OR acting_for = @caller)
          AND (at > @at OR (at = @at AND (chain > @chain OR (chain = @chain AND seq > @seq))))
          ORDER BY at, chain, seq LIMIT @limit`,
      ),
    };
    this.appendTx = db.transaction((records: readonly ChainedActivity[]) => {
      for (const r of records) this.s.insert.run(r.chain, r.seq, r.at, r.requestId, r.listener, r.caller, r.actingFor ?? null, r.remote, r.method, r.url, r.status, r.durationMs, r.responseBody, r.prevHash, r.hash);
      const last = records.at(-1);
      if (last) this.s.head.run(last.seq, last.hash, last.chain);
    });
  }

  /** This log's identity, made (and synced) at the first open of a file that has none. */
  private identity(clock: Pick<Clock, 'now'>): string {
    const row = this.db.prepare<[], { log_id: string }>('SELECT log_id FROM activity_log_identity LIMIT 1').get();
    if (row) return row.log_id;
    const id = randomUUID();
    this.db.prepare('INSERT INTO activity_log_identity (log_id, created_at) VALUES (?, ?)').run(id, clock.now());
    if (this.walFd !== null) fdatasyncSync(this.walFd);
    return id;
  }

  async append(records: readonly ChainedActivity[]): Promise<void> {
    if (records.length === 0) return;
    this.appendTx(records);
    await this.sync();
  }

  async openChain(chain: string, at: number): Promise<void> {
    this.s.open.run(chain, at, GENESIS_HASH, GENESIS_HASH);
    await this.sync();
  }

  chains(): Promise<ChainInfo[]> {
    return Promise.resolve(
      this.s.chains.all().map(fromChainRow),
    );
  }

  chainRecords(chain: string, afterSeq: number, limit: number): Promise<ChainedActivity[]> {
    return Promise.resolve(this.s.chainRecords.all(chain, afterSeq, limit).map(fromActivityRow));
  }

  range(q: ActivityQuery & Omit<ActivityFilter, 'caller'>): Promise<ChainedActivity[]> {
    const a = q.after ?? { at: -1, chain: '', seq: 0 };
    const { where, params } = narrowed(q.fromMs, q.toMs, q);
    const sql = `SELECT * FROM activity_log WHERE ${where} AND (at > @at OR (at = @at AND (chain > @chain OR (chain = @chain AND seq > @seq)))) ORDER BY at, chain, seq LIMIT @limit`;
    return Promise.resolve(this.statement(sql).all({ ...params, at: a.at, chain: a.chain, seq: a.seq, limit: q.limit }).map(fromActivityRow));
  }

  recent(fromMs: number, toMs: number, limit: number, filter: ActivityFilter = {}): Promise<ChainedActivity[]> {
    const { where, params } = narrowed(fromMs, toMs, filter);
    // With a caller, both indexes answer it (SQLite's OR of two index searches).
    const caller = filter.caller === undefined ? where : `(caller = @caller AND ${where}) OR (acting_for = @caller AND ${where})`;
    const sql = `SELECT * FROM activity_log WHERE ${caller} ORDER BY at DESC, chain DESC, seq DESC LIMIT @limit`;
    return Promise.resolve(this.statement(sql).all({ ...params, ...(filter.caller === undefined ? {} : { caller: filter.caller }), limit }).map(fromActivityRow));
  }

  /** The statements a listing's filters make (a few shapes), each prepared once. */
  private readonly statements = new Map<string, Database.Statement<[Record<string, string | number>], Row>>();
  private statement(sql: string): Database.Statement<[Record<string, string | number>], Row> {
    let s = this.statements.get(sql);
    if (!s) this.statements.set(sql, (s = this.db.prepare<[Record<string, string | number>], Row>(sql)));
    return s;
  }

  walLosses(): Promise<Array<{ at: number; lost: string }>> {
    return Promise.resolve(this.db.prepare<[], { at: number; lost: string }>('SELECT at, lost FROM activity_wal_losses ORDER BY rowid').all());
  }

  unannouncedWalLosses(): Promise<string | null> {
    let lost: string[] = [];
    try {
      lost = this.db.prepare<[], { lost: string }>(`SELECT lost FROM activity_wal_losses l ${UNANNOUNCED} ORDER BY at`).all().map((l) => l.lost);
    } catch (e) {
      if (this.unkept === null) throw e;
    }
    if (this.unkept !== null) lost.push(this.unkept);
    return Promise.resolve(lost.length > 0 ? lost.join('; ') : null);
  }

  async walLossesAnnounced(): Promise<void> {
    try {
      this.db.prepare(`INSERT INTO activity_wal_losses_announced (at, lost) SELECT at, lost FROM activity_wal_losses l ${UNANNOUNCED}`).run();
    } catch (e) {
      // The damaged file that would not keep the loss will not keep its announcement either; a later start
      // after an unclean stop finds the damage again (quick_check) and announces it again.
      if (this.unkept === null) throw e;
      return;
    }
    await this.sync();
  }

  unacknowledgedLosses(): Promise<ActivityLoss[]> {
    let found: ActivityLoss[] = [];
    try {
      found = this.db.prepare<[], ActivityLoss>(`SELECT at, lost FROM activity_wal_losses l ${UNACKNOWLEDGED} ORDER BY at, rowid`).all();
    } catch (e) {
      if (this.unkept === null) throw e;
    }
    return Promise.resolve(this.unkept === null ? found : [...found, { at: this.openedAt, lost: this.unkept }]);
  }

  async keepLoss(loss: ActivityLoss): Promise<void> {
    this.db.prepare('INSERT INTO activity_wal_losses (at, lost) VALUES (?, ?)').run(loss.at, loss.lost);
    await this.sync();
  }

  async acknowledgeLosses(losses: readonly ActivityLoss[], by: string, at: number): Promise<void> {
    const insert = this.db.prepare('INSERT INTO activity_wal_losses_acknowledged (at, lost, by, acknowledged_at) VALUES (?, ?, ?, ?)');
    this.db.transaction(() => {
      for (const l of losses) insert.run(l.at, l.lost, by, at);
    })();
    await this.sync();
  }

  refusedSubmissions(q: ActivityQuery & { caller?: string }): Promise<ChainedActivity[]> {
    const a = q.after ?? { at: -1, chain: '', seq: 0 };
    return Promise.resolve(this.s.refused.all({ from: q.fromMs, to: q.toMs, at: a.at, chain: a.chain, seq: a.seq, caller: q.caller ?? null, limit: q.limit }).map(fromActivityRow));
  }

  private sync(): Promise<void> {
    const fd = this.walFd;
    if (fd === null) return Promise.resolve();
    return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
  }

  /** Caps the file as a full disk would (capFileSize): fault tests of the audit gap. */
  setSizeLimit(bytes: number | null): void {
    capFileSize(this.db, bytes);
  }

  close(): Promise<void> {
    this.db.close();
    if (this.walFd !== null) closeSync(this.walFd);
    return Promise.resolve();
  }
}

/**
 * SQLite's own check of the file's structure (PRAGMA quick_check: every page and record readable, without
 * the index cross-checks of integrity_check), described when it finds damage; else null. A file damaged
 * on disk (a failing disk, a write into it) otherwise opened as sound: only dip audit verify, reading every
 * record, found it. Its cost, a read of the whole file: BENCHMARKS.md "activity.db quick_check"; so only at a
 * start after an unclean stop.
 */
function quickCheck(db: Database.Database, file: string): string | null {
  let found: string[];
  try {
    found = db.prepare<[], { quick_check: string }>('PRAGMA quick_check(5)').all().map((r) => r.quick_check);
  } catch (e) {
    found = [(e as Error).message];
  }
  if (found.length === 1 && found[0] === 'ok') return null;
  return `${file} is damaged (PRAGMA quick_check: ${found.join('; ')}): records in its damaged pages cannot be read, and dip audit verify stops at them. ` +
    'Started anyway (new records go on a chain of their own); restore activity.db from a backup, keeping this file for the records written since (docs/disaster-recovery.md).';
}

/**
 * Compares the log opened (`logId`) with the one dip.db was last started beside. Null when they agree or
 * dip.db knew none (the first start, or a dip.db not made yet: nothing is created here); else what was
 * lost, and `accept`, which makes dip.db remember the log now in place (called once the loss is kept in it).
 */
function witnessed(dipDb: string, logId: string, existed: boolean, clock: Pick<Clock, 'now'>): { lost: string | null; accept: () => void } | null {
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the message store's file beside this one
  if (!existsSync(dipDb)) return null;
  const remember = (): void => {
    const w = new Database(dipDb, { fileMustExist: true });
    try {
      // A second connection beside the DIP's writer: its group commit holds the write lock for moments.
      w.pragma('busy_timeout = 10000');
      w.exec(WITNESS);
      w.transaction(() => {
        w.exec('DELETE FROM activity_log_witness');
        w.prepare('INSERT INTO activity_log_witness (log_id, seen_at) VALUES (?, ?)').run(logId, clock.now());
      })();
    } finally {
      w.close();
    }
  };
  const r = new Database(dipDb, { fileMustExist: true, readonly: true });
  let known: { log_id: string; seen_at: number } | undefined;
  try {
    known = r.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE name = 'activity_log_witness'").get()
      ? r.prepare<[], { log_id: string; seen_at: number }>('SELECT log_id, seen_at FROM activity_log_witness LIMIT 1').get()
      : undefined;
  } finally {
    r.close();
  }
  if (known?.log_id === logId) return null;
  if (!known) return { lost: null, accept: remember };
  const now = existed ? 'activity.db is another log' : 'a new, empty log was made in its place';
  return {
    lost: `the API activity log activity.db that dip.db was started beside (log ${known.log_id}, last opened ${new Date(known.seen_at).toISOString()}) is gone: ${now} (log ${logId}). ` +
      'Every record of the log that was there (audit evidence of requests already answered) is missing from this one; started anyway (a loss of the activity log is reported, never refused: ' +
      'restore activity.db from a backup to bring them back, docs/disaster-recovery.md).',
    accept: remember,
  };
}
