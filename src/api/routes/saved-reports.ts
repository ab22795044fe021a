import type { FastifyInstance } from 'fastify';
import { MSG } from '../../domain/response-codes.js';
import { systemOwner } from '../../domain/saved-report.js';
import type { ApiDeps } from '../deps.js';
import { admitted } from '../guard.js';
import { sendStandard } from '../request.js';
import { answers, GUARDED, signatureHeaders } from '../route-schemas.js';
import { registerSavedReportRoutes, type SavedReportApiDeps } from '../saved-report-routes.js';

/**
 * A participant system's saved reports (OpenDIP extension, signed like every call; spec 5.11): kept under
 * its own owner key (systemOwner, `participant:<DIP ID>`), none of its portal users' nor theirs its; run as
 * the participant sees its reports. A suspended participant is refused by the guard (Registry.refusal), as
 * on every signed route.
 */
export function registerSavedReportApi(app: FastifyInstance, deps: ApiDeps, saved: SavedReportApiDeps): void {
  registerSavedReportRoutes(app, saved, {
    prefix: '/observability/saved-reports',
    tags: ['Saved reports (OpenDIP)'],
    mark: ' (OpenDIP)',
    signed: { operationId: (name) => name, headers: signatureHeaders, config: { access: 'participant' } },
    answers: (ok, refusals) => answers([...GUARDED, ...refusals], ok),
    caller: (req) => {
      const dipId = admitted(req).caller.dipId;
      return { owner: systemOwner(dipId), participantDipId: dipId, viewer: { kind: 'participant', dipId } };
    },
    fail: (reply, req, status, help) => sendStandard(deps, reply, status, req.admitted?.caller.dipId ?? null, status === 400 ? MSG.schemaFailure : MSG.processingFailed, help),
  });
}
