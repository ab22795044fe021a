import type { FastifyInstance } from 'fastify';
import { MSG } from '../../domain/response-codes.js';
import { standardResponse } from '../../domain/standard-response.js';
import { authenticate } from '../../pipeline/authenticate.js';
import { STATUS_CHANNEL, type StatusEntry } from '../../pipeline/status.js';
import type { ApiDeps } from '../deps.js';
import { describeErrors, exactCase, STATUS_ENTRY_FIELDS, validateStatusEntries, validateWebhookConfig, WEBHOOK_CONFIG_FIELDS } from '../schemas.js';
import { evidence, sendStandard } from '../server.js';
import { jsonBody } from './authorise.js';
import { insecureCallback } from './pubconfig.js';

type ConfigRoute = { Params: { recipientId: string } };

/** POST /statusmessage, and a participant's status-message webhook at /statusmessage/config/{recipient-id}. */
export function registerStatusRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.post('/statusmessage', async (req, reply) => {
    const auth = await authenticate(deps.registry, evidence(deps, req), new Date(), deps.config.maxClockSkewSeconds * 1000);
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
    const response = standardResponse(new Date(), deps.config.dipId, caller, (entries as StatusEntry[]).map((e) => ({ transactionID: e.transactionID, correlationID: e.correlationID, message: MSG.success })));
    return reply.code(201).send(response);
  });

  app.post<ConfigRoute>('/statusmessage/config/:recipientId', async (req, reply) => {
    const caller = await authoriseSelf(deps, req, reply);
    if (!caller) return reply;
    const raw = jsonBody(deps, req, reply, caller);
    if (raw === null) return reply;
    const body = exactCase(raw, WEBHOOK_CONFIG_FIELDS);
    if (!validateWebhookConfig(body)) return sendStandard(deps, reply, 400, caller, MSG.schemaFailure, describeErrors(validateWebhookConfig.errors));
    const insecure = insecureCallback(deps, body.callbackURL);
    if (insecure) return sendStandard(deps, reply, 400, caller, MSG.schemaFailure, insecure);
    await deps.webhooks.putWebhook({
      recipientDipId: caller,
      channel: STATUS_CHANNEL,
      url: body.callbackURL,
      maxMessageCount: Math.floor(body.maxMessageCount ?? deps.config.delivery.defaultMaxMessageCount),
      maxPayloadKb: Math.floor(body.maxPayloadSize ?? deps.config.delivery.defaultMaxPayloadKb),
    });
    await deps.registry.refresh();
    deps.delivery.notify([{ recipientDipId: caller, channel: STATUS_CHANNEL }]);
    return sendStandard(deps, reply, 201, caller, MSG.success, `status messages for ${caller} go to ${body.callbackURL}`);
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

async function authoriseSelf(deps: ApiDeps, req: Parameters<typeof evidence>[1] & { params: { recipientId: string } }, reply: Parameters<typeof sendStandard>[1]): Promise<string | null> {
  const auth = await authenticate(deps.registry, evidence(deps, req), new Date(), deps.config.maxClockSkewSeconds * 1000);
  if (!auth.ok) {
    void sendStandard(deps, reply, auth.status, null, MSG.processingFailed, auth.help);
    return null;
  }
  const acting = deps.registry.actingAs(auth.participant, req.params.recipientId);
  if (!acting) {
    void sendStandard(deps, reply, 403, auth.participant.dipId, MSG.processingFailed, `recipient-id ${req.params.recipientId} is not the caller ${auth.participant.dipId}`);
    return null;
  }
  return acting.dipId;
}
