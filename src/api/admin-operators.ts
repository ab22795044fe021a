import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { timingSafeEqual } from 'node:crypto';
import { OPERATOR_ROLES, operatorMay, type OperatorRole } from '../domain/operators.js';
import type { Logger } from '../ports/logger.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { OperatorAccounts, OperatorIdentity } from '../pipeline/operators.js';
import { answers, isoTime, isOperatorDocs } from './admin-schemas.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The operator making an operator-API call (set before any handler runs). */
    operator: OperatorIdentity | null;
    /** Set by a handler whose service journalled the act itself (with its before and after). */
    journaled: boolean;
  }
}

export interface OperatorAuthDeps {
  /** The bootstrap (break-glass) token from the data directory: an admin named `bootstrap`. */
  bootstrapToken: string;
  operators: OperatorAccounts;
  journal: OperatorJournal;
  logger: Logger;
  now(): number;
  /**
   * The portals in this process, acting for the operator signed in to them (src/portal): this key, never
   * sent over a network (a random value per process, used by in-process calls only), with the operator's
   * name in ACTING_OPERATOR_HEADER. The call then runs as that operator, with its role, journalled as it.
   */
  inProcessKey?: string;
}

export const ACTING_OPERATOR_HEADER = 'x-opendip-acting-operator';

/** The caller of an operator route (the hook ran: a handler never sees an unidentified call). */
export function operatorOf(req: FastifyRequest): OperatorIdentity {
  if (!req.operator) throw new Error(`${req.method} ${req.url}: no operator identified`);
  return req.operator;
}

/** A service's refusal (OperatorError and its kin) as a JSON answer naming the problem. */
export function refuse(reply: FastifyReply, e: unknown): FastifyReply {
  if (e instanceof Error && 'status' in e && typeof e.status === 'number') return reply.code(e.status).send({ error: e.message });
  throw e;
}

const sameToken = (given: string, expected: string): boolean => {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
};

/**
 * Every operator-API call names its operator (Authorization: Bearer <token>): a named account's token, or
 * the bootstrap token (break-glass, and how the first admin account is made). The operator's role decides
 * what it may call (src/domain/operators.ts). Every call that changes something is journalled with the
 * operator's name before the answer goes out: by the service that made the change (with before and after),
 * else here (the route, its target and the answer's status).
 */
export function registerOperatorAuth(app: FastifyInstance, deps: OperatorAuthDeps): void {
  app.decorateRequest('operator', null);
  app.decorateRequest('journaled', false);
  app.addHook('onRequest', async (req, reply) => {
    // The API's reference (the OpenAPI document, Swagger UI) is public on this loopback listener: src/api/admin-docs.ts.
    if ((req.method === 'GET' || req.method === 'HEAD') && isOperatorDocs(req.url.split('?')[0] ?? '')) return undefined;
    const header = String(req.headers.authorization ?? '');
    const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    let who: OperatorIdentity | undefined;
    if (token && sameToken(token, deps.bootstrapToken)) who = { name: 'bootstrap', role: 'admin', actor: 'bootstrap' };
    else if (token && deps.inProcessKey && sameToken(token, deps.inProcessKey)) {
      const acting = req.headers[ACTING_OPERATOR_HEADER];
      const found = (await deps.operators.list()).find((o) => o.name === acting && !o.disabled);
      if (found) who = { name: found.name, role: found.role, actor: `operator:${found.name}` };
    } else if (token) who = await deps.operators.identify(token);
    if (!who) return reply.code(401).send({ error: "a valid operator token is required (Authorization: Bearer <token>): an operator account's token, or the bootstrap token in <data>/admin-token" });
    const path = req.url.split('?')[0] ?? '';
    if (!operatorMay(who.role, req.method, path)) {
      return reply.code(403).send({ error: `operator ${who.name} (${who.role}) may not ${req.method} ${path}` });
    }
    req.operator = who;
    return undefined;
  });
  // A body or query the route's schema refuses: the field and why, in the API's one error shape.
  // Every refusal {"error": "<what and why>"}: never Fastify's bare reason phrase ("Unsupported Media Type").
  app.setErrorHandler((error: Error & { validation?: unknown; statusCode?: number; code?: string }, req, reply) => {
    if (error.validation) return reply.code(400).send({ error: error.message });
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) deps.logger.error({ err: error, url: req.url }, 'operator API request failed');
    let message = error.message;
    if (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY') message = 'the body is not valid JSON (keys __proto__ and constructor.prototype are refused too)';
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') message = `Content-Type '${String(req.headers['content-type'] ?? '')}' is not accepted: send application/json`;
    return reply.code(status).send({ error: status === 500 ? 'internal error' : message });
  });
  app.addHook('onSend', async (req, reply, payload) => {
    // A refused call (4xx, 5xx) changed nothing: it is not an act.
    if (!req.operator || req.journaled || req.method === 'GET' || req.method === 'HEAD' || reply.statusCode >= 400) return payload;
    const body = (req.body ?? {}) as Record<string, unknown>;
    const params = (req.params ?? {}) as Record<string, unknown>;
    const target = [params.name, params.id, params.dipId, body.recipientDipId, body.channel].filter((v) => typeof v === 'string').join('/');
    try {
      await deps.journal.append({ at: deps.now(), actor: req.operator.actor, action: `${req.method} ${req.routeOptions.url ?? req.url}`, target, before: null, after: null, status: reply.statusCode });
    } catch (err) {
      deps.logger.error({ err, operator: req.operator.name, url: req.url }, 'could not journal an operator action');
    }
    return payload;
  });
}

