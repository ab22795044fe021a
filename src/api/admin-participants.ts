import type { FastifyPluginAsync } from 'fastify';
import type { Participant } from '../domain/participant.js';
import type { Onboarding } from '../pipeline/onboarding.js';
import type { ParticipantLifecycle } from '../pipeline/participant-lifecycle.js';
import type { Registry } from '../pipeline/registry.js';
import type { SelfService } from '../pipeline/self-service.js';
import { certificateInfo } from '../security/signature.js';
import { operatorOf, refuse } from './admin-operators.js';
import { answers, isoTime } from './admin-schemas.js';

const strings = { type: 'array', items: { type: 'string' } } as const;
const dipIdParams = { type: 'object', required: ['dipId'], properties: { dipId: { type: 'string', pattern: '^[0-9A-Za-z]{10}$' } } } as const;
const suspension = {
  type: ['object', 'null'],
  description: 'Why it is suspended (its calls refused 403, its queues held); null: it is not',
  required: ['at', 'by', 'reason'],
  properties: { at: isoTime, by: { type: 'string' }, reason: { type: 'string' } },
} as const;
const participantView = {
  type: 'object',
  required: ['dipId', 'organisation', 'roles', 'connectionProvider', 'createdAt', 'certificateFingerprint', 'certificateNotAfter', 'previousCertificateValidUntil', 'suspended'],
  properties: {
    dipId: { type: 'string' },
    organisation: { type: 'string' },
    roles: strings,
    connectionProvider: { type: ['string', 'null'] },
    createdAt: isoTime,
    certificateFingerprint: { type: 'string', description: 'SHA-256 of the registered certificate, upper-case hex' },
    certificateNotAfter: isoTime,
    previousCertificateValidUntil: { type: ['string', 'null'], format: 'date-time', description: 'The certificate a renewal replaced is accepted for signing until then' },
    suspended: suspension,
  },
} as const;
const invitation = {
  type: 'object',
  required: ['sent'],
  description: 'The invitation e-mail (username and first password) to the first administrator',
  properties: { sent: { type: 'boolean' }, problem: { type: 'string', description: 'Why the SMTP server did not take it' } },
} as const;

const iso = (ms: number): string => new Date(ms).toISOString();
const suspendedView = (s: { at: number; by: string; reason: string } | null) => (s ? { ...s, at: iso(s.at) } : null);

interface CreateBody {
  companyName: string;
  mpids: string[];
  roles: string[];
  contactName: string;
  contactEmail: string;
  csr: string;
  username?: string;
}

/**
 * Participants on the operator API (spec 5.12.2 "Create User", "Manage User", "Certificate Management"), what
 * `dip participant add|list|rotate-cert` do on the host: create one as an onboarding approval does (roles from
 * the central register, its certificate for the company's CSR, its first portal administrator invited by
 * e-mail), suspend and reactivate it, renew and revoke its certificate. Renewal and revocation are under
 * /admin/pki: admins only, as every certificate operation.
 */
