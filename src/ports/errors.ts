/**
 * How a storage failure is to be treated, decided by the adapter that knows its engine's error codes,
 * so that the pipeline never parses SQLite or PostgreSQL messages:
 *  - `unavailable`: nothing was written and trying again later can succeed (disk full, a busy or
 *    restarting server, a lost connection). Ingest answers 503 with Retry-After; delivery pauses.
 *    One exception, code COMMIT_IN_DOUBT (below): the write may be stored.
 *  - `permanent`: trying again will fail the same way (a damaged row, a missing message). The queue it
 *    concerns stops and an operator is alerted; everything else goes on.
 *  - `fatal`: the store can no longer promise durability (a failed fsync). It refuses all writes and the
 *    process reports not-ready and exits so that a supervisor restarts it and recovery runs.
 */
export type StoreFailureKind = 'unavailable' | 'permanent' | 'fatal';

/**
 * The code of an `unavailable` failure whose write may nevertheless have been stored: the answer to its
 * COMMIT was lost and the adapter could not find out whether it committed. The caller must not say that
 * nothing was stored.
 */
export const COMMIT_IN_DOUBT = 'COMMIT_IN_DOUBT';

export class StoreError extends Error {
  constructor(
    readonly kind: StoreFailureKind,
    message: string,
    /** The engine's own code (e.g. SQLITE_FULL), for logs and for the 503's help text. */
    readonly code: string | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

/**
 * A value sealed under a data key this process has not loaded: the operator rotated the keys in another
 * process or node since this one read them. Not the row's fault (the row is sound, and a reloaded key
 * ring opens it): a reader retries, as for an unavailable store, and never sets the row aside as damaged.
 */
export class DataKeyNotLoaded extends Error {
  constructor(readonly keyId: number) {
    super(`sealed with data key ${keyId}, which this DIP does not hold (yet: keys rotated since it loaded them are read again)`);
    this.name = 'DataKeyNotLoaded';
  }
}

/**
 * A value naming a data key the store has never held: the key ring was read again after the value was met
 * (a key is stored before anything is sealed under it, so that read would have found it) and still lacks
 * it. The header is damaged, not the key ring late: readers set the row aside as unreadable, naming it,
 * instead of asking to be retried (503 + Retry-After) for ever.
 */
export class NoSuchDataKey extends Error {
  constructor(readonly keyId: number) {
    super(`sealed with data key ${keyId}, which this DIP never held (the key ring was read again after the value was met): the stored value is damaged`);
    this.name = 'NoSuchDataKey';
  }
}

/**
 * A sealed value bound to its record (formats 4-6, src/security/at-rest.ts) did not open for the record it
 * was read as: it was moved or copied there from another record (in the database, or an export edited by
 * hand), or altered. The row is damaged, not the store: readers set it aside as unreadable, naming it.
 */
export class SealedForAnotherRecord extends Error {
  /** `what`: the value and its record in words (e.g. "outbound copy of message T-1"). */
  constructor(readonly kind: string, readonly record: string, what: string) {
    super(`the sealed ${what} does not open as that record's: it was sealed for another record (moved or swapped in the store or an export) or altered`);
    this.name = 'SealedForAnotherRecord';
  }
}

/** StoreError code of a requeue job's page refused: the job is not running, or another node moved it past the page. */
export const JOB_MOVED = 'JOB_MOVED';

export function jobMoved(jobId: string): StoreError {
  return new StoreError('permanent', `requeue job ${jobId} is not running or has moved past this page`, JOB_MOVED);
}

export function storeFailureKind(err: unknown): StoreFailureKind | null {
  return err instanceof StoreError ? err.kind : null;
}
