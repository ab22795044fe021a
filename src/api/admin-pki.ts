import type { FastifyInstance } from 'fastify';
import type { Participant } from '../domain/participant.js';
import type { DipConfig } from '../config.js';
import { EXPIRY_WARNING_DAYS, expiringAll } from '../security/expiry.js';
import { issueParticipantCertificate, readCertificateAuthority } from '../security/pki.js';
import { readRevocationList, revokeCertificate } from '../security/revocation.js';

export interface AdminPkiDeps {
  config: DipConfig;
  pkiDir: string;
  participants: () => Participant[];
}

/**
 * The certificate lifecycle on the operator API, for tooling that should not shell into the host: the
 * same operations as `dip pki issue --csr`, `revoke`, `revoked` and `expiring`.
 */
export function registerAdminPkiRoutes(app: FastifyInstance, deps: AdminPkiDeps): void {
  app.post<{ Body: { csr: string; dipIds: string[]; organisation?: string; validDays?: number } }>(
    '/admin/pki/issue',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['csr', 'dipIds'],
          properties: {
            csr: { type: 'string', minLength: 1, maxLength: 20_000 },
            dipIds: { type: 'array', minItems: 1, maxItems: 50, items: { type: 'string', pattern: '^[0-9A-Za-z]{10}$' } },
            organisation: { type: 'string', maxLength: 200 },
            validDays: { type: 'integer', minimum: 1, maximum: 825 },
          },
        },
      },
    },
    async (req, reply) => {
      try {
        const ca = await readCertificateAuthority(deps.pkiDir);
        const issued = await issueParticipantCertificate(ca, {
          organisation: req.body.organisation ?? req.body.dipIds[0]!,
          dipIds: req.body.dipIds,
          environment: deps.config.environment,
          validDays: req.body.validDays ?? 365,
          csrPem: req.body.csr,
        });
        return { certificate: issued.certPem };
      } catch (e) {
        return reply.code(400).send({ error: (e as Error).message });
      }
    },
  );

  app.post<{ Body: { certificate: string; reason?: string } }>(
    '/admin/pki/revoke',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['certificate'],
          properties: { certificate: { type: 'string', minLength: 1, maxLength: 20_000 }, reason: { type: 'string', maxLength: 100 } },
        },
      },
    },
    async (req, reply) => {
      try {
        const r = await revokeCertificate(deps.pkiDir, req.body.certificate, req.body.reason);
        return { ...r.entry, alreadyRevoked: r.alreadyRevoked };
      } catch (e) {
        return reply.code(400).send({ error: (e as Error).message });
      }
    },
  );

  app.get('/admin/pki/revoked', async () => (await readRevocationList(deps.pkiDir)).entries);

  app.get<{ Querystring: { days?: number } }>(
    '/admin/pki/expiring',
    { schema: { querystring: { type: 'object', properties: { days: { type: 'integer', minimum: 1, maximum: 3650 } } } } },
    async (req) =>
      expiringAll(deps.pkiDir, deps.config.trustedCaFiles, deps.participants(), req.query.days ?? EXPIRY_WARNING_DAYS),
  );
}
