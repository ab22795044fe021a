import { closeSync, createWriteStream, fchmodSync, fstatSync, openSync, writeSync, type WriteStream } from 'node:fs';

/** An output file's mode: the operator's user alone. */
const PRIVATE_FILE_MODE = 0o600;

/**
 * Opens `path` for writing as the operator's own file. The CLI's outputs hold personal data (a replay's
 * messages, the API activity log, a migration export) or credentials (keys, API keys, a session): made
 * 0600 when the open creates the file, whatever the umask; an existing one (0644, made by an earlier
 * release or by hand: `{ mode }` alone sets the mode only of a file the open creates) tightened by its
 * descriptor before a byte is written, as src/adapters/sqlite/private-file.ts tightens the databases. A
 * file of another user's, which only its owner may change, keeps its mode, said on stderr.
 */
function openPrivate(path: string, flags: 'w' | 'r+'): number {
  const fd = openSync(path, flags, PRIVATE_FILE_MODE);
  // Only a regular file is the operator's output: `--out /dev/null`, a FIFO or a terminal is a shared
  // device whose mode is the system's (made 0600 by root, /dev/null would refuse every other user).
  if (!fstatSync(fd).isFile()) return fd;
  try {
    fchmodSync(fd, PRIVATE_FILE_MODE);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') {
      closeSync(fd);
      throw e;
    }
    const was = (fstatSync(fd).mode & 0o777).toString(8);
    process.emitWarning(`${path} is another user's: its mode (${was}) could not be made 600; make it so as its owner`, { code: 'DIP_OUTPUT_FILE_MODE' });
  }
  return fd;
}

/** A stream writing `path` as the operator's own file (openPrivate): anew, or (`r+`) over it from `start`. */
export function privateWriteStream(path: string, o: { flags?: 'w' | 'r+'; start?: number } = {}): WriteStream {
  const fd = openPrivate(path, o.flags ?? 'w');
  return createWriteStream(path, { fd, ...(o.start !== undefined ? { start: o.start } : {}) });
}

/** Writes `data` to `path` as the operator's own file (openPrivate), replacing what it held. */
export function writePrivateFile(path: string, data: string): void {
  const fd = openPrivate(path, 'w');
  try {
    writeSync(fd, data);
  } finally {
    closeSync(fd);
  }
}
