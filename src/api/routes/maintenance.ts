import type { FastifyPluginAsync } from 'fastify';
import { coversChannel, publicNotice } from '../../domain/maintenance.js';
import type { JsonSchema } from '../../catalogue/types.js';
import { MSG } from '../../domain/response-codes.js';
import type { RoutePluginOptions } from '../deps.js';
import { admitted } from '../guard.js';
import { readQuery, unknownParameter, type RawQuery } from '../query.js';
import { sendStandard } from '../request.js';
import { answers, GUARDED, signatureHeaders } from '../route-schemas.js';
import { compileReadQueryRouteSchema } from '../schemas.js';

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

/** A channel's interface ID, in any case (coversChannel compares it upper-cased); the querystring schema documents the same pattern. */
const CHANNEL_ID = /^[a-z]{2,4}-\d{3}$/i;

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
    // Documentation only (compileReadQueryRouteSchema): readQuery reads the name in any case, once; the route checks the value.
    querystring: {
      type: 'object',
      properties: { channel: { type: 'string', pattern: '^[A-Za-z]{2,4}-\\d{3}$', description: 'Only notices that concern this channel, e.g. IF-021' } },
    },
    response: answers(GUARDED, { 200: { type: 'object', description: 'The notices, soonest first', required: ['notices'], properties: { notices: { type: 'array', items: noticeSchema } } } }),
  };
  app.get<{ Querystring: RawQuery }>('/maintenance/notices', { config: { access: 'participant' }, schema, validatorCompiler: compileReadQueryRouteSchema }, async (req, reply) => {
    const refuse = (help: string) => sendStandard(deps, reply, 400, admitted(req).caller.dipId, MSG.schemaFailure, help);
    // A misspelt filter is refused, as on the publications routes: ignored, it answered every notice.
    const unknown = unknownParameter(req.query, ['channel'], 'a filter of the notices');
    if (unknown) return refuse(unknown.error);
    const q = readQuery<{ channel?: string }>(req.query, ['channel']);
    if ('error' in q) return refuse(q.error);
    const { channel } = q;
    if (channel !== undefined && !CHANNEL_ID.test(channel)) return refuse(`channel (query string) '${channel.slice(0, 40)}' is not a channel ID (two to four letters, a hyphen and three digits, e.g. IF-021)`);
    if (channel !== undefined && !maintenance.knowsChannel(channel)) return refuse(`channel (query string) '${channel}' is not a channel of this DIP`);
    const notices = (await maintenance.current()).filter((n) => channel === undefined || coversChannel(n, channel));
    return { notices: notices.map(publicNotice) };
  });
};
