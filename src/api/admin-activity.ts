import type { FastifyPluginAsync } from 'fastify';
import { maskedBody, maskedUrl } from '../domain/activity.js';
import type { ActivityLogStore } from '../ports/activity-log.js';
import type { ActivityLogDamage } from '../pipeline/activity-damage.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import { operatorOf } from './admin-operators.js';
import { answers } from './admin-schemas.js';

export interface ActivityRouteOptions {
  store: Pick<ActivityLogStore, 'recent'>;
  /** The losses and damage not acknowledged (GET /admin/health's `activityLog`); absent: nothing to acknowledge here. */
  damage?: Pick<ActivityLogDamage, 'current' | 'acknowledge'>;
  journal?: Pick<OperatorJournal, 'append'>;
  now(): number;
}

const record = {
  type: 'object',
  required: ['requestId', 'at', 'listener', 'caller', 'remote', 'method', 'url', 'status', 'durationMs', 'responseBody', 'chain', 'seq'],
  properties: {
    requestId: { type: 'string', description: 'The ID answered in x-request-id' },
    at: { type: 'string', format: 'date-time' },
    listener: { type: 'string', description: '`participant`, `operator`, …' },
    caller: { type: ['string', 'null'], description: "Who the request came from, when known: a DIP ID; on the operator API the journal's actor, `operator:<name>` or `bootstrap` (records written by earlier versions say `operator:bootstrap`); on the portals `user:<name>` or `operator:<name>`" },
    actingFor: { type: ['string', 'null'], description: 'The participant a DIP Connection Provider (the caller) called for; null when the caller acted for itself' },
    remote: { type: ['string', 'null'] },
    method: { type: 'string' },
    url: { type: 'string' },
    status: { type: ['integer', 'null'], description: 'Null: refused before HTTP (a failed TLS handshake)' },
    durationMs: { type: 'number' },
    responseBody: { type: ['string', 'null'], description: 'The answer, personal data masked' },
    chain: { type: 'string' },
    seq: { type: 'integer' },
  },
} as const;

const HOUR = 3_600_000;

/**
 * The API activity log (spec 5.8.1) for operators: the requests of a period, newest first, every caller's
 * or one caller's, one request by its ID, or those answered at or above a status. A whole period in arrival order, for auditors, is `dip audit export`.
 */
export const activityRoutes: FastifyPluginAsync<ActivityRouteOptions> = async (app, o) => {
  app.get<{ Querystring: { from?: string; to?: string; caller?: string; requestId?: string; minStatus?: number; limit?: number } }>(
    '/admin/activity',
    {
      // Reading the log is logged, but not what it answered: that would copy every record into a new one.
      config: { keepAnswer: false },
      schema: {
        tags: ['Activity log'],
        summary: 'Requests to every listener, newest first (default: the last hour)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            from: { type: 'string', format: 'date-time', description: 'From (inclusive); default an hour before `to`, or with `requestId` the log\'s start' },
            to: { type: 'string', format: 'date-time', description: 'Up to (exclusive); default now' },
            caller: { type: 'string', maxLength: 100, description: 'Only this caller: a DIP ID (its own requests and those its DIP Connection Provider made for it) or operator:<name>' },
            requestId: { type: 'string', minLength: 1, maxLength: 200, description: 'Only the request answered with this `x-request-id` (as a participant quotes it; indexed): over the whole log unless `from` is given' },
            minStatus: { type: 'integer', minimum: 100, maximum: 599, description: 'Only requests answered with this HTTP status or above (400: every refusal); a handshake refused before HTTP has none and is left out' },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 200 },
          },
        },
        response: answers({ 200: { type: 'array', items: record, description: 'The records, newest first' } }, [400]),
      },
    },
    async (req, reply) => {
      const { caller, requestId, minStatus } = req.query;
      const toMs = req.query.to ? Date.parse(req.query.to) : o.now();
      // A request looked up by its ID is found whenever it was made (the index finds it): one call, whatever its age.
      const fromMs = req.query.from ? Date.parse(req.query.from) : requestId !== undefined ? 0 : toMs - HOUR;
      if (!(fromMs < toMs)) return reply.code(400).send({ error: `from (${req.query.from ?? ''}) must be before to (${req.query.to ?? ''})` });
      const filter = { ...(caller !== undefined ? { caller } : {}), ...(requestId !== undefined ? { requestId } : {}), ...(minStatus !== undefined ? { minStatus } : {}) };
      const records = await o.store.recent(fromMs, toMs, req.query.limit ?? 200, filter);
      // Masked again as read: records written before credentials were masked still hold them (the stored
      // rows and their hash chain stay as they are; `dip audit export` gives them whole to the host).
      return records.map((r) => ({ ...r, actingFor: r.actingFor ?? null, url: maskedUrl(r.url), responseBody: maskedBody(r.responseBody, Number.MAX_SAFE_INTEGER), prevHash: undefined, hash: undefined, at: new Date(r.at).toISOString() }));
    },
  );
  const { damage, journal } = o;
  if (!damage || !journal) return;
  app.post(
    '/admin/activity/damage/acknowledge',
    {
      schema: {
        tags: ['Activity log'],
        summary: 'Acknowledge the losses and damage of the activity log that GET /admin/health shows (journalled)',
        description:
          "Once they are dealt with (activity.db restored from a backup, or the gap noted for the audit: docs/disaster-recovery.md): GET /admin/health's activityLog is no longer `damaged` and the `storage` alarm (key storage-activity-wal-loss) resolves. The losses stay in activity.db (dip audit verify lists them) with who acknowledged them and when; journalled `activity-log.damage-acknowledge`. One found after this call is shown again.",
        response: answers(
          {
            200: {
              type: 'object',
              required: ['acknowledged'],
              description: 'What was acknowledged, oldest first',
              properties: { acknowledged: { type: 'array', items: { type: 'object', required: ['at', 'lost'], properties: { at: { type: 'integer', description: 'epoch ms: when it was found' }, lost: { type: 'string' } } } } },
            },
          },
          [409],
        ),
      },
    },
    async (req, reply) => {
      const found = damage.current();
      if (found === null) return reply.code(409).send({ error: 'the activity log has no loss or damage to acknowledge (GET /admin/health shows activityLog ok)' });
      const actor = operatorOf(req).actor;
      // Journalled first: an acknowledgement the journal does not hold would be an act nobody can be asked about.
      req.journaled = true;
      await journal.append({ at: o.now(), actor, action: 'activity-log.damage-acknowledge', target: 'activity.db', before: { damaged: found.found }, after: null, status: 200 });
      return { acknowledged: await damage.acknowledge(actor, o.now()) };
    },
  );
};
