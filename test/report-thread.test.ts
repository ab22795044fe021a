import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openSqliteBackend, type SqliteBackend } from '../src/adapters/sqlite/index.js';
import { Reports } from '../src/pipeline/reports.js';
import { ReportThread } from '../src/topology/report-threads.js';
import { reportApp } from './helpers/report-app.js';
import { attemptId, batch, mds, message, sup } from './contract/fixtures.js';

/**
 * On the SQLite engine a listing report is folded and written on the report thread (src/topology/report-threads.ts),
 * by the same code as on the main thread: its answers must be the main thread's, byte for byte, refusals included.
 */

const MESSAGES = 3_000;
const FROM = '2000-01-01T00:00:00Z';
const TO = '2100-01-01T00:00:00Z';
/** A fixed clock: a process's "stuck" reason names how long ago its last message was. */
const NOW = Date.parse('2030-01-01T00:00:00Z');

let backend: SqliteBackend;
let thread: ReportThread;
let here: FastifyInstance;
let there: FastifyInstance;
let small: { here: FastifyInstance; there: FastifyInstance };

const routes = (reports: Reports): Promise<FastifyInstance> => reportApp(reports, NOW);

beforeAll(async () => {
  backend = openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-report-thread-')), 'dip.db'), { clock: systemClock });
  const at = Date.parse('2026-01-01T00:00:00Z');
  for (let i = 0; i < MESSAGES; i += 500) {
    await backend.log.append(batch(Array.from({ length: 500 }, (_, j) => message(['SUP0000001', 'MDS0000001'], { correlationId: `C-${Math.floor((i + j) / 3)}`, receivedAt: at + i + j }))));
  }
  for (let s = 1; s <= MESSAGES; s += 100) {
    await backend.archive.recordAttempt({ attemptId: attemptId(), queue: sup, firstSeq: s, lastSeq: s + 99, url: 'https://sup.example/dip', error: null, startedAt: at + s + 50, latencyMs: 5, status: 200, verdict: 'delivered' });
  }
  await backend.log.settle(sup, { upTo: MESSAGES });
  await backend.log.settle(mds, { upTo: MESSAGES / 2 });
  thread = new ReportThread(backend.file);
  const counts = { counts: backend.reportCounts };
  here = await routes(new Reports(backend.traces, { history: async () => [] }, () => NOW, 'DIP0000001', null, counts));
  there = await routes(new Reports(backend.traces, { history: async () => [] }, () => NOW, 'DIP0000001', null, { ...counts, thread }));
  const limited = { ...counts, messageLimit: 1_000 };
  small = {
    here: await routes(new Reports(backend.traces, { history: async () => [] }, () => NOW, 'DIP0000001', null, limited)),
    there: await routes(new Reports(backend.traces, { history: async () => [] }, () => NOW, 'DIP0000001', null, { ...limited, thread })),
  };
}, 120_000);

afterAll(async () => {
  for (const app of [here, there, small?.here, small?.there]) await app?.close();
  await thread?.close();
  await backend?.close();
});

const same = async (url: string, headers: Record<string, string> = {}, apps = { here, there }) => {
  const [a, b] = await Promise.all([apps.here.inject({ method: 'GET', url, headers }), apps.there.inject({ method: 'GET', url, headers })]);
  expect(b.statusCode).toBe(a.statusCode);
  expect(b.headers['content-type']).toBe(a.headers['content-type']);
  expect(b.headers['content-disposition']).toBe(a.headers['content-disposition']);
  expect(b.body).toBe(a.body);
  return a;
};

describe('a listing report folded on the report thread', () => {
  it.each([
    ['sender audit, JSON', `/r/sender-audit?from=${FROM}&to=${TO}`, {}],
    ['sender audit, CSV', `/r/sender-audit?from=${FROM}&to=${TO}&format=csv`, {}],
    ["sender audit, a participant's", `/r/sender-audit?from=${FROM}&to=${TO}`, { 'x-viewer': 'SDS0000001' }],
    ['processes, JSON', `/r/processes?from=${FROM}&to=${TO}&stuckAfterMinutes=5`, {}],
    ['processes, CSV', `/r/processes?from=${FROM}&to=${TO}&format=csv`, {}],
    ["a correlation ID's trace, a recipient's view", `/r/trace?correlationId=C-7&to=${TO}`, { 'x-viewer': 'MDS0000001' }],
    ["a transaction's trace, CSV, found nowhere", `/r/trace?transactionId=T-none&to=${TO}&format=csv`, {}],
  ])('%s answers the bytes the main thread answers', async (_what, url, headers) => {
    const res = await same(url, headers);
    expect(res.statusCode).toBe(200);
  }, 60_000);

  it('refuses a period over the limit in the words the main thread uses', async () => {
    const res = await same(`/r/sender-audit?from=${FROM}&to=${TO}`, {}, small);
    expect(res.statusCode).toBe(400);
    expect(res.body).toContain('holds more than 1,000 messages');
  });

  it('starts another thread after its thread died, and answers as before', async () => {
    await same(`/r/sender-audit?from=${FROM}&to=${TO}&format=csv`);
    const worker = (thread as unknown as { worker: Worker | null }).worker;
    expect(worker).not.toBeNull();
    await worker!.terminate();
    await same(`/r/processes?from=${FROM}&to=${TO}&format=csv`);
    expect((thread as unknown as { worker: Worker | null }).worker).not.toBe(worker);
  }, 60_000);
});
