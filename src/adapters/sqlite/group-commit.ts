import type Database from 'better-sqlite3';

interface Pending {
  op: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** Makes everything committed so far durable, off the event loop; calls back when it is (or failed). */
export type Durability = (done: (error: Error | null) => void) => void;

/**
 * Group commit: every write submitted during one turn of the event loop runs in ONE transaction and
 * one fsync. Each write runs in its own savepoint, so one failing write (a duplicate sender reference)
 * is rolled back and rejected alone while the others commit. Promises settle only once the group is
 * durable: after COMMIT, and, when a Durability is given, after it reports the WAL synced to disk.
 * The sync runs on the thread pool, so the event loop keeps parsing the next requests meanwhile, and
 * the next group can commit while this one's sync is in flight. If a sync ever fails the store stops
 * taking writes (fail-stop): nothing is acknowledged that might not be on disk.
 */
export class GroupCommit {
  private pending: Pending[] = [];
  private scheduled = false;
  private readonly runAll: (ops: Pending[]) => Array<{ ok: true; value: unknown } | { ok: false; error: unknown }>;

  private failed: Error | null = null;
  private inFlight = new Set<Promise<void>>();

  constructor(
    db: Database.Database,
    private readonly onRollback: () => void = () => {},
    private readonly durability?: Durability,
  ) {
    const one = db.transaction((op: () => unknown) => op());
    this.runAll = db.transaction((ops: Pending[]) =>
      ops.map((p) => {
        try {
          return { ok: true as const, value: one(p.op) };
        } catch (error) {
          return { ok: false as const, error };
        }
      }),
    );
  }

  submit<T>(op: () => T): Promise<T> {
    if (this.failed) return Promise.reject(new Error(`the store stopped taking writes after a failed disk sync: ${this.failed.message}`));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ op, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Runs what is pending and waits until every group is durable (shutdown). */
  async drain(): Promise<void> {
    this.flush();
    await Promise.all([...this.inFlight]);
  }

  /** Runs everything pending now. */
  flush(): void {
    this.scheduled = false;
    const ops = this.pending;
    if (ops.length === 0) return;
    this.pending = [];
    let results;
    try {
      results = this.runAll(ops);
    } catch (error) {
      // The commit itself failed (disk full, I/O error): nothing of this group is durable.
      this.onRollback();
      for (const p of ops) p.reject(error);
      return;
    }
    const settle = (syncError: Error | null) => {
      if (syncError) this.failed ??= syncError;
      results.forEach((r, i) => {
        const p = ops[i]!;
        if (syncError) p.reject(syncError);
        else if (r.ok) p.resolve(r.value);
        else p.reject(r.error);
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
