import type { FastifyPluginAsync } from 'fastify';
import type { Replay } from '../pipeline/replay.js';
import type { Logger } from '../ports/logger.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { RequeueJob, RequeueJobs } from '../ports/requeue-jobs.js';
import { operatorOf } from './admin-operators.js';
import { answers, epochMs, queueRef } from './admin-schemas.js';

export interface RequeueJobRouteOptions {
  replay: Pick<Replay, 'resume' | 'progress'>;
  jobs: Pick<RequeueJobs, 'job' | 'jobs'>;
  journal: OperatorJournal;
  logger: Logger;
  now(): number;
}

const jobView = {
  type: 'object',
  required: ['id', 'queue', 'state', 'requeued', 'totalTransactions', 'scannedUpTo', 'of', 'error', 'createdAt', 'updatedAt'],
  properties: {
    id: { type: 'string' },
    queue: queueRef,
    state: { type: 'string', enum: ['running', 'done', 'failed'] },
    requeued: { type: 'integer', description: 'Messages requeued so far' },
    totalTransactions: { type: 'integer', description: 'Those requeued and those matching the filter not yet reached (the published RequeueStatus)' },
    scannedUpTo: { type: 'integer', description: 'The queue position the job has worked through: a resume goes on after it' },
    of: { type: 'integer', description: 'The queue position the job ends at' },
    error: { type: ['string', 'null'], description: 'Why a failed job stopped' },
    createdAt: epochMs,
    updatedAt: epochMs,
  },
} as const;

/**
 * Requeue jobs (a participant's requeue of more than a page, src/pipeline/replay.ts): list them, and
 * resume one that failed on a permanent error (a store error, a message row it could not read) once the
 * cause is repaired. Before, a failed job stayed failed: the participant's only way on was a new requeue,
 * which copies again every page the first had already requeued.
 */
/** Jobs whose progress GET /admin/requeue-jobs counts at once (each is a query on the archive). */
export const VIEWS_AT_ONCE = 8;

export const requeueJobRoutes: FastifyPluginAsync<RequeueJobRouteOptions> = async (app, deps) => {
  const tags = ['Requeue jobs'];
  const view = async (job: RequeueJob) => ({
    id: job.id,
    queue: job.queue,
    state: job.state,
    requeued: job.requeued,
    totalTransactions: (await deps.replay.progress(job)).totalTransactions,
    scannedUpTo: job.cursor,
    of: job.upToSeq,
    error: job.error,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
  });

  app.get<{ Querystring: { recipient?: string; state?: RequeueJob['state']; limit?: number } }>(
    '/admin/requeue-jobs',
    {
      schema: {
        tags,
        summary: 'Requeue jobs, newest first (?state=failed: those an operator may resume)',
        querystring: {
          type: 'object',
          properties: {
            recipient: { type: 'string' },
            state: { type: 'string', enum: ['running', 'done', 'failed'] },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          },
          // A misspelt filter (?stat=failed) would otherwise list every job as if it matched.
          additionalProperties: false,
        },
        response: answers({ 200: { type: 'array', items: jobView, description: 'The jobs that match' } }),
      },
    },
    async (req) => {
      const jobs = await deps.jobs.jobs({ recipientDipId: req.query.recipient, state: req.query.state, limit: req.query.limit ?? 100 });
      // Each view counts its job's copies in the archive: a few at a time, not up to a thousand queries at
      // once on a store the live road shares (a PostgreSQL pool has ten connections).
      const views: Array<Awaited<ReturnType<typeof view>>> = [];
      for (let i = 0; i < jobs.length; i += VIEWS_AT_ONCE) views.push(...(await Promise.all(jobs.slice(i, i + VIEWS_AT_ONCE).map(view))));
      return views;
    },
  );

  app.post<{ Params: { id: string } }>(
    '/admin/requeue-jobs/:id/resume',
    {
      schema: {
        tags,
        summary: 'Resume a failed requeue job from where it stopped',
        description:
          'The job goes on after the last page it requeued (its scannedUpTo), in queue order: nothing it already requeued is requeued again. Repair what failed it first (its error says what), or it fails again at the same place. 404: no such job. 409: the job is running or done (a second resume of the same job is refused: it is started once).',
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 100 } } },
        response: answers({ 200: { ...jobView, description: 'The job, running again' } }, [404, 409]),
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      // Read first for the journal: the error the operator resumed past.
      const before = await deps.jobs.job(id);
      const outcome = await deps.replay.resume(id);
      if ('refused' in outcome) {
        const job = outcome.refused;
        if (!job) return reply.code(404).send({ error: `no requeue job ${id} (GET /admin/requeue-jobs lists them)` });
        return reply.code(409).send({ error: `requeue job ${id} is ${job.state === 'done' ? 'done: nothing is left to requeue' : 'running: it was not failed, or is resumed already'}; only a failed job is resumed` });
      }
      const job = outcome.resumed;
      // Journalled here with the state before and after (the generic entry would have neither).
      req.journaled = true;
      const from = { state: 'failed', error: before?.error ?? null, requeued: job.requeued, scannedUpTo: job.cursor };
      try {
        await deps.journal.append({ at: deps.now(), actor: operatorOf(req).actor, action: 'requeue-job.resume', target: id, before: from, after: { state: 'running', queue: job.queue }, status: 200 });
      } catch (err) {
        deps.logger.error({ err, operator: operatorOf(req).name, job: id }, 'could not journal a requeue job resume');
      }
      deps.logger.info({ job: id, queue: job.queue, requeued: job.requeued, cursor: job.cursor }, 'operator resumed a failed requeue job');
      return view(job);
    },
  );
};
