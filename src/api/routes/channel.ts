import type { FastifyPluginAsync } from 'fastify';
import type { RoutePluginOptions } from '../deps.js';
import { refusalCode } from '../../pipeline/ingest.js';
import { LeftOutLog } from '../../pipeline/left-out-log.js';
import { withOriginalCorrelations } from '../../pipeline/resend-answer.js';
import { evidence } from '../request.js';
import { answers, channelParams, envelopeItem, messageBatch, signatureHeaders } from '../route-schemas.js';
import { compileRawBodyRouteSchema } from '../schemas.js';

/** The published answers of POST /dip-channel/{id} (API 2.1.0), every one a StandardResponse. */
const PUBLISHED = [201, 207, 400, 401, 403, 404, 405, 406, 408, 413, 429, 500, 502, 503, 504, 505];

/** POST /dip-channel/{id}: submit a batch of messages. */
export const channelRoutes: FastifyPluginAsync<RoutePluginOptions> = async (app, { deps }) => {
  const leftOutLog = new LeftOutLog(deps.clock, deps.logger);
  app.post<{ Params: { id: string } }>(
    '/dip-channel/:id',
    {
      // The pipeline authenticates the caller, and checks the body's depth before it parses it (on an ingest thread when there are some).
      config: { jsonDepthCheckedByPipeline: true, authenticatesInRoute: true },
      validatorCompiler: compileRawBodyRouteSchema,
      schema: {
        operationId: 'sendMessage',
        tags: ['DIP Message Channel'],
        summary: 'Submit a series of Interface messages',
        description:
          "Submits a batch of messages on one channel, accepted or refused as a whole. Each item must match the channel's published schema for its event code (see the data portal at /catalogue and POST /validate/{id}/{event}); the schema below is the part the DIP itself reads of every message.",
        params: channelParams,
        headers: signatureHeaders,
        body: messageBatch(envelopeItem, 'DIPMessageArray: one to the configured maximum of messages'),
        response: answers(PUBLISHED),
      },
    },
    async (req, reply) => {
      // reply.elapsedTime: since the request arrived (its receive phase), read only for a trace.
      const handled = await deps.ingest.handle({ ...evidence(deps, req), channelId: req.params.id, ...(deps.ingest.traced ? { receivedMsAgo: reply.elapsedTime } : {}) });
      // Checked on whichever thread ran the pipeline; told to this one's clock check (the `dip-clock` alarm).
      deps.clockCheck?.dated(handled.dated);
      // A resend's content is compared with the original's only on a refusal (nothing added to an accepted
      // batch's answer) and where items are not encrypted (pattern 1).
      const compared = handled.status === 400 && deps.channel(req.params.id)?.securityPattern === 1 && Buffer.isBuffer(req.body) ? req.body : undefined;
      const result = await withOriginalCorrelations(handled, deps.journal, compared);
      // A channel that does not exist is counted as 'unknown': a label per made-up ID would grow without end.
      const channel = deps.channel(req.params.id) ? req.params.id : 'unknown';
      deps.metrics?.submission(channel, refusalCode(result), reply.elapsedTime / 1000);
      if (result.unreached) {
        deps.metrics?.unreached(channel, result.unreached.map((u) => u.code));
        deps.unreached?.record(channel, result.unreached);
        // Accepted, and not an error of the sender's: the lookup entry (or the register) is the operator's to
        // correct. Every batch for that MPAN meets it until corrected: logged once per interval, counted.
        leftOutLog.unreached(channel, result.unreached);
      }
      if (result.alwaysLeftOut) {
        // Accepted, and not the sender's error: the channel's alwaysParticipants setting names someone not
        // registered. Every batch on the channel meets it until corrected: logged once per interval, counted.
        leftOutLog.always(channel, result.alwaysLeftOut);
      }
      if (result.retryAfterSeconds !== undefined) reply.header('retry-after', String(result.retryAfterSeconds));
      return reply.code(result.status).send(result.response);
    },
  );
};
