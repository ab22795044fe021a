import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { MSG } from '../../domain/response-codes.js';
import type { ApiDeps, RoutePluginOptions } from '../deps.js';
import { admitted, recipientScope } from '../guard.js';
import { configureWebhook, removeWebhook, webhookConfigDeps, type WebhookConfigBody } from '../../pipeline/webhook-config.js';
import { publishedSchema } from '../schemas.js';
import { sendStandard } from '../request.js';
import { answers, channelRecipientParams, GUARDED, noBody, signatureHeaders } from '../route-schemas.js';

/** WebhookConfig, flat or nested under `config` (see webhookConfigBody). */
export type WebhookConfigRequest = WebhookConfigBody & { config?: WebhookConfigBody };
type Route = { Params: { id: string; recipientId: string }; Body: WebhookConfigRequest };

/**
 * Registers a published WebhookConfig for the recipient's queue (a channel's, or its status messages');
 * answers 201 or a 400 naming the field. Shared by pubconfig and status config.
 */
export async function putWebhook(deps: ApiDeps, reply: FastifyReply, recipientDipId: string, channel: string, body: WebhookConfigRequest, registeredBy: string): Promise<FastifyReply> {
  // The nested form the published callback expression names ({$request.body#/config.callbackURL}, from
  // before DIN-464 flattened the schema), when the flat one is not used.
  // Fields given flat as well are taken over the nested ones.
  const { config, ...flat } = body;
  const nested = flat.callbackURL === undefined && config !== undefined;
  const given = nested ? { ...config, ...flat } : flat;
  const outcome = await configureWebhook(webhookConfigDeps(deps.config, deps), recipientDipId, channel, given, registeredBy);
  const help = !outcome.ok && nested ? nestedFieldHelp(outcome.help, config, flat) : outcome.help;
  return sendStandard(deps, reply, outcome.ok ? 201 : 400, recipientDipId, outcome.ok ? MSG.success : MSG.schemaFailure, help);
}

/**
 * A refusal names the field where the body gave it: `config.maxMessageCount` when it came nested (as the
 * schema's own refusals of the nested form do), not the flat name the sender did not write. Each of
 * OpenDIP's own refusals of a webhook begins with the field's name.
 */
function nestedFieldHelp(help: string, config: WebhookConfigBody, flat: WebhookConfigBody): string {
  const field = /^(callbackURL|maxMessageCount|maxPayloadSize)\b/.exec(help)?.[1] as keyof WebhookConfigBody | undefined;
  return field !== undefined && config[field] !== undefined && flat[field] === undefined ? `config.${help}` : help;
}

/**
 * Removes the recipient's webhook for a queue. The published answer is 204 whether or not one was
 * registered: deleting is idempotent, and the recipient ends up with none either way.
 */
export async function deleteWebhook(deps: ApiDeps, reply: FastifyReply, recipientDipId: string, channel: string, caller: string): Promise<FastifyReply> {
  await removeWebhook(webhookConfigDeps(deps.config, deps), recipientDipId, channel, `participant:${caller}`);
  return reply.code(204).send();
}

/**
 * The webhook as published (WebhookConfig); OpenDIP's own rules on it are in schemas.ts (docs/api-differences.md).
 * Also taken nested under `config`, where the published callback expression looks for the URL.
 */
const publishedWebhookConfig = publishedSchema('WebhookConfig');
export const webhookConfigBody = {
  ...publishedWebhookConfig,
  properties: {
    ...(publishedWebhookConfig.properties as Record<string, unknown>),
    config: {
      type: 'object',
      properties: publishedWebhookConfig.properties,
      description: "The same fields nested (OpenDIP): the published callback expression reads {$request.body#/config.callbackURL}. Used when callbackURL is not given at the top",
    },
  },
  description: 'WebhookConfig: callbackURL (required by OpenDIP: https outside DEV, not an internal address, a URL the DIP can call: a host, a port from 1 to 65535, no user or password, no fragment, no control characters or backslashes), maxMessageCount and maxPayloadSize (KB) per call',
};

/** POST / DELETE /dip-channel/{id}/pubconfig/{recipient-id}: a recipient's webhook for one channel. */
export const pubconfigRoutes: FastifyPluginAsync<RoutePluginOptions> = async (app, { deps }) => {
  const url = '/dip-channel/:id/pubconfig/:recipientId';
  const tags = ['DIP Channel Publication Configuration'];
  app.post<Route>(
    url,
    {
      config: { access: 'recipient' },
      schema: {
        operationId: 'configurePublication',
        tags,
        summary: 'Configure DIP Channel Publication',
        description: "Registers (or replaces) the recipient's webhook for the channel: the DIP POSTs what the recipient receives on it there (see the AsyncAPI document at /api/asyncapi.json).",
        params: channelRecipientParams,
        headers: signatureHeaders,
        body: webhookConfigBody,
        response: answers([201, ...GUARDED]),
      },
    },
    async (req, reply) => {
      const { caller, channel } = recipientScope(req);
      return putWebhook(deps, reply, caller.dipId, channel.interfaceId, req.body, admitted(req).authenticated.dipId);
    },
  );

  app.delete<Route>(
    url,
    {
      config: { access: 'recipient' },
      schema: {
        operationId: 'deletePublication',
        tags,
        summary: 'Remove DIP Channel Publication configuration',
        description: "Removes the recipient's webhook for the channel (204 whether or not one was registered); messages then wait to be pulled or for a new webhook.",
        params: channelRecipientParams,
        headers: signatureHeaders,
        response: answers(GUARDED, { 204: noBody(204) }),
      },
    },
    async (req, reply) => {
      const { caller, channel } = recipientScope(req);
      return deleteWebhook(deps, reply, caller.dipId, channel.interfaceId, admitted(req).authenticated.dipId);
    },
  );
};
