import { describe, expect, it } from 'vitest';
import { Retention } from '../../src/pipeline/retention.js';
import { FakeClock } from '../helpers/clocks.js';
import { batch, message, sup, useBackend, type BackendFactory } from './fixtures.js';

const DAY = 86_400_000;

export function requeueJobsContract(name: string, open: BackendFactory): void {
  describe(`RequeueJobs contract: ${name}`, () => {
    const ctx = useBackend(open);

    it('keeps a job, records its progress with the copies it made, and finishes it', async () => {
      const { log, archive, requeueJobs } = ctx.backend;
      await log.append(batch([message(['SUP0000001'])]));
      const [original] = await archive.findArchived({ ...sup, limit: 1 });
      const job = { id: 'job-1', queue: sup, filter: { fromMs: 0, toMs: 1, eventCode: null, mpan: null, transactionIds: null }, upToSeq: 1, cursor: 0, requeued: 0, state: 'running' as const, error: null, createdAt: 1, updatedAt: 1 };
      await requeueJobs.createJob(job);
      await log.appendReplayCopies([{ originalId: original!.id, transactionId: 'R-1', receivedAt: Date.now(), outbound: '{}', recipientDipId: 'SUP0000001', capacity: null }], sup, { jobId: 'job-1', from: 0, cursor: 1, added: 1, at: 5 });
      // A page from where the job no longer stands (another node requeued it first) is refused with its copies.
      await expect(log.appendReplayCopies([{ originalId: original!.id, transactionId: 'R-0', receivedAt: Date.now(), outbound: '{}', recipientDipId: 'SUP0000001', capacity: null }], sup, { jobId: 'job-1', from: 0, cursor: 1, added: 1, at: 6 })).rejects.toMatchObject({ code: 'JOB_MOVED' });
      expect((await log.queueState(sup)).headSeq).toBe(2);
      expect(await requeueJobs.job('job-1')).toEqual({ ...job, cursor: 1, requeued: 1, updatedAt: 5 });
      expect((await requeueJobs.openJobs()).map((j) => j.id)).toEqual(['job-1']);
      await requeueJobs.finishJob('job-1', 'done', null, 6);
      expect(await requeueJobs.openJobs()).toEqual([]);
      expect((await requeueJobs.job('job-1'))?.state).toBe('done');
      // Progress for a job that is not running is refused with its copies: nothing half-recorded.
      await expect(log.appendReplayCopies([{ originalId: original!.id, transactionId: 'R-2', receivedAt: Date.now(), outbound: '{}', recipientDipId: 'SUP0000001', capacity: null }], sup, { jobId: 'job-1', from: 1, cursor: 1, added: 1, at: 7 })).rejects.toThrow();
      expect((await log.queueState(sup)).headSeq).toBe(2);
    });

    it('resumes a failed job once, keeping its position and count; lists a recipient\'s jobs newest first, by state', async () => {
      const { requeueJobs } = ctx.backend;
      const filter = { fromMs: 0, toMs: 1, eventCode: null, mpan: null, transactionIds: null };
      const job = (id: string, recipientDipId: string, createdAt: number) => ({ id, queue: { ...sup, recipientDipId }, filter, upToSeq: 9, cursor: 4, requeued: 4, state: 'running' as const, error: null, createdAt, updatedAt: createdAt });
      await requeueJobs.createJob(job('a', sup.recipientDipId, 1));
      await requeueJobs.createJob(job('b', sup.recipientDipId, 2));
      await requeueJobs.createJob(job('c', 'SUP0000002', 3));
      // Only a failed job is resumed: a running one is not (nor one unknown).
      expect(await requeueJobs.resumeJob('a', 5)).toBe(false);
      expect(await requeueJobs.resumeJob('nope', 5)).toBe(false);
      await requeueJobs.finishJob('a', 'failed', 'damaged row', 6);
      expect((await requeueJobs.jobs({ state: 'failed', limit: 10 })).map((j) => j.id)).toEqual(['a']);
      expect(await requeueJobs.resumeJob('a', 7)).toBe(true);
      // Twice: started once.
      expect(await requeueJobs.resumeJob('a', 8)).toBe(false);
      expect(await requeueJobs.job('a')).toEqual({ ...job('a', sup.recipientDipId, 1), updatedAt: 7 });
      expect((await requeueJobs.openJobs()).map((j) => j.id)).toEqual(['a', 'b', 'c']);
      expect((await requeueJobs.jobs({ recipientDipId: sup.recipientDipId, limit: 10 })).map((j) => j.id)).toEqual(['b', 'a']);
      expect((await requeueJobs.jobs({ recipientDipId: 'SUP0000002', limit: 10 })).map((j) => j.id)).toEqual(['c']);
      expect((await requeueJobs.jobs({ limit: 2 })).map((j) => j.id)).toEqual(['c', 'b']);
      expect(await requeueJobs.jobs({ state: 'failed', limit: 10 })).toEqual([]);
    });

    it('is purged by the retention sweep once finished longer ago than the retention; a running job stays however old', async () => {
      const { archive, requeueJobs } = ctx.backend;
      const clock = new FakeClock();
      // Batches of two: the three old finished jobs take the sweep two batches.
      const retention = new Retention(archive, { archiveRetentionMs: () => 14 * DAY, attemptsRetentionMs: 14 * DAY, intervalMs: DAY, batchSize: 2 }, clock, { info() {}, warn() {}, error() {} }, requeueJobs);
      const filter = { fromMs: 0, toMs: 1, eventCode: null, mpan: null, transactionIds: null };
      const start = async (id: string) => requeueJobs.createJob({ id, queue: sup, filter, upToSeq: 9, cursor: 0, requeued: 0, state: 'running', error: null, createdAt: clock.now(), updatedAt: clock.now() });
      for (const id of ['old-done', 'old-failed', 'old-done-2', 'old-running', 'finished-lately']) await start(id);
      await clock.advance(3_600_000);
      await requeueJobs.finishJob('old-done', 'done', null, clock.now());
      await requeueJobs.finishJob('old-done-2', 'done', null, clock.now());
      await requeueJobs.finishJob('old-failed', 'failed', 'damaged row', clock.now());
      // Made as old as the others, but finished ten days later: its retention runs from then.
      await clock.advance(10 * DAY);
      await requeueJobs.finishJob('finished-lately', 'done', null, clock.now());
      await start('new-done');
      await requeueJobs.finishJob('new-done', 'done', null, clock.now());
      await clock.advance(5 * DAY);
      await retention.runOnce();
      const left = async () => (await requeueJobs.jobs({ limit: 10 })).map((j) => j.id).sort();
      expect(await left()).toEqual(['finished-lately', 'new-done', 'old-running']);
      expect(await requeueJobs.job('old-failed')).toBeUndefined();
      // Both filters at once (each listing is its own statement).
      expect((await requeueJobs.jobs({ recipientDipId: sup.recipientDipId, state: 'running', limit: 10 })).map((j) => j.id)).toEqual(['old-running']);
      expect(await requeueJobs.jobs({ recipientDipId: 'SUP0000002', state: 'running', limit: 10 })).toEqual([]);
      // Past their own retention the others go too; the running job stays, and is still resumed at a start.
      await clock.advance(30 * DAY);
      await retention.runOnce();
      expect(await left()).toEqual(['old-running']);
      expect((await requeueJobs.openJobs()).map((j) => j.id)).toEqual(['old-running']);
    });
  });
}
