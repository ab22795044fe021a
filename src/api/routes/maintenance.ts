import type { FastifyPluginAsync } from 'fastify';
import { coversChannel, publicNotice } from '../../domain/maintenance.js';
import type { JsonSchema } from '../../catalogue/types.js';
import type { RoutePluginOptions } from '../deps.js';
import { answers, GUARDED, signatureHeaders } from '../route-schemas.js';

/** PublicNotice (src/domain/maintenance.ts), as every participant and webhook sees a notice. */
export const noticeSchema: JsonSchema = {
  type: 'object',
  required: ['id', 'version', 'start', 'end', 'text', 'scope', 'channels', 'state', 'publishedAt', 'changedAt'],
  properties: {
    id: { type: 'string', description: 'e.g. MN-3; stays the same when the notice is amended' },
    version: { type: 'integer', description: '1 when published, one more for each amendment' },
    start: { type: 'string', format: 'date-time', description: 'Start of the window (UTC)' },
    end: { type: 'string', format: 'date-time', description: 'End of the window (UTC)' },
    text: { type: 'string', description: 'What is maintained and what to expect' },
    scope: { type: 'string', enum: ['dip', 'channels'], description: '`dip`: the whole DIP; `channels`: only those listed' },
    channels: { type: 'array', items: { type: 'string' }, description: 'The channels concerned (empty for the whole DIP)' },
    state: { type: 'string', enum: ['published', 'withdrawn'] },
    publishedAt: { type: 'string', format: 'date-time' },
    changedAt: { type: 'string', format: 'date-time' },
  },
};

/**
 * Maintenance notices (spec 5.13.5; OpenDIP extension), signed like every call: the windows published and
 * not yet over, soonest first, optionally only those that concern one channel (DIP-wide notices always do).
 */
export const maintenanceRoutes: FastifyPluginAsync<RoutePluginOptions> = async (app, { deps }) => {
  const maintenance = deps.maintenance;
  if (!maintenance) return;
  const schema = {
    operationId: 'maintenanceNotices',
    tags: ['Maintenance (OpenDIP)'],
    summary: 'Maintenance windows announced and not yet over: the whole DIP or named channels',
    headers: signatureHeaders,
    querystring: {
      type: 'object',
      additionalProperties: false,
      properties: { channel: { type: 'string', pattern: '^[A-Za-z]{2,4}-\\d{3}$', description: 'Only notices that concern this channel, e.g. IF-021' } },
    },
    response: answers(GUARDED, { 200: { type: 'object', description: 'The notices, soonest first', required: ['notices'], properties: { notices: { type: 'array', items: noticeSchema } } } }),
  };
  app.get<{ Querystring: { channel?: string } }>('/maintenance/notices', { config: { access: 'participant' }, schema }, async (req) => {
    const channel = req.query.channel;
    const notices = (await maintenance.current()).filter((n) => channel === undefined || coversChannel(n, channel));
    return { notices: notices.map(publicNotice) };
  });
};
