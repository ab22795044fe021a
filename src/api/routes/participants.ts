import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { JsonSchema } from '../../catalogue/types.js';
import { MSG } from '../../domain/response-codes.js';
import type { Participant } from '../../domain/participant.js';
import type { SelfService } from '../../pipeline/self-service.js';
import { refusalOf } from '../../pipeline/refused.js';
import type { ApiDeps } from '../deps.js';
import { admitted } from '../guard.js';
import { sendStandard } from '../request.js';
import { answers, GUARDED, recipientParams, signatureHeaders } from '../route-schemas.js';

const stringList: JsonSchema = { type: 'array', items: { type: 'string' } };
const selfView: JsonSchema = {
  type: 'object',
  properties: {
    dipId: { type: 'string' },
    organisation: { type: 'string' },
    roles: stringList,
    registerRoles: { type: 'array', nullable: true, items: { type: 'string' } },
    optionalRoles: stringList,
    availableOptionalRoles: stringList,
    channels: stringList,
    optInChannels: stringList,
    connectionProvider: { type: 'string', nullable: true },
    certificateFingerprint: { type: 'string' },
    previousCertificateValidUntil: { type: 'string', nullable: true },
    previousApiKeyValidUntil: { type: 'string', nullable: true },
  },
};

/** What a changed nomination answers: the view, and the former provider's webhooks it removed. */
const nominationView: JsonSchema = {
  ...selfView,
  properties: {
    ...(selfView['properties'] as object),
    removedWebhooks: {
      type: 'array',
      description: "The participant's webhooks its former connection provider had registered, removed with the nomination: those queues wait to be pulled (or for a webhook of its own)",
      items: {
        type: 'object',
        properties: { channel: { type: 'string' }, url: { type: 'string' }, registeredBy: { type: 'string', nullable: true, description: 'Null: registered before OpenDIP recorded who did' } },
      },
    },
  },
  description: "What the DIP now holds about the participant, and the former provider's webhooks removed",
};

type Self = { Params: { recipientId: string; role?: string; channel?: string } };

/**
 * Participant self-service (OpenDIP extension; the portals sit on it), signed like every call:
 *   GET    /participants/{id}                         what the DIP holds about it
 *   PUT    /participants/{id}/roles/{role}            sign up for an optional role; DELETE leaves it
 *   PUT    /participants/{id}/channels/{channel}      opt into a channel that allows it; DELETE leaves
 *   PUT    /participants/{id}/connection-provider     {"dipId": …} nominate a DIP Connection Provider; DELETE withdraws
 *                                                    (either removes the webhooks a former provider registered for it)
 *   POST   /participants/{id}/api-key                 {"overlapHours": 24} a new API key; the old one works until the overlap ends
 *   POST   /participants/{id}/certificate             {"csr": PEM, "overlapDays": 7} a certificate from the environment's CA
 * A connection provider may read and change roles and channels for a participant that nominated it; the
 * nomination, the API key and the certificate are the participant's own business.
 */
