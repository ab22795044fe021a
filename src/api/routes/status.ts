import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MSG } from '../../domain/response-codes.js';
import { standardResponse } from '../../domain/standard-response.js';
import { authenticate } from '../../pipeline/authenticate.js';
import { STATUS_CHANNEL, type StatusEntry } from '../../pipeline/status.js';
import type { ApiDeps } from '../deps.js';
import { describeErrors, exactCase, STATUS_ENTRY_FIELDS, validateStatusEntries } from '../schemas.js';
import { evidence, sendStandard } from '../request.js';
import { authenticateAs, jsonBody } from './authorise.js';
import { putWebhookFromBody } from './pubconfig.js';

type ConfigRoute = { Params: { recipientId: string } };

/** POST /statusmessage, and a participant's status-message webhook at /statusmessage/config/{recipient-id}. */
export function registerStatusRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.post('/statusmessage', async (req, reply) => {
    const auth = await authenticate(deps.registry, evidence(deps, req), new Date(deps.clock.now()), deps.config.maxClockSkewSeconds * 1000);
    if (!auth.ok) return sendStandard(deps, reply, auth.status, null, MSG.processingFailed, auth.help);
    const caller = auth.participant.dipId;
    const raw = jsonBody(deps, req, reply, caller);
    if (raw === null) return reply;
    const entries = Array.isArray(raw) ? raw.map((e) => exactCase(e, STATUS_ENTRY_FIELDS)) : raw;
    if (!validateStatusEntries(entries)) {
      return sendStandard(deps, reply, 400, caller, MSG.schemaFailure, describeErrors(validateStatusEntries.errors));
    }
    const outcome = await deps.status.fromRecipient(caller, entries as StatusEntry[], (id) => deps.registry.actingAs(auth.participant, id) !== undefined);
    if (!outcome.ok) return sendStandard(deps, reply, outcome.status, caller, outcome.status === 403 ? MSG.senderDipIdInvalid : MSG.routingError, outcome.help);
    deps.delivery.notify(outcome.queues);
    const response = standardResponse(new Date(deps.clock.now()), deps.config.dipId, caller, (entries as StatusEntry[]).map((e) => ({ transactionID: e.transactionID, correlationID: e.correlationID, message: MSG.success })));
    return reply.code(201).send(response);
  });

  app.post<ConfigRoute>('/statusmessage/config/:recipientId', async (req, reply) => {
    const caller = await authoriseSelf(deps, req, reply);
    if (!caller) return reply;
    return putWebhookFromBody(deps, req, reply, caller, STATUS_CHANNEL);
  });

  app.delete<ConfigRoute>('/statusmessage/config/:recipientId', async (req, reply) => {
    const caller = await authoriseSelf(deps, req, reply);
    if (!caller) return reply;
    const removed = await deps.webhooks.deleteWebhook(caller, STATUS_CHANNEL);
    await deps.registry.refresh();
    if (!removed) return sendStandard(deps, reply, 404, caller, MSG.processingFailed, `no status-message webhook is registered for ${caller}`);
    return reply.code(204).send();
  });
}

async function authoriseSelf(deps: ApiDeps, req: FastifyRequest<ConfigRoute>, reply: FastifyReply): Promise<string | null> {
  return (await authenticateAs(deps, req, reply, req.params.recipientId))?.dipId ?? null;
}
