import type { FastifyInstance, FastifyReply } from 'fastify';
import { MSG } from '../../domain/response-codes.js';
import type { ApiDeps } from '../deps.js';
import { recipientScope } from '../guard.js';
import { publishedSchema, webhookConfigProblem, type WebhookConfigBody } from '../schemas.js';
import { sendStandard } from '../request.js';

type Route = { Params: { id: string; recipientId: string }; Body: WebhookConfigBody };

/**
 * Registers a published WebhookConfig for the recipient's queue (a channel's, or its status messages');
 * answers 201 or a 400 naming the field. Shared by pubconfig and status config.
 */
export async function putWebhook(deps: ApiDeps, reply: FastifyReply, recipientDipId: string, channel: string, body: WebhookConfigBody): Promise<FastifyReply> {
  const problem = webhookConfigProblem(body, deps.config.environment);
  if (problem || body.callbackURL === undefined) return sendStandard(deps, reply, 400, recipientDipId, MSG.schemaFailure, problem);
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

/**
 * Removes the recipient's webhook for a queue. The published answer is 204 whether or not one was
 * registered: deleting is idempotent, and the recipient ends up with none either way.
 */
export async function deleteWebhook(deps: ApiDeps, reply: FastifyReply, recipientDipId: string, channel: string): Promise<FastifyReply> {
  await deps.webhooks.deleteWebhook(recipientDipId, channel);
  await deps.registry.refresh();
  return reply.code(204).send();
}

/** POST / DELETE /dip-channel/{id}/pubconfig/{recipient-id}: a recipient's webhook for one channel. */
export function registerPubconfigRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const url = '/dip-channel/:id/pubconfig/:recipientId';
  app.post<Route>(url, { config: { access: 'recipient' }, schema: { body: publishedSchema('WebhookConfig') } }, async (req, reply) => {
    const { caller, channel } = recipientScope(req);
    return putWebhook(deps, reply, caller.dipId, channel.interfaceId, req.body);
  });

  app.delete<Route>(url, { config: { access: 'recipient' } }, async (req, reply) => {
    const { caller, channel } = recipientScope(req);
    return deleteWebhook(deps, reply, caller.dipId, channel.interfaceId);
  });
}