export function registerParticipantRoutes(app: FastifyInstance, deps: ApiDeps, self: SelfService): void {
  const own = (req: FastifyRequest, reply: FastifyReply): Participant | null => {
    const { caller } = admitted(req);
    const key = req.headers['x-api-key'];
    if (typeof key === 'string' && deps.registry.byApiKey(key)?.dipId === caller.dipId) return caller;
    void sendStandard(deps, reply, 403, caller.dipId, MSG.processingFailed, `only ${caller.dipId} itself may change its connection provider, API key or certificate, not its connection provider`);
    return null;
  };
  const answer = async <T>(req: FastifyRequest, reply: FastifyReply, run: () => Promise<T>): Promise<T | FastifyReply> => {
    try {
      return await run();
    } catch (e) {
      const refusal = refusalOf(e);
      if (!refusal) throw e;
      return sendStandard(deps, reply, refusal.status, admitted(req).caller.dipId, refusal.status === 400 ? MSG.schemaFailure : MSG.processingFailed, refusal.message);
    }
  };
  const base = '/participants/:recipientId';
  const config = { access: 'self' as const };
  const tags = ['Participant self-service (OpenDIP)'];
  const roleParams = { ...recipientParams, required: ['recipientId', 'role'], properties: { ...(recipientParams['properties'] as object), role: { type: 'string', description: 'An optional role (the operator lists which)' } } };
  const channelParams = { ...recipientParams, required: ['recipientId', 'channel'], properties: { ...(recipientParams['properties'] as object), channel: { type: 'string', description: 'A channel that takes participants opting in, any case' } } };
  /** Each operation's schema: the codes it answers beyond GUARDED (self-service refusals: 400, 403, 404, 409), and its 200. */
  const schema = (operationId: string, summary: string, extra: readonly number[], ok: JsonSchema = { ...selfView, description: 'What the DIP now holds about the participant' }, params: JsonSchema = recipientParams) => ({
    operationId,
    tags,
    summary: `${summary} (OpenDIP)`,
    params,
    headers: signatureHeaders,
    response: answers([...GUARDED, ...extra], { 200: ok }),
  });

  app.get<Self>(base, { config, schema: schema('getParticipant', 'What the DIP holds about the participant', []) }, async (req) => self.view(admitted(req).caller));
  app.put<Self>(`${base}/roles/:role`, { config, schema: schema('joinOptionalRole', 'Sign up for an optional role', [409], undefined, roleParams) }, async (req, reply) => answer(req, reply, () => self.joinRole(admitted(req).caller, req.params.role ?? '', admitted(req).authenticated)));
  app.delete<Self>(`${base}/roles/:role`, { config, schema: schema('leaveOptionalRole', 'Leave an optional role', [], undefined, roleParams) }, async (req, reply) => answer(req, reply, () => self.leaveRole(admitted(req).caller, req.params.role ?? '', admitted(req).authenticated)));
  app.put<Self>(`${base}/channels/:channel`, { config, schema: schema('joinChannel', 'Opt into a channel that allows it', [409], undefined, channelParams) }, async (req, reply) => answer(req, reply, () => self.joinChannel(admitted(req).caller, (req.params.channel ?? '').toUpperCase(), admitted(req).authenticated)));
  app.delete<Self>(`${base}/channels/:channel`, { config, schema: schema('leaveChannel', 'Leave a channel opted into', [], undefined, channelParams) }, async (req, reply) => answer(req, reply, () => self.leaveChannel(admitted(req).caller, (req.params.channel ?? '').toUpperCase(), admitted(req).authenticated)));

  app.put<Self & { Body: { dipId: string } }>(
    `${base}/connection-provider`,
    {
      config,
      schema: {
        ...schema('nominateConnectionProvider', 'Nominate a DIP Connection Provider', [], nominationView),
        body: { type: 'object', additionalProperties: false, required: ['dipId'], properties: { dipId: { type: 'string', maxLength: 10 } } },
      },
    },
    async (req, reply) => {
      const p = own(req, reply);
      return p ? answer(req, reply, () => self.nominate(p, req.body.dipId)) : reply;
    },
  );
  app.delete<Self>(`${base}/connection-provider`, { config, schema: schema('withdrawConnectionProvider', 'Withdraw the connection provider nomination', [], nominationView) }, async (req, reply) => {
    const p = own(req, reply);
    return p ? answer(req, reply, () => self.nominate(p, null)) : reply;
  });
  app.post<Self & { Body: { overlapHours?: number } }>(
    `${base}/api-key`,
    {
      config,
      schema: {
        ...schema('rotateApiKey', 'A new API key; the old one works until the overlap ends', [], {
          type: 'object',
          properties: { apiKey: { type: 'string' }, previousValidUntil: { type: 'string', nullable: true } },
          description: 'The new API key (shown once)',
        }),
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            overlapHours: { type: 'number', minimum: 0, maximum: 2160, default: 24, description: 'Hours the key it replaces keeps working (one replaced before it stops at once); 0 ends it at once too: for a leaked key' },
          },
        },
      },
    },
    async (req, reply) => {
      const p = own(req, reply);
      return p ? answer(req, reply, () => self.rotateApiKey(p, (req.body.overlapHours ?? 24) * 3_600_000)) : reply;
    },
  );
  app.post<Self & { Body: { csr: string; overlapDays?: number } }>(
    `${base}/certificate`,
    {
      config,
      schema: {
        ...schema('newCertificate', "A certificate from the environment's CA for a CSR", [], {
          type: 'object',
          properties: { certificate: { type: 'string' }, fingerprint: { type: 'string' }, previousValidUntil: { type: 'string', nullable: true } },
          description: 'The certificate (PEM) and its fingerprint',
        }),
        body: { type: 'object', additionalProperties: false, required: ['csr'], properties: { csr: { type: 'string', minLength: 1, maxLength: 20_000 }, overlapDays: { type: 'number', minimum: 0, maximum: 90 } } },
      },
    },
    async (req, reply) => {
      const p = own(req, reply);
      return p ? answer(req, reply, () => self.newCertificate(p, req.body.csr, (req.body.overlapDays ?? 7) * 86_400_000)) : reply;
    },
  );
}
