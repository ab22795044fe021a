import Database from 'better-sqlite3';
import { openSync } from 'node:fs';
import { openPrivateDatabase, realFile } from './private-file.js';
import { markBoot, systemBootId, walLoss, WalLossError, type BootId, type WalLoss } from './wal-guard.js';

/**
 * A SQLite file in WAL mode whose writer makes its own commits durable: `synchronous = NORMAL`, so a
 * COMMIT writes the WAL without syncing it on the event loop, and the caller syncs the WAL (`walFd`, with
 * fdatasync off the event loop) before it acknowledges anything. The folder is made when new and the
 * schema applied. SQLite deletes the -wal file only when its last connection closes: this one stays open
 * for the store's lifetime, so the descriptor keeps naming the live WAL (null in memory).
 */
export function openWalFile(
  path: string,
  schema: string,
  beforeSchema?: (db: Database.Database) => void,
  guard?: { acceptLoss: boolean; bootId?: BootId },
): { db: Database.Database; walFd: number | null; lossAccepted: WalLoss | null } {
  // The companions' names from the real file's: SQLite keeps them beside it, not beside a symlink.
  const file = realFile(path);
  // Before any connection opens the file (the first rebuilds the wal-index from the WAL as it is now):
  // committed transactions the WAL lost since the last writer stopped refuse the start (wal-guard.ts).
  const bootId = guard?.bootId ?? systemBootId;
  const loss = guard ? walLoss(file, bootId) : null;
  if (loss && !guard?.acceptLoss) throw new WalLossError(loss);
  // The boot the -shm this open makes belongs to, for the next start's check.
  if (guard) markBoot(file, bootId);
  // The folder 0700 when new, the file and its WAL 0600.
  const db = openPrivateDatabase(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 10000');
  // Each write of a group commit runs in a savepoint, whose undo journal SQLite spills to a file in
  // /var/tmp past 64 KiB: most groups did, a file created, written and deleted per group on the event loop
  // (4 of the 9.5 pwrite calls per message the writer's thread made).
  db.pragma('temp_store = MEMORY');
  try {
    // What must hold before the schema is laid over the file (the stored data's generation).
    beforeSchema?.(db);
    db.exec(schema);
  } catch (err) {
    db.close();
    throw err;
  }
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the WAL beside that file
  const walFd = file === ':memory:' ? null : openSync(`${file}-wal`, 'r');
  return { db, walFd, lossAccepted: loss };
}

/**
 * Caps a SQLite file's size on this connection (max_page_count): past it, writes fail with SQLITE_FULL on
 * the same path as a full disk (fault tests, and `storage.maxDatabaseMb`). Null lifts the cap; a cap below
 * the file's size holds it where it is.
 */
export function capFileSize(db: Database.Database, bytes: number | null): void {
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  db.pragma(`max_page_count = ${bytes === null ? 4294967294 : Math.max(1, Math.floor(bytes / pageSize))}`);
}
