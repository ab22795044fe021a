import { randomBytes } from 'node:crypto';
import { open, rename } from 'node:fs/promises';

/**
 * Writes `file` all at once: a temporary file beside it, fsync'd, then renamed over it. A running DIP
 * polling the file (revocation list, signing key) never reads half of one.
 */
export async function writeAtomic(file: string, text: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}
