import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { DipMetrics } from '../pipeline/metrics.js';

/** Counts every answer of a listener by route pattern (never the raw URL: IDs would explode the label set). */
export function registerRequestMetrics(app: FastifyInstance, metrics: Pick<DipMetrics, 'request'>, listener: 'participant' | 'anonymous' | 'operator' | 'portal'): void {
  app.addHook('onResponse', (req, reply, done) => {
    metrics.request(listener, req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode);
    done();
  });
}

/** GET /metrics on the operator listener: the Prometheus text format (scrape with the operator's bearer token). */
export const metricsRoutes: FastifyPluginAsync<{ metrics: DipMetrics }> = async (app, { metrics }) => {
  app.get(
    '/metrics',
    {
      schema: {
        tags: ['Metrics'],
        summary: 'Prometheus metrics of this node (text exposition format)',
        response: { 200: { description: 'The metrics', content: { 'text/plain': { schema: { type: 'string' } } } } },
      },
    },
    async (_req, reply) => reply.header('content-type', metrics.contentType).send(await metrics.text()),
  );
};
