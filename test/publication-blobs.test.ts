import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { FilePublicationBlobs } from '../src/adapters/files/publication-blobs.js';
import { JetStreamPublicationBlobs } from '../src/adapters/nats/publication-blobs.js';
import { FileKeyEncryptionKey, Sealer } from '../src/security/at-rest.js';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { Publications, type PublicationSettings } from '../src/pipeline/publications.js';
import { publication, publicationBlobsContract, type OpenedBlobs } from './contract/publications.contract.js';
import { FakeClock } from './helpers/clocks.js';
import { quietLogger } from './helpers/dip-harness.js';
import { NATS_SERVERS, testPrefix } from './helpers/nats.js';

/** A sealer with a key-encryption key file and its data keys in memory, as the DIP has them after start. */
async function testSealer(dir: string): Promise<Sealer> {
  const keys: Array<{ id: number; wrapped: Buffer }> = [];
  return Sealer.open(new FileKeyEncryptionKey(join(dir, 'kek.key')), {
    dataKeys: async () => keys,
    addDataKey: async (wrapped) => {
      keys.push({ id: keys.length + 1, wrapped });
      return keys.length;
    },
  });
}

async function openFiles(): Promise<OpenedBlobs> {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-blobs-'));
  const sealer = await testSealer(dir);
  const store = join(dir, 'publications');
  const file = (id: string, suffix: string) => join(store, `${id}${suffix}`);
  return {
    blobs: new FilePublicationBlobs(store, sealer),
    reopen: async () => new FilePublicationBlobs(store, sealer),
    stored: async (id) => Buffer.concat(['.blob', '.part'].map((x) => (existsSync(file(id, x)) ? readFileSync(file(id, x)) : Buffer.alloc(0)))),
    // A process that dies while writing leaves its `.part` file (the next start of the store removes it too).
    strand: async (id) => writeFileSync(file(id, '.part'), randomBytes(1000)),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

async function openJetStream(): Promise<OpenedBlobs> {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-blobs-'));
  const sealer = await testSealer(dir);
  const bucket = `${testPrefix()}_publications`;
  const nc = await connect({ servers: NATS_SERVERS });
  const open = () => JetStreamPublicationBlobs.open(nc, bucket, 1, sealer);
  return {
    blobs: await open(),
    reopen: open,
    async stored(id) {
      const os = await new Objm(nc).open(bucket);
      const parts: Buffer[] = [];
      for (const info of (await os.list()).filter((o) => o.name.startsWith(`${id}/`)).sort((a, b) => chunkIndex(a.name) - chunkIndex(b.name))) {
        const chunk = await os.getBlob(info.name);
        if (chunk) parts.push(Buffer.from(chunk));
      }
      return Buffer.concat(parts);
    },
    // Chunks are written several at once: a node that dies mid-upload may leave some with gaps between them.
    async strand(id) {
      const os = await new Objm(nc).open(bucket);
      await os.putBlob({ name: `${id}/0` }, randomBytes(1000));
      await os.putBlob({ name: `${id}/2` }, randomBytes(1000));
    },
    async cleanup() {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(`OBJ_${bucket}`).catch(() => false);
      await nc.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function* once(data: Buffer): AsyncGenerator<Buffer> {
  yield data;
}

const chunkIndex = (name: string): number => Number(name.slice(name.lastIndexOf('/') + 1));

publicationBlobsContract('files (embedded default)', openFiles);
publicationBlobsContract('JetStream Object Store (cluster)', openJetStream);

describe.each([
  ['files (embedded default)', openFiles],
  ['JetStream Object Store (cluster)', openJetStream],
])('bytes with no committed record are swept after the grace period: %s', (_name, openStore) => {
  const GRACE_MS = 60 * 60_000;
  let s: OpenedBlobs;
  let dir: string;
  let backend: ReturnType<typeof openSqliteBackend>;
  let clock: FakeClock;
  let publications: Publications;
  beforeEach(async () => {
    s = await openStore();
    dir = mkdtempSync(join(tmpdir(), 'opendip-orphans-'));
    // The stores date their writes by the real clock: the fake one starts there and only moves when told.
    clock = new FakeClock(Date.now());
    backend = openSqliteBackend(join(dir, 'dip.db'), { clock });
    const settings: PublicationSettings = {
      maxBytes: () => 10 * 1024 * 1024,
      retentionMs: () => 86_400_000,
      orphanGraceMs: GRACE_MS,
      publisherRoles: () => undefined,
      participantBaseUrl: () => 'https://localhost',
      publicBaseUrl: () => null,
      environment: 'DEV',
      reachable: () => true,
      channel: () => undefined,
    };
    publications = new Publications(backend.publications, s.blobs, backend.log, { participants: () => [] }, settings, clock, quietLogger, { publicationNoticeUnqueued: () => undefined }, backend.journal);
  });
  afterEach(async () => {
    await backend.close();
    await s.blobs.close();
    await s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps committed publications and recent bytes; removes the orphans once they are older than the grace', async () => {
    const data = randomBytes(1024 * 1024 + 5);
    // Committed: bytes, then the record.
    const kept = publication();
    const stored = await s.blobs.put(kept.id, once(data), { maxBytes: data.length });
    expect(await backend.publications.insert({ ...kept, size: stored.size, sha256: stored.sha256 })).toEqual({ ok: true });
    // A crash after the bytes were durable, before the record was committed.
    const uncommitted = publication().id;
    await s.blobs.put(uncommitted, once(data), { maxBytes: data.length });
    // A crash half way through an upload.
    const cutShort = publication().id;
    await s.strand(cutShort);

    // Within the grace period any of them may be an upload still under way, or about to commit.
    expect(await publications.sweepOrphans()).toBe(0);
    await clock.advance(GRACE_MS - 60_000);
    expect(await publications.sweepOrphans()).toBe(0);

    await clock.advance(2 * 60_000);
    expect(await publications.sweepOrphans()).toBe(2);
    const left: string[] = [];
    for await (const e of s.blobs.list()) left.push(e.id);
    expect(left).toEqual([kept.id]);
    expect((await s.stored(uncommitted)).length).toBe(0);
    expect((await s.stored(cutShort)).length).toBe(0);
    // The committed one reads back whole.
    const parts: Buffer[] = [];
    for await (const p of publications.read((await publications.get(kept.id))!)) parts.push(p);
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    expect(await publications.sweepOrphans()).toBe(0);
  });
  it("removes the bytes of a withdrawn publication that a crash left behind (the record marked, the bytes not yet removed)", async () => {
    const data = randomBytes(2048);
    const p = publication();
    const stored = await s.blobs.put(p.id, once(data), { maxBytes: data.length });
    expect(await backend.publications.insert({ ...p, size: stored.size, sha256: stored.sha256 })).toEqual({ ok: true });
    // The withdrawal's first write only, as a crash before its second leaves it.
    expect((await backend.publications.withdraw(p.id, { at: clock.now(), by: 'operator:alice', reason: 'wrong channel' }))?.record.withdrawn).toEqual({ at: clock.now(), by: 'operator:alice', reason: 'wrong channel' });
    await clock.advance(GRACE_MS + 60_000);
    expect(await publications.sweepOrphans()).toBe(1);
    expect((await s.stored(p.id)).length).toBe(0);
    // The record stays, to answer 410.
    expect((await publications.get(p.id))?.withdrawn?.reason).toBe('wrong channel');
  });
  it('withdraws a publication whose bytes cannot be removed now (the store failing): withdrawn all the same, the sweep removes them', async () => {
    const data = randomBytes(2048);
    const p = publication();
    const stored = await s.blobs.put(p.id, once(data), { maxBytes: data.length });
    expect(await backend.publications.insert({ ...p, size: stored.size, sha256: stored.sha256 })).toEqual({ ok: true });
    const remove = s.blobs.remove.bind(s.blobs);
    s.blobs.remove = () => Promise.reject(new Error('store unavailable'));
    // Before: the failed removal threw, the route answered 500 and journalled nothing, and a retry was a 409.
    const { after } = await publications.withdraw(p.id, 'operator:alice', 'wrong channel');
    expect(after.withdrawn?.reason).toBe('wrong channel');
    s.blobs.remove = remove;
    await clock.advance(GRACE_MS + 60_000);
    expect(await publications.sweepOrphans()).toBe(1);
    expect((await s.stored(p.id)).length).toBe(0);
  });
});

