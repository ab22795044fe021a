import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

/** The data folder's mode: the DIP's user alone (its databases, keys and PKI are in it). */
export const PRIVATE_DIR_MODE = 0o700;
/** A database file's mode; SQLite makes its -wal, -shm and -journal files with the same. */
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Readies a SQLite file to be opened as the DIP's own: its folder made 0700 when new (an existing one
 * keeps the mode its operator gave it, which may be a mount point the DIP cannot change), the file made
 * 0600 before SQLite opens it (SQLite gives a database's WAL and shared-memory files the mode of the
 * database file, whatever the umask), and an existing file and its companions, made under an earlier
 * release's default umask (0644: every local user could read the messages and the audit log), tightened.
 */
export function readyPrivateSqliteFile(file: string): void {
  if (file === ':memory:') return;
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator's data directory (configuration)
  mkdirSync(dirname(file), { recursive: true, mode: PRIVATE_DIR_MODE });
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- a database in that directory
  closeSync(openSync(file, 'a', PRIVATE_FILE_MODE));
  for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- that database and its companions
    if (existsSync(f)) chmodSync(f, PRIVATE_FILE_MODE);
  }
}
