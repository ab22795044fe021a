import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openPostgresBackend } from '../src/adapters/postgres/index.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import Fastify from 'fastify';
import { pino } from 'pino';
import { queueRoutes, queueViews } from '../src/api/admin-queues.js';
import { queueDepths, type QueueBacklog } from '../src/pipeline/metrics.js';
import type { WorkerStatus } from '../src/pipeline/queue-worker.js';
import type { MessageLog } from '../src/ports/message-log.js';
import { buildIF021 } from '../src/sim/messages.js';
import { batch, mds, message, sup } from './contract/fixtures.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

/** GET /admin/queues: each queue's worker state beside its backlog, read from the store as the metrics read it. */
describe('the queues an operator sees', () => {
  const idle = (queue: WorkerStatus['queue'], over: Partial<WorkerStatus> = {}): WorkerStatus => ({ queue, state: 'idle', ackedSeq: 0, failures: 0, failingSince: null, lastError: null, retryAt: null, ...over });
  const backlog = (queue: QueueBacklog['queue'], over: Partial<QueueBacklog> = {}): QueueBacklog => ({ queue, depth: 0, oldestAgeMs: 0, ackedSeq: 0, headSeq: 0, oldestReceivedAt: null, damage: null, ...over });

  it('joins each worker to its backlog, takes the store\'s position when a pull moved it, and lists the queues no worker here delivers', () => {
    const views = queueViews(
      [idle(sup, { state: 'backoff', ackedSeq: 3, failures: 2, failingSince: 1000, lastError: 'HTTP 503', retryAt: 9000 })],
      [backlog(sup, { depth: 4, ackedSeq: 5, headSeq: 9, oldestReceivedAt: 2000, oldestAgeMs: 7000 }), backlog(mds, { depth: 2, ackedSeq: 1, headSeq: 3, oldestReceivedAt: 4000, oldestAgeMs: 5000, damage: 'damaged database: queue MDS/IF-021 position 2 refers to message 7, which is missing' })],
    );
    expect(views).toEqual([
      { queue: sup, workedHere: true, state: 'backoff', ackedSeq: 5, failures: 2, failingSince: 1000, lastError: 'HTTP 503', retryAt: 9000, depth: 4, headSeq: 9, oldestReceivedAt: 2000, oldestAgeMs: 7000, damage: null },
      { queue: mds, workedHere: false, state: 'idle', ackedSeq: 1, failures: 0, failingSince: null, lastError: null, retryAt: null, depth: 2, headSeq: 3, oldestReceivedAt: 4000, oldestAgeMs: 5000, damage: 'damaged database: queue MDS/IF-021 position 2 refers to message 7, which is missing' },
    ]);
  });

  it('a backlog the store could not give leaves the workers\' states, their backlog null', () => {
    expect(queueViews([idle(sup, { state: 'paused', lastError: 'disk full' })], null)).toEqual([{ ...idle(sup, { state: 'paused', lastError: 'disk full' }), workedHere: true, depth: null, headSeq: null, oldestReceivedAt: null, oldestAgeMs: null, damage: null }]);
  });

  it('does not read the backlog while the store is known to be down (a query would wait for its timeout): the workers\' states at once', async () => {
    const app = Fastify();
    let reads = 0;
    let state: 'ok' | 'unavailable' = 'unavailable';
    await app.register(queueRoutes, {
      health: () => (state === 'ok' ? { state } : { state, reason: 'PostgreSQL unreachable', code: 'ECONNREFUSED' }),
      notReady: () => null,
      delivery: { status: () => [idle(sup, { state: 'paused', lastError: 'PostgreSQL unreachable' })], resume: () => false },
      backlog: async () => {
        reads += 1;
        return [backlog(sup, { depth: 3, headSeq: 3 })];
      },
      queueState: async () => ({ headSeq: 3 }),
      archive: { attempts: async () => [] },
      logger: pino({ level: 'silent' }),
    });
    try {
      const down = await app.inject({ method: 'GET', url: '/admin/queues' });
      expect(down.statusCode).toBe(200);
      expect(down.json()).toEqual([{ ...idle(sup, { state: 'paused', lastError: 'PostgreSQL unreachable' }), workedHere: true, depth: null, headSeq: null, oldestReceivedAt: null, oldestAgeMs: null, damage: null }]);
      expect(reads).toBe(0);
      state = 'ok';
      expect((await app.inject({ method: 'GET', url: '/admin/queues' })).json()[0]).toMatchObject({ depth: 3, headSeq: 3 });
      expect(reads).toBe(1);
    } finally {
      await app.close();
    }
  });

  // A black-box tester's resume of 9999999999/IF-999 was told "is not halted": as if the queue were healthy.
  it('resume says why a queue was not resumed: 404 for a queue the store does not have, 409 with the state of one not halted', async () => {
    const app = Fastify();
    const resumed: string[] = [];
    const halted = { recipientDipId: '1000000003', channel: 'IF-021' };
    await app.register(queueRoutes, {
      health: () => ({ state: 'ok' }),
      notReady: () => null,
      delivery: {
        status: () => [idle(sup), idle(mds, { state: 'backoff', failures: 2 }), idle(halted, { state: 'halted' })],
        resume: (q) => {
          if (q.recipientDipId !== halted.recipientDipId) return false;
          resumed.push(q.recipientDipId);
          return true;
        },
      },
      backlog: async () => [],
      queueState: async (q) => ({ headSeq: q.recipientDipId === '9999999999' ? 0 : 4 }),
      archive: { attempts: async () => [] },
      logger: pino({ level: 'silent' }),
    });
    const resume = async (recipientDipId: string, channel: string) => {
      const res = await app.inject({ method: 'POST', url: '/admin/queues/resume', payload: { recipientDipId, channel } });
      return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
    };
    try {
      expect(await resume('9999999999', 'IF-999')).toEqual({ status: 404, body: { error: expect.stringMatching(/^no queue 9999999999\/IF-999: nothing was ever enqueued for recipient 9999999999 on channel IF-999 /) } });
      expect(await resume(sup.recipientDipId, sup.channel)).toEqual({ status: 409, body: { error: `queue ${sup.recipientDipId}/${sup.channel} is idle, not halted: only a queue halted by a permanent storage error is resumed` } });
      expect(await resume(mds.recipientDipId, mds.channel)).toEqual({ status: 409, body: { error: expect.stringMatching(/ is backing off from a failing recipient \(it retries by itself; GET \/admin\/attempts has the errors\), not halted/) } });
      // In the store, but no worker here holds it: which node to ask.
      expect(await resume('1000000004', 'IF-021')).toEqual({ status: 409, body: { error: expect.stringMatching(/^queue 1000000004\/IF-021 is not held by a delivery worker of this node .*resume it on the node whose GET \/admin\/queues shows it halted$/) } });
      expect(await resume(halted.recipientDipId, halted.channel)).toEqual({ status: 200, body: { resumed: true } });
      expect(resumed).toEqual([halted.recipientDipId]);
    } finally {
      await app.close();
    }
  });

  const backends: Array<[string, () => Promise<{ log: MessageLog; close(): Promise<void> }>]> = [
    ['SQLite', async () => openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-backlog-')), 'dip.db'), { clock: systemClock })],
    ['PostgreSQL', async () => openPostgresBackend({ url: await (database ??= await createTestDatabase('opendip_backlog')).freshSchema(), clock: systemClock })],
  ];
  let database: TestDatabase | undefined;
  afterAll(async () => {
    await database?.drop();
  });

  it.each(backends)('queueDepths (%s) reads the pending queues and those asked for, once each: depth, head, oldest received', async (_name, open) => {
    const backend = await open();
    try {
      const first = batch([message([sup.recipientDipId]), message([sup.recipientDipId, mds.recipientDipId])]);
      expect(await backend.log.append(first)).toEqual({ ok: true });
      await backend.log.settle(mds, { upTo: 1 });
      const now = Date.now() + 5000;
      const read = await queueDepths(backend.log, now, [sup, mds]);
      const byRecipient = Object.fromEntries(read.map((b) => [b.queue.recipientDipId, b]));
      expect(read).toHaveLength(2);
      const oldest = byRecipient[sup.recipientDipId]!.oldestReceivedAt;
      expect(oldest).toBeTypeOf('number');
      expect(byRecipient[sup.recipientDipId]).toMatchObject({ depth: 2, ackedSeq: 0, headSeq: 2, oldestAgeMs: now - oldest! });
      // Drained: not pending, listed because asked for.
      expect(byRecipient[mds.recipientDipId]).toEqual({ queue: mds, depth: 0, oldestAgeMs: 0, ackedSeq: 1, headSeq: 1, oldestReceivedAt: null, damage: null });
    } finally {
      await backend.close();
    }
  });

  // A probe found GET /admin/queues (and every metrics scrape and alarm pass) asking the store twice for
  // each queue holding messages: its positions, then its oldest entry (read whole, and decrypted, for
  // its receipt time). One reading per queue gives all three, from one consistent view of the queue.
  it.each(backends)('queueDepths (%s) asks the store once per queue, not once for its positions and again for its oldest message', async (_name, open) => {
    const backend = await open();
    try {
      expect(await backend.log.append(batch([message([sup.recipientDipId]), message([sup.recipientDipId, mds.recipientDipId])]))).toEqual({ ok: true });
      const calls: string[] = [];
      const counted = new Proxy(backend.log, {
        get(target, key, receiver) {
          const value = Reflect.get(target, key, receiver) as unknown;
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            calls.push(String(key));
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
      const read = await queueDepths(counted, Date.now(), [sup, mds]);
      expect(read.map((b) => [b.queue.recipientDipId, b.depth]).sort()).toEqual([[mds.recipientDipId, 1], [sup.recipientDipId, 2]]);
      expect(read.every((b) => typeof b.oldestReceivedAt === 'number')).toBe(true);
      // The list of pending queues, then one reading per queue.
      expect(calls).toEqual(['pendingQueues', 'queueBacklog', 'queueBacklog']);
    } finally {
      await backend.close();
    }
  });

  describe('over the operator API', () => {
    let t: TestDip;
    let sds: TestParticipant;
    let puller: TestParticipant;
    beforeAll(async () => {
      t = await startTestDip();
      sds = await t.participant('2000000001', ['SDS']);
      puller = await t.participant('1000000001', ['SUP']);
    });
    afterAll(async () => {
      await t?.close();
    });

    it('a recipient that pulls (no webhook) and has not: its queue is listed with its depth and its oldest message', async () => {
      const before = Date.now();
      for (const suffix of ['q1', 'q2']) expect((await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [puller.dipId], uniqueSuffix: suffix })])).status).toBe(201);
      const answer = await adminApi(t)('GET', '/admin/queues');
      expect(answer.status).toBe(200);
      const views = answer.body as Array<Record<string, unknown> & { queue: { recipientDipId: string; channel: string } }>;
      const queue = views.find((q) => q.queue.recipientDipId === puller.dipId && q.queue.channel === 'IF-021');
      expect(queue).toMatchObject({ state: 'idle', ackedSeq: 0, depth: 2, headSeq: 2, failures: 0, failingSince: null, lastError: null });
      expect(queue!.oldestReceivedAt).toBeGreaterThanOrEqual(before - 1000);
      expect(queue!.oldestAgeMs).toBeGreaterThanOrEqual(0);
    });
  });
});
