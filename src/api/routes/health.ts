import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { RoutePluginOptions } from '../deps.js';

const healthAnswer = {
  type: 'object',
  required: ['status'],
  properties: {
    status: { type: 'string', enum: ['ok', 'unavailable', 'fatal'] },
    reason: { type: 'string', description: 'Why the store takes no writes' },
  },
};

/**
 * GET /health and /ready (OpenDIP): liveness and readiness tell the truth: not ready while the store
 * refuses writes (a full disk) or for good (a failed disk sync, after which the process exits). A load
 * balancer takes the node out.
 */
export const healthRoutes: FastifyPluginAsync<RoutePluginOptions> = async (app, { deps }) => {
  const answer = async (_req: FastifyRequest, reply: FastifyReply) => {
    const h = deps.health();
    if (h.state === 'ok') return reply.code(200).send({ status: 'ok' });
    return reply.code(503).send({ status: h.state, reason: h.reason });
  };
  for (const url of ['/health', '/ready']) {
    const schema = {
      operationId: url === '/health' ? 'health' : 'ready',
      tags: ['Health (OpenDIP)'],
      summary: url === '/health' ? 'Liveness' : 'Readiness: whether this node takes messages',
      security: [],
      response: { 200: { ...healthAnswer, description: 'Takes writes' }, 503: { ...healthAnswer, description: 'The store takes no writes' } },
    };
    app.get(url, { schema }, answer);
  }
};
