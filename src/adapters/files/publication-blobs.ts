import { mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChunkSealer, PublicationBlobs, StoredBlob, StoredBlobEntry } from '../../ports/publications.js';
import { openRange, SEALED_CHUNK_BYTES, sealChunks } from '../../security/sealed-stream.js';

/** Publication IDs are the DIP's own (UUIDs); anything else never reaches the filesystem. */
const SAFE_ID = /^[a-z0-9-]{1,100}$/i;

function pathOf(dir: string, id: string, suffix: string): string {
  if (!SAFE_ID.test(id)) throw new Error(`publication id '${id}' is not one the DIP issues`);
  return join(dir, `${id}${suffix}`);
}

/**
 * Publication bytes as files in one directory of the data directory (the embedded default): `<id>.blob`,
 * sealed chunk after sealed chunk. A blob is written as `<id>.part`, synced, renamed, and the directory
 * synced, so a blob either exists whole and durable or not at all; `.part` files a crash left are
 * removed when the store opens.
 */
export class FilePublicationBlobs implements PublicationBlobs {
  readonly kind = 'files';

  constructor(
    private readonly dir: string,
    private readonly sealer: ChunkSealer,
  ) {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator's data directory
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator's data directory
    for (const name of readdirSync(dir)) if (name.endsWith('.part')) unlinkSync(join(dir, name));
  }

  async put(id: string, source: AsyncIterable<Uint8Array>, options: { maxBytes: number }): Promise<StoredBlob> {
    const part = pathOf(this.dir, id, '.part');
    const digest: StoredBlob = { size: 0, sha256: '' };
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- a path checked by pathOf
    const file = await open(part, 'wx', 0o600);
    try {
      try {
        for await (const chunk of sealChunks(source, this.sealer, id, options.maxBytes, digest)) await file.write(chunk.sealed);
        await file.datasync();
      } finally {
        await file.close();
      }
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- paths checked by pathOf
      await rename(part, pathOf(this.dir, id, '.blob'));
      await this.syncDirectory();
      return digest;
    } catch (err) {
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- a path checked by pathOf
      await unlink(part).catch(() => {});
      throw err;
    }
  }

  async *read(id: string, size: number, range?: { start: number; end: number }): AsyncIterable<Buffer> {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- a path checked by pathOf
    const file = await open(pathOf(this.dir, id, '.blob'), 'r');
    try {
      const buffer = Buffer.allocUnsafe(SEALED_CHUNK_BYTES);
      yield* openRange(id, size, range, this.sealer, async (index, length) => {
        const { bytesRead } = await file.read(buffer, 0, length, index * SEALED_CHUNK_BYTES);
        if (bytesRead !== length) throw new Error(`publication ${id} is cut short at chunk ${index} (${bytesRead} of ${length} bytes)`);
        // Opening copies the plain bytes out, so the buffer is free again for the next chunk.
        return buffer.subarray(0, length);
      });
    } finally {
      await file.close();
    }
  }

  async remove(id: string): Promise<void> {
    await this.unlinkIfThere(pathOf(this.dir, id, '.blob'));
    await this.syncDirectory();
  }

  /** `<id>.blob` and `<id>.part` files; the newest write of the two counts. */
  async *list(): AsyncIterable<StoredBlobEntry> {
    const seen = new Map<string, number>();
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator's data directory
    for (const name of await readdir(this.dir)) {
      const match = /^(.+)\.(?:blob|part)$/.exec(name);
      if (!match || !SAFE_ID.test(match[1]!)) continue;
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- a name listed in the directory
      const info = await stat(join(this.dir, name)).catch(() => null); // removed since the listing
      if (info) seen.set(match[1]!, Math.max(seen.get(match[1]!) ?? 0, info.mtimeMs));
    }
    for (const [id, writtenAt] of seen) yield { id, writtenAt };
  }

  async discard(id: string): Promise<void> {
    await this.unlinkIfThere(pathOf(this.dir, id, '.part'));
    await this.unlinkIfThere(pathOf(this.dir, id, '.blob'));
    await this.syncDirectory();
  }

  async close(): Promise<void> {}

  private async unlinkIfThere(path: string): Promise<void> {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- paths made by pathOf
    await unlink(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  /** A rename or unlink is durable only once the directory holding it is synced. */
  private async syncDirectory(): Promise<void> {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator's data directory
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
