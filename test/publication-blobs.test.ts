import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { FilePublicationBlobs } from '../src/adapters/files/publication-blobs.js';
import { JetStreamPublicationBlobs } from '../src/adapters/nats/publication-blobs.js';
import { FileKeyEncryptionKey, Sealer } from '../src/security/at-rest.js';
import { publicationBlobsContract } from './contract/publications.contract.js';
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

publicationBlobsContract('files (embedded default)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-blobs-'));
  const sealer = await testSealer(dir);
  const store = join(dir, 'publications');
  return {
    blobs: new FilePublicationBlobs(store, sealer),
    reopen: async () => new FilePublicationBlobs(store, sealer),
    stored: async (id) => readFileSync(join(store, `${id}.blob`)),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

publicationBlobsContract('JetStream Object Store (cluster)', async () => {
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
      for (let i = 0; ; i++) {
        const chunk = await os.getBlob(`${id}/${i}`);
        if (!chunk) break;
        parts.push(Buffer.from(chunk));
      }
      return Buffer.concat(parts);
    },
    async cleanup() {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(`OBJ_${bucket}`).catch(() => false);
      await nc.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

