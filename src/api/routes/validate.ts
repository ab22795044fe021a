import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../deps.js';
import { evidence } from '../request.js';

type Route = { Params: { id: string; event: string } };

/**
 * POST /validate/{interface}/{event}: the published debugging endpoints (127 in API 2.1.0), served for
 * every event code of every channel of the catalogue in force. Validates like submission, stores and
 * routes nothing. Answers 201 or 400; as a StandardResponse, or (config api.validateAnswer 'text') as
 * the published JSON string.
 */
export function registerValidateRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.post<Route>('/validate/:id/:event', async (req, reply) => {
    const result = await deps.ingest.validate({ ...evidence(deps, req), channelId: req.params.id, eventCode: req.params.event });
    if (deps.config.api.validateAnswer === 'standard-response') return reply.code(result.status).send(result.response);
    const text = result.response.messageArray.map((e) => (e.help ? `${e.message}: ${e.help}` : e.message)).join(' | ');
    return reply.code(result.status).type('application/json').send(JSON.stringify(text));
  });
}
