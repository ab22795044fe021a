import { statfsSync, statSync } from 'node:fs';
import type { DiskSpace } from '../ports/backend.js';
import { realFile } from './sqlite/private-file.js';

/**
 * The data folder's volume (statfs: the blocks free to an unprivileged user, as the DIP runs) and the
 * API activity log's SQLite files on it (the database, its WAL and shared memory); `activityLog` null
 * when the log is not kept there (off, or in PostgreSQL).
 */
export function readDiskSpace(dataDir: string, activityLog: string | null): DiskSpace {
  const fs = statfsSync(dataDir);
  const size = (file: string) => {
    try {
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- the activity log's files in the operator's data folder
      return statSync(file).size;
    } catch {
      return 0;
    }
  };
  // Its -wal and -shm are beside the real file (a symlinked activity.db: SQLite's own rule).
  const real = activityLog === null ? null : realFile(activityLog);
  const activityLogBytes = real === null ? null : [real, `${real}-wal`, `${real}-shm`].reduce((n, f) => n + size(f), 0);
  return { path: dataDir, freeBytes: fs.bavail * fs.bsize, activityLogBytes };
}
