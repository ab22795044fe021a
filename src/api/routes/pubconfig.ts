import type { FastifyInstance } from 'fastify';
import { MSG } from '../../domain/response-codes.js';
import type { ApiDeps } from '../deps.js';
import { describeErrors, exactCase, validateWebhookConfig, WEBHOOK_CONFIG_FIELDS } from '../schemas.js';
import { sendStandard } from '../server.js';
import { authoriseRecipient, jsonBody } from './authorise.js';

type Route = { Params: { id: string; recipientId: string } };

/** Outside DEV, settlement data only leaves the DIP over TLS: plain http callbacks are refused. */
export function insecureCallback(deps: ApiDeps, url: string): string | null {
  if (deps.config.environment === 'DEV' || /^https:/i.test(url)) return null;
  return `callbackURL: must be https in the ${deps.config.environment} environment (plain http is for DEV only)`;
}

/** POST / DELETE /dip-channel/{id}/pubconfig/{recipient-id}: a recipient's webhook for one channel. */
export function registerPubconfigRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.post<Route>('/dip-channel/:id/pubconfig/:recipientId', async (req, reply) => {
    const scope = await authoriseRecipient(deps, req, reply);
    if (!scope) return reply;
    const raw = jsonBody(deps, req, reply, scope.caller.dipId);
    if (raw === null) return reply;
    const body = exactCase(raw, WEBHOOK_CONFIG_FIELDS);
    if (!validateWebhookConfig(body)) {
      return sendStandard(deps, reply, 400, scope.caller.dipId, MSG.schemaFailure, describeErrors(validateWebhookConfig.errors));
    }
    const insecure = insecureCallback(deps, body.callbackURL);
    if (insecure) return sendStandard(deps, reply, 400, scope.caller.dipId, MSG.schemaFailure, insecure);
    await deps.webhooks.putWebhook({
      recipientDipId: scope.caller.dipId,
      channel: scope.channel.interfaceId,
      url: body.callbackURL,
      maxMessageCount: Math.floor(body.maxMessageCount ?? deps.config.delivery.defaultMaxMessageCount),
      maxPayloadKb: Math.floor(body.maxPayloadSize ?? deps.config.delivery.defaultMaxPayloadKb),
    });
    await deps.registry.refresh();
    deps.delivery.notify([{ recipientDipId: scope.caller.dipId, channel: scope.channel.interfaceId }]);
    return sendStandard(deps, reply, 201, scope.caller.dipId, MSG.success, `webhook for ${scope.channel.interfaceId} set to ${body.callbackURL}`);
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
