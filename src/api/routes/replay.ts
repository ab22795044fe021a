import { CONTINUATION_HEADER } from '../../security/continuation-token.js';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { JsonSchema } from '../../catalogue/types.js';
import { MSG } from '../../domain/response-codes.js';
import { CopyUnmakeable, CopyWithheld } from '../../pipeline/recipient-copy.js';
import { archivedEventCode, ArchiveKeysNotLoaded, ReplayBudgetSpent, type ReplayFilter, type UnreadableArchived } from '../../pipeline/replay.js';
import type { ApiDeps, RoutePluginOptions } from '../deps.js';
import { recipientScope } from '../guard.js';
import { publishedSchema, replayWindow, type MessageRequestBody } from '../schemas.js';
import { sendSigned, sendStandard } from '../request.js';
import { answers, channelRecipientParams, egressArray, GUARDED, noBody, preSerialised, signatureHeaders, signedAnswer } from '../route-schemas.js';
import { STORE_RETRY_AFTER_SECONDS } from '../../pipeline/ingest.js';

type Route = { Params: { id: string; recipientId: string }; Body: MessageRequestBody };

/**
 * POST /dip-channel/{id}/replay|requeue/{recipient-id}: re-issue archived messages to their recipient.
 * Replay answers at most a page (1,000) at a time: 200 when that is all, else 206 with X-Continuation-Token
 * (the design the live DIP's operator drafted for 2.x), which the next request repeats with the same body.
 * A requeue of more than a page answers 202 with a job to follow at …/requeue/{recipient-id}/{job-id}.
 */
