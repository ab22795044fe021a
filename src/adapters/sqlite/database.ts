import Database from 'better-sqlite3';
import { closeSync, fdatasync } from 'node:fs';
import type { BackendHealth, CommitGroup, ValueSealer } from '../../ports/backend.js';
import type { Clock, Cancel } from '../../ports/clock.js';
import { StoreError } from '../../ports/errors.js';
import type { QueueEntry } from '../../ports/message-log.js';
import { Checkpointer } from './checkpointer.js';
import { GroupCommit, type Durability } from './group-commit.js';
import { inProcess, ReaderThread, type SqliteReads } from './reader.js';
import { migrate, mpanIndexDdl, refuseUnreadableGeneration, SCHEMA } from './schema.js';
import { newerGenerationStop } from '../schema-generation.js';
import { capFileSize, openWalFile } from './wal-file.js';
import { describeWalLoss, type BootId } from './wal-guard.js';

/** A stored payload: sealed (BLOB) when written with encryption at rest, text when written without. */
export type Stored = string | Buffer;

/** A stored value read on the reader thread: a BLOB crosses the thread as a Uint8Array, and the sealer opens Buffers. */
export function asStored(v: Stored | Uint8Array): Stored {
  return typeof v === 'string' || Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

const PLAIN: ValueSealer = { seal: (plain) => plain, open: (sealed) => sealed, index: (value) => value };

export interface SqliteOptions {
  clock: Clock;
  /** Index the archive's consumption by MPAN (storage.mpanIndex; schema.ts mpanIndexDdl): off unless true. */
  mpanIndex?: boolean;
  /**
   * Replaces the WAL fdatasync that makes each group durable. Tests use it to hold a sync and observe that
   * nothing of the group is readable or acknowledged until it reports; production never sets it.
   */
  durability?: Durability;
  /**
   * Open even though the WAL lost committed transactions since the last writer stopped (`dip serve
   * --accept-wal-loss`): else that open throws WalLossError (src/adapters/sqlite/wal-guard.ts).
   */
  acceptWalLoss?: boolean;
  /** This machine's boot (wal-guard.ts systemBootId unless given): tests give another to stand for a reboot. */
  bootId?: BootId;
  /**
   * Opened by a process the writer started beside itself once its own open had passed (a delivery
   * process, an ingest thread): the WAL check (wal-guard.ts) is the first opener's, made before any
   * connection rebuilt the wal-index; here it would read the live writer's WAL once more (a full scan in
   * JavaScript: BENCHMARKS.md, 2026-12-06 "WAL guard") and find nothing. The boot mark is left alone too.
   */
  besideWriter?: boolean;
}

/** About 5 s of traffic at 2,000 IF-021/s (~45 MB): long enough for every recipient's first read. */
const RECENT_MESSAGES = 10_000;

export interface QueueRow {
  id: number;
  head: number;
}

/** A queue's head as one write moves it: `first` is the first position that write adds. */
export interface PendingHead extends QueueRow {
  first: number;
}

export type RecentMessage = Omit<QueueEntry, 'seq' | 'messageId' | 'capacity' | 'securityPattern'>;

const queueKey = (recipient: string, channel: string): string => `${recipient}\u0000${channel}`;

/** How much the health probe writes: what a batch of a few hundred IF-021 takes stored (~2.5 kB each). */
const PROBE_BYTES = 1 << 20;

/**
 * The one SQLite file (WAL mode) and what every port's module shares over it: the group commit, the
 * at-rest sealer, the cache of queue heads, the recently appended messages, and the visibility rule
 * (an entry is readable only once the group that wrote it is durable).
 */
export class SqliteDatabase {
  readonly db: Database.Database;
  readonly writes: GroupCommit;
  sealer: ValueSealer = PLAIN;
  private readonly walFd: number | null;
  /** What the WAL had lost when this open accepted the loss (acceptWalLoss), described; else null. */
  readonly walLossAccepted: string | null;
  /** Queue id and last sequence number per (recipient, channel); dropped when a group commit rolls back. */
  private queues = new Map<string, QueueRow>();
  /**
   * The most recently appended messages: a message is read once per recipient within moments of its
   * arrival, so delivery takes it from here rather than from disk through the at-rest cipher each time.
   */
  readonly recent = new Map<number, RecentMessage>();
  /**
   * Whether appended messages join `recent`. Not when delivery runs in other processes: they read each
   * message from the file over their own connection, so here the copies were kept for nobody but this
   * process's few reads (pulls, the in-process MPAN feed, metrics), which open from disk like those
   * processes do. Kept, every accepted copy (4.5 kB for an IF-021) outlived the young generation and
   * was promoted before it was evicted: the main thread's GC grew with the message rate.
   */
  private keepsAppended = true;
  /**
   * Per queue, per group still waiting for its disk sync, the first position that group added. A queue
   * absent here has nothing unsynced: everything committed in it is durable (whether written by this
   * process or found on disk at open).
   */
  private readonly unsynced = new Map<number, Map<number, number>>();
  private readonly groupQueues = new Map<number, Set<number>>();
  private state: BackendHealth = { state: 'ok' };
  private readonly healthListeners: Array<(h: BackendHealth) => void> = [];
  private readonly groupListeners: Array<(g: CommitGroup) => void> = [];
  private probe: Cancel | null = null;
  /** The probe's write went through in the group being committed (see outcome). */
  private probed = false;
  /** Started with the first write: a process that only reads the file (a delivery process) has none. */
  private checkpointer: Checkpointer | null = null;
  readonly s;
  /** Report and trace queries: off the event loop, on their own read-only connection (src/adapters/sqlite/reader.ts). */
  readonly reads: SqliteReads;

  constructor(
    readonly file: string,
    readonly options: SqliteOptions,
  ) {
    // GroupCommit syncs the WAL on the thread pool before it acknowledges anything; checkpoints (and their
    // own syncs) run on the Checkpointer's thread once this process writes.
    const guard = options.besideWriter === true ? undefined : { acceptLoss: options.acceptWalLoss === true, ...(options.bootId ? { bootId: options.bootId } : {}) };
    const opened = openWalFile(file, SCHEMA, refuseUnreadableGeneration, guard);
    ({ db: this.db, walFd: this.walFd } = opened);
    this.walLossAccepted = opened.lossAccepted && describeWalLoss(opened.lossAccepted, 'accepted');
    migrate(this.db, options.clock.now());
    this.db.exec(mpanIndexDdl(options.mpanIndex === true));
    this.reads = file === ':memory:' ? inProcess(this.db) : new ReaderThread(file);
    const walFd = this.walFd;
    const durability: Durability | undefined = options.durability ?? (walFd === null ? undefined : (done) => fdatasync(walFd, (err) => done(err)));
    this.writes = new GroupCommit(
      this.db,
      {
        rolledBack: () => {
          this.queues.clear();
          this.recent.clear();
        },
        settled: (group, ok) => {
          // A group whose sync failed stays invisible for good: its entries may not be on disk.
          if (ok) this.groupSettled(group);
        },
      },
      durability,
      (error) => this.outcome(error),
      (writes, durableMs) => {
        this.checkpointer?.committed();
        for (const l of this.groupListeners) l({ writes, durableMs });
      },
    );
    const db = this.db;
    this.s = {
      findQueue: db.prepare<[string, string], { id: number; head: number | null }>(
        // Purging removes settled entries only (seq <= acked_seq), so the head is the larger of the two.
        `SELECT q.id AS id, max(coalesce((SELECT max(seq) FROM queue_entries e WHERE e.queue_id = q.id), 0), q.acked_seq) AS head
           FROM queues q WHERE recipient_dip_id = ? AND channel = ?`,
      ),
      insertQueue: db.prepare('INSERT INTO queues (recipient_dip_id, channel) VALUES (?, ?)'),
      probe: db.prepare('INSERT INTO health_probe (at, pad) VALUES (?, zeroblob(?))'),
      unprobe: db.prepare('DELETE FROM health_probe'),
    };
    // Another process of a newer build (a node started on this data folder, its CLI) may migrate the file
    // while this one runs: each group's transaction reads the generation first (one row, a microsecond or
    // two beside the group's sync), and none writes beside a newer one. No timer: the write is what matters.
    const generation = db.prepare<[], { generation: number }>('SELECT generation FROM schema_generation WHERE id = 1');
    this.writes.guardEachGroup(() => newerGenerationStop(generation.get()?.generation, `the database ${file}`));
  }

  /** From now on payloads are sealed on write (call before the first write). Reads open either kind. */
  useSealer(sealer: ValueSealer): void {
    this.sealer = sealer;
  }

  /** The outbound copy of message `transactionId`, from its stored form. */
  reveal(v: Stored, transactionId: string): string {
    return typeof v === 'string' ? v : this.sealer.open(v, 'outbound', transactionId).toString('utf8');
  }

  /** The queue's row, from the cache or the database; created (inside the caller's write) when asked to. */
  queueRow(recipient: string, channel: string, create: boolean): QueueRow | undefined {
    const k = queueKey(recipient, channel);
    const cached = this.queues.get(k);
    if (cached) return cached;
    const row = this.s.findQueue.get(recipient, channel);
    let q: QueueRow | undefined;
    if (row) q = { id: row.id, head: row.head ?? 0 };
    else if (create) q = { id: Number(this.s.insertQueue.run(recipient, channel).lastInsertRowid), head: 0 };
    // A queue created inside a transaction is cached only by the caller after success.
    if (q && row) this.queues.set(k, q);
    return q;
  }

  /** Bumps the queue's head in a write-local map of heads (creating the queue row on first use). */
  nextSeq(heads: Map<string, PendingHead>, recipient: string, channel: string): PendingHead {
    const k = queueKey(recipient, channel);
    let q = heads.get(k);
    if (!q) {
      const known = this.queueRow(recipient, channel, true)!;
      q = { id: known.id, head: known.head, first: known.head + 1 };
      heads.set(k, q);
    }
    q.head += 1;
    return q;
  }

  /**
   * Called at the end of a successful write, inside its transaction: the new heads go to the cache, and
   * the positions they added stay invisible to readers until the group's sync reports.
   */
  publishHeads(heads: Map<string, PendingHead>): void {
    this.onSuccess(() => this.applyHeads(heads));
  }

  private applyHeads(heads: Map<string, PendingHead>): void {
    const group = this.writes.current;
    for (const [k, q] of heads) {
      this.queues.set(k, { id: q.id, head: q.head });
      if (group === 0 || q.head < q.first) continue;
      let marks = this.unsynced.get(q.id);
      if (!marks) this.unsynced.set(q.id, (marks = new Map<number, number>()));
      marks.set(group, Math.min(marks.get(group) ?? Number.MAX_SAFE_INTEGER, q.first));
      let queues = this.groupQueues.get(group);
      if (!queues) this.groupQueues.set(group, (queues = new Set()));
      queues.add(q.id);
    }
  }

  /** The highest position of the queue a reader may be given: below the first one not yet durable. */
  visibleHead(queueId: number): number {
    const marks = this.unsynced.get(queueId);
    if (!marks || marks.size === 0) return Number.MAX_SAFE_INTEGER;
    return Math.min(...marks.values()) - 1;
  }

  /** The queue's highest position a reader in another process may be given: committed and durable (0 for no queue). */
  durableHead(recipient: string, channel: string): number {
    const q = this.queueRow(recipient, channel, false);
    return q ? Math.min(q.head, this.visibleHead(q.id)) : 0;
  }

  private groupSettled(group: number): void {
    for (const id of this.groupQueues.get(group) ?? []) {
      const marks = this.unsynced.get(id);
      marks?.delete(group);
      if (marks?.size === 0) this.unsynced.delete(id);
    }
    this.groupQueues.delete(group);
  }

  /** Keeps a write's appended messages for delivery, once the write has succeeded. */
  remember(messages: Array<[number, RecentMessage]>): void {
    if (!this.keepsAppended) return;
    this.onSuccess(() => {
      for (const [id, message] of messages) this.keep(id, message);
    });
  }

  /** Delivery reads this file from other processes: appended messages are no longer kept here (see keepsAppended). */
  deliveredElsewhere(): void {
    this.keepsAppended = false;
  }

  /**
   * Keeps a message for the next recipients' reads: one appended here (after its write succeeds), or one
   * read from disk (committed, so no rollback can take it back; a delivery process, which appends nothing,
   * then reads and opens each message once rather than once per recipient).
   */
  keep(id: number, message: RecentMessage): void {
    if (this.recent.size >= RECENT_MESSAGES) this.recent.delete(this.recent.keys().next().value!);
    this.recent.set(id, message);
  }

  /**
   * Writes through the group commit. What a write publishes to the shared caches (queue heads, recent
   * messages) applies only if the whole write succeeds: one that throws is rolled back to its savepoint,
   * and a cache that kept its heads or rows would hand out positions or ids that do not exist (SQLite
   * reuses a rolled-back rowid for the next insert).
   */
  write<T>(op: () => T): Promise<T> {
    if (!this.checkpointer && this.walFd !== null) this.checkpointer = new Checkpointer(this.file, this.db, (until) => this.writes.hold(until));
    return this.writes.submit(() => {
      const outer = this.staged;
      const staged: Array<() => void> = [];
      this.staged = staged;
      try {
        const result = op();
        for (const apply of staged) apply();
        return result;
      } finally {
        this.staged = outer;
      }
    });
  }

  /** Work to do once the current write has succeeded (see write). */
  private staged: Array<() => void> | null = null;

  private onSuccess(apply: () => void): void {
    if (this.staged) this.staged.push(apply);
    else apply();
  }

  health(): BackendHealth {
    return this.state;
  }

  onHealthChange(listener: (h: BackendHealth) => void): void {
    this.healthListeners.push(listener);
  }

  onGroupCommit(listener: (g: CommitGroup) => void): void {
    this.groupListeners.push(listener);
  }

  private outcome(error: StoreError | null): void {
    const probed = this.probed;
    this.probed = false;
    // While unavailable, only the probe's write (the size of a large batch) says writes go through again:
    // a small one (a delivery's acknowledgement, an attempt's row) still fits in the last free pages of a
    // disk too full for any batch, and ending the state on it made /ready answer 200 and hid the storage
    // alarm while every submission was refused.
    if (error === null && this.state.state === 'unavailable' && !probed) return;
    let next: BackendHealth;
    if (error === null) next = { state: 'ok' };
    else if (error.kind === 'fatal') next = { state: 'fatal', reason: error.message };
    else if (error.kind === 'unavailable') next = { state: 'unavailable', reason: error.message, code: error.code };
    else return; // a permanent error concerns one write, not the store
    if (this.state.state === 'fatal' || (next.state === this.state.state && next.state === 'ok')) return;
    this.state = next;
    if (next.state === 'unavailable') this.startProbing();
    else this.stopProbing();
    for (const l of this.healthListeners) l(next);
  }

  /**
   * While writes fail for want of space (or a busy disk), a write every few seconds finds out when they
   * can succeed again, so delivery and ingest resume by themselves even if nobody writes meanwhile. It is
   * the size of a large batch (PROBE_BYTES): a one-row probe fitted in the last free pages (or in the WAL
   * file's old space) on a disk too full for any real batch, so health flapped to ok and /ready to 200
   * every few seconds while every submission was refused (found by a fault campaign on a full ext4).
   */
  private startProbing(): void {
    if (this.probe) return;
    this.probe = this.options.clock.every(2_000, () => {
      this.write(() => {
        this.s.probe.run(this.options.clock.now(), PROBE_BYTES);
        this.s.unprobe.run();
        this.probed = true;
      }).catch(() => {});
    });
  }

  private stopProbing(): void {
    this.probe?.();
    this.probe = null;
  }

  /** Caps the database file (SQLite max_page_count): past it, writes fail as on a full disk. Null lifts the cap. */
  setSizeLimit(bytes: number | null): void {
    capFileSize(this.db, bytes);
  }

  async close(): Promise<void> {
    this.stopProbing();
    await this.writes.drain();
    await this.reads.close();
    await this.checkpointer?.close();
    this.db.close();
    if (this.walFd !== null) closeSync(this.walFd);
  }
}

/** Rows the store writes must exist when it reads them; a missing one means a damaged database. */
export function damaged(what: string): StoreError {
  return new StoreError('permanent', `damaged database: ${what}`, 'MISSING_ROW');
}
