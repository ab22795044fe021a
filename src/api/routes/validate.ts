import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Catalogue } from '../../catalogue/catalogue.js';
import type { RoutePluginOptions } from '../deps.js';
import { COMPONENT_MARK } from '../openapi.js';
import { evidence } from '../request.js';
import { answers, messageBatch, signatureHeaders } from '../route-schemas.js';
import { compileRawBodyRouteSchema } from '../schemas.js';

/**
 * Every answer of these routes is sent already serialised (a StandardResponse or the published string),
 * so the response schemas document them and no serialiser is compiled for each of the 150 routes.
 */
const preSerialisedAnswers = () => (data: unknown) => JSON.stringify(data);

/** The published answers of every /validate/{IF}/{event} operation (API 2.1.0). */
const PUBLISHED = [201, 400, 500];
/** Also answered: a call that is not signed or whose caller may not send (authentication, as on submission). */
const ALSO = [401, 403, 404, 413, 429];

/**
 * The answer: the published JSON string, or (config api.validateAnswer 'standard-response') a StandardResponse.
 * Both are sent as they are; the serialiser is not given a choice between them.
 */
const answer = (code: number) => {
  // The StandardResponse's draft-07 definitions stay at the root, where its references point.
  const { definitions, $schema: _dialect, description: _d, [COMPONENT_MARK]: _mark, ...standard } = answers([code])[code]!;
  return {
    description: `${code === 201 ? 'Message OK' : 'The message, or the call, is refused'}: the published JSON string (each item's message and help), or a StandardResponse when api.validateAnswer is 'standard-response'`,
    anyOf: [standard, { type: 'string' }],
    definitions,
  };
};


/**
 * POST /validate/{interface}/{event}: the published debugging endpoints (127 in API 2.1.0), served for
 * every event code of every channel of the catalogue in force. A dry run of submission: the ingest
 * pipeline's own checks (Ingest.validate), storing, routing and reserving nothing. Answers 201 or 400; as
 * the published JSON string, or (config api.validateAnswer 'standard-response') as a StandardResponse.
 *
 * Each published endpoint is its own route, answered from the bundled catalogue with its channel's
 * schema as its documented body (so the OpenAPI document lists them as the published API does); the
 * parametric route answers the event codes of a newer catalogue imported at run time, and any case.
 */
export const validateRoutes: FastifyPluginAsync<RoutePluginOptions> = async (app, { deps }) => {
  const validate = async (req: FastifyRequest, reply: FastifyReply, channelId: string, eventCode: string) => {
    const result = await deps.ingest.validate({ ...evidence(deps, req), channelId, eventCode });
    deps.clockCheck?.dated(result.dated);
    if (deps.config.api.validateAnswer === 'standard-response') return reply.code(result.status).type('application/json').send(JSON.stringify(result.response));
    const text = result.response.messageArray.map((e) => (e.help ? `${e.message}: ${e.help}` : e.message)).join(' | ');
    return reply.code(result.status).type('application/json').send(JSON.stringify(text));
  };
  const tags = ['DIP Message Validation Endpoints'];
  const response = { ...answers(ALSO), ...Object.fromEntries(PUBLISHED.map((c) => [c, answer(c)])) };

  app.post<{ Params: { id: string; event: string } }>(
    '/validate/:id/:event',
    {
      // The pipeline authenticates the caller, and checks the body's depth before it parses it (on an ingest thread when there are some).
      config: { jsonDepthCheckedByPipeline: true, authenticatesInRoute: true },
      validatorCompiler: compileRawBodyRouteSchema,
      serializerCompiler: preSerialisedAnswers,
      schema: {
        operationId: 'validateAny',
        tags,
        summary: 'Validate messages of any channel and event code of the catalogue in force (OpenDIP)',
        description: 'The published endpoints below, for every event code of the catalogue in force (an imported newer one included), in any case.',
        params: {
          type: 'object',
          required: ['id', 'event'],
          properties: { id: { type: 'string', description: 'Interface ID' }, event: { type: 'string', description: 'Event code, without brackets' } },
        },
        headers: signatureHeaders,
        body: messageBatch({ type: 'object' }, "Messages of the channel with this event code: the channel's schema applies"),
        response,
      },
    },
    async (req, reply) => validate(req, reply, req.params.id, req.params.event),
  );

  const bundled = Catalogue.load();
  for (const channel of bundled.channels()) {
    const id = channel.interfaceId;
    const schema = bundled.schema(id);
    if (!schema) continue;
    const item = { ...schema, [COMPONENT_MARK]: id };
    for (const event of channel.eventCodes) {
      app.post(
        `/validate/${id}/${event}`,
        {
          // The pipeline authenticates the caller, and checks the body's depth before it parses it (on an ingest thread when there are some).
          config: { jsonDepthCheckedByPipeline: true, authenticatesInRoute: true },
          validatorCompiler: compileRawBodyRouteSchema,
          serializerCompiler: preSerialisedAnswers,
          schema: {
            operationId: `validate-${id}-${event}`,
            tags,
            summary: `Submit ${id} with Event Code ${event} message for validation`,
            description: `Validates one or more ${id} ${event} messages as submission would (schema, environment tag, sender and roles against the caller, sender timestamp, routing), for debugging: nothing is stored, routed or reserved; a sender unique reference accepted before is not looked for.`,
            headers: signatureHeaders,
            body: messageBatch(item, `${id} messages with event code [${event}]`),
            response,
          },
        },
        async (req, reply) => validate(req, reply, id, event),
      );
    }
  }
};
