import type { FastifyInstance } from 'fastify';
import type { ChannelAvailability } from '../domain/channel.js';
import type { ChannelChange, ChannelSettings } from '../pipeline/channel-settings.js';
import { operatorOf, refuse } from './admin-operators.js';

const roles = { type: 'array', nullable: true, maxItems: 100, items: { type: 'string', maxLength: 5 } } as const;
/** ChannelOverride (src/domain/channel.ts), every field optional and nullable (null: back to the catalogue's). */
const settingsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    senderRoles: roles,
    receiverRoles: roles,
    alwaysRoles: roles,
    alwaysParticipants: { type: 'array', nullable: true, maxItems: 1000, items: { type: 'string', maxLength: 10 } },
    workflowStarter: { type: 'boolean', nullable: true },
    staleAfterMinutes: { type: 'number', nullable: true },
    archiveRetentionDays: { type: 'integer', nullable: true },
    obfuscation: { type: 'object', nullable: true, additionalProperties: { type: 'array', maxItems: 100, items: { type: 'string', maxLength: 500 } } },
    mpanFeed: { type: 'boolean', nullable: true },
    addressingDate: { type: 'string', nullable: true, maxLength: 500 },
    securityPattern: { type: 'integer', nullable: true, enum: [0, 1, 2, 3, null] },
    securityCategory: { type: 'integer', nullable: true, enum: [1, 2, 3, 4, null] },
  },
} as const;
const stringList = { type: 'array', items: { type: 'string' } } as const;
const channelView = {
  type: 'object',
  properties: {
    channel: { type: 'string' },
    name: { type: 'string' },
    version: { type: 'integer' },
    state: { type: 'string', enum: ['active', 'paused', 'withdrawn'] },
    optIn: { type: 'boolean' },
    note: { type: 'string' },
    changedAt: { type: 'string', nullable: true },
    changedBy: { type: 'string', nullable: true },
    settings: { type: 'object', additionalProperties: true },
    inForce: {
      type: 'object',
      properties: {
        senderRoles: stringList,
        receiverRoles: stringList,
        alwaysRoles: stringList,
        alwaysParticipants: stringList,
        securityPattern: { type: 'integer' },
        staleAfterMinutes: { type: 'number' },
      },
    },
  },
} as const;
const params = { type: 'object', properties: { id: { type: 'string', maxLength: 20 } } } as const;
const stateBody = {
  type: 'object',
  additionalProperties: false,
  properties: { note: { type: 'string', maxLength: 1000 }, expectedVersion: { type: 'integer', minimum: 0 } },
} as const;

type Id = { Params: { id: string } };

/**
 * Channel management on the operator API (spec 5.3): list and show channels with their settings version
 * and the routing in force, change overrides, pause, resume, withdraw, show history, roll back.
 */
export function registerChannelAdminRoutes(app: FastifyInstance, channels: ChannelSettings): void {
  app.get('/admin/channels', { schema: { response: { 200: { type: 'array', items: channelView } } } }, async () => channels.list());
  app.get<Id>('/admin/channels/:id', { schema: { params, response: { 200: channelView } } }, async (req, reply) => {
    try {
      return channels.show(req.params.id);
    } catch (e) {
      return refuse(reply, e);
    }
  });
  app.get<Id>('/admin/channels/:id/history', { schema: { params } }, async (req, reply) => {
    try {
      return await channels.history(req.params.id);
    } catch (e) {
      return refuse(reply, e);
    }
  });
  app.patch<Id & { Body: ChannelChange }>(
    '/admin/channels/:id',
    {
      schema: {
        params,
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: { settings: settingsSchema, optIn: { type: 'boolean' }, note: { type: 'string', maxLength: 1000 }, expectedVersion: { type: 'integer', minimum: 0 } },
        },
        response: { 200: channelView },
      },
    },
    async (req, reply) => {
      try {
        const changed = await channels.change(req.params.id, req.body, operatorOf(req).actor);
        req.journaled = true;
        return changed;
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );
  const states: Array<[string, ChannelAvailability]> = [
    ['pause', 'paused'],
    ['resume', 'active'],
    ['withdraw', 'withdrawn'],
  ];
  for (const [verb, state] of states) {
    app.post<Id & { Body: { note?: string; expectedVersion?: number } }>(
      `/admin/channels/:id/${verb}`,
      {
        schema: { params, body: stateBody, response: { 200: channelView } },
        // The body is optional (a bare POST pauses): no body is an empty one.
        preValidation: async (req) => {
          req.body ??= {};
        },
      },
      async (req, reply) => {
        try {
          const changed = await channels.setState(req.params.id, state, operatorOf(req).actor, req.body.note, req.body.expectedVersion);
          req.journaled = true;
          return changed;
        } catch (e) {
          return refuse(reply, e);
        }
      },
    );
  }
  app.post<Id & { Body: { version: number; note?: string } }>(
    '/admin/channels/:id/rollback',
    {
      schema: {
        params,
        body: { type: 'object', additionalProperties: false, required: ['version'], properties: { version: { type: 'integer', minimum: 1 }, note: { type: 'string', maxLength: 1000 } } },
        response: { 200: channelView },
      },
    },
    async (req, reply) => {
      try {
        const changed = await channels.rollback(req.params.id, req.body.version, operatorOf(req).actor, req.body.note);
        req.journaled = true;
        return changed;
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );
}
