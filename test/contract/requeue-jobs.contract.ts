import { describe, expect, it } from 'vitest';
import { batch, message, sup, useBackend, type BackendFactory } from './fixtures.js';

export function requeueJobsContract(name: string, open: BackendFactory): void {
  describe(`RequeueJobs contract: ${name}`, () => {
    const ctx = useBackend(open);

    it('keeps a job, records its progress with the copies it made, and finishes it', async () => {
      const { log, archive, requeueJobs } = ctx.backend;
      await log.append(batch([message(['SUP0000001'])]));
      const [original] = await archive.findArchived({ ...sup, limit: 1 });
      const job = { id: 'job-1', queue: sup, filter: { fromMs: 0, toMs: 1, eventCode: null, mpan: null, transactionIds: null }, upToSeq: 1, cursor: 0, requeued: 0, state: 'running' as const, error: null, createdAt: 1, updatedAt: 1 };
      await requeueJobs.createJob(job);
      await log.appendReplayCopies([{ originalId: original!.id, transactionId: 'R-1', receivedAt: Date.now(), outbound: '{}' }], sup, { jobId: 'job-1', from: 0, cursor: 1, added: 1, at: 5 });
      // A page from where the job no longer stands (another node requeued it first) is refused with its copies.
      await expect(log.appendReplayCopies([{ originalId: original!.id, transactionId: 'R-0', receivedAt: Date.now(), outbound: '{}' }], sup, { jobId: 'job-1', from: 0, cursor: 1, added: 1, at: 6 })).rejects.toMatchObject({ code: 'JOB_MOVED' });
      expect((await log.queueState(sup)).headSeq).toBe(2);
      expect(await requeueJobs.job('job-1')).toEqual({ ...job, cursor: 1, requeued: 1, updatedAt: 5 });
      expect((await requeueJobs.openJobs()).map((j) => j.id)).toEqual(['job-1']);
      await requeueJobs.finishJob('job-1', 'done', null, 6);
      expect(await requeueJobs.openJobs()).toEqual([]);
      expect((await requeueJobs.job('job-1'))?.state).toBe('done');
      // Progress for a job that is not running is refused with its copies: nothing half-recorded.
      await expect(log.appendReplayCopies([{ originalId: original!.id, transactionId: 'R-2', receivedAt: Date.now(), outbound: '{}' }], sup, { jobId: 'job-1', from: 1, cursor: 1, added: 1, at: 7 })).rejects.toThrow();
      expect((await log.queueState(sup)).headSeq).toBe(2);
    });
  });
}
