import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { VIEWS_AT_ONCE } from '../src/api/admin-requeue-jobs.js';
import { StoreError } from '../src/ports/errors.js';
import type { MessageLog } from '../src/ports/message-log.js';
import { Replay } from '../src/pipeline/replay.js';
import { STORE_RETRY_AFTER_SECONDS } from '../src/pipeline/ingest.js';
import { buildIF021 } from '../src/sim/messages.js';
import { FakeClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { oracle } from './helpers/published-oracle.js';
import { HAVE_REFERENCE } from './helpers/reference.js';
import { adminApi } from './helpers/admin.js';

type Json = Record<string, any>;

/**
 * Replay and requeue at scale: a replay pages through any number of messages (206 + X-Continuation-Token,
 * the 2.1.0 request body unchanged), and a requeue of more than a page becomes a job with progress that
 * feeds the recipient behind its live traffic.
 */
/** The published MessageRequest: eventCode, MPAN and version are required (null: not filtered on). */
const FILTER = { datetimeFrom: '2000-01-01T00:00:00+00:00', datetimeTo: '2100-01-01T00:00:00+00:00', eventCode: null, MPAN: null, version: null };
const TOTAL = 2_300;

describe('replay and requeue at scale', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  const originals: string[] = [];

  beforeAll(async () => {
    t = await startTestDip({ maxBatchMessages: 1000 });
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']); // no webhook: its messages wait in its queue
    for (let b = 0; b < TOTAL / 500; b++) {
      const count = Math.min(500, TOTAL - b * 500);
      const items = Array.from({ length: count }, (_, i) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `s${b}x${i}` }));
      const answer = await sds.client.submit('IF-021', items);
      expect(answer.status, JSON.stringify(answer.body.messageArray.find((e) => e.help))).toBe(201);
      originals.push(...answer.body.messageArray.map((e) => e.transactionID!));
    }
  }, 120_000);
  afterAll(async () => t?.close());

  /** The DIP's message log, except that a requeue job's second page is refused once with `err`. */
  const secondPageRefused = (err: StoreError) => {
    const backend = t.dip.backend;
    let refused = 0;
    const log: Pick<MessageLog, 'appendReplayCopies' | 'queueState'> = {
      queueState: (q) => backend.log.queueState(q),
      appendReplayCopies: async (copies, enqueueFor, progress) => {
        if (progress && progress.from > 0 && refused++ === 0) throw err;
        return backend.log.appendReplayCopies(copies, enqueueFor, progress);
      },
    };
    return { log, refusals: () => refused };
  };

  it('pages a replay with 206 and X-Continuation-Token until the last page (200); every message once, in order', async () => {
    const seen: string[] = [];
    let token: string | undefined;
    const statuses: number[] = [];
    for (let page = 0; page < 10; page++) {
      const answer = await sup.client.call<Json[]>('POST', `/dip-channel/IF-021/replay/${sup.dipId}`, JSON.stringify(FILTER), token ? { 'x-continuation-token': token } : {});
      statuses.push(answer.status);
      for (const m of answer.body) {
        expect(m.payload.CommonBlock.D0.replayIndicator).toBe(true);
        expect(m.payload.CommonBlock.D0.transactionID).toMatch(/^R-/);
        seen.push(m.originalTransactionID);
      }
      token = answer.headers['x-continuation-token'];
      // The published ContinuationToken: type string, format uuid.
      if (token !== undefined) expect(token).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      if (answer.status === 200) break;
    }
    expect(statuses).toEqual([206, 206, 200]);
    expect(token).toBeUndefined();
    expect(seen).toEqual(originals);
  });

  it('refuses a continuation token made for another request body', async () => {
    const first = await sup.client.call<Json[]>('POST', `/dip-channel/IF-021/replay/${sup.dipId}`, JSON.stringify(FILTER));
    const token = first.headers['x-continuation-token']!;
    const other = { ...FILTER, datetimeFrom: '2001-01-01T00:00:00+00:00' };
    const answer = await sup.client.call('POST', `/dip-channel/IF-021/replay/${sup.dipId}`, JSON.stringify(other), { 'x-continuation-token': token });
    expect(answer.status).toBe(400);
    expect(answer.body.messageArray[0]!.help).toMatch(/x-continuation-token is not one this DIP issued for this request body/);
  });

  it('refuses a continuation token that is not a UUID, naming the header (400 MSG1001)', async () => {
    for (const given of ['1003.ClRjXKoamvuNuPm8', 'nope']) {
      const answer = await sup.client.call('POST', `/dip-channel/IF-021/replay/${sup.dipId}`, JSON.stringify(FILTER), { 'x-continuation-token': given });
      expect(answer.status, given).toBe(400);
      expect(answer.body.messageArray[0]!.message).toBe('MSG1001 - Schema Failure');
      expect(answer.body.messageArray[0]!.help).toMatch(/x-continuation-token must be a UUID \(the published ContinuationToken: string, format uuid\)/);
    }
  });

  it("refuses another recipient's continuation token, even for the same request body", async () => {
    const first = await sup.client.call<Json[]>('POST', `/dip-channel/IF-021/replay/${sup.dipId}`, JSON.stringify(FILTER));
    const token = first.headers['x-continuation-token']!;
    const other = await t.participant('1000000002', ['SUP']);
    const answer = await other.client.call('POST', `/dip-channel/IF-021/replay/${other.dipId}`, JSON.stringify(FILTER), { 'x-continuation-token': token });
    expect(answer.status).toBe(400);
    expect(answer.body.messageArray[0]!.help).toMatch(/x-continuation-token is not one this DIP issued for this request body/);
  });

  it('requeues more than a page as a job: 202, a status to follow, copies appended behind the queue in pages', async () => {
    const queue = { recipientDipId: sup.dipId, channel: 'IF-021' };
    // The recipient takes its live messages first (pull + ack), as a recovering recipient would.
    const { headSeq } = await t.dip.backend.log.queueState(queue);
    for (let taken = 0; taken < headSeq; ) {
      const pulled = await sup.client.pull('IF-021', sup.dipId, 10_000);
      taken = pulled.lastSeq!;
      expect((await sup.client.ack('IF-021', sup.dipId, taken)).status).toBe(200);
    }
    const answer = await sup.client.requeue('IF-021', sup.dipId, FILTER);
    expect(answer.status).toBe(202);
    const location = answer.headers.location!;
    expect(location).toMatch(new RegExp(`^/dip-channel/IF-021/requeue/${sup.dipId}/[0-9a-f-]{36}$`));
    // Paced behind the recipient: with nothing acknowledged, at most a page waits beyond the live backlog.
    await waitFor(async () => (await t.dip.backend.log.queueState(queue)).headSeq > headSeq, 10_000, 'the first page');
    // The answer is the published RequeueStatus (checked against the reference YAML itself), OpenDIP's details beside.
    const requeueStatus = HAVE_REFERENCE ? oracle('RequeueStatus') : null;
    const conforms = (body: Json) => {
      if (requeueStatus) expect(requeueStatus(body), JSON.stringify(requeueStatus.errors)).toBe(true);
      expect(Object.keys(body)).toEqual(expect.arrayContaining(['percentComplete', 'totalTransactions', 'processedTransactions', 'status']));
    };
    let status = (await sup.client.call<Json>('GET', location, '')).body;
    conforms(status);
    expect(status).toMatchObject({ status: 'Processing', state: 'running', totalTransactions: TOTAL });
    expect(status.processedTransactions).toBe(status.requeued);
    expect(status.percentComplete).toBe(Math.floor((status.requeued * 100) / TOTAL));
    expect(status.percentComplete).toBeLessThan(100);
    expect((await t.dip.backend.log.queueState(queue)).headSeq - headSeq).toBeLessThanOrEqual(2000);
    // The recipient pulls and acknowledges as it goes; the job follows.
    await waitFor(
      async () => {
        const pulled = await sup.client.pull('IF-021', sup.dipId, 1000);
        if (pulled.lastSeq !== null) await sup.client.ack('IF-021', sup.dipId, pulled.lastSeq);
        status = (await sup.client.call<Json>('GET', location, '')).body;
        return status.state === 'done';
      },
      60_000,
      'the requeue job to finish',
    );
    conforms(status);
    expect(status).toMatchObject({ status: 'Completed', percentComplete: 100, totalTransactions: TOTAL, processedTransactions: TOTAL, state: 'done', requeued: TOTAL, error: null });
    const after = await t.dip.backend.log.queueState(queue);
    expect(after.headSeq).toBe(headSeq + TOTAL);
    // Another recipient cannot see the job.
    const ldso = await t.participant('3000000001', ['LDSO']);
    const foreign = await ldso.client.call('GET', location.replace(sup.dipId, ldso.dipId), '');
    expect(foreign.status).toBe(404);
  }, 120_000);

  it('a requeue job whose page the store refuses for a moment (unavailable) waits and carries on: every original once, the job done', async () => {
    // Before, the job was marked Failed at the first refusal (a disk full for a second, a lost connection):
    // the recipient's only way on was a new requeue, which copies the pages already done again.
    const queue = { recipientDipId: sup.dipId, channel: 'IF-021' };
    const backend = t.dip.backend;
    const clock = new FakeClock();
    // The second page is refused once, as SQLite refuses a write when the disk is full.
    const { log, refusals } = secondPageRefused(new StoreError('unavailable', 'database or disk is full', 'SQLITE_FULL'));
    const replay = new Replay(log, backend.archive, { copyFor: async () => '' }, clock, backend.requeueJobs);
    // The recipient has taken everything so far: the job is not held back by its backlog.
    const before = await backend.log.queueState(queue);
    await backend.log.settle(queue, { upTo: before.headSeq });
    const outcome = await replay.requeue(queue, { fromMs: 0, toMs: Number.MAX_SAFE_INTEGER, eventCode: null, mpan: null, transactionIds: null });
    if (!('job' in outcome)) throw new Error('expected a job');
    const job = async () => (await backend.requeueJobs.job(outcome.job.id))!;
    // Runs the job's timers until `done` holds, the recipient taking what was requeued as it goes.
    const drive = (ms: number, done: () => Promise<boolean>, what: string) =>
      waitFor(
        async () => {
          await backend.log.settle(queue, { upTo: (await backend.log.queueState(queue)).headSeq });
          await clock.advance(ms);
          return done();
        },
        30_000,
        what,
      );
    await drive(0, async () => refusals() > 0 || (await job()).state !== 'running', 'the refused page');
    // Refused: still running (Processing) with the first page done, waiting for the store; not Failed.
    expect(await job()).toMatchObject({ state: 'running', requeued: 1000, error: null });
    expect(clock.pending()).toEqual([STORE_RETRY_AFTER_SECONDS * 1000]);
    await drive(1000, async () => (await job()).state !== 'running', 'the job to end');
    expect(await job()).toMatchObject({ state: 'done', requeued: TOTAL, error: null });
    // Each original once, in order, behind what the queue held.
    const entries = await backend.log.readQueue(queue, before.headSeq, 10_000, 1 << 30);
    const copied = entries.map((e) => (JSON.parse(e.outbound) as Json)['originalTransactionID'] as string);
    expect(copied).toEqual(originals);
    replay.stop();
  });

  it('a requeue job whose page holds a row sealed under a data key not loaded yet waits for the key ring, and skips nothing sound', async () => {
    // Before, the row was skipped at once and the job went on past it: a sound message never requeued,
    // though the key ring's reload (which that very read starts) would have opened it a moment later.
    const queue = { recipientDipId: sup.dipId, channel: 'IF-021' };
    const backend = t.dip.backend;
    const clock = new FakeClock();
    let misses = 0;
    const archive: Pick<typeof backend.archive, 'findArchived' | 'countArchived'> = {
      countArchived: (q) => backend.archive.countArchived(q),
      findArchived: async (q) => {
        const found = await backend.archive.findArchived(q);
        // The second page's first row, three times: as a node reads it before its key ring is read again.
        if ((q.afterSeq ?? 0) > 0 && misses < 3) {
          misses += 1;
          return found.map((m, i) => (i === 0 ? { ...m, outbound: '', unreadable: 'sealed with data key 7, which this DIP does not hold (yet)', keyNotLoaded: true as const } : m));
        }
        return found;
      },
    };
    const replay = new Replay(backend.log, archive, { copyFor: async () => '' }, clock, backend.requeueJobs);
    const before = await backend.log.queueState(queue);
    await backend.log.settle(queue, { upTo: before.headSeq });
    const outcome = await replay.requeue(queue, { fromMs: 0, toMs: Number.MAX_SAFE_INTEGER, eventCode: null, mpan: null, transactionIds: null });
    if (!('job' in outcome)) throw new Error('expected a job');
    const job = async () => (await backend.requeueJobs.job(outcome.job.id))!;
    await waitFor(
      async () => {
        await backend.log.settle(queue, { upTo: (await backend.log.queueState(queue)).headSeq });
        await clock.advance(1000);
        return (await job()).state !== 'running';
      },
      30_000,
      'the job to end',
    );
    expect(misses).toBe(3);
    expect(await job()).toMatchObject({ state: 'done', requeued: TOTAL, error: null });
    const entries = await backend.log.readQueue(queue, before.headSeq, 10_000, 1 << 30);
    expect(entries.map((e) => (JSON.parse(e.outbound) as Json)['originalTransactionID'] as string)).toEqual(originals);
    replay.stop();
  });

  it('an operator resumes a requeue job that failed on a permanent error: it goes on after its last page, every original once, in order; journalled', async () => {
    // Before, a failed job stayed Failed: the only way on was a new requeue, copying the first page again.
    const queue = { recipientDipId: sup.dipId, channel: 'IF-021' };
    const backend = t.dip.backend;
    const admin = adminApi(t);
    // The second page meets a damaged row: trying again fails the same way until it is repaired.
    const { log } = secondPageRefused(new StoreError('permanent', 'database disk image is malformed', 'SQLITE_CORRUPT'));
    const clock = new FakeClock();
    // Another node's Replay, whose store failed it: the operator resumes it on this DIP's.
    const failing = new Replay(log, backend.archive, { copyFor: async () => '' }, clock, backend.requeueJobs);
    const settleAll = async () => backend.log.settle(queue, { upTo: (await backend.log.queueState(queue)).headSeq });
    await settleAll();
    const before = await backend.log.queueState(queue);
    const outcome = await failing.requeue(queue, { fromMs: 0, toMs: Number.MAX_SAFE_INTEGER, eventCode: null, mpan: null, transactionIds: null });
    if (!('job' in outcome)) throw new Error('expected a job');
    const id = outcome.job.id;
    const job = async () => (await backend.requeueJobs.job(id))!;
    await waitFor(
      async () => {
        await settleAll();
        await clock.advance(0);
        return (await job()).state !== 'running';
      },
      30_000,
      'the job to fail',
    );
    failing.stop();
    expect(await job()).toMatchObject({ state: 'failed', requeued: 1000, error: 'database disk image is malformed' });
    const stoppedAt = (await job()).cursor;
    expect(stoppedAt).toBeGreaterThan(0);
    const failed = await admin('GET', '/admin/requeue-jobs?state=failed');
    expect(failed.status).toBe(200);
    expect(failed.body).toContainEqual(expect.objectContaining({ id, state: 'failed', requeued: 1000, totalTransactions: TOTAL, error: 'database disk image is malformed' }));

    const resumed = await admin('POST', `/admin/requeue-jobs/${id}/resume`);
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect(resumed.body).toMatchObject({ id, state: 'running', requeued: 1000, error: null, queue });
    // Resumed once: a second call (a double click, a second operator) starts nothing more.
    const again = await admin('POST', `/admin/requeue-jobs/${id}/resume`);
    expect(again.status).toBe(409);
    expect(again.body.error).toMatch(/only a failed job is resumed/);
    await waitFor(
      async () => {
        await settleAll();
        return (await job()).state === 'done';
      },
      60_000,
      'the resumed job to finish',
    );
    expect(await job()).toMatchObject({ state: 'done', requeued: TOTAL, error: null });
    // Each original once, in order, behind what the queue held: the first page was not requeued again.
    const entries = await backend.log.readQueue(queue, before.headSeq, 10_000, 1 << 30);
    expect(entries.map((e) => (JSON.parse(e.outbound) as Json)['originalTransactionID'] as string)).toEqual(originals);
    expect((await admin('POST', `/admin/requeue-jobs/${id}/resume`)).status).toBe(409);
    expect((await admin('POST', '/admin/requeue-jobs/no-such-job/resume')).status).toBe(404);
    // The audit trail: who resumed which job, past which error.
    const journal = await admin('GET', '/admin/journal?action=requeue-job.resume');
    expect(journal.body).toEqual([
      expect.objectContaining({ actor: 'bootstrap', target: id, before: { state: 'failed', error: 'database disk image is malformed', requeued: 1000, scannedUpTo: stoppedAt }, after: { state: 'running', queue }, status: 200 }),
    ]);
  }, 120_000);
  it('lists many requeue jobs counting a few at a time, not a query per job all at once', async () => {
    const at = Date.now();
    const queue = { recipientDipId: sup.dipId, channel: 'IF-021' };
    for (let i = 0; i < 3 * VIEWS_AT_ONCE; i++) {
      const id = `0193f0c4-2222-7000-8000-${String(i).padStart(12, '0')}`;
      await t.dip.backend.requeueJobs.createJob({ id, queue, filter: { fromMs: 0, toMs: 1, eventCode: null, mpan: null, transactionIds: null }, upToSeq: 0, cursor: 0, requeued: 0, state: 'running', error: null, createdAt: at, updatedAt: at });
      await t.dip.backend.requeueJobs.finishJob(id, 'done', null, at);
    }
    let inFlight = 0;
    let most = 0;
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the Replay it belongs to
    const progress = Replay.prototype.progress;
    const spy = vi.spyOn(Replay.prototype, 'progress').mockImplementation(async function (this: Replay, job) {
      most = Math.max(most, ++inFlight);
      try {
        await new Promise((r) => setImmediate(r)); // the archive's count: every view started so far overlaps here
        return await progress.call(this, job);
      } finally {
        inFlight -= 1;
      }
    });
    try {
      const listed = await adminApi(t)('GET', `/admin/requeue-jobs?recipient=${sup.dipId}&limit=1000`);
      expect(listed.status).toBe(200);
      expect((listed.body as unknown[]).length).toBeGreaterThanOrEqual(3 * VIEWS_AT_ONCE);
      expect(most).toBe(VIEWS_AT_ONCE);
    } finally {
      spy.mockRestore();
    }
  });
});
