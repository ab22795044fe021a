import { Objm, StorageType, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ChunkSealer, PublicationBlobs, StoredBlob, StoredBlobEntry } from '../../ports/publications.js';
import { chunkCount, openRange, sealChunks } from '../../security/sealed-stream.js';

/** Sealed chunks written to JetStream at once per upload: enough to keep a quorum busy, bounded memory. */
const IN_FLIGHT = 4;

const chunkName = (id: string, index: number): string => `${id}/${index}`;

/**
 * Publication bytes in a JetStream Object Store (the cluster): each sealed chunk is an object of its own
 * (`<id>/<index>`), so a range request fetches only the chunks it touches. JetStream acknowledges a chunk
 * once it is stored on a quorum of the bucket's replicas (R3 in production), so put() resolves only
 * when every chunk is durable; an upload that fails removes what it had stored.
 */
export class JetStreamPublicationBlobs implements PublicationBlobs {
  readonly kind = 'jetstream-object-store';

  private constructor(
    private readonly store: ObjectStore,
    private readonly sealer: ChunkSealer,
    private readonly release: () => Promise<void>,
  ) {}

  /** `release` is called by close() (the connection, when the store owns it). */
  static async open(nc: NatsConnection, bucket: string, replicas: number, sealer: ChunkSealer, release: () => Promise<void> = async () => {}): Promise<JetStreamPublicationBlobs> {
    const store = await new Objm(nc).create(bucket, { replicas, storage: StorageType.File, description: 'OpenDIP: publication payloads (Pattern B), sealed chunks' });
    return new JetStreamPublicationBlobs(store, sealer, release);
  }

  async put(id: string, source: AsyncIterable<Uint8Array>, options: { maxBytes: number }): Promise<StoredBlob> {
    const digest: StoredBlob = { size: 0, sha256: '' };
    const inFlight = new Set<Promise<unknown>>();
    let written = 0;
    try {
      for await (const chunk of sealChunks(source, this.sealer, id, options.maxBytes, digest)) {
        const stored = this.store.putBlob({ name: chunkName(id, chunk.index) }, chunk.sealed);
        const tracked = stored.finally(() => inFlight.delete(tracked));
        inFlight.add(tracked);
        written = chunk.index + 1;
        if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      return digest;
    } catch (err) {
      await Promise.allSettled(inFlight);
      await this.removeChunks(id, written);
      throw err;
    }
  }

  async *read(id: string, size: number, range?: { start: number; end: number }): AsyncIterable<Buffer> {
    yield* openRange(id, size, range, this.sealer, async (index) => {
      const sealed = await this.store.getBlob(chunkName(id, index));
      if (!sealed) throw new Error(`publication ${id} has lost chunk ${index}`);
      return Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    });
  }

  async remove(id: string, size: number): Promise<void> {
    await this.removeChunks(id, chunkCount(size));
  }

  /** Chunk objects grouped by publication ID; the newest chunk's time counts (JetStream's own clock). */
  async *list(): AsyncIterable<StoredBlobEntry> {
    for (const [id, chunks] of await this.chunksById()) yield { id, writtenAt: Math.max(...chunks.map((c) => c.writtenAt)) };
  }

  /** Every chunk stored under the ID, whatever gaps a crash left between them. */
  async discard(id: string): Promise<void> {
    for (const chunk of (await this.chunksById()).get(id) ?? []) {
      await this.store.delete(chunk.name).catch((err: Error) => {
        if (!/not found/i.test(err.message)) throw err;
      });
    }
  }

  close(): Promise<void> {
    return this.release();
  }

  private async chunksById(): Promise<Map<string, Array<{ name: string; writtenAt: number }>>> {
    const byId = new Map<string, Array<{ name: string; writtenAt: number }>>();
    for (const info of await this.store.list()) {
      const slash = info.name.lastIndexOf('/');
      if (info.deleted || slash <= 0) continue;
      const id = info.name.slice(0, slash);
      const chunks = byId.get(id) ?? [];
      chunks.push({ name: info.name, writtenAt: Date.parse(info.mtime) });
      byId.set(id, chunks);
    }
    return byId;
  }

  private async removeChunks(id: string, count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      await this.store.delete(chunkName(id, i)).catch((err: Error) => {
        if (!/not found/i.test(err.message)) throw err;
      });
    }
  }
}
