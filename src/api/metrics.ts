import type { FastifyInstance } from 'fastify';
import type { DipMetrics } from '../pipeline/metrics.js';

/** Counts every answer of a listener by route pattern (never the raw URL: IDs would explode the label set). */
export function registerRequestMetrics(app: FastifyInstance, metrics: DipMetrics, listener: string): void {
  app.addHook('onResponse', (req, reply, done) => {
    metrics.request(listener, req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode);
    done();
  });
}

/** GET /metrics on the operator listener: the Prometheus text format (scrape with the operator's bearer token). */
export function registerMetricsRoute(app: FastifyInstance, metrics: DipMetrics): void {
  app.get('/metrics', async (_req, reply) => reply.header('content-type', metrics.contentType).send(await metrics.text()));
}