export const replayRoutes: FastifyPluginAsync<RoutePluginOptions> = async (app, { deps }) => {
  const body = { ...publishedSchema('MessageRequest'), description: 'MessageRequest: the filters (null for none); transactionIDs optional' };
  const tags = ['DIP Channel Replay/Requeue'];
  const schemas = {
    replay: {
      operationId: 'replayPublication',
      summary: 'Replay messages from a DIP Channel Publication',
      description:
        'Answers the archived messages the recipient received on the channel that match the filters, a page (1,000) at a time: 200 when that is all, 206 with X-Continuation-Token when more follow (send the same body again with that header). With nothing to replay the answer is the operator\'s choice (config api.emptyReplay: an empty array, 204, or 400).',
      headers: { ...signatureHeaders, properties: { ...(signatureHeaders['properties'] as object), [CONTINUATION_HEADER]: { type: 'string', format: 'uuid', description: 'From a 206 answer: the next page of the same request (the published ContinuationToken)' } } },
      response: answers([...GUARDED, 409], {
        200: signedAnswer(preSerialised(200, egressArray('Replayed Messages, signed by the DIP (X-DIP-* headers, over the answer\'s own string: OpenDIP)'))),
        204: noBody(204),
        206: signedAnswer(preSerialised(206, egressArray('One page of replayed messages, signed as a 200; X-Continuation-Token names the next'))),
      }),
    },
    requeue: {
      operationId: 'requeuePublication',
      summary: 'Requeue messages on DIP Channel webhook',
      description:
        "Sends the archived messages that match the filters to the recipient's webhook again. Up to a page: 200 with the count. More: 202 with a job, followed at the Location header (GET …/requeue/{recipient-id}/{job-id}). X-Continuation-Token belongs to replay only: sent here it is refused (400).",
      headers: signatureHeaders,
      response: answers([200, 202, ...GUARDED]),
    },
  } as const;
  for (const action of ['replay', 'requeue'] as const) {
    const schema = { tags, params: channelRecipientParams, body, ...schemas[action] };
    app.post<Route>(`/dip-channel/:id/${action}/:recipientId`, { config: { access: 'recipient' }, schema }, async (req, reply) => {
      try {
        return await answer(req, reply);
      } catch (e) {
        // Security pattern 2 and the recipient's certificate is revoked or expired: nothing is encrypted to it.
        if (e instanceof CopyWithheld) return sendStandard(deps, reply, 409, recipientScope(req).caller.dipId, MSG.processingFailed, e.message);
        // A copy that cannot be made for this recipient at all: nothing was archived, the answer names the message.
        if (e instanceof CopyUnmakeable) return sendStandard(deps, reply, 409, recipientScope(req).caller.dipId, MSG.processingFailed, `no copy of ${e.message}`);
        // Rows under a data key being loaded: sound, answered on a retry (nothing was written or spent).
        if (e instanceof ArchiveKeysNotLoaded) {
          reply.header('retry-after', String(STORE_RETRY_AFTER_SECONDS));
          return sendStandard(deps, reply, 503, recipientScope(req).caller.dipId, MSG.processingFailed, e.message);
        }
        // The recipient's budget of copies is spent (config replayCopiesPerHour): nothing was written.
        if (!(e instanceof ReplayBudgetSpent)) throw e;
        reply.header('retry-after', String(Math.max(1, Math.ceil(e.retryAfterMs / 1000))));
        return sendStandard(deps, reply, 429, e.recipientDipId, MSG.processingFailed, e.message);
      }
    });
    const answer = async (req: FastifyRequest<Route>, reply: FastifyReply): Promise<FastifyReply> => {
      const { caller, channel } = recipientScope(req);
      const body = req.body;
      const window = replayWindow(body);
      if ('problem' in window) return sendStandard(deps, reply, 400, caller.dipId, MSG.schemaFailure, window.problem);
      const queue = { recipientDipId: caller.dipId, channel: channel.interfaceId };
      // The event code as messages carry it, however the body writes it (brackets, case): one spelling per
      // code, so a continuation token and a requeue job hold the same filter for "[activepower]" as for "ActivePower".
      const eventCode = body.eventCode === null ? null : archivedEventCode(body.eventCode, channel);
      const filter: ReplayFilter = { ...window, eventCode, mpan: body.MPAN, transactionIds: body.transactionIDs ?? null };
      if (action === 'requeue') {
        // The published API defines X-Continuation-Token for no operation, and OpenDIP issues it only with
        // replay pages. A requeue has no pages to continue (more than one becomes a job), so a token here
        // is a client mistake: refused, rather than ignored while a full requeue starts.
        if (req.headers[CONTINUATION_HEADER] !== undefined) {
          const help = `${CONTINUATION_HEADER} continues a replay (POST …/replay/{recipient-id}); a requeue takes every match in one request (a background job past a page): send it without the header`;
          return sendStandard(deps, reply, 400, caller.dipId, MSG.schemaFailure, help);
        }
        const outcome = await deps.replay.requeue(queue, filter);
        if ('requeued' in outcome) {
          tellUnreadable(reply, outcome.unreadable.length);
          return sendStandard(deps, reply, 200, caller.dipId, MSG.success, `${outcome.requeued} message(s) requeued${skippedHelp(outcome.unreadable)}`);
        }
        const location = `/dip-channel/${queue.channel}/requeue/${queue.recipientDipId}/${outcome.job.id}`;
        reply.header('location', location);
        return sendStandard(deps, reply, 202, caller.dipId, MSG.success, `more than one page matches: requeue job ${outcome.job.id} works through them behind your live traffic; follow it at GET ${location}`);
      }
      const continuation = req.headers[CONTINUATION_HEADER];
      let afterSeq = 0;
      if (continuation !== undefined) {
        // Given twice, Node joins the values with ', ': not a UUID either.
        const reading = deps.continuation.read(queue, filter, String(continuation));
        if ('refused' in reading) {
          const help =
            reading.refused === 'not-a-uuid'
              ? `${CONTINUATION_HEADER} must be a UUID (the published ContinuationToken: string, format uuid), as this DIP sends it in a 206 answer`
              : `${CONTINUATION_HEADER} is not one this DIP issued for this request body: repeat the body of the request that returned it`;
          return sendStandard(deps, reply, 400, caller.dipId, MSG.schemaFailure, help);
        }
        afterSeq = reading.afterSeq;
      }
      const page = await deps.replay.replay(queue, filter, afterSeq);
      tellUnreadable(reply, page.unreadable.length);
      // A page whose every match was skipped (unreadable) still names the next when there is one.
      if (page.copies.length === 0 && page.next === null) return answerNothingToReplay(deps, req, reply, caller.dipId, channel.interfaceId, body);
      // The copies are already JSON: the answer is assembled without re-serialising them. The next page's
      // token is sent and signed with it (sendSigned).
      const next = page.next === null ? null : deps.continuation.issue(queue, filter, page.next);
      return sendSigned(deps, req, reply, next === null ? 200 : 206, `[${page.copies.join(',')}]`, next);
    };
  }

  const jobParams = { ...channelRecipientParams, required: ['id', 'recipientId', 'jobId'], properties: { ...(channelRecipientParams['properties'] as object), jobId: { type: 'string', description: 'From the Location of a 202 answer' } } };
  // The published RequeueStatus (percentComplete, totalTransactions, processedTransactions, status), as
  // generated from the reference; it does not forbid other properties, so OpenDIP's own details stay beside.
  const requeueStatus = publishedSchema('RequeueStatus');
  const published = requeueStatus['properties'] as Record<string, JsonSchema>;
  const jobAnswer = {
    ...requeueStatus,
    required: ['percentComplete', 'totalTransactions', 'processedTransactions', 'status', 'jobId', 'state', 'requeued', 'scannedUpTo', 'of', 'error', 'createdAt', 'updatedAt'],
    properties: {
      percentComplete: { ...published['percentComplete'], description: 'Whole per cent of totalTransactions processed (rounded down; 100 only when none is left)' },
      totalTransactions: { ...published['totalTransactions'], description: 'The messages the job requeues: those processed and those matching the filter not yet reached' },
      processedTransactions: { ...published['processedTransactions'], description: 'Messages requeued so far' },
      status: { ...published['status'], description: 'Processing, Completed or Failed (the published RequeueStatus)' },
      jobId: { type: 'string', description: '(OpenDIP) the job, as named in the Location of the 202' },
      state: { type: 'string', enum: ['running', 'done', 'failed'], description: '(OpenDIP) status in OpenDIP\'s own words, kept for earlier clients' },
      requeued: { type: 'integer', description: '(OpenDIP) the same as processedTransactions' },
      scannedUpTo: { type: 'integer', description: '(OpenDIP) the queue position the job has worked through' },
      of: { type: 'integer', description: '(OpenDIP) the queue position the job ends at' },
      error: { type: ['string', 'null'], description: '(OpenDIP) why a Failed job stopped' },
      createdAt: { type: 'string', format: 'date-time' },
      updatedAt: { type: 'string', format: 'date-time' },
    },
  };
  const jobSchema = {
    operationId: 'requeueJobStatus',
    tags,
    summary: 'Progress of a requeue job (OpenDIP)',
    description: 'The published RequeueStatus of a job a 202 answer named, with OpenDIP\'s own details beside it.',
    params: jobParams,
    headers: signatureHeaders,
    response: answers(GUARDED, { 200: { ...jobAnswer, description: 'The job' } }),
  };
  app.get<{ Params: { id: string; recipientId: string; jobId: string } }>('/dip-channel/:id/requeue/:recipientId/:jobId', { config: { access: 'recipient' }, schema: jobSchema }, async (req, reply) => {
    const { caller, channel } = recipientScope(req);
    const job = await deps.replay.job({ recipientDipId: caller.dipId, channel: channel.interfaceId }, req.params.jobId);
    if (!job) return sendStandard(deps, reply, 404, caller.dipId, MSG.processingFailed, `no requeue job ${req.params.jobId} for ${caller.dipId} on ${channel.interfaceId}`);
    return reply.code(200).send({
      ...(await deps.replay.progress(job)),
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
};

/** The published 200 answer holds at least one message; what answers none is the operator's choice (config api.emptyReplay). */
/**
 * The archived messages of this answer skipped because their stored copy could not be opened (a damaged,
 * swapped or unkeyed row: the rest are answered). The published answer (an array of messages, or a
 * StandardResponse) has no place for them: OpenDIP's own header, beside the signature, says how many
 * (docs/api-differences.md). The operator sees which, in the log and dip_archive_unreadable_total.
 */
export const UNREADABLE_HEADER = 'x-opendip-unreadable';

function tellUnreadable(reply: FastifyReply, n: number): void {
  if (n > 0) reply.header(UNREADABLE_HEADER, String(n));
}

/** The requeue answer's words for skipped messages, naming up to a few. */
function skippedHelp(unreadable: readonly UnreadableArchived[]): string {
  if (unreadable.length === 0) return '';
  const named = unreadable.slice(0, 5).map((u) => u.transactionId).join(', ');
  return `; ${unreadable.length} archived message(s) skipped, their stored copy could not be opened (${named}${unreadable.length > 5 ? ', …' : ''}): the operator has them in the log`;
}

function answerNothingToReplay(deps: ApiDeps, req: FastifyRequest, reply: FastifyReply, recipientDipId: string, channel: string, body: MessageRequestBody): FastifyReply | Promise<FastifyReply> {
  switch (deps.config.api.emptyReplay) {
    case 'empty-array':
      // No message and no next page: sent unsigned, as an empty pull is (sendSigned), so the client's
      // answerNotFromDip accepts an unsigned 200 [] from replay as well as pull; it vouches for nothing, as a 204 does not.
      return sendSigned(deps, req, reply, 200, '[]');
    case 'no-content':
      return reply.code(204).send();
    case 'bad-request': {
      const filter = Object.entries(body)
        .filter(([, v]) => v !== null)
        .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(',') : String(v)}`);
      const help = `nothing to replay: no archived message on ${channel} for ${recipientDipId} matches ${filter.length ? filter.join(', ') : 'the request'}`;
      return sendStandard(deps, reply, 400, recipientDipId, MSG.processingFailed, help);
    }
  }
}
