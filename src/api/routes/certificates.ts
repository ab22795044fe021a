import type { FastifyPluginAsync } from 'fastify';
import { DIP_ID_PATTERN } from '../../domain/participant.js';
import { MSG } from '../../domain/response-codes.js';
import { encryptionKeyOf } from '../../security/payload-encryption.js';
import type { RoutePluginOptions } from '../deps.js';
import { admitted } from '../guard.js';
import { sendStandard } from '../request.js';
import { answers, GUARDED, signatureHeaders } from '../route-schemas.js';

/**
 * Certificates a participant needs for encrypted channels (OpenDIP extension): the DIP's own (pattern 2:
 * encrypt to the DIP; verify its signatures) and a recipient's encryption certificate (pattern 3).
 */
export const certificateRoutes: FastifyPluginAsync<RoutePluginOptions> = async (app, { deps }) => {
  const tags = ['Certificates (OpenDIP)'];
  const pem = { type: 'string', description: 'PEM' };
  const dipSchema = {
    operationId: 'dipCertificates',
    tags,
    summary: "The DIP's certificates: its CA, its signing certificate and its encryption certificate",
    headers: signatureHeaders,
    response: answers(GUARDED, {
      200: { type: 'object', description: 'PEM certificates', required: ['ca', 'signing', 'encryption'], properties: { ca: pem, signing: pem, encryption: pem } },
    }),
  };
  // A getter object (the signing certificate in force after a rotation): copied so the serialiser reads plain fields.
  app.get('/certificates/dip', { config: { access: 'participant' }, schema: dipSchema }, async () => ({ ...deps.certificates }));

  const participantSchema = {
    operationId: 'participantEncryptionCertificate',
    tags,
    summary: "A recipient's certificate that payloads can be encrypted to (pattern 3)",
    params: { type: 'object', required: ['dipId'], properties: { dipId: { type: 'string', description: 'DIP participant ID (DT-006: 10 letters or digits, any case); another value: 400, MSG1031' } } },
    headers: signatureHeaders,
    response: answers(GUARDED, { 200: { type: 'object', description: 'The certificate', required: ['dipId', 'encryption'], properties: { dipId: { type: 'string' }, encryption: pem } } }),
  };
  app.get<{ Params: { dipId: string } }>('/certificates/participant/:dipId', { config: { access: 'participant' }, schema: participantSchema }, async (req, reply) => {
    const { dipId } = req.params;
    // A malformed ID is the caller's mistake to name, not a participant that happens to have no certificate.
    if (!DIP_ID_PATTERN.test(dipId)) {
      return sendStandard(deps, reply, 400, admitted(req).caller.dipId, MSG.primaryRecipientInvalid, `dipId (path) must be a DIP participant ID: 10 letters or digits (DT-006), not '${clipped(dipId)}'`);
    }
    const p = deps.registry.participant(deps.registry.dipIdInAnyCase(dipId));
    // One answer whether the ID is unregistered or its certificate cannot be encrypted to: the route tells
    // a caller no more about who is registered than it needs to encrypt.
    if (!p || !encryptionKeyOf(p.certificatePem)) {
      return sendStandard(deps, reply, 404, admitted(req).caller.dipId, MSG.primaryRecipientInvalid, `${dipId} has no certificate that payloads can be encrypted to: none is registered for that DIP ID, or it cannot be encrypted to`);
    }
    // Revoked or expired: not handed out to be encrypted to (pattern 3), the sender told why.
    const invalid = deps.copies.senderMustNotEncrypt(p.dipId);
    if (invalid !== null) return sendStandard(deps, reply, 404, admitted(req).caller.dipId, MSG.primaryRecipientInvalid, invalid);
    return { dipId: p.dipId, encryption: p.certificatePem };
  });
};

/** A caller's value as a refusal quotes it: enough to recognise, never the whole of a long one. */
function clipped(value: string): string {
  return value.length > 40 ? `${value.slice(0, 40)}…` : value;
}
