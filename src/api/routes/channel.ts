import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../deps.js';
import { evidence } from '../request.js';

/** POST /dip-channel/{id}: submit a batch of messages. */
export function registerChannelRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.post<{ Params: { id: string } }>('/dip-channel/:id', async (req, reply) => {
    const result = await deps.ingest.handle({ ...evidence(deps, req), channelId: req.params.id });
    if (result.touched.length > 0) deps.delivery.notify(result.touched);
    if (result.retryAfterSeconds !== undefined) reply.header('retry-after', String(result.retryAfterSeconds));
    return reply.code(result.status).send(result.response);
  });
}
