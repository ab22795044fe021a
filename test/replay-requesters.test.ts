import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { channelRouting } from '../src/pipeline/channels.js';
import { CONSUMPTION_REPLAY_BATCH, consumptionReplay, dipConsumedRecipient } from '../src/pipeline/consumption-replay.js';
import { QueueWorker } from '../src/pipeline/queue-worker.js';
import type { MpanArchiveQuery } from '../src/ports/archive.js';
import { mpanCore } from '../src/sim/messages.js';
import { FakeClock } from './helpers/clocks.js';
import { waitFor } from './helpers/dip-harness.js';
import { workerDeps } from './helpers/worker-deps.js';

const catalogue = Catalogue.load();
const busy = '2000000001';
const quiet = '2000000003';

/** An IF-015 from `sender` about `mpan`, appended and routed as ingest routes it. */
async function request(log: ReturnType<typeof openSqliteBackend>['log'], sender: string, mpan: string, n: number): Promise<void> {
  const message = { payload: { CommonBlock: { S0: { interfaceID: 'IF-015', schemaVersion: '011', eventCode: '[ConsumptionReplay]' }, S1: { senderDIPID: sender, senderRoleID: 'ADS' }, M0: { MPANCore: mpan } } } };
  await log.append({
    channel: 'IF-015', senderDipId: sender, receivedAt: Date.now(), rawRequest: Buffer.from('[]'), signatureHeaders: '{}',
    messages: [{ transactionId: `T-IF-015-${sender}-ADS-20261205-${String(n).padStart(16, '0')}`, channel: 'IF-015', eventCode: '[ConsumptionReplay]', senderDipId: sender, senderRole: 'ADS', senderUniqueReference: `ask-${n}`, correlationId: null, mpan, receivedAt: Date.now(), outbound: JSON.stringify(message), recipients: [dipConsumedRecipient('IF-015', sender)!] }],
  });
}

describe('DIP Replay Service: one requester\'s backlog does not hold another\'s requests', () => {
  it('answers a data service\'s one request while another has 50 waiting, each requester\'s in the order sent', async () => {
    const backend = openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-replay-fair-')), 'dip.db'), { clock: systemClock });
    try {
      const busyMpans = Array.from({ length: 50 }, (_, i) => mpanCore(`fair-busy-${i}`));
      const quietMpan = mpanCore('fair-quiet');
      let n = 0;
      for (const m of busyMpans) await request(backend.log, busy, m, ++n);
      await request(backend.log, quiet, quietMpan, ++n);

      // The archive read of each request, in the order the service makes them: what it is busy with.
      const served: MpanArchiveQuery[] = [];
      const archive = {
        findForMpan: async (q: MpanArchiveQuery) => {
          served.push(q);
          await new Promise((resolve) => setImmediate(resolve)); // a read takes a turn of the event loop at least
          return [];
        },
      };
      const clock = new FakeClock();
      const consumer = consumptionReplay({
        log: backend.log,
        notify: () => {},
        archive,
        mpan: { history: async (m) => [{ mpan: m, slot: 'DS', dipId: m === quietMpan ? quiet : busy, fromMs: 0, toMs: null }] },
        channel: (id) => channelRouting(catalogue.channel(id)!, undefined, 60_000),
        clock,
        logger: { info() {}, warn() {}, error() {} },
        dipId: '0000000000',
        environment: 'DEV',
      });
      const transport = { post: async () => Promise.reject(new Error('the replay service calls no webhook')), close: async () => {} };
      const workers = (await backend.log.pendingQueues()).map((q) => new QueueWorker(q, workerDeps(clock, { log: backend.log, transport, localConsumer: consumer })));
      for (const w of workers) w.kick();
      await waitFor(() => workers.every((w) => w.state === 'idle'), 20_000, 'every replay queue drained');

      expect(served).toHaveLength(51);
      // The quiet requester waits for at most the batch the busy one's queue is in the middle of, not its backlog.
      const busyBefore = served.findIndex((q) => q.party === quiet);
      expect(busyBefore).toBeGreaterThanOrEqual(0);
      expect(busyBefore).toBeLessThanOrEqual(CONSUMPTION_REPLAY_BATCH);
      // Per requester, first in first out.
      expect(served.filter((q) => q.party === busy).map((q) => q.mpan)).toEqual(busyMpans);
      for (const recipient of [busy, quiet]) expect((await backend.log.queueState({ recipientDipId: recipient, channel: 'IF-016' })).headSeq).toBe(recipient === busy ? 50 : 1);
    } finally {
      await backend.close();
    }
  });
});
