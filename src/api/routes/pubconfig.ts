import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MSG } from '../../domain/response-codes.js';
import type { ApiDeps } from '../deps.js';
import { describeErrors, exactCase, validateWebhookConfig, WEBHOOK_CONFIG_FIELDS } from '../schemas.js';
import { sendStandard } from '../request.js';
import { authoriseRecipient, jsonBody } from './authorise.js';

type Route = { Params: { id: string; recipientId: string } };

/** Outside DEV, settlement data only leaves the DIP over TLS: plain http callbacks are refused. */
export function insecureCallback(deps: ApiDeps, url: string): string | null {
  if (deps.config.environment === 'DEV' || /^https:/i.test(url)) return null;
  return `callbackURL: must be https in the ${deps.config.environment} environment (plain http is for DEV only)`;
}

/**
 * Validates a published WebhookConfig body and registers it for the recipient's queue (a channel's, or
 * its status messages'); answers 201 or a 400 naming the field. Shared by pubconfig and status config.
 */
export async function putWebhookFromBody(deps: ApiDeps, req: FastifyRequest, reply: FastifyReply, recipientDipId: string, channel: string): Promise<FastifyReply> {
  const raw = jsonBody(deps, req, reply, recipientDipId);
  if (raw === null) return reply;
  const body = exactCase(raw, WEBHOOK_CONFIG_FIELDS);
  if (!validateWebhookConfig(body)) return sendStandard(deps, reply, 400, recipientDipId, MSG.schemaFailure, describeErrors(validateWebhookConfig.errors));
  const insecure = insecureCallback(deps, body.callbackURL);
  if (insecure) return sendStandard(deps, reply, 400, recipientDipId, MSG.schemaFailure, insecure);
  const internal = await deps.destinations.checkUrl(body.callbackURL);
  if (internal) return sendStandard(deps, reply, 400, recipientDipId, MSG.schemaFailure, `callbackURL: ${internal}`);
  await deps.webhooks.putWebhook({
    recipientDipId,
    channel,
    url: body.callbackURL,
    maxMessageCount: Math.floor(body.maxMessageCount ?? deps.config.delivery.defaultMaxMessageCount),
    maxPayloadKb: Math.floor(body.maxPayloadSize ?? deps.config.delivery.defaultMaxPayloadKb),
  });
  await deps.registry.refresh();
  deps.delivery.notify([{ recipientDipId, channel }]);
  return sendStandard(deps, reply, 201, recipientDipId, MSG.success, `webhook for ${channel} set to ${body.callbackURL}`);
}

/** POST / DELETE /dip-channel/{id}/pubconfig/{recipient-id}: a recipient's webhook for one channel. */
export function registerPubconfigRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.post<Route>('/dip-channel/:id/pubconfig/:recipientId', async (req, reply) => {
    const scope = await authoriseRecipient(deps, req, reply);
    if (!scope) return reply;
    return putWebhookFromBody(deps, req, reply, scope.caller.dipId, scope.channel.interfaceId);
  });

  app.delete<Route>('/dip-channel/:id/pubconfig/:recipientId', async (req, reply) => {
    const scope = await authoriseRecipient(deps, req, reply);
    if (!scope) return reply;
    const removed = await deps.webhooks.deleteWebhook(scope.caller.dipId, scope.channel.interfaceId);
    await deps.registry.refresh();
    if (!removed) {
      return sendStandard(deps, reply, 404, scope.caller.dipId, MSG.processingFailed, `no webhook is registered for ${scope.caller.dipId} on ${scope.channel.interfaceId}`);
    }
    return reply.code(204).send();
  });
}
