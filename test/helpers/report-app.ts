import Fastify, { type FastifyInstance } from 'fastify';
import { answers } from '../../src/api/admin-schemas.js';
import { registerReportRoutes, type ReportNames } from '../../src/api/report-routes.js';
import type { Reports, Viewer } from '../../src/pipeline/reports.js';

/** Every ID taken as given: for reports over fake traces, whose channels and participants no catalogue or registry holds. */
export const namesAsGiven: ReportNames = { channel: (id) => id, participant: (id) => id };

/**
 * The reports API alone under `/r`, over the Reports given, at a fixed clock: the operator's view, or with
 * an `x-viewer` header that participant's. A refused query is answered in Fastify's words, as the operator
 * listener answers it (src/api/admin-operators.ts).
 */
export async function reportApp(reports: Reports, now: number): Promise<FastifyInstance> {
  const app = Fastify();
  app.setErrorHandler((error: Error & { validation?: unknown }, _req, reply) => (error.validation ? reply.code(400).send({ error: error.message }) : reply.send(error)));
  const viewer = (req: { headers: Record<string, string | string[] | undefined> }): Viewer => {
    const as = req.headers['x-viewer'];
    return typeof as === 'string' ? { kind: 'participant', dipId: as } : { kind: 'operator' };
  };
  await app.register(async (a) => registerReportRoutes(a, reports, { prefix: '/r', answers, viewer, fail: (reply, _req, status, error) => reply.code(status).send({ error }), now: () => now, names: namesAsGiven }));
  await app.ready();
  return app;
}
