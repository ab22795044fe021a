import Database from 'better-sqlite3';
import { closeSync, fdatasync, fdatasyncSync } from 'node:fs';
import { GENESIS_HASH, type ChainedActivity } from '../../domain/activity.js';
import { fromActivityRow, fromChainRow, type ActivityRow as Row, type ChainRow } from '../activity-row.js';
import type { ActivityFilter, ActivityLogStore, ActivityQuery, ChainInfo } from '../../ports/activity-log.js';
import type { Clock } from '../../ports/clock.js';
import { capFileSize, openWalFile } from './wal-file.js';
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
CREATE TRIGGER IF NOT EXISTS activity_wal_losses_no_update BEFORE UPDATE ON activity_wal_losses
  BEGIN SELECT RAISE(ABORT, 'the activity log is append-only: its records cannot be changed'); END;
CREATE TRIGGER IF NOT EXISTS activity_wal_losses_no_delete BEFORE DELETE ON activity_wal_losses
  BEGIN SELECT RAISE(ABORT, 'the activity log is append-only: its records cannot be deleted (spec 5.8.1)'); END;
-- The losses a \`dip serve\` has logged, journalled, alarmed and recorded on its chain: one found by another
-- opener (\`dip audit verify\` run first after the crash) is announced by the next serve (unannouncedWalLosses).
CREATE TABLE IF NOT EXISTS activity_wal_losses_announced (at INTEGER NOT NULL, lost TEXT NOT NULL);
`;

/** The losses no serve has announced yet (by value: a VACUUM may renumber rowids). */
const UNANNOUNCED = 'WHERE NOT EXISTS (SELECT 1 FROM activity_wal_losses_announced a WHERE a.at = l.at AND a.lost = l.lost)';

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

  constructor(file: string, clock: Pick<Clock, 'now'> = { now: Date.now }) {
    const opened = openWalFile(file, SCHEMA, undefined, { acceptLoss: true });
    ({ db: this.db, walFd: this.walFd } = opened);
    const db = this.db;
    this.lostOnOpen = opened.lossAccepted && describeWalLoss(opened.lossAccepted, 'accepted', 'activity');
    if (this.lostOnOpen !== null) {
      db.prepare('INSERT INTO activity_wal_losses (at, lost) VALUES (?, ?)').run(clock.now(), this.lostOnOpen);
      // Durable before anything else is written: once opened, the -shm that showed the loss is rebuilt.
      if (this.walFd !== null) fdatasyncSync(this.walFd);
    }
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
    const lost = this.db.prepare<[], { lost: string }>(`SELECT lost FROM activity_wal_losses l ${UNANNOUNCED} ORDER BY at`).all();
    return Promise.resolve(lost.length > 0 ? lost.map((l) => l.lost).join('; ') : null);
  }

  async walLossesAnnounced(): Promise<void> {
    this.db.prepare(`INSERT INTO activity_wal_losses_announced (at, lost) SELECT at, lost FROM activity_wal_losses l ${UNANNOUNCED}`).run();
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
