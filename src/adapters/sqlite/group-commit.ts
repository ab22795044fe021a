import type Database from 'better-sqlite3';
import { performance } from 'node:perf_hooks';
import { StoreError } from '../../ports/errors.js';

interface Pending {
  op: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** Makes everything committed so far durable, off the event loop; calls back when it is (or failed). */
export type Durability = (done: (error: Error | null) => void) => void;

/** What the store learns about each group: visibility of its writes hangs on these. */
export interface GroupListener {
  /** The group's transaction rolled back (the commit failed): nothing it wrote exists. */
  rolledBack(group: number): void;
  /** The group is durable (`ok`), or its sync failed and what it wrote must never be handed out. */
  settled(group: number, ok: boolean): void;
}

/**
 * SQLite error codes after which trying again later can succeed: nothing was written. Everything else a
 * commit raises is treated as permanent for the writes of that group.
 */
const UNAVAILABLE = /^SQLITE_(?:FULL|BUSY|LOCKED|IOERR|CANTOPEN|NOMEM|INTERRUPT)/;

/** The pipeline never parses engine messages: every failure leaves here as a StoreError of a known kind. */
export function classifySqliteError(error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const code = typeof (error as { code?: unknown })?.code === 'string' ? (error as { code: string }).code : null;
  const message = error instanceof Error ? error.message : String(error);
  if (code !== null && UNAVAILABLE.test(code)) return new StoreError('unavailable', message, code, { cause: error });
  return new StoreError('permanent', message, code, { cause: error });
}

/**
 * Group commit: every write submitted during one turn of the event loop runs in ONE transaction and
 * one fsync. Each write runs in its own savepoint, so one failing write (a duplicate sender reference)
 * is rolled back and rejected alone while the others commit. Promises settle only once the group is
 * durable: after COMMIT, and, when a Durability is given, after it reports the WAL synced to disk.
 * The sync runs on the thread pool, so the event loop keeps parsing the next requests meanwhile, and
 * the next group can commit while this one's sync is in flight. If a sync ever fails the store stops
 * taking writes (fail-stop, a `fatal` StoreError): nothing is acknowledged that might not be on disk.
 */
export class GroupCommit {
  private pending: Pending[] = [];
  private scheduled = false;
  private readonly runAll: (ops: Pending[]) => Array<{ ok: true; value: unknown } | { ok: false; error: unknown }>;
  private failed: Error | null = null;
  /** Why writes are refused for good, other than a failed sync (guardEachGroup). */
  private refused: StoreError | null = null;
  private inFlight = new Set<Promise<void>>();
  private nextGroup = 1;
  /** While set, no group starts: writes queue until it settles (see hold). */
  private held: Promise<void> | null = null;
  /** The group whose transaction is running now (0 between groups): writes tag what they add with it. */
  current = 0;

  constructor(
    db: Database.Database,
    private readonly listener: GroupListener,
    private readonly durability?: Durability,
    /** Told of every commit outcome, so the store can report its health. */
    private readonly onOutcome: (error: StoreError | null) => void = () => {},
    /** Told of every group made durable: its writes and the milliseconds from its transaction's start (metrics). */
    private readonly onDurable: (writes: number, ms: number) => void = () => {},
  ) {
    const one = db.transaction((op: () => unknown) => op());
    this.runAll = db.transaction((ops: Pending[]) => {
      // Inside the group's transaction: nothing is written once the check says stop (refuse).
      const stop = this.guard();
      if (stop !== null) {
        this.refused ??= stop;
        throw stop;
      }
      return ops.map((p) => {
        try {
          return { ok: true as const, value: one(p.op) };
        } catch (error) {
          // After some errors (SQLITE_FULL, IOERR, NOMEM, BUSY) SQLite rolls the whole transaction back
          // itself: then no write of this group exists, and the group fails with that error.
          if (!db.inTransaction) throw error;
          return { ok: false as const, error };
        }
      });
    });
  }

  /** Asked at the start of every group's transaction: an error refuses the group and every write after it. */
  private guard: () => StoreError | null = () => null;

  guardEachGroup(check: () => StoreError | null): void {
    this.guard = check;
  }

  /** The failed sync that stopped the store, if one did. */
  get fatal(): Error | null {
    return this.failed;
  }

  submit<T>(op: () => T): Promise<T> {
    if (this.refused) return Promise.reject(this.refused);
    if (this.failed) return Promise.reject(new StoreError('fatal', `the store stopped taking writes after a failed disk sync: ${this.failed.message}`));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ op, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * Starts no group until `until` settles (the checkpoint thread asks for this so that the WAL can start
   * over): writes submitted meanwhile wait and then commit together. The event loop is not blocked.
   */
  hold(until: Promise<unknown>): void {
    const gate: Promise<void> = until.then(
      () => this.release(gate),
      () => this.release(gate),
    );
    this.held = gate;
  }

  private release(gate: Promise<void>): void {
    if (this.held !== gate) return;
    this.held = null;
    this.flush();
  }

  /** Runs what is pending and waits until every group is durable (shutdown). */
  async drain(): Promise<void> {
    while (this.held) await this.held;
    this.flush();
    await Promise.all([...this.inFlight]);
  }

  /** Runs everything pending now. */
  flush(): void {
    this.scheduled = false;
    if (this.held) return; // the hold's release runs them
    const ops = this.pending;
    if (ops.length === 0) return;
    this.pending = [];
    const group = this.nextGroup++;
    this.current = group;
    const startedAt = performance.now();
    let results;
    try {
      results = this.runAll(ops);
    } catch (error) {
      // The commit itself failed (disk full, I/O error): nothing of this group is durable.
      this.current = 0;
      this.listener.rolledBack(group);
      this.listener.settled(group, true);
      const classified = classifySqliteError(error);
      this.onOutcome(classified);
      for (const p of ops) p.reject(classified);
      return;
    } finally {
      this.current = 0;
    }
    const settle = (syncError: Error | null) => {
      if (syncError) this.failed ??= syncError;
      this.listener.settled(group, syncError === null);
      const fatal = syncError ? new StoreError('fatal', `disk sync failed: ${syncError.message}`, (syncError as { code?: string }).code ?? null, { cause: syncError }) : null;
      const errors = results.map((r) => (r.ok ? null : r.error instanceof StoreError ? r.error : isEngineError(r.error) ? classifySqliteError(r.error) : r.error));
      // A single write can meet a full disk inside its savepoint while the group still commits.
      this.onOutcome(fatal ?? errors.find((e): e is StoreError => e instanceof StoreError && e.kind === 'unavailable') ?? null);
      if (!fatal) this.onDurable(ops.length, performance.now() - startedAt);
      results.forEach((r, i) => {
        const p = ops[i]!;
        if (fatal) p.reject(fatal);
        else if (r.ok) p.resolve(r.value);
        else p.reject(errors[i]);
      });
    };
    const durability = this.durability;
    if (!durability) {
      settle(null);
      return;
    }
    const synced = new Promise<void>((resolve) => {
      durability((err) => {
        settle(err);
        resolve();
      });
    });
    this.inFlight.add(synced);
    void synced.then(() => this.inFlight.delete(synced));
  }
}

/** An error SQLite raised (it carries a SQLITE_* code), as opposed to one the write itself threw. */
function isEngineError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_');
}
