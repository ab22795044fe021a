import type { FastifyPluginAsync } from 'fastify';
import type { ChannelAvailability } from '../domain/channel.js';
import type { ChannelChange, ChannelSettings } from '../pipeline/channel-settings.js';
import { operatorOf, refuse } from './admin-operators.js';
import { answers, epochMs, isoTime } from './admin-schemas.js';

const roles = { type: ['array', 'null'], maxItems: 100, items: { type: 'string', maxLength: 5 } } as const;
/** ChannelOverride (src/domain/channel.ts), every field optional and nullable (null: back to the catalogue's). */
const settingsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    senderRoles: roles,
    receiverRoles: roles,
    alwaysRoles: roles,
    alwaysParticipants: { type: ['array', 'null'], maxItems: 1000, items: { type: 'string', maxLength: 10 } },
    workflowStarter: { type: ['boolean', 'null'] },
    staleAfterMinutes: { type: ['number', 'null'], description: 'Undelivered this long: dead-lettered, sender told. Below 14 days (20160, spec 5.4) only with allowShortRetention: true' },
    allowShortRetention: { type: ['boolean', 'null'], description: 'The operator means a staleAfterMinutes below the 14 days spec 5.4 keeps an offline recipient\'s messages for' },
    archiveRetentionDays: { type: ['integer', 'null'] },
    obfuscation: { type: ['object', 'null'], additionalProperties: { type: 'array', maxItems: 100, items: { type: 'string', maxLength: 500 } } },
    mpanFeed: { type: ['boolean', 'null'] },
    addressingDate: { type: ['string', 'null'], maxLength: 500 },
    securityPattern: { type: ['integer', 'null'], enum: [0, 1, 2, 3, null] },
    securityCategory: { type: ['integer', 'null'], enum: [1, 2, 3, 4, null] },
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
    changedAt: { type: ['string', 'null'] },
    changedBy: { type: ['string', 'null'] },
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
    warnings: {
      ...stringList,
      description: "Taken as they are, but said: obfuscation rules that remove a field the channel's published schema requires, mask a value whose constraints 'x' breaks (every copy for that role then fails the schema; strict recipients answer 400), or name nothing; a staleness in force below spec 5.4's 14 days (acknowledged by allowShortRetention)",
    },
  },
} as const;
const params = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 20, description: 'Channel (interface) ID, e.g. IF-021' } } } as const;
/** One version of a channel's settings, as kept (every change makes a new one). */
const settingsVersion = {
  type: 'object',
  required: ['channel', 'version', 'state', 'settings', 'optIn', 'note', 'at', 'by', 'changedAt'],
  properties: {
    channel: { type: 'string' },
    version: { type: 'integer' },
    state: { type: 'string', enum: ['active', 'paused', 'withdrawn'] },
    settings: { type: 'object', additionalProperties: true, description: 'The overrides in this version (ChannelOverride)' },
    optIn: { type: 'boolean' },
    note: { type: 'string' },
    at: epochMs,
    by: { type: 'string' },
    changedAt: isoTime,
  },
} as const;
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
export const channelAdminRoutes: FastifyPluginAsync<{ channels: ChannelSettings }> = async (app, { channels }) => {
  const tags = ['Channels'];
  const view = (description: string) => ({ ...channelView, description });
  app.get('/admin/channels', { schema: { tags, summary: 'Every channel: its settings version and the routing in force', response: answers({ 200: { type: 'array', items: channelView, description: 'The channels' } }) } }, async () => channels.list());
  app.get<Id>('/admin/channels/:id', { schema: { tags, summary: 'One channel', params, response: answers({ 200: view('The channel') }, [404]) } }, async (req, reply) => {
    try {
      return channels.show(req.params.id);
    } catch (e) {
      return refuse(reply, e);
    }
  });
  app.get<Id>('/admin/channels/:id/history', { schema: { tags, summary: "Every version of a channel's settings, oldest first", params, response: answers({ 200: { type: 'array', items: settingsVersion, description: 'The versions' } }, [404]) } }, async (req, reply) => {
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
        tags,
        summary: "Change a channel's overrides (null: back to the catalogue's) or opt-in",
        description:
          'A property the body or its settings does not list is refused (400 naming it and the known fields). A patch naming neither an override nor optIn is refused (400); one that leaves the settings and opt-in as they are answers the channel unchanged and records no version (the operator journal keeps the attempt as `channel.change.no-op`).',
        params,
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: { settings: settingsSchema, optIn: { type: 'boolean' }, note: { type: 'string', maxLength: 1000 }, expectedVersion: { type: 'integer', minimum: 0 } },
        },
        response: answers({ 200: view('The channel as changed') }, [404, 409]),
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
        schema: { tags, summary: `${verb[0]!.toUpperCase()}${verb.slice(1)} the channel (state ${state})`, params, body: stateBody, response: answers({ 200: view('The channel as changed') }, [404, 409]) },
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
        tags,
        summary: "Roll the channel's settings back to an earlier version (as a new version)",
        params,
        body: { type: 'object', additionalProperties: false, required: ['version'], properties: { version: { type: 'integer', minimum: 1 }, note: { type: 'string', maxLength: 1000 } } },
        response: answers({ 200: view('The channel as changed') }, [404, 409]),
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
};
