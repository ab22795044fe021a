import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import type { ParticipantLifecycle } from '../pipeline/participant-lifecycle.js';
import { operatorOf, refuse } from './admin-operators.js';

const applyResult = {
  type: 'object',
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
const PULL_TIMEOUT_MS = 30_000;
const MAX_FEED_BYTES = 64 * 1024 * 1024;

/**
 * The central register feed on the operator API (spec 5.7.1): apply a feed given in the body (a file
 * import), pull one from the register's HTTP endpoint with its own credentials, list what the DIP holds;
 * offboard a participant by hand; the roles participants may sign up for.
 */
export function registerRegisterRoutes(app: FastifyInstance, lifecycle: ParticipantLifecycle): void {
  app.get('/admin/register', async () => lifecycle.entries());

  app.post<{ Body: { feed: unknown; source?: string; snapshot?: boolean } }>(
    '/admin/register/apply',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['feed'],
          properties: { feed: {}, source: { type: 'string', maxLength: 200, pattern: '^[\\w.:/@-]+$' }, snapshot: { type: 'boolean' } },
        },
        response: { 200: applyResult },
      },
    },
    async (req, reply) => {
      try {
        const result = await lifecycle.apply(req.body.feed, req.body.source ?? `file:${operatorOf(req).name}`, req.body.snapshot ?? false);
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
        response: { 200: applyResult },
      },
    },
    async (req, reply) => {
      let feed: unknown;
      // The schema only checks the scheme: a URL that does not parse is the caller's mistake, not a fault.
      if (!URL.canParse(req.body.url)) return reply.code(400).send({ error: `body/url: ${JSON.stringify(req.body.url)} is not a URL` });
      const source = `pull:${new URL(req.body.url).host}`;
      try {
        const res = await request(req.body.url, { headers: req.body.headers ?? {}, headersTimeout: PULL_TIMEOUT_MS, bodyTimeout: PULL_TIMEOUT_MS });
        const text = await res.body.text();
        if (res.statusCode !== 200) return await reply.code(502).send({ error: `${req.body.url} answered ${res.statusCode}: nothing applied` });
        if (text.length > MAX_FEED_BYTES) return await reply.code(502).send({ error: `the feed is larger than ${MAX_FEED_BYTES} bytes: nothing applied` });
        feed = JSON.parse(text);
      } catch (e) {
        return reply.code(502).send({ error: `could not read the register feed from ${req.body.url}: ${(e as Error).message}; nothing applied` });
      }
      try {
        const result = await lifecycle.apply(feed, source, req.body.snapshot ?? false);
        req.journaled = true;
        return result;
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  app.post<{ Params: { dipId: string }; Body: { reason?: string } }>(
    '/admin/participants/:dipId/offboard',
    {
      schema: { params: { type: 'object', properties: { dipId: { type: 'string', maxLength: 10 } } }, body: { type: 'object', additionalProperties: false, properties: { reason: { type: 'string', maxLength: 500 } } } },
      preValidation: async (req) => {
        req.body ??= {};
      },
    },
    async (req, reply) => {
      try {
        await lifecycle.offboard(req.params.dipId, operatorOf(req).actor, req.body.reason ?? 'offboarded by the operator');
        req.journaled = true;
        return { offboarded: req.params.dipId };
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  app.get('/admin/optional-roles', async () => ({ roles: await lifecycle.optionalRoles() }));
  app.put<{ Body: { roles: string[] } }>(
    '/admin/optional-roles',
    { schema: { body: { type: 'object', additionalProperties: false, required: ['roles'], properties: { roles: { type: 'array', maxItems: 100, items: { type: 'string', maxLength: 5 } } } } } },
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
}
