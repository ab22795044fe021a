import type { FastifyInstance } from 'fastify';
import { MSG } from '../../domain/response-codes.js';
import { encryptionKeyOf } from '../../security/payload-encryption.js';
import type { ApiDeps } from '../deps.js';
import { admitted } from '../guard.js';
import { sendStandard } from '../request.js';

/**
 * Certificates a participant needs for encrypted channels (OpenDIP extension): the DIP's own (pattern 2:
 * encrypt to the DIP; verify its signatures) and a recipient's encryption certificate (pattern 3).
 */
export function registerCertificateRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get('/certificates/dip', { config: { access: 'participant' } }, async () => deps.certificates);

  app.get<{ Params: { dipId: string } }>('/certificates/participant/:dipId', { config: { access: 'participant' } }, async (req, reply) => {
    const p = deps.registry.participant(req.params.dipId);
    if (!p || !encryptionKeyOf(p.certificatePem)) {
      return sendStandard(deps, reply, 404, admitted(req).caller.dipId, MSG.primaryRecipientInvalid, `${req.params.dipId} has no certificate that payloads can be encrypted to`);
    }
    return { dipId: p.dipId, encryption: p.certificatePem };
  });
}
