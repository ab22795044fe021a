import type { FastifyInstance } from 'fastify';
import { reportOwner } from '../domain/saved-report.js';
import { operatorOf } from './admin-operators.js';
import { answers } from './admin-schemas.js';
import { registerSavedReportRoutes, type SavedReportApiDeps } from './saved-report-routes.js';

/** Why the bootstrap token keeps no saved reports. */
const BOOTSTRAP_KEEPS_NONE = 'the bootstrap token is no operator account, and saved reports are kept per operator: call as an operator (dip login, or an automation account\'s token)';

/**
 * The operator's own saved reports on the operator API (spec 5.11), every role's (a viewer's too: one's
 * own saved reports change nothing of the DIP's, as in the operator portal): kept under `operator:<name>`,
 * the key the operator portal keeps that operator's under (reportOwner), so a person sees the same saved
 * reports from the portal and from the API, and an automation account (no portal sign-in) its own. Run as
 * the operator sees reports: every participant's.
 */
export async function adminSavedReportRoutes(app: FastifyInstance, deps: SavedReportApiDeps): Promise<void> {
  registerSavedReportRoutes(app, deps, {
    prefix: '/admin/saved-reports',
    tags: ['Saved reports'],
    mark: '',
    answers: (ok, refusals) => answers(ok, refusals),
    caller: (req) => {
      const who = operatorOf(req);
      // Not `operator:bootstrap`: an operator account may bear that name (src/api/admin-operators.ts BOOTSTRAP).
      if (who.actor === 'bootstrap') return { status: 403, help: BOOTSTRAP_KEEPS_NONE };
      return { owner: reportOwner({ participantDipId: null, username: who.name }), participantDipId: null, viewer: { kind: 'operator' } };
    },
    fail: (reply, _req, status, error) => reply.code(status).send({ error }),
  });
}
