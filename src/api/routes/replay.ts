import type { FastifyInstance } from 'fastify';
import { MSG } from '../../domain/response-codes.js';
import { continuationToken, readContinuationToken, type ReplayFilter } from '../../pipeline/replay.js';
import type { ApiDeps } from '../deps.js';
import { describeErrors, exactCase, MESSAGE_REQUEST_FIELDS, validateMessageRequest } from '../schemas.js';
import { sendStandard } from '../request.js';
import { authoriseRecipient, jsonBody } from './authorise.js';

type Route = { Params: { id: string; recipientId: string } };

/** OpenDIP extension: a replay larger than one page answers 206 with this header; send it back for the next page. */
export const CONTINUATION_HEADER = 'x-continuation-token';

/**
 * POST /dip-channel/{id}/replay|requeue/{recipient-id}: re-issue archived messages to their recipient.
 * Replay answers at most a page (1,000) at a time: 200 when that is all, else 206 with X-Continuation-Token
 * (the design the live DIP's operator drafted for 2.x), which the next request repeats with the same body.
 * A requeue of more than a page answers 202 with a job to follow at …/requeue/{recipient-id}/{job-id}.
 */
export function registerReplayRoutes(app: FastifyInstance, deps: ApiDeps): void {
  for (const action of ['replay', 'requeue'] as const) {
    app.post<Route>(`/dip-channel/:id/${action}/:recipientId`, async (req, reply) => {
      const scope = await authoriseRecipient(deps, req, reply);
      if (!scope) return reply;
      const raw = jsonBody(deps, req, reply, scope.caller.dipId);
      if (raw === null) return reply;
      const body = exactCase(raw, MESSAGE_REQUEST_FIELDS);
      if (!validateMessageRequest(body)) {
        return sendStandard(deps, reply, 400, scope.caller.dipId, MSG.schemaFailure, describeErrors(validateMessageRequest.errors));
      }
      const fromMs = Date.parse(body.datetimeFrom);
      const toMs = Date.parse(body.datetimeTo);
      if (Number.isNaN(fromMs) || Number.isNaN(toMs) || fromMs > toMs) {
        return sendStandard(deps, reply, 400, scope.caller.dipId, MSG.schemaFailure, 'datetimeFrom and datetimeTo must be valid date-times with datetimeFrom <= datetimeTo');
      }
      const queue = { recipientDipId: scope.caller.dipId, channel: scope.channel.interfaceId };
      const filter: ReplayFilter = { fromMs, toMs, eventCode: body.eventCode ?? null, mpan: body.MPAN ?? null, transactionIds: body.transactionIDs ?? null };
      if (action === 'requeue') {
        const outcome = await deps.replay.requeue(queue, filter);
        if ('requeued' in outcome) return sendStandard(deps, reply, 200, scope.caller.dipId, MSG.success, `${outcome.requeued} message(s) requeued`);
        const location = `/dip-channel/${queue.channel}/requeue/${queue.recipientDipId}/${outcome.job.id}`;
        reply.header('location', location);
        return sendStandard(deps, reply, 202, scope.caller.dipId, MSG.success, `more than one page matches: requeue job ${outcome.job.id} works through them behind your live traffic; follow it at GET ${location}`);
      }
      const token = req.headers[CONTINUATION_HEADER];
      let afterSeq = 0;
      if (typeof token === 'string') {
        const at = readContinuationToken(token, filter);
        if (at === null) return sendStandard(deps, reply, 400, scope.caller.dipId, MSG.schemaFailure, `${CONTINUATION_HEADER} is not one this DIP issued for this request body: repeat the body of the request that returned it`);
        afterSeq = at;
      }
      const page = await deps.replay.replay(queue, filter, afterSeq);
      if (page.next !== null) reply.header(CONTINUATION_HEADER, continuationToken(filter, page.next));
      // The copies are already JSON: the answer is assembled without re-serialising them.
      return reply.code(page.next === null ? 200 : 206).type('application/json').send(`[${page.copies.join(',')}]`);
    });
  }

  app.get<{ Params: { id: string; recipientId: string; jobId: string } }>('/dip-channel/:id/requeue/:recipientId/:jobId', async (req, reply) => {
    const scope = await authoriseRecipient(deps, req, reply);
    if (!scope) return reply;
    const job = await deps.replay.job({ recipientDipId: scope.caller.dipId, channel: scope.channel.interfaceId }, req.params.jobId);
    if (!job) return sendStandard(deps, reply, 404, scope.caller.dipId, MSG.processingFailed, `no requeue job ${req.params.jobId} for ${scope.caller.dipId} on ${scope.channel.interfaceId}`);
    return reply.code(200).send({
      jobId: job.id,
      state: job.state,
      requeued: job.requeued,
      scannedUpTo: job.cursor,
      of: job.upToSeq,
      error: job.error,
      createdAt: new Date(job.createdAt).toISOString(),
      updatedAt: new Date(job.updatedAt).toISOString(),
    });
  });
}
