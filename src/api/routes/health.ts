import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { RoutePluginOptions } from '../deps.js';

const healthAnswer = {
  type: 'object',
  required: ['status'],
  properties: {
    status: { type: 'string', enum: ['ok', 'unavailable', 'fatal', 'loading'] },
    reason: { type: 'string', description: 'Why the store takes no writes, or what is still loading' },
  },
};

/**
 * GET /health and /ready (OpenDIP) tell the truth. Neither is 200 while the store refuses writes (a full
 * disk) or for good (a failed disk sync, after which the process exits). /ready is also 503 while the node
 * is still starting (the catalogue's validators compiling): a load balancer sends it nothing until it is
 * ready, and takes it out when the store stops.
 */
export const healthRoutes: FastifyPluginAsync<RoutePluginOptions> = async (app, { deps }) => {
  const answer = (ready: boolean) => async (_req: FastifyRequest, reply: FastifyReply) => {
    const h = deps.health();
    if (h.state !== 'ok') return reply.code(503).send({ status: h.state, reason: h.reason });
    // Served while the activity log's backlog is full (src/api/activity.ts), so as to say so: a load balancer moves requests away.
    if (ready && deps.activity && !deps.activity.accepting()) return reply.code(503).send({ status: 'unavailable', reason: 'the API activity log backlog is full: new requests are refused until it is written' });
    const loading = ready ? (deps.notReady?.() ?? null) : null;
    if (loading !== null) return reply.code(503).send({ status: 'loading', reason: loading });
    return reply.code(200).send({ status: 'ok' });
  };
  for (const url of ['/health', '/ready']) {
    const ready = url === '/ready';
    const schema = {
      operationId: ready ? 'ready' : 'health',
      tags: ['Health (OpenDIP)'],
      summary: ready ? 'Readiness: whether this node takes messages' : 'Liveness',
      security: [],
      response: {
        200: { ...healthAnswer, description: ready ? 'Takes messages' : 'Takes writes' },
        503: { ...healthAnswer, description: ready ? 'The store takes no writes, the node is still loading, or it is stopping' : 'The store takes no writes, or the node is stopping' },
      },
    };
    app.get(url, { schema, config: { stoppingAnswer: (help: string) => ({ status: 'unavailable', reason: help }) } }, answer(ready));
  }
};
