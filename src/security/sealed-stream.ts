import { createHash } from 'node:crypto';
import { BlobTooLarge, type ChunkSealer, type StoredBlob } from '../ports/publications.js';

/**
 * Large objects at rest (publications): the plain bytes cut into chunks of CHUNK_BYTES, each sealed on its
 * own (AES-256-GCM under the current data key, src/security/at-rest.ts), so that a range is read by opening
 * only the chunks it touches and memory stays one chunk whatever the object's size. Every chunk but the
 * last holds exactly CHUNK_BYTES, so chunk i starts at i × SEALED_CHUNK_BYTES in a file.
 */
export const CHUNK_BYTES = 1024 * 1024;
/** Sealed layout per chunk: version and key id (5), IV (12), tag (16). */
export const CHUNK_OVERHEAD = 5 + 12 + 16;
export const SEALED_CHUNK_BYTES = CHUNK_BYTES + CHUNK_OVERHEAD;

/** An object always has at least one chunk (the empty object's last chunk is empty). */
export const chunkCount = (size: number): number => Math.max(1, Math.ceil(size / CHUNK_BYTES));

/** Bytes chunk `index` of an object of `size` plain bytes takes sealed. */
export const sealedLength = (size: number, index: number): number => Math.min(CHUNK_BYTES, size - index * CHUNK_BYTES) + CHUNK_OVERHEAD;

/** What each chunk's seal authenticates besides its bytes: the object, the chunk's place and whether it ends the object. */
export function chunkContext(objectId: string, index: number, last: boolean): Buffer {
  const place = Buffer.alloc(9);
  place.writeBigUInt64BE(BigInt(index), 0);
  place.writeUInt8(last ? 1 : 0, 8);
  return Buffer.concat([Buffer.from(objectId, 'utf8'), place]);
}

export interface SealedChunk {
  index: number;
  sealed: Buffer;
}

/**
 * Seals a stream chunk by chunk; `digest` is filled once the source ends. Refuses (BlobTooLarge) as soon as
 * the source passes `maxBytes`, without reading further. Pulls the source only as fast as the consumer
 * takes chunks: what is in memory is at most one chunk and what the source last gave.
 */
export async function* sealChunks(source: AsyncIterable<Uint8Array>, sealer: ChunkSealer, objectId: string, maxBytes: number, digest: StoredBlob): AsyncGenerator<SealedChunk> {
  const hash = createHash('sha256');
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let size = 0;
  let index = 0;
  for await (const piece of source) {
    const buf = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    size += buf.length;
    if (size > maxBytes) throw new BlobTooLarge(maxBytes);
    hash.update(buf);
    pending.push(buf);
    pendingBytes += buf.length;
    // A full chunk is sealed only once more bytes follow it: the last chunk is always known as the last.
    while (pendingBytes > CHUNK_BYTES) {
      const all = Buffer.concat(pending, pendingBytes);
      yield { index, sealed: sealer.sealChunk(all.subarray(0, CHUNK_BYTES), chunkContext(objectId, index, false)) };
      index += 1;
      pending = [all.subarray(CHUNK_BYTES)];
      pendingBytes -= CHUNK_BYTES;
    }
  }
  yield { index, sealed: sealer.sealChunk(Buffer.concat(pending, pendingBytes), chunkContext(objectId, index, true)) };
  digest.size = size;
  digest.sha256 = hash.digest('hex');
}

/**
 * The plain bytes `start`…`end` (inclusive) of an object of `size` bytes, from its sealed chunks as
 * `readChunk` fetches them (one at a time, in order). A chunk that does not open (tampered, cut, moved)
 * fails the stream.
 */
export async function* openRange(
  objectId: string,
  size: number,
  range: { start: number; end: number } | undefined,
  sealer: ChunkSealer,
  readChunk: (index: number, sealedBytes: number) => Promise<Buffer>,
): AsyncGenerator<Buffer> {
  if (size === 0) return;
  const start = range?.start ?? 0;
  const end = Math.min(range?.end ?? size - 1, size - 1);
  if (start > end) return;
  const last = chunkCount(size) - 1;
  for (let i = Math.floor(start / CHUNK_BYTES); i <= Math.floor(end / CHUNK_BYTES); i++) {
    const sealed = await readChunk(i, sealedLength(size, i));
    const plain = sealer.openChunk(sealed, chunkContext(objectId, i, i === last));
    const from = i * CHUNK_BYTES;
    yield plain.subarray(Math.max(0, start - from), Math.min(plain.length, end - from + 1));
  }
}
