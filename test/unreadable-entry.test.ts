import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openPostgresBackend } from '../src/adapters/postgres/index.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { consumptionReplayRecipient } from '../src/pipeline/consumption-replay.js';
import { QueueWorker, type DeadLetterEvent } from '../src/pipeline/queue-worker.js';
import type { Backend } from '../src/ports/backend.js';
import { batch, message } from './contract/fixtures.js';
import { FakeClock } from './helpers/clocks.js';
import { waitFor } from './helpers/dip-harness.js';
import { databaseForDescribe } from './helpers/postgres.js';
import { workerDeps } from './helpers/worker-deps.js';
import { FileKeyEncryptionKey, Sealer } from '../src/security/at-rest.js';
import { DataKeyNotLoaded } from '../src/ports/errors.js';

/**
 * A queued message whose stored copy cannot be opened (a damaged row: AES-GCM's authentication fails; or
 * sealed with a data key no longer held) can never be handled. Read, it used to fail the whole read, and
 * the worker retried it for ever, holding every entry behind it; it is dead-lettered, saying why.
 */
const queue = { recipientDipId: consumptionReplayRecipient('2000000001'), channel: 'IF-015' };
/** Seals nothing; fails to open the copies that say DAMAGED, as a damaged row's authentication fails. */
const sealer = {
  seal: (plain: Buffer | string) => Buffer.from(plain),
  open: (sealed: Buffer) => {
    if (sealed.includes('DAMAGED')) throw new Error('Unsupported state or unable to authenticate data');
    return sealed;
  },
  index: (v: string) => v,
};

async function damagedHead(backend: Backend): Promise<void> {
  backend.useSealer(sealer);
  const damaged = message([queue.recipientDipId], { channel: queue.channel, outbound: '{"DAMAGED": true}' });
  const sound = message([queue.recipientDipId], { channel: queue.channel, outbound: '{"sound": true}' });
  await backend.log.append({ ...batch([damaged, sound]), channel: queue.channel });
  const handled: string[] = [];
  const told: DeadLetterEvent[] = [];
  const clock = new FakeClock();
  const transport = { post: async () => Promise.reject(new Error('no webhook')), close: async () => {} };
  const worker = new QueueWorker(queue, workerDeps(clock, {
    log: backend.log,
    transport,
    localConsumer: () => async (entries) => void handled.push(...entries.map((e) => e.outbound)),
    deadLettered: (events) => told.push(...events),
  }));
  worker.kick();
  await waitFor(() => worker.state !== 'working', 10_000, 'the worker done with the queue');
  expect([worker.state, worker.status().lastError]).toEqual(['idle', null]);
  expect(handled).toEqual(['{"sound": true}']);
  expect(told.map((e) => [e.entry.transactionId, e.reason])).toEqual([[damaged.transactionId, 'rejected']]);
  const [dead, ...more] = await backend.deadLetters.deadLetters({ ...queue, limit: 10 });
  expect(more).toEqual([]);
  expect(dead).toMatchObject({ transactionId: damaged.transactionId, reason: 'rejected', detail: expect.stringMatching(/^the stored copy could not be opened \(Unsupported state or unable to authenticate data\)/) });
  expect((await backend.log.queueState(queue)).ackedSeq).toBe(2);
}

describe('a queued message whose stored copy cannot be opened is dead-lettered, not retried for ever', () => {
  it('SQLite', async () => {
    const backend = openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-unreadable-')), 'dip.db'), { clock: systemClock });
    backend.deliveredElsewhere(); // no appended copy kept in memory: the read opens the row, as after a restart
    try {
      await damagedHead(backend);
    } finally {
      await backend.close();
    }
  });

  describe('PostgreSQL', () => {
    const test = databaseForDescribe();

    it('PostgreSQL', async () => {
      const backend = await openPostgresBackend({ url: await test.freshSchema(), clock: systemClock });
      try {
        await damagedHead(backend);
      } finally {
        await backend.close();
      }
    });
  });
});

// Review of the change above: a key this process has not loaded yet (rotated by the operator in the main
// process or on another node since) was taken for a damaged row, and the sound message sealed under it was
// dead-lettered and its sender told it was rejected. The read must fail instead, to be retried once the key
// ring is read again (delivery processes reload it on this error), as before the change.
describe('a message sealed under a data key rotated since the reader loaded its keys is not taken for damage', () => {
  it('SQLite: the queue read fails to be retried, and the reloaded key ring reads the message', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-rotated-'));
    const kek = new FileKeyEncryptionKey(join(dir, 'kek.key'));
    const writer = openSqliteBackend(join(dir, 'dip.db'), { clock: systemClock });
    const reader = openSqliteBackend(join(dir, 'dip.db'), { clock: systemClock });
    reader.deliveredElsewhere();
    try {
      const sealer = await Sealer.open(kek, writer.dataKeys);
      writer.useSealer(sealer);
      reader.useSealer(await Sealer.open(kek, reader.dataKeys));
      await sealer.rotate();
      const m = message([queue.recipientDipId], { channel: queue.channel, outbound: '{"sealed": "under the new key"}' });
      await writer.log.append({ ...batch([m]), channel: queue.channel });
      await expect(reader.log.readQueue(queue, 0, 10, 1 << 20)).rejects.toBeInstanceOf(DataKeyNotLoaded);
      reader.useSealer(await Sealer.open(kek, reader.dataKeys));
      const [entry, ...more] = await reader.log.readQueue(queue, 0, 10, 1 << 20);
      expect(more).toEqual([]);
      expect(entry).toMatchObject({ transactionId: m.transactionId, outbound: '{"sealed": "under the new key"}' });
      expect(entry!.unreadable).toBeUndefined();
    } finally {
      await reader.close();
      await writer.close();
    }
  });
});
