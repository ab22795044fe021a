import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openBackend } from '../src/adapters/backend.js';
import { loadConfig } from '../src/config.js';
import { consumptionReplayRecipient } from '../src/pipeline/consumption-replay.js';
import { QueueWorker } from '../src/pipeline/queue-worker.js';
import type { DataKeyStore } from '../src/ports/data-keys.js';
import { DataKeyNotLoaded, NoSuchDataKey } from '../src/ports/errors.js';
import { FileKeyEncryptionKey, RELOAD_ON_MISS_MS, Sealer } from '../src/security/at-rest.js';
import { batch, message } from './contract/fixtures.js';
import { FakeClock, settle } from './helpers/clocks.js';
import { waitFor } from './helpers/dip-harness.js';
import { workerDeps } from './helpers/worker-deps.js';

const queue = { recipientDipId: consumptionReplayRecipient('2000000001'), channel: 'IF-015' };

/**
 * Two processes over one store, as two nodes of a cluster over one PostgreSQL: the operator rotates the
 * at-rest data key on one, and the other's queues hold messages sealed under a key it has not loaded. It
 * reads its key ring again when it meets one (DataKeyNotLoaded), at most every RELOAD_ON_MISS_MS, so it
 * delivers them without a restart and seals under the new key from then on.
 */
describe('a data key rotated by another process or node is loaded when a value sealed under it is met', () => {
  it("the other node's queue delivers the message sealed under the new key, without a restart", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'opendip-datakeys-'));
    const config = loadConfig({}, { dataDir });
    const clock = new FakeClock(Date.now());
    const a = await openBackend(config, { clock });
    const b = await openBackend(config, { clock });
    try {
      const before = b.sealer.currentKeyId;
      const rotated = await a.sealer.rotate();
      expect(rotated).toBeGreaterThan(before);
      const m = message([queue.recipientDipId], { channel: queue.channel, outbound: '{"sealed":"under the new key"}' });
      await a.backend.log.append({ ...batch([m]), channel: queue.channel });

      const handled: string[] = [];
      const worker = new QueueWorker(queue, workerDeps(clock, { log: b.backend.log, transport: { post: async () => Promise.reject(new Error('no webhook')), close: async () => {} }, localConsumer: () => async (entries) => void handled.push(...entries.map((e) => e.outbound)) }));
      worker.kick();
      // The first read meets the key it does not hold: the worker waits its pause, the key ring is read meanwhile.
      await waitFor(() => worker.state === 'backoff', 10_000, 'the first read failing');
      expect(worker.status().lastError).toMatch(/data key \d+, which this DIP does not hold/);
      await waitFor(() => b.sealer.currentKeyId === rotated, 10_000, "node B's key ring read again");
      await clock.advance(1_000);
      await waitFor(() => handled.length === 1, 10_000, 'the message delivered');
      expect(handled).toEqual(['{"sealed":"under the new key"}']);
      // What B seals from now on is under the key in force across the cluster.
      expect(b.sealer.seal('x', 'outbound', 'T-1').readUInt32BE(1)).toBe(rotated);
      await worker.stop();
    } finally {
      await b.backend.close();
      await a.backend.close();
    }
  });

  it('reads the stored keys once for a value naming a key nobody holds, then takes the value for damaged (NoSuchDataKey)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'opendip-datakeys-'));
    const clock = new FakeClock(Date.now());
    const kept: Array<{ id: number; wrapped: Buffer }> = [];
    let reads = 0;
    const store: DataKeyStore = {
      dataKeys: async () => {
        reads++;
        return [...kept];
      },
      addDataKey: async (wrapped) => kept.push({ id: kept.length + 1, wrapped }),
    };
    const sealer = await Sealer.open(new FileKeyEncryptionKey(join(dataDir, 'kek.key')), store, { clock });
    expect(reads).toBe(1);
    const stray = sealer.seal('x', 'outbound', 'T-1');
    stray.writeUInt32BE(99, 1); // a damaged header: no node ever held key 99
    for (let i = 0; i < 20; i++) expect(() => sealer.open(stray, 'outbound', 'T-1')).toThrow(DataKeyNotLoaded);
    await settle();
    expect(reads).toBe(2);
    // That read, started after the value was met, did not find key 99: never a key, the header is damaged.
    // Readers set the row aside (unreadable, 422) instead of asking to be retried for ever.
    for (let i = 0; i < 20; i++) expect(() => sealer.open(stray, 'outbound', 'T-1')).toThrow(NoSuchDataKey);
    await clock.advance(RELOAD_ON_MISS_MS);
    expect(() => sealer.open(stray, 'outbound', 'T-1')).toThrow(/data key 99, which this DIP never held/);
    await settle();
    expect(reads).toBe(2);
  });
});
