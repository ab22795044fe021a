import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ParticipantLifecycle } from '../pipeline/participant-lifecycle.js';
import type { RegisterPull } from '../pipeline/register-pull.js';
import { RegisterFetchError } from '../ports/register-source.js';
import { OFFBOARD_ROUTE, operatorRefusal } from '../domain/operators.js';
import { carriesCredentials, shownUrl } from '../domain/url-secrets.js';
import { operatorOf, refuse } from './admin-operators.js';
import { answers, epochMs } from './admin-schemas.js';

const applyResult = {
  type: 'object',
  description: 'What the feed changed (nothing, when it was refused)',
  required: ['participants', 'changed', 'unchanged', 'withoutDipId', 'rolesChanged', 'rescinded'],
  properties: {
    participants: { type: 'integer' },
    changed: { type: 'array', items: { type: 'string' } },
    unchanged: { type: 'integer' },
    withoutDipId: { type: 'integer' },
    rolesChanged: {
      type: 'array',
      items: { type: 'object', properties: { dipId: { type: 'string' }, granted: { type: 'array', items: { type: 'string' } }, revoked: { type: 'array', items: { type: 'string' } } } },
    },
    rescinded: { type: 'array', items: { type: 'string' } },
  },
} as const;
const registerEntry = {
  type: 'object',
  required: ['dipId', 'companyRegNumber', 'companyName', 'rows'],
  properties: {
    dipId: { type: 'string' },
    companyRegNumber: { type: 'string' },
    companyName: { type: ['string', 'null'] },
    rows: {
      type: 'array',
      items: {
        type: 'object',
        required: ['mpid', 'marketRole', 'role', 'from', 'to'],
        properties: { mpid: { type: 'string' }, marketRole: { type: ['string', 'null'] }, role: { type: 'string' }, from: epochMs, to: { type: ['integer', 'null'], description: 'Until when (epoch ms); null: open-ended' } },
      },
    },
  },
} as const;
/**
 * Why the caller may not rescind participants, or null: a feed that rescinds offboards, which revokes
 * certificates, so it is refused to whoever may not offboard by hand (a scheduled pull is the DIP's own).
 */
function offboardRefusalOf(req: FastifyRequest): string | null {
  const who = operatorOf(req);
  const refusal = operatorRefusal(who.role, 'POST', OFFBOARD_ROUTE);
  return refusal === null ? null : `operator ${who.name} (${who.role}) may not rescind participants: ${refusal}`;
}

const rolesAnswer = (description: string) => ({ type: 'object', required: ['roles'], properties: { roles: { type: 'array', items: { type: 'string' } } }, description }) as const;

/**
 * The central register feed on the operator API (spec 5.7.1): apply a feed given in the body (a file
 * import), pull one from the register's HTTP endpoint with its own credentials, list what the DIP holds;
 * offboard a participant by hand; the roles participants may sign up for.
 */
