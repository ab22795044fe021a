import type { ErrorObject } from 'ajv';
import type { FastifyPluginAsync } from 'fastify';
import { MSG } from '../../domain/response-codes.js';
import { batchTooLargeHelp, refusedWholeHelp, standardResponse } from '../../domain/standard-response.js';
import { STATUS_CHANNEL, type StatusEntry } from '../../pipeline/status.js';
import type { RoutePluginOptions } from '../deps.js';
import { admitted } from '../guard.js';
import { describeBodyErrors, describeItemErrors, publishedSchema } from '../schemas.js';
import { providerFor, sendStandard } from '../request.js';
import { answers, GUARDED, noBody, recipientParams, signatureHeaders } from '../route-schemas.js';
import { deleteWebhook, putWebhook, webhookConfigBody, type WebhookConfigRequest } from './pubconfig.js';

type ConfigRoute = { Params: { recipientId: string }; Body: WebhookConfigRequest };

/** The published StandardResponseBodyType's fields: what travels on to the original sender (extra fields do not). */
const ENTRY_FIELDS = ['transactionID', 'senderUniqueReference', 'correlationID', 'sentTimestamp', 'senderID', 'recipientID', 'DIPConnectionProviderID', 'message', 'help', 'serviceTicketURL'] as const;

/** The published answers of POST /statusmessage (API 2.1.0). */
const PUBLISHED = [201, 400, 401, 403, 404, 405, 406, 408, 413, 429, 500, 502, 503, 504, 505];

