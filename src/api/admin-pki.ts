import type { FastifyPluginAsync } from 'fastify';
import type { Participant } from '../domain/participant.js';
import type { DipConfig } from '../config.js';
import { EXPIRY_WARNING_DAYS, expiringAll } from '../security/expiry.js';
import { issueParticipantCertificate, readCertificateAuthority } from '../security/pki.js';
import { readRevocationList, revokeCertificate, type RevocationStore } from '../security/revocation.js';
import { answers, isoTime } from './admin-schemas.js';

const revocationEntry = {
  type: 'object',
  required: ['serialNumber', 'fingerprint256', 'subject', 'dipIds', 'reason', 'revokedAt'],
  properties: {
    serialNumber: { type: 'string', description: 'Upper-case hex, no colons' },
    fingerprint256: { type: 'string', description: 'SHA-256 of the DER certificate, upper-case hex, no colons' },
    subject: { type: 'string' },
    dipIds: { type: 'array', items: { type: 'string' } },
    reason: { type: 'string', description: 'An RFC 5280 reason name (it goes into the CRL) or free text' },
    revokedAt: isoTime,
  },
} as const;

const expiring = {
  type: 'object',
  required: ['owner', 'subject', 'serialNumber', 'fingerprint256', 'notAfter', 'daysLeft'],
  properties: {
    owner: { type: 'string', description: 'A participant\'s DIP ID, or which of the DIP\'s own certificates' },
    subject: { type: 'string' },
    serialNumber: { type: 'string' },
    fingerprint256: { type: 'string' },
    notAfter: isoTime,
    daysLeft: { type: 'integer', description: 'Whole days left, rounded down; negative once expired' },
  },
} as const;

export interface AdminPkiDeps {
  config: DipConfig;
  pkiDir: string;
  /** Where revocations are kept, shared by every node. */
  revocations: RevocationStore;
  participants: () => Participant[];
}

/**
 * The certificate lifecycle on the operator API, for tooling that should not shell into the host: the
 * same operations as `dip pki issue --csr`, `revoke`, `revoked` and `expiring`.
 */
export const adminPkiRoutes: FastifyPluginAsync<AdminPkiDeps> = async (app, deps) => {
  const tags = ['Security'];
  app.post<{ Body: { csr: string; dipIds: string[]; organisation?: string; validDays?: number } }>(
    '/admin/pki/issue',
    {
      schema: {
        tags,
        summary: "A participant's certificate from its CSR (admins), as dip pki issue --csr",
        response: answers({ 200: { type: 'object', required: ['certificate'], properties: { certificate: { type: 'string', description: 'PEM' } }, description: 'Issued' } }),
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
        tags,
        summary: 'Revoke a certificate (admins): a running DIP refuses it from the next handshake',
        response: answers({ 200: { ...revocationEntry, required: [...revocationEntry.required, 'alreadyRevoked'], properties: { ...revocationEntry.properties, alreadyRevoked: { type: 'boolean', description: 'It was on the list already: nothing changed' } }, description: 'Revoked' } }),
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
        const r = await revokeCertificate(deps.pkiDir, deps.revocations, req.body.certificate, req.body.reason, new Date(), req.operator?.actor ?? 'operator API');
        return { ...r.entry, alreadyRevoked: r.alreadyRevoked };
      } catch (e) {
        return reply.code(400).send({ error: (e as Error).message });
      }
    },
  );

  app.get(
    '/admin/pki/revoked',
    { schema: { tags, summary: 'Revoked certificates', response: answers({ 200: { type: 'array', items: revocationEntry, description: 'The revocation list' } }) } },
    async () => (await readRevocationList(deps.revocations)).entries,
  );

  app.get<{ Querystring: { days?: number } }>(
    '/admin/pki/expiring',
    {
      schema: {
        tags,
        summary: "Participants' and the DIP's own certificates that expire within `days`",
        querystring: { type: 'object', properties: { days: { type: 'integer', minimum: 1, maximum: 3650, default: EXPIRY_WARNING_DAYS } }, additionalProperties: false },
        response: answers({ 200: { type: 'array', items: expiring, description: 'Soonest first' } }),
      },
    },
    async (req) =>
      expiringAll(deps.pkiDir, deps.config.trustedCaFiles, deps.participants(), req.query.days ?? EXPIRY_WARNING_DAYS),
  );
};
