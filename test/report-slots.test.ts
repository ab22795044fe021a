import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answers } from '../src/api/admin-schemas.js';
import { registerReportRoutes } from '../src/api/report-routes.js';
import { Reports } from '../src/pipeline/reports.js';
import type { MessageTraces, TracedMessage } from '../src/ports/traces.js';
import { waitFor } from './helpers/dip-harness.js';
import { namesAsGiven } from './helpers/report-app.js';

/**
 * A listing's answer (up to 200,000 rows) is written in slices after its report is computed: the report
 * keeps its slot (REPORTS_AT_ONCE) until the answer's stream has ended or closed. Before, the slot went
 * back as soon as the rows were folded, so any number of answers were written at once, each taking a slice
 * of every loop turn.
 */
const at = Date.parse('2026-12-04T00:00:00Z');
const message = (i: number): TracedMessage => ({
  transactionId: `T-${i}-${'x'.repeat(200)}`, channel: 'IF-021', eventCode: '', sender: '2000000001', senderRole: 'SDS', senderUniqueReference: null, correlationId: 'C-1', receivedAt: at + i, replayOf: null,
  deliveries: [{ recipient: '1000000001', seq: i, state: 'delivered', deliveredAt: at + i + 5, firstAttemptAt: at + i, attempts: [], deadLetter: null }],
});
// About 2 MB of answer: far more than the stream's buffers take while the client reads nothing.
const all = Array.from({ length: 5_000 }, (_, i) => message(i));
const traces: MessageTraces = { trace: async (q) => all.slice(0, q.limit) };
const URL = '/r/sender-audit?from=2026-12-04T00:00:00Z&to=2026-12-05T00:00:00Z';

describe('a listing keeps its report slot while its answer streams', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    // One at a time, none waiting: the next is refused (429) while the slot is held.
    const reports = new Reports(traces, { history: async () => [] }, () => at + 86_400_000, '0000000000', null, { maxRunning: 1, maxWaiting: 0 });
    app = Fastify();
    await app.register(async (a) => registerReportRoutes(a, reports, { prefix: '/r', answers, viewer: () => ({ kind: 'operator' }), fail: (reply, _req, status, error) => reply.code(status).send({ error }), now: () => at + 86_400_000, names: namesAsGiven }));
    await app.ready();
  });
  afterAll(async () => app?.close());
  /** A report answered 200, once the slot is free (a stream read to its end closes a moment after its last byte). */
  const answered = async (url: string, payloadAsStream = false) => {
    let res: Awaited<ReturnType<FastifyInstance['inject']>> | undefined;
    await waitFor(async () => (res = await app.inject({ method: 'GET', url, payloadAsStream })).statusCode === 200, 5_000, `${url} answered`, 1);
    return res!;
  };

  it.each([['JSON', ''], ['CSV', '&format=csv']])('%s: the next report is refused while an answer is unread, and taken once it has been read', async (_what, format) => {
    const unread = await answered(URL + format, true);
    // Failed before: 200 (the slot was free again while the first answer was still being written).
    const next = await app.inject({ method: 'GET', url: URL + format });
    expect(next.statusCode).toBe(429);
    let bytes = 0;
    for await (const chunk of unread.stream()) bytes += (chunk as Buffer).length;
    expect(bytes).toBeGreaterThan(1_000_000);
    expect((await answered(URL + format)).body.length).toBeGreaterThan(1_000_000);
  });

  it('a client gone mid-answer gives the slot back', async () => {
    const left = await answered(URL, true);
    expect((await app.inject({ method: 'GET', url: URL })).statusCode).toBe(429);
    left.stream().destroy();
    left.raw.res.destroy();
    await answered(URL);
  });
});

describe('a listing read slowly', () => {
  it('gives its slot back after the answer hold, however slowly its client reads', async () => {
    // A client reading a few bytes an interval passes the answer deadline: four such held every report slot
    // of the DIP for as long as they liked (review finding). The slot waits ANSWER_HOLD_MS, on the DIP's clock.
    const timers: Array<() => void> = [];
    const reports = new Reports(traces, { history: async () => [] }, () => at + 86_400_000, '0000000000', null, {
      maxRunning: 1,
      maxWaiting: 0,
      answerHoldMs: 30_000,
      after: (_ms, fn) => {
        timers.push(fn);
        return () => {};
      },
    });
    const app = Fastify();
    await app.register(async (a) => registerReportRoutes(a, reports, { prefix: '/r', answers, viewer: () => ({ kind: 'operator' }), fail: (reply, _req, status, error) => reply.code(status).send({ error }), now: () => at + 86_400_000, names: namesAsGiven }));
    await app.ready();
    try {
      const slow = await app.inject({ method: 'GET', url: URL, payloadAsStream: true });
      expect(slow.statusCode).toBe(200);
      expect((await app.inject({ method: 'GET', url: URL })).statusCode).toBe(429);
      // The hold runs out while the answer is still unread: the next report is taken.
      expect(timers).toHaveLength(1);
      timers[0]!();
      expect((await app.inject({ method: 'GET', url: URL })).statusCode).toBe(200);
      slow.stream().destroy();
      slow.raw.res.destroy();
    } finally {
      await app.close();
    }
  });
});

describe('a listing that fails after its answer began', () => {
  it('is logged at error level with the report and the request ID, and gives its slot back', async () => {
    // A row JSON cannot write (a BigInt), after the first pieces went: the 200 is out, the body ends short.
    const broken = all.map((m, i) => (i === 4_000 ? { ...m, senderUniqueReference: 1n as unknown as string } : m));
    const reports = new Reports({ trace: async (q) => broken.slice(0, q.limit) }, { history: async () => [] }, () => at + 86_400_000, '0000000000', null, { maxRunning: 1, maxWaiting: 0 });
    const logged: Array<{ fields: Record<string, unknown>; msg: string | undefined }> = [];
    const logger = { error: (fields: object, msg?: string) => logged.push({ fields: fields as Record<string, unknown>, msg }) };
    const app = Fastify();
    await app.register(async (a) => registerReportRoutes(a, reports, { prefix: '/r', answers, viewer: () => ({ kind: 'operator' }), fail: (reply, _req, status, error) => reply.code(status).send({ error }), now: () => at + 86_400_000, names: namesAsGiven, logger }));
    try {
      const res = await app.inject({ method: 'GET', url: URL, payloadAsStream: true });
      expect(res.statusCode).toBe(200);
      await new Promise<void>((resolve) => {
        const body = res.stream();
        body.on('data', () => {});
        body.once('close', () => resolve());
        body.once('error', () => resolve());
      });
      await waitFor(() => logged.length > 0, 5_000, 'the error logged', 1);
      expect(logged[0]!.msg).toContain('sender-audit report failed after its answer began');
      expect(logged[0]!.fields).toMatchObject({ report: 'sender-audit', reqId: expect.any(String), err: expect.any(TypeError) });
      // Its slot is free again.
      await waitFor(async () => (await app.inject({ method: 'GET', url: '/r/throughput?from=2026-12-04T00:00:00Z&to=2026-12-05T00:00:00Z' })).statusCode === 200, 5_000, 'the slot given back', 1);
    } finally {
      await app.close();
    }
  });
});
