import type { FastifyInstance } from 'fastify';
import { MAX_TEXT, publicNotice } from '../domain/maintenance.js';
import type { Maintenance, MaintenanceChange } from '../pipeline/maintenance.js';
import type { MaintenanceInput } from '../domain/maintenance.js';
import { operatorOf, refuse } from './admin-operators.js';
import { noticeSchema } from './routes/maintenance.js';

const when = { type: 'string', minLength: 1, maxLength: 40, description: 'ISO-8601 with a zone, e.g. 2026-12-05T02:00:00Z' } as const;
const fields = {
  start: when,
  end: when,
  text: { type: 'string', minLength: 1, maxLength: MAX_TEXT },
  channels: { type: 'array', nullable: true, maxItems: 500, items: { type: 'string', minLength: 1, maxLength: 20 }, description: 'absent, null or empty: the whole DIP' },
} as const;
const params = { type: 'object', properties: { id: { type: 'string', maxLength: 40 } } } as const;
const one = { 200: noticeSchema } as const;

type Id = { Params: { id: string } };

/**
 * Maintenance notices on the operator API (spec 5.13.5): list (every notice, newest first), publish,
 * amend, withdraw, and show a notice's versions. The service journals each act with before and after.
 */
export function registerMaintenanceAdminRoutes(app: FastifyInstance, maintenance: Maintenance): void {
  app.get('/admin/maintenance', { schema: { response: { 200: { type: 'array', items: noticeSchema } } } }, async () => (await maintenance.all()).map(publicNotice));
  app.get<Id>('/admin/maintenance/:id', { schema: { params, response: { 200: { type: 'array', items: noticeSchema } } } }, async (req, reply) => {
    try {
      return (await maintenance.history(req.params.id)).map(publicNotice);
    } catch (e) {
      return refuse(reply, e);
    }
  });
  app.post<{ Body: MaintenanceInput }>(
    '/admin/maintenance',
    { schema: { body: { type: 'object', additionalProperties: false, required: ['start', 'end', 'text'], properties: fields }, response: { 201: noticeSchema } } },
    async (req, reply) => {
      try {
        const made = await maintenance.publish(req.body, operatorOf(req).actor);
        req.journaled = true;
        return await reply.code(201).send(publicNotice(made));
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );
  app.patch<Id & { Body: MaintenanceChange }>(
    '/admin/maintenance/:id',
    {
      schema: {
        params,
        body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { ...fields, expectedVersion: { type: 'integer', minimum: 1 } } },
        response: one,
      },
    },
    async (req, reply) => {
      try {
        const changed = await maintenance.amend(req.params.id, req.body, operatorOf(req).actor);
        req.journaled = true;
        return publicNotice(changed);
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );
  app.post<Id & { Body: { expectedVersion?: number } }>(
    '/admin/maintenance/:id/withdraw',
    {
      schema: { params, body: { type: 'object', additionalProperties: false, properties: { expectedVersion: { type: 'integer', minimum: 1 } } }, response: one },
      // A bare POST withdraws: no body is an empty one.
      preValidation: async (req) => {
        req.body ??= {};
      },
    },
    async (req, reply) => {
      try {
        const changed = await maintenance.withdraw(req.params.id, operatorOf(req).actor, req.body.expectedVersion);
        req.journaled = true;
        return publicNotice(changed);
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );
}
