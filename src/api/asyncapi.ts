import fp from 'fastify-plugin';
import { Catalogue } from '../catalogue/catalogue.js';
import { setOwn } from '../catalogue/key-case.js';
import { STATUS_CHANNEL } from '../pipeline/status.js';
import type { RoutePluginOptions } from './deps.js';
import { hoistDefinitions } from './openapi.js';
import { publishedSchema } from './schemas.js';
import { signatureHeaders } from './route-schemas.js';

type JsonObj = Record<string, unknown>;

/**
 * The webhook side of the DIP as an AsyncAPI 3.0 document (issue 12): what the DIP POSTs to the
 * callbackURL a recipient registers for each channel (POST /dip-channel/{id}/pubconfig/{recipient-id})
 * and for its status messages (/statusmessage/config/{recipient-id}), the signature headers every call
 * carries, and what the recipient answers. Made from the same catalogue and schemas as the routes.
 */
export function asyncApiDocument(catalogue: Catalogue, dipId: string, environment: string): JsonObj {
  const schemas: JsonObj = {};
  const channels: JsonObj = {};
  const operations: JsonObj = {};
  const messages: JsonObj = {};
  const headers = {
    ...signatureHeaders,
    description: "Every call is signed by the DIP with its signing certificate (GET /certificates/dip): verify the content hash, the signature over METHOD;url-lower-cased;date;content-hash and that the certificate is the DIP's before trusting the body.",
    properties: {
      ...(signatureHeaders['properties'] as object),
      'X-DIP-MPO': { type: 'string', description: 'Published optional header (MPO details)' },
    },
  };
  const answer = { description: 'The recipient answers 2xx to acknowledge; 408, 429, 500, 502, 503 and 504 are retried with backoff; 400, 401, 403, 404, 405, 406, 413 and 505 are not (the messages are dead-lettered and the operator alerted).' };
  for (const c of catalogue.channels().sort((a, b) => a.interfaceId.localeCompare(b.interfaceId))) {
    const schema = catalogue.schema(c.interfaceId);
    if (!schema) continue;
    setOwn(schemas, c.interfaceId, hoistDefinitions(schema, schemas as never));
    setOwn(messages, c.interfaceId, {
      name: c.interfaceId,
      title: `${c.interfaceId} ${c.name}`,
      summary: `Messages of ${c.interfaceId} (${c.publicationId}) for a recipient holding ${c.receiverRoles.join(', ') || 'a role the operator named'}; event codes ${c.eventCodes.map((e) => `[${e}]`).join(', ')}.`,
      contentType: 'application/json',
      headers,
      payload: { type: 'array', minItems: 1, description: 'DIPMessageEgressArray: up to the webhook maxMessageCount messages, D0 filled in by the DIP. A replayed or requeued message (D0.replayIndicator true, transaction ID R-…) also carries, beside payload, originalTransactionID and originalTransactionWrapper (the original D0, spec 5.5.11)', items: { $ref: `#/components/schemas/${c.interfaceId}` } },
    });
    setOwn(channels, c.interfaceId, {
      address: null,
      title: `${c.interfaceId}: ${c.name}`,
      description: `The callbackURL the recipient registered with POST /dip-channel/${c.interfaceId}/pubconfig/{recipient-id}. Sent by ${c.senderRoles.join(', ')}; routed ${c.routingModes.join(', ')}.`,
      messages: { [c.interfaceId]: { $ref: `#/components/messages/${c.interfaceId}` } },
    });
    setOwn(operations, `deliver-${c.interfaceId}`, {
      action: 'send',
      channel: { $ref: `#/channels/${c.interfaceId}` },
      summary: `The DIP POSTs ${c.interfaceId} messages to the recipient's webhook. ${answer.description}`,
      messages: [{ $ref: `#/channels/${c.interfaceId}/messages/${c.interfaceId}` }],
    });
  }
  const { $schema: _d, ...status } = publishedSchema('StandardResponseArray');
  setOwn(schemas, 'StatusMessages', hoistDefinitions(status, schemas as never));
  setOwn(messages, STATUS_CHANNEL, {
    name: 'statusmessage',
    title: 'Status messages',
    summary: "Asynchronous status or errors a recipient reported (POST /statusmessage) on messages this participant sent; the DIP's own reports of undeliverable messages too.",
    contentType: 'application/json',
    headers,
    payload: { $ref: '#/components/schemas/StatusMessages' },
  });
  setOwn(channels, 'statusmessage', {
    address: null,
    title: 'Status messages',
    description: 'The callbackURL the participant registered with POST /statusmessage/config/{recipient-id}.',
    messages: { statusmessage: { $ref: `#/components/messages/${STATUS_CHANNEL}` } },
  });
  setOwn(operations, 'deliver-statusmessage', {
    action: 'send',
    channel: { $ref: '#/channels/statusmessage' },
    summary: `The DIP POSTs status messages to the participant's status-message webhook. ${answer.description}`,
    messages: [{ $ref: '#/channels/statusmessage/messages/statusmessage' }],
  });
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'OpenDIP webhooks',
      version: '2.1.0',
      description: `What this DIP (${environment}, DIP ID ${dipId}) sends to participants' webhooks, over HTTPS (outside DEV), each call signed. The participant API is in the OpenAPI document at /api/docs/json.`,
    },
    defaultContentType: 'application/json',
    channels,
    operations,
    components: { schemas, messages },
  };
}

/** GET /api/asyncapi.json: the document, made once. */
export const asyncApiRoutes = fp<RoutePluginOptions>(
  async (app, { deps }) => {
    let json: string | null = null;
    app.get('/api/asyncapi.json', { schema: { hide: true } }, async (_req, reply) => {
      json ??= JSON.stringify(asyncApiDocument(Catalogue.load(), deps.config.dipId, deps.config.environment));
      return reply.type('application/json; charset=utf-8').send(json);
    });
  },
  { name: 'asyncapi' },
);