export const registerRoutes: FastifyPluginAsync<{ lifecycle: ParticipantLifecycle; pull: RegisterPull }> = async (app, { lifecycle, pull }) => {
  const tags = ['Register and participants'];
  app.get('/admin/register', { schema: { tags, summary: 'The register entries the DIP holds', response: answers({ 200: { type: 'array', items: registerEntry, description: 'The entries' } }) } }, async () => lifecycle.entries());

  app.post<{ Body: { feed: unknown; source?: string; snapshot?: boolean } }>(
    '/admin/register/apply',
    {
      schema: {
        tags,
        summary: 'Apply a register feed given in the body (a file import), idempotently (admins only when it rescinds anyone: that revokes certificates)',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['feed'],
          properties: { feed: {}, source: { type: 'string', maxLength: 200, pattern: '^[\\w.:/@-]+$' }, snapshot: { type: 'boolean' } },
        },
        response: answers({ 200: applyResult }, [403, 409]),
      },
    },
    async (req, reply) => {
      try {
        const result = await lifecycle.apply(req.body.feed, req.body.source ?? `file:${operatorOf(req).name}`, req.body.snapshot ?? false, offboardRefusalOf(req));
        req.journaled = true;
        return result;
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  app.post<{ Body: { url: string; headers?: Record<string, string>; snapshot?: boolean } }>(
    '/admin/register/pull',
    {
      schema: {
        tags,
        summary: "Pull the register feed from the register's endpoint, with its own credentials, and apply it (admins only when it rescinds anyone)",
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['url'],
          properties: {
            url: { type: 'string', pattern: '^https?://', maxLength: 2000 },
            // The register endpoint's own credentials (e.g. Authorization): used for this call, never stored nor journalled.
            headers: { type: 'object', additionalProperties: { type: 'string', maxLength: 4000 }, maxProperties: 20 },
            snapshot: { type: 'boolean' },
          },
        },
        response: answers({ 200: applyResult }, [400, 403, 409, 502]),
      },
    },
    async (req, reply) => {
      // The schema only checks the scheme: a URL that does not parse is the caller's mistake, not a fault.
      if (!URL.canParse(req.body.url)) return reply.code(400).send({ error: `body/url: ${JSON.stringify(shownUrl(req.body.url))} is not a URL` });
      // A user and password in the URL would be kept wherever the URL is shown; body/headers carry credentials instead.
      if (carriesCredentials(req.body.url)) return reply.code(400).send({ error: "body/url must not carry a user name or password: give the endpoint's credentials in body/headers (sent, never kept)" });
      try {
        const result = await pull.pull({ url: req.body.url, headers: req.body.headers ?? {}, snapshot: req.body.snapshot ?? false }, operatorOf(req).actor, offboardRefusalOf(req));
        req.journaled = true;
        return result;
      } catch (e) {
        // A destination the DIP may not call is the caller's to fix (400); a failing or oversized feed is upstream's (502).
        if (e instanceof RegisterFetchError) return reply.code(e.problem === 'refused' ? 400 : 502).send({ error: e.problem === 'refused' ? `body/${e.message}` : e.message });
        return refuse(reply, e);
      }
    },
  );

  app.post<{ Params: { dipId: string }; Body: { reason?: string } }>(
    OFFBOARD_ROUTE,
    {
      schema: {
        tags,
        summary: 'Offboard a participant by hand: certificates revoked, registration, API key and webhooks removed, history kept (admins: it revokes certificates)',
        params: { type: 'object', required: ['dipId'], properties: { dipId: { type: 'string', maxLength: 10 } } },
        body: { type: 'object', additionalProperties: false, properties: { reason: { type: 'string', maxLength: 500 } } },
        response: answers(
          {
            200: {
              type: 'object',
              required: ['offboarded', 'clientWebhooksRemoved', 'nominationsWithdrawn'],
              properties: {
                offboarded: { type: 'string' },
                clientWebhooksRemoved: {
                  type: 'array',
                  description: "The webhooks it had registered on its clients' queues as their DIP Connection Provider, removed with it (those queues wait to be pulled)",
                  items: {
                    type: 'object',
                    required: ['recipientDipId', 'channel', 'url', 'registeredBy'],
                    properties: { recipientDipId: { type: 'string' }, channel: { type: 'string' }, url: { type: 'string' }, registeredBy: { type: ['string', 'null'] } },
                  },
                },
                nominationsWithdrawn: {
                  type: 'array',
                  description: 'The participants that had nominated it as their DIP Connection Provider: their nominations withdrawn, so the DIP ID registered again acts for none of them',
                  items: { type: 'string' },
                },
              },
              description: 'Offboarded',
            },
          },
          [403, 404, 409],
        ),
      },
      preValidation: async (req) => {
        req.body ??= {};
      },
    },
    async (req, reply) => {
      try {
        const { clientWebhooksRemoved, nominationsWithdrawn } = await lifecycle.offboard(req.params.dipId, operatorOf(req).actor, req.body.reason ?? 'offboarded by the operator');
        req.journaled = true;
        return { offboarded: req.params.dipId, clientWebhooksRemoved, nominationsWithdrawn };
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  app.get('/admin/optional-roles', { schema: { tags, summary: 'The roles participants may sign up for themselves', response: answers({ 200: rolesAnswer('The optional roles') }) } }, async () => ({ roles: await lifecycle.optionalRoles() }));
  app.put<{ Body: { roles: string[] } }>(
    '/admin/optional-roles',
    {
      schema: {
        tags,
        summary: 'Set the roles participants may sign up for themselves',
        body: { type: 'object', additionalProperties: false, required: ['roles'], properties: { roles: { type: 'array', maxItems: 100, items: { type: 'string', maxLength: 5 } } } },
        response: answers({ 200: rolesAnswer('The optional roles now') }),
      },
    },
    async (req, reply) => {
      try {
        const roles = await lifecycle.setOptionalRoles(req.body.roles, operatorOf(req).actor);
        req.journaled = true;
        return { roles };
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );
};
