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
