import Database from 'better-sqlite3';
import { chmodSync, existsSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/** The data folder's mode: the DIP's user alone (its databases, keys and PKI are in it). */
export const PRIVATE_DIR_MODE = 0o700;
/** A database file's mode; SQLite makes its -wal, -shm and -journal files with the same. */
export const PRIVATE_FILE_MODE = 0o600;

/**
 * The file a path names, symlinks resolved: SQLite resolves them itself and makes a database's -wal and
 * -shm beside the real file, so every name the DIP derives from it (-wal, -shm, -boot) must be derived
 * from this (a symlinked activity.db on a volume of its own failed to start with ENOENT on its -wal). A
 * path that names nothing yet is its own (SQLite makes the file there).
 */
export function realFile(file: string): string {
  if (file === ':memory:') return file;
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator's data directory (configuration)
    return realpathSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return file;
    throw e;
  }
}

/**
 * Opens a SQLite file as the DIP's own: its folder made 0700 when new (an existing one keeps the mode its
 * operator gave it, which may be a mount point the DIP cannot change); the file SQLite makes at the open
 * made 0600 at once, before any pragma or write (SQLite gives a database's WAL and shared-memory files the
 * mode of the database file, whatever the umask); an existing file and its companions, made under an
 * earlier release's default umask (0644: every local user could read the messages and the audit log),
 * tightened (warned about instead when the file is another user's: only its owner may change its mode).
 * The file is not made beforehand by the DIP: SQLite's own open makes it (a file the DIP made and closed
 * just before SQLite opened it tripped the power-loss test's write shim).
 */
export function openPrivateDatabase(file: string): Database.Database {
  if (file === ':memory:') return new Database(file);
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator's data directory (configuration)
  mkdirSync(dirname(file), { recursive: true, mode: PRIVATE_DIR_MODE });
  tightenAll(file);
  const db = new Database(file);
  tightenAll(file);
  return db;
}

function tightenAll(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- that database and its companions
    if (existsSync(f)) tighten(f);
  }
}

/**
 * Makes a file 0600. Only its owner may: a file the DIP may write but does not own (an fsGroup volume, the
 * CLI run as another user) keeps its mode, said on stderr, rather than stopping the start.
 */
function tighten(f: string): void {
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- a database file named above
    chmodSync(f, PRIVATE_FILE_MODE);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the same file
    const was = (statSync(f).mode & 0o777).toString(8);
    process.emitWarning(`${f} is not the DIP's user's: its mode (${was}) could not be made 600; make it so as its owner, or run the DIP as that user`, { code: 'DIP_DATA_FILE_MODE' });
  }
}
