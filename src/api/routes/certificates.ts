import type { FastifyInstance } from 'fastify';
import { MSG } from '../../domain/response-codes.js';
import { authenticate } from '../../pipeline/authenticate.js';
import { encryptionKeyOf } from '../../security/payload-encryption.js';
import type { ApiDeps } from '../deps.js';
import { evidence, sendStandard } from '../request.js';

/**
 * Certificates a participant needs for encrypted channels (OpenDIP extension): the DIP's own (pattern 2:
 * encrypt to the DIP; verify its signatures) and a recipient's encryption certificate (pattern 3).
 */
export function registerCertificateRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get('/certificates/dip', async (req, reply) => {
    const auth = await authenticate(deps.registry, evidence(deps, req), new Date(deps.clock.now()), deps.config.maxClockSkewSeconds * 1000);
    if (!auth.ok) return sendStandard(deps, reply, auth.status, null, MSG.processingFailed, auth.help);
    return deps.certificates;
  });

  app.get<{ Params: { dipId: string } }>('/certificates/participant/:dipId', async (req, reply) => {
    const auth = await authenticate(deps.registry, evidence(deps, req), new Date(deps.clock.now()), deps.config.maxClockSkewSeconds * 1000);
    if (!auth.ok) return sendStandard(deps, reply, auth.status, null, MSG.processingFailed, auth.help);
    const p = deps.registry.participant(req.params.dipId);
    if (!p || !encryptionKeyOf(p.certificatePem)) {
      return sendStandard(deps, reply, 404, auth.participant.dipId, MSG.primaryRecipientInvalid, `${req.params.dipId} has no certificate that payloads can be encrypted to`);
    }
    return { dipId: p.dipId, encryption: p.certificatePem };
  });
}