/** POST /statusmessage, and a participant's status-message webhook at /statusmessage/config/{recipient-id}. */
export const statusRoutes: FastifyPluginAsync<RoutePluginOptions> = async (app, { deps }) => {
  const tags = ['Status Messages'];
  app.post<{ Body: StatusEntry[] }>(
    '/statusmessage',
    {
      config: { access: 'participant', jsonValuesPerItem: true },
      // A batch, as large as a batch of messages may be (the other guarded operations take the small limit).
      bodyLimit: deps.config.bodyLimitBytes,
      // A schema failure is answered by the handler, per entry, as a batch of messages is.
      attachValidation: true,
      // As a batch of messages (README, maxBatchMessages): refused 413 before its entries are validated.
      preValidation: async (req, reply) => {
        const max = deps.config.maxBatchMessages;
        if (!Array.isArray(req.body) || req.body.length <= max) return;
        return sendStandard(deps, reply, 413, admitted(req).caller.dipId, MSG.schemaFailure, batchTooLargeHelp(req.body.length, max, 'status messages'));
      },
      schema: {
        operationId: 'submitStatusMessage',
        tags,
        summary: 'Submit a series of status messages',
        description:
          "A recipient's asynchronous status or error on messages it received, carried back to their original sender (its status-message webhook, or its pull queue). `senderUniqueReference` is relayed as the named transaction's own (the sender's reference for its message; another value would misfile the report at the sender): a different one is set right, and the answer's `help` for that entry says so. `message`, `help` and `serviceTicketURL` are relayed as text on one line: a control character (U+0000-U+001F, U+007F-U+009F) is refused 400 MSG1001 naming the field.",
        headers: signatureHeaders,
        body: { ...publishedSchema('StandardResponseArray'), description: 'StandardResponseArray: one entry per message the status is about, one to the configured maximum (maxBatchMessages, 1000 by default; more is 413)' },
        response: answers(PUBLISHED),
      },
    },
    async (req, reply) => {
      const { caller } = admitted(req);
      const answered = (e: StatusEntry) => ({ transactionID: e.transactionID, senderUniqueReference: e.senderUniqueReference, correlationID: e.correlationID, DIPConnectionProviderID: providerFor(req, caller.dipId) });
      if (req.validationError) {
        const errors = (req.validationError as Error & { validation: ErrorObject[] }).validation;
        const perItem = Array.isArray(req.body) ? describeItemErrors(errors) : null;
        if (!perItem) return sendStandard(deps, reply, 400, caller.dipId, MSG.schemaFailure, describeBodyErrors(errors));
        // Refused whole, one entry per status message: its own IDs where they are strings, the failing ones named.
        const text = (v: unknown) => (typeof v === 'string' ? v : null);
        const given = (e: unknown) => (typeof e === 'object' && e !== null ? (e as Record<string, unknown>) : {});
        const refused = (req.body as unknown[]).map((e, i) => ({
          transactionID: text(given(e)['transactionID']),
          senderUniqueReference: text(given(e)['senderUniqueReference']),
          correlationID: text(given(e)['correlationID']),
          DIPConnectionProviderID: providerFor(req, caller.dipId),
          message: perItem.has(i) ? MSG.schemaFailure : MSG.processingFailed,
          help: perItem.get(i) ?? refusedWholeHelp([...perItem.keys()]),
        }));
        return reply.code(400).send(standardResponse(new Date(deps.clock.now()), deps.config.dipId, caller.dipId, refused));
      }
      const entries = req.body.map((e) => Object.fromEntries(ENTRY_FIELDS.map((k) => [k, e[k]])) as StatusEntry);
      const outcome = await deps.status.fromRecipient(caller.dipId, entries, (id) => deps.registry.actingAs(caller, id) !== undefined);
      if (!outcome.ok) {
        // Refused whole, answered as a batch of messages is: one entry per status message, in the order sent.
        const failing = outcome.refusals.flatMap((r, i) => (r ? [i] : []));
        const refused = entries.map((e, i) => {
          const r = outcome.refusals[i];
          return { ...answered(e), message: r?.code ?? MSG.processingFailed, help: r?.help ?? refusedWholeHelp(failing) };
        });
        return reply.code(outcome.status).send(standardResponse(new Date(deps.clock.now()), deps.config.dipId, caller.dipId, refused));
      }
      deps.delivery.notify(outcome.queues);
      // Each entry as the caller sent it, with what the DIP set right before relaying it (its help), or
      // where it went instead when it is about a message the DIP itself sent.
      const toOperator = new Set(outcome.toOperator);
      const operatorHelp = (e: StatusEntry) => `transaction ${e.transactionID} was sent by the DIP itself: this status message is recorded for the DIP's operator (journal), not queued`;
      const response = standardResponse(new Date(deps.clock.now()), deps.config.dipId, caller.dipId, entries.map((e, i) => ({ ...answered(e), message: MSG.success, help: toOperator.has(i) ? operatorHelp(e) : (outcome.notes[i] ?? null) })));
      return reply.code(201).send(response);
    },
  );

  const url = '/statusmessage/config/:recipientId';
  app.post<ConfigRoute>(
    url,
    {
      config: { access: 'self' },
      schema: {
        operationId: 'postStatusMsgWebhook',
        tags,
        summary: 'Webhook to pull a series of status messages',
        description: 'Registers (or replaces) where the DIP POSTs the status messages addressed to the participant.',
        params: recipientParams,
        headers: signatureHeaders,
        body: webhookConfigBody,
        response: answers([201, ...GUARDED]),
      },
    },
    async (req, reply) => putWebhook(deps, reply, admitted(req).caller.dipId, STATUS_CHANNEL, req.body, admitted(req).authenticated.dipId),
  );

  app.delete<ConfigRoute>(
    url,
    {
      config: { access: 'self' },
      schema: {
        operationId: 'deleteStatusMsgWebhook',
        tags,
        summary: 'Delete existing Status Message configuration',
        params: recipientParams,
        headers: signatureHeaders,
        response: answers(GUARDED, { 204: noBody(204) }),
      },
    },
    async (req, reply) => deleteWebhook(deps, reply, admitted(req).caller.dipId, STATUS_CHANNEL, admitted(req).authenticated.dipId),
  );
};