export const participantRoutes: FastifyPluginAsync<{ registry: Registry; onboarding: Onboarding; lifecycle: ParticipantLifecycle; selfService: SelfService }> = async (
  app,
  { registry, onboarding, lifecycle, selfService },
) => {
  const tags = ['Register and participants'];
  const view = (p: Participant) => ({
    dipId: p.dipId,
    organisation: p.organisation,
    roles: p.roles,
    connectionProvider: p.connectionProvider,
    createdAt: iso(p.createdAt),
    certificateFingerprint: p.certificateFingerprint,
    certificateNotAfter: certificateInfo(p.certificatePem).notAfter.toISOString(),
    previousCertificateValidUntil: p.previous ? iso(p.previous.validUntil) : null,
    suspended: suspendedView(registry.suspended(p.dipId)),
  });

  app.get(
    '/admin/participants',
    { schema: { tags, summary: 'The registered participants, by DIP ID', response: answers({ 200: { type: 'array', items: participantView, description: 'The participants' } }) } },
    async () => {
      await registry.refresh();
      return registry.participants().sort((a, b) => a.dipId.localeCompare(b.dipId)).map(view);
    },
  );

  app.post<{ Body: CreateBody }>(
    '/admin/participants',
    {
      schema: {
        tags,
        summary: "Create a participant: the register's DIP ID for the MPIDs, with the register's roles (a role it does not give is refused), its certificate issued for the CSR, its first portal administrator invited by e-mail",
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['companyName', 'mpids', 'roles', 'contactName', 'contactEmail', 'csr'],
          properties: {
            companyName: { type: 'string', minLength: 2, maxLength: 200 },
            mpids: { type: 'array', minItems: 1, maxItems: 20, items: { type: 'string', maxLength: 4 }, description: 'Its Market Participant IDs: all registered, now, under one DIP ID of the central register' },
            roles: { type: 'array', minItems: 1, maxItems: 10, items: { type: 'string', maxLength: 5 }, description: 'The DIP roles it is to hold: each must be one the register gives that DIP ID now' },
            contactName: { type: 'string', minLength: 1, maxLength: 100, description: 'Its first portal administrator' },
            contactEmail: { type: 'string', maxLength: 254, description: 'Where the invitation (username and first password) is sent' },
            csr: { type: 'string', minLength: 1, maxLength: 8000, description: "The company's certificate signing request (PEM): its key never leaves the company" },
            username: { type: 'string', minLength: 3, maxLength: 64, description: "The administrator's portal sign-in name (default: the address's local part and the DIP ID)" },
          },
        },
        response: answers(
          {
            201: {
              type: 'object',
              description: 'Created',
              required: ['dipId', 'roles', 'rolesNotNamed', 'username', 'certificatePem', 'apiKey', 'invitation'],
              properties: {
                dipId: { type: 'string' },
                roles: { ...strings, description: "The roles granted (the register's)" },
                rolesNotNamed: { ...strings, description: 'Roles the register gives that were not named: granted all the same' },
                username: { type: 'string', description: "The first administrator's portal username" },
                certificatePem: { type: 'string', description: 'The participant certificate issued for the CSR' },
                apiKey: { type: 'string', description: 'The participant API key: shown this once, to hand to the company' },
                invitation,
              },
            },
          },
          [400, 409],
        ),
      },
    },
    async (req, reply) => {
      const b = req.body;
      try {
        const made = await onboarding.create(
          { companyName: b.companyName, mpids: b.mpids.join(','), roles: b.roles.join(','), contactName: b.contactName, contactEmail: b.contactEmail, csrPem: b.csr, ...(b.username ? { username: b.username } : {}) },
          operatorOf(req).actor,
        );
        req.journaled = true;
        return await reply.code(201).send(made);
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  app.post<{ Params: { dipId: string }; Body: { reason: string } }>(
    '/admin/participants/:dipId/suspend',
    {
      schema: {
        tags,
        summary: 'Suspend a participant: its calls are refused 403 with the reason, messages for it are held until it is reactivated; nothing else changes',
        params: dipIdParams,
        body: { type: 'object', additionalProperties: false, required: ['reason'], properties: { reason: { type: 'string', minLength: 1, maxLength: 500, description: 'Said to the participant in every refusal' } } },
        response: answers({ 200: participantView }, [404, 409]),
      },
    },
    async (req, reply) => {
      try {
        await lifecycle.suspend(req.params.dipId, operatorOf(req).actor, req.body.reason);
        req.journaled = true;
        return view(registry.participant(req.params.dipId)!);
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  app.post<{ Params: { dipId: string } }>(
    '/admin/participants/:dipId/reactivate',
    {
      schema: { tags, summary: 'End a suspension: calls are accepted again, the held messages delivered', params: dipIdParams, response: answers({ 200: participantView }, [404, 409]) },
    },
    async (req, reply) => {
      try {
        await lifecycle.reactivate(req.params.dipId, operatorOf(req).actor);
        req.journaled = true;
        return view(registry.participant(req.params.dipId)!);
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  app.post<{ Params: { dipId: string }; Body: { csr: string; overlapDays?: number } }>(
    '/admin/pki/participants/:dipId/certificate',
    {
      schema: {
        tags: ['Security'],
        summary: "Renew a participant's certificate (admins): issued for its CSR and registered; the one it replaces is accepted for signing during the overlap",
        params: dipIdParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['csr'],
          properties: { csr: { type: 'string', minLength: 1, maxLength: 8000, description: "The participant's certificate signing request (PEM)" }, overlapDays: { type: 'integer', minimum: 0, maximum: 90, default: 7 } },
        },
        response: answers({ 200: { type: 'object', required: ['certificate', 'fingerprint', 'previousValidUntil'], description: 'Issued and registered', properties: { certificate: { type: 'string', description: 'PEM' }, fingerprint: { type: 'string' }, previousValidUntil: { type: ['string', 'null'], format: 'date-time' } } } }, [400, 404]),
      },
    },
    async (req, reply) => {
      const p = registry.participant(req.params.dipId);
      if (!p) return reply.code(404).send({ error: `${req.params.dipId} is not a registered participant` });
      try {
        const renewed = await selfService.newCertificate(p, req.body.csr, (req.body.overlapDays ?? 7) * 86_400_000, operatorOf(req).actor);
        req.journaled = true;
        return renewed;
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  app.post<{ Params: { dipId: string }; Body: { which?: 'current' | 'previous'; reason: string } }>(
    '/admin/pki/participants/:dipId/revoke',
    {
      schema: {
        tags: ['Security'],
        summary: "Revoke a participant's registered certificate (admins): refused from the next handshake and request; its registration stays",
        params: dipIdParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['reason'],
          properties: {
            which: { type: 'string', enum: ['current', 'previous'], default: 'current', description: 'Its current certificate, or the one a renewal replaced (during the overlap)' },
            reason: { type: 'string', enum: ['keyCompromise', 'superseded', 'cessationOfOperation', 'affiliationChanged', 'unspecified'], description: 'The RFC 5280 reason (it goes into the CRL)' },
          },
        },
        response: answers({ 200: { type: 'object', required: ['dipId', 'which', 'fingerprint'], description: 'Revoked', properties: { dipId: { type: 'string' }, which: { type: 'string' }, fingerprint: { type: 'string' } } } }, [404, 409]),
      },
    },
    async (req, reply) => {
      const which = req.body.which ?? 'current';
      try {
        const done = await lifecycle.revokeCertificate(req.params.dipId, which, req.body.reason, operatorOf(req).actor);
        req.journaled = true;
        return { dipId: req.params.dipId, which, fingerprint: done.fingerprint };
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );
};