const roleSchema = { type: 'string', enum: [...OPERATOR_ROLES] } as const;
const operatorView = {
  type: 'object',
  required: ['name', 'role', 'disabled', 'createdAt', 'createdBy', 'version'],
  properties: {
    name: { type: 'string' },
    role: roleSchema,
    disabled: { type: 'boolean' },
    createdAt: isoTime,
    createdBy: { type: 'string' },
    version: { type: 'integer', description: 'The account record\'s version: each change makes a new one' },
  },
} as const;
const journalEntry = {
  type: 'object',
  required: ['id', 'at', 'actor', 'action', 'target', 'before', 'after', 'status'],
  properties: {
    id: { type: 'integer' },
    at: isoTime,
    actor: { type: 'string', description: '`operator:<name>`, `register:<source>`, `participant:<DIP ID>` or `bootstrap`' },
    action: { type: 'string', description: 'e.g. `channel.pause`, `POST /admin/dead-letters/requeue`' },
    target: { type: 'string', description: 'What it acted on; empty when nothing in particular' },
    before: { description: 'The state before the act, where the service recorded it' },
    after: { description: 'The state after the act, where the service recorded it' },
    status: { type: ['integer', 'null'], description: 'The HTTP status the act was answered with (null for acts outside a request)' },
  },
} as const;
const withToken = (description: string, required: boolean) =>
  ({ type: 'object', required: required ? ['operator', 'token'] : ['operator'], properties: { operator: operatorView, token: { type: 'string', description: 'The operator\'s token: shown this once, only its hash is kept' } }, description }) as const;

/** Operator accounts (admins only) and the journal of every administrative act (any operator may read it). */
export const operatorRoutes: FastifyPluginAsync<OperatorAuthDeps> = async (app, deps) => {
  const tags = ['Operators'];
  app.get('/admin/whoami', { schema: { tags, summary: 'The operator making the call, and its role', response: answers({ 200: { type: 'object', required: ['name', 'role'], properties: { name: { type: 'string' }, role: roleSchema }, description: 'The caller' } }) } }, async (req) => {
    const who = operatorOf(req);
    return { name: who.name, role: who.role };
  });

  app.get('/admin/operators', { schema: { tags, summary: 'Operator accounts (admins)', response: answers({ 200: { type: 'array', items: operatorView, description: 'Every account' } }) } }, async () => deps.operators.list());

  app.post<{ Body: { name: string; role: OperatorRole } }>(
    '/admin/operators',
    {
      schema: {
        tags,
        summary: 'Create an operator account (admins): its token is in the answer, once',
        body: { type: 'object', additionalProperties: false, required: ['name', 'role'], properties: { name: { type: 'string', minLength: 1, maxLength: 64 }, role: roleSchema } },
        response: answers({ 201: withToken('Created', true) }, [409]),
      },
    },
    async (req, reply) => {
      try {
        const created = await deps.operators.create(req.body.name, req.body.role, operatorOf(req));
        req.journaled = true;
        return await reply.code(201).send(created);
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  app.patch<{ Params: { name: string }; Body: { role?: OperatorRole; disabled?: boolean; newToken?: boolean } }>(
    '/admin/operators/:name',
    {
      schema: {
        tags,
        summary: "Change an operator's role, disable or enable it, or give it a new token (admins)",
        params: { type: 'object', required: ['name'], properties: { name: { type: 'string', maxLength: 64 } } },
        body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { role: roleSchema, disabled: { type: 'boolean' }, newToken: { type: 'boolean' } } },
        response: answers({ 200: withToken('Changed; the new token when newToken was asked for', false) }, [404, 409]),
      },
    },
    async (req, reply) => {
      try {
        const updated = await deps.operators.update(req.params.name, req.body, operatorOf(req));
        req.journaled = true;
        return updated;
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  app.get<{ Querystring: { actor?: string; action?: string; target?: string; before?: number; limit?: number } }>(
    '/admin/journal',
    {
      schema: {
        tags: ['Journal'],
        summary: 'The record of operator actions, newest first',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            actor: { type: 'string', maxLength: 100 },
            action: { type: 'string', maxLength: 200 },
            target: { type: 'string', maxLength: 200 },
            before: { type: 'integer', minimum: 1, description: 'Entries with a smaller ID than this (the next page)' },
            limit: { type: 'integer', minimum: 1, maximum: 10_000, default: 100 },
          },
        },
        response: answers({ 200: { type: 'array', items: journalEntry, description: 'The entries' } }),
      },
    },
    async (req) => {
      const q = req.query;
      const entries = await deps.journal.entries({ actor: q.actor, action: q.action, target: q.target, beforeId: q.before, limit: q.limit ?? 100 });
      return entries.map((e) => ({ ...e, at: new Date(e.at).toISOString() }));
    },
  );
};
