import type { FastifyInstance } from 'fastify';
import { MSG } from '../../domain/response-codes.js';
import type { ApiDeps } from '../deps.js';
import { describeErrors, exactCase, MESSAGE_REQUEST_FIELDS, validateMessageRequest } from '../schemas.js';
import { sendStandard } from '../server.js';
import { authoriseRecipient, jsonBody } from './authorise.js';

type Route = { Params: { id: string; recipientId: string } };

/** POST /dip-channel/{id}/replay|requeue/{recipient-id}: re-issue archived messages to their recipient. */
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
      const copies = await deps.replay.run(
        queue,
        { fromMs, toMs, eventCode: body.eventCode ?? null, mpan: body.MPAN ?? null, transactionIds: body.transactionIDs ?? null },
        action === 'requeue',
      );
      if (action === 'requeue') {
        deps.delivery.notify([queue]);
        return sendStandard(deps, reply, 200, scope.caller.dipId, MSG.success, `${copies.length} message(s) requeued`);
      }
      // The archived copies are already JSON: the answer is assembled without re-serialising them.
      return reply.code(200).type('application/json').send(`[${copies.join(',')}]`);
    });
  }
}
