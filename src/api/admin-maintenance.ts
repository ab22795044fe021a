import type { FastifyPluginAsync } from 'fastify';
import { MAX_TEXT, publicNotice } from '../domain/maintenance.js';
import type { Maintenance, MaintenanceChange } from '../pipeline/maintenance.js';
import type { MaintenanceInput } from '../domain/maintenance.js';
import { operatorOf, refuse } from './admin-operators.js';
import { noticeSchema } from './routes/maintenance.js';
import { answers } from './admin-schemas.js';
import type { JsonSchema } from '../catalogue/types.js';

const when = { type: 'string', minLength: 1, maxLength: 40, description: 'ISO-8601 with a zone, e.g. 2026-12-05T02:00:00Z' } as const;
const fields = {
  start: when,
  end: when,
  text: { type: 'string', minLength: 1, maxLength: MAX_TEXT },
  channels: { type: ['array', 'null'], maxItems: 500, items: { type: 'string', minLength: 1, maxLength: 20 }, description: 'absent, null or empty: the whole DIP' },
} as const;
const params = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 40, description: 'e.g. MN-3' } } } as const;
/** An act's answer: the notice, and how many addresses its announcement is being sent to (after the answer, in the background). */
const acted = (description: string): JsonSchema => ({
  ...noticeSchema,
  required: [...(noticeSchema.required as string[]), 'announcedTo'],
  properties: { ...(noticeSchema.properties as JsonSchema), announcedTo: { type: 'integer', description: 'The e-mail addresses and webhooks the notice is being sent to; sent after this answer, 8 at a time, failures logged per address' } },
  description,
});
const one = answers({ 200: acted('The notice as it is now') }, [404, 409]);
const tags = ['Maintenance notices'];

type Id = { Params: { id: string } };

/**
 * Maintenance notices on the operator API (spec 5.13.5): list (every notice, newest first), publish,
 * amend, withdraw, and show a notice's versions. The service journals each act with before and after.
 */
export const maintenanceAdminRoutes: FastifyPluginAsync<{ maintenance: Maintenance }> = async (app, { maintenance }) => {
  app.get('/admin/maintenance', { schema: { tags, summary: 'Every notice, newest first, withdrawn ones too', response: answers({ 200: { type: 'array', items: noticeSchema, description: 'The notices' } }) } }, async () => (await maintenance.all()).map(publicNotice));
  app.get<Id>('/admin/maintenance/:id', { schema: { tags, summary: "A notice's versions, oldest first", params, response: answers({ 200: { type: 'array', items: noticeSchema, description: 'Its versions' } }, [404]) } }, async (req, reply) => {
    try {
      return (await maintenance.history(req.params.id)).map(publicNotice);
    } catch (e) {
      return refuse(reply, e);
    }
  });
  app.post<{ Body: MaintenanceInput }>(
    '/admin/maintenance',
    { schema: { tags, summary: 'Publish a maintenance window for the whole DIP or named channels', body: { type: 'object', additionalProperties: false, required: ['start', 'end', 'text'], properties: fields }, response: answers({ 201: acted('Published') }) } },
    async (req, reply) => {
      try {
        const made = await maintenance.publish(req.body, operatorOf(req).actor);
        req.journaled = true;
        return await reply.code(201).send({ ...publicNotice(made), announcedTo: made.announcedTo });
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );
  app.patch<Id & { Body: MaintenanceChange }>(
    '/admin/maintenance/:id',
    {
      schema: {
        tags,
        summary: 'Amend a notice (a new version; participants see the change)',
        params,
        body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { ...fields, expectedVersion: { type: 'integer', minimum: 1 } } },
        response: one,
      },
    },
    async (req, reply) => {
      try {
        const changed = await maintenance.amend(req.params.id, req.body, operatorOf(req).actor);
        req.journaled = true;
        return { ...publicNotice(changed), announcedTo: changed.announcedTo };
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );
  app.post<Id & { Body: { expectedVersion?: number } }>(
    '/admin/maintenance/:id/withdraw',
    {
      schema: { tags, summary: 'Withdraw a notice', params, body: { type: 'object', additionalProperties: false, properties: { expectedVersion: { type: 'integer', minimum: 1 } } }, response: one },
      // A bare POST withdraws: no body is an empty one.
      preValidation: async (req) => {
        req.body ??= {};
      },
    },
    async (req, reply) => {
      try {
        const changed = await maintenance.withdraw(req.params.id, operatorOf(req).actor, req.body.expectedVersion);
        req.journaled = true;
        return { ...publicNotice(changed), announcedTo: changed.announcedTo };
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );
};
