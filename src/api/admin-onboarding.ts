import type { FastifyPluginAsync } from 'fastify';
import type { OnboardingApplication } from '../domain/onboarding.js';
import type { Onboarding } from '../pipeline/onboarding.js';
import { operatorOf, refuse } from './admin-operators.js';
import { answers, isoTime } from './admin-schemas.js';

const strings = { type: 'array', items: { type: 'string' } } as const;
const isoOrNull = { type: ['string', 'null'], format: 'date-time' } as const;
const applicationView = {
  type: 'object',
  required: ['id', 'status', 'companyName', 'mpids', 'roles', 'contactName', 'contactEmail', 'csrPem', 'createdAt', 'verifiedAt', 'decidedAt', 'decidedBy', 'reason', 'dipId', 'username'],
  properties: {
    id: { type: 'string' },
    status: { type: 'string', enum: ['pending', 'approved', 'rejected'] },
    companyName: { type: 'string' },
    mpids: { ...strings, description: 'The MPIDs the company claims' },
    roles: { ...strings, description: 'The DIP roles the company claims (approval grants the register\'s)' },
    contactName: { type: 'string' },
    contactEmail: { type: 'string', description: 'Proved: the contact opened the link sent there' },
    csrPem: { type: 'string', description: 'The certificate signing request the participant certificate is issued for on approval' },
    createdAt: isoTime,
    verifiedAt: isoOrNull,
    decidedAt: isoOrNull,
    decidedBy: { type: ['string', 'null'] },
    reason: { type: ['string', 'null'], description: 'Why it was rejected' },
    dipId: { type: ['string', 'null'], description: 'Approved: the participant registered' },
    username: { type: ['string', 'null'], description: "Approved: the contact's portal account" },
  },
} as const;
const registerCheck = {
  type: ['object', 'null'],
  description: 'The claim against the central register as the DIP holds it now (pending applications only)',
  required: ['dipId', 'companyName', 'unknownMpids', 'dipIds', 'registerRoles', 'rolesNotInRegister', 'rolesNotClaimed', 'problem'],
  properties: {
    dipId: { type: ['string', 'null'], description: 'The one DIP ID every claimed MPID is registered under now; null: it cannot be approved' },
    companyName: { type: ['string', 'null'], description: "The register's name of the company" },
    unknownMpids: { ...strings, description: 'Claimed MPIDs the register has under no DIP ID now' },
    dipIds: { ...strings, description: 'Every DIP ID a claimed MPID is registered under now' },
    registerRoles: { ...strings, description: "The register's roles now: what approval grants" },
    rolesNotInRegister: { ...strings, description: 'Claimed, not in the register: not granted' },
    rolesNotClaimed: { ...strings, description: 'In the register, not claimed: granted all the same' },
    problem: { type: ['string', 'null'], description: 'Why it cannot be approved' },
  },
} as const;
const notice = {
  type: 'object',
  required: ['sent'],
  properties: { sent: { type: 'boolean' }, problem: { type: 'string', description: 'Why the SMTP server did not take it' } },
} as const;
const params = { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 40 } } } as const;

const publicView = (a: OnboardingApplication) => ({
  id: a.id,
  status: a.status,
  companyName: a.companyName,
  mpids: a.mpids,
  roles: a.roles,
  contactName: a.contactName,
  contactEmail: a.contactEmail,
  csrPem: a.csrPem,
  createdAt: new Date(a.createdAt).toISOString(),
  verifiedAt: a.verifiedAt === null ? null : new Date(a.verifiedAt).toISOString(),
  decidedAt: a.decidedAt === null ? null : new Date(a.decidedAt).toISOString(),
  decidedBy: a.decidedBy,
  reason: a.reason,
  dipId: a.dipId,
  username: a.username,
});

type Id = { Params: { id: string } };

/**
 * Companies' applications to use the DIP (spec 5.12.1 "User Onboarding"), made on the user portal's public
 * form and verified by their contact: the operators' review queue. Approval registers the participant the
 * central register names for the claimed MPIDs, with the register's roles (src/pipeline/onboarding.ts).
 */
export const onboardingRoutes: FastifyPluginAsync<{ onboarding: Onboarding }> = async (app, { onboarding }) => {
  const tags = ['Onboarding applications'];
  app.get<{ Querystring: { status?: 'pending' | 'approved' | 'rejected' } }>(
    '/admin/onboarding/applications',
    {
      schema: {
        tags,
        summary: 'Verified applications of one status (pending by default), oldest first',
        querystring: { type: 'object', additionalProperties: false, properties: { status: { type: 'string', enum: ['pending', 'approved', 'rejected'] } } },
        response: answers({ 200: { type: 'array', items: applicationView, description: 'The applications' } }),
      },
    },
    async (req) => (await onboarding.list(req.query.status ?? 'pending')).map(publicView),
  );

  app.get<Id>(
    '/admin/onboarding/applications/:id',
    {
      schema: {
        tags,
        summary: 'One application, with its claim checked against the central register',
        params,
        response: answers({ 200: { type: 'object', required: ['application', 'check', 'alreadyRegistered'], description: 'The application', properties: { application: applicationView, check: registerCheck, alreadyRegistered: { type: 'boolean', description: "The register's DIP ID is a registered participant already" } } } }, [404]),
      },
    },
    async (req, reply) => {
      try {
        const v = await onboarding.view(req.params.id);
        return { ...v, application: publicView(v.application) };
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  app.post<Id & { Body: { username?: string } }>(
    '/admin/onboarding/applications/:id/approve',
    {
      schema: {
        tags,
        summary: "Approve: the participant registered with the register's roles, its certificate issued for the application's CSR, the contact's portal account made and invited by e-mail",
        params,
        body: { type: 'object', additionalProperties: false, properties: { username: { type: 'string', minLength: 3, maxLength: 64, description: "The contact's portal sign-in name (default: the address's local part and the DIP ID)" } } },
        response: answers(
          {
            200: {
              type: 'object',
              description: 'Approved',
              required: ['application', 'roles', 'certificatePem', 'apiKey', 'invitation'],
              properties: {
                application: applicationView,
                roles: { ...strings, description: 'The roles granted (the register\'s)' },
                certificatePem: { type: 'string', description: 'The participant certificate issued' },
                apiKey: { type: 'string', description: 'The participant API key: shown this once, to hand to the company' },
                invitation: { ...notice, description: 'The invitation e-mail (username and first password) to the contact' },
              },
            },
          },
          [400, 404, 409],
        ),
      },
      preValidation: async (req) => {
        req.body ??= {};
      },
    },
    async (req, reply) => {
      try {
        const done = await onboarding.approve(req.params.id, operatorOf(req).actor, req.body.username);
        req.journaled = true;
        return { ...done, application: publicView(done.application) };
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  app.post<Id & { Body: { reason: string } }>(
    '/admin/onboarding/applications/:id/reject',
    {
      schema: {
        tags,
        summary: 'Reject a pending application: the reason is e-mailed to the contact',
        params,
        body: { type: 'object', additionalProperties: false, required: ['reason'], properties: { reason: { type: 'string', minLength: 1, maxLength: 1000 } } },
        response: answers({ 200: { type: 'object', required: ['application', 'notice'], description: 'Rejected', properties: { application: applicationView, notice: { ...notice, description: 'The e-mail with the reason' } } } }, [404, 409]),
      },
    },
    async (req, reply) => {
      try {
        const done = await onboarding.reject(req.params.id, operatorOf(req).actor, req.body.reason);
        req.journaled = true;
        return { ...done, application: publicView(done.application) };
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );
};
