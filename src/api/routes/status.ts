import type { FastifyInstance } from 'fastify';
import { MSG } from '../../domain/response-codes.js';
import { standardResponse } from '../../domain/standard-response.js';
import { STATUS_CHANNEL, type StatusEntry } from '../../pipeline/status.js';
import type { ApiDeps } from '../deps.js';
import { admitted } from '../guard.js';
import { publishedSchema, type WebhookConfigBody } from '../schemas.js';
import { sendStandard } from '../request.js';
import { deleteWebhook, putWebhook } from './pubconfig.js';

type ConfigRoute = { Params: { recipientId: string }; Body: WebhookConfigBody };

/** The published StandardResponseBodyType's fields: what travels on to the original sender (extra fields do not). */
const ENTRY_FIELDS = ['transactionID', 'senderUniqueReference', 'correlationID', 'sentTimestamp', 'senderID', 'recipientID', 'DIPConnectionProviderID', 'message', 'help', 'serviceTicketURL'] as const;

/** POST /statusmessage, and a participant's status-message webhook at /statusmessage/config/{recipient-id}. */
export function registerStatusRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.post<{ Body: StatusEntry[] }>('/statusmessage', { config: { access: 'participant' }, schema: { body: publishedSchema('StandardResponseArray') } }, async (req, reply) => {
    const { caller } = admitted(req);
    const entries = req.body.map((e) => Object.fromEntries(ENTRY_FIELDS.map((k) => [k, e[k]])) as StatusEntry);
    const outcome = await deps.status.fromRecipient(caller.dipId, entries, (id) => deps.registry.actingAs(caller, id) !== undefined);
    if (!outcome.ok) return sendStandard(deps, reply, outcome.status, caller.dipId, outcome.status === 403 ? MSG.senderDipIdInvalid : MSG.routingError, outcome.help);
    deps.delivery.notify(outcome.queues);
    const response = standardResponse(new Date(deps.clock.now()), deps.config.dipId, caller.dipId, entries.map((e) => ({ transactionID: e.transactionID, correlationID: e.correlationID, message: MSG.success })));
    return reply.code(201).send(response);
  });

  const url = '/statusmessage/config/:recipientId';
  app.post<ConfigRoute>(url, { config: { access: 'self' }, schema: { body: publishedSchema('WebhookConfig') } }, async (req, reply) =>
    putWebhook(deps, reply, admitted(req).caller.dipId, STATUS_CHANNEL, req.body),
  );

  app.delete<ConfigRoute>(url, { config: { access: 'self' } }, async (req, reply) => deleteWebhook(deps, reply, admitted(req).caller.dipId, STATUS_CHANNEL));
}
