import type Database from 'better-sqlite3';

interface Pending {
  op: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit: every write submitted during one turn of the event loop runs in ONE transaction and
 * one fsync. Each write runs in its own savepoint, so one failing write (a duplicate sender reference)
 * is rolled back and rejected alone while the others commit. Promises settle only after COMMIT
 * returned, i.e. after the WAL is fsync'd (synchronous=FULL): a resolved write is on disk.
 */
export class GroupCommit {
  private pending: Pending[] = [];
  private scheduled = false;
  private readonly runAll: (ops: Pending[]) => Array<{ ok: true; value: unknown } | { ok: false; error: unknown }>;

  constructor(db: Database.Database, private readonly onRollback: () => void = () => {}) {
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
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ op, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Runs everything pending now (also used on shutdown). */
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
    results.forEach((r, i) => {
      const p = ops[i]!;
      if (r.ok) p.resolve(r.value);
      else p.reject(r.error);
    });
  }
}
