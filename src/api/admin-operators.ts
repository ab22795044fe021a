import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { timingSafeEqual } from 'node:crypto';
import { journalActorRefusal, journalForViewer, OPERATOR_ROLES, operatorRefusal, type OperatorRole } from '../domain/operators.js';
import type { Logger } from '../ports/logger.js';
import { COMMIT_IN_DOUBT, storeFailureKind } from '../ports/errors.js';
import { STORE_RETRY_AFTER_SECONDS } from '../pipeline/ingest.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { OperatorAccounts, OperatorIdentity } from '../pipeline/operators.js';
import { refusalOf } from '../pipeline/refused.js';
import { answers, empty, FIRST_PASSWORD_EXPIRY, isoTime, isOperatorDocs } from './admin-schemas.js';
import { clientAddress } from '../security/address-list.js';
import { OperatorSessions, type OperatorSession, type SessionAnswer } from '../pipeline/operator-sessions.js';
import type { OperatorMemory } from '../pipeline/operator-memory.js';
import type { PortalAccountService } from '../pipeline/portal-accounts.js';
import { loggedUrl } from '../domain/activity.js';
import { toCsv } from '../pipeline/reports.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The operator making an operator-API call (set before any handler runs). */
    operator: OperatorIdentity | null;
    /** Set by a handler whose service journalled the act itself (with its before and after). */
    journaled: boolean;
  }
}

export interface OperatorAuthDeps {
  /**
   * The bootstrap token from the data directory: an admin named `bootstrap` while no admin account exists
   * (to make the first one), afterwards only when `bootstrapBreakGlass` is set.
   */
  bootstrapToken: string;
  bootstrapBreakGlass: boolean;
  /** People's sign-in (POST /admin/session) and the bearer tokens it gives. */
  sessions: OperatorSessions;
  /**
   * This node's last reading of the operator accounts: reads are checked against it while the store
   * cannot be read (src/pipeline/operator-memory.ts). Absent: every call needs the store.
   */
  memory?: OperatorMemory;
  /** The store is known to be down (its health): reads go to the memory first. */
  storeDown?(): boolean;
  /** Where a person's password and TOTP credential is kept (the same the operator portal signs in with). */
  credentials: Pick<PortalAccountService, 'createEnrollingAtFirstSignIn' | 'account' | 'resetTotpFactor'>;
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
/** Where people sign in to the operator API. */
export const SIGN_IN_PATH = '/admin/session';
/** Where a first sign-in finishes: the TOTP enrolment it started, confirmed with a code. */
export const ENROLMENT_PATH = '/admin/session/enrolment';

/** The caller of an operator route (the hook ran: a handler never sees an unidentified call). */
export function operatorOf(req: FastifyRequest): OperatorIdentity {
  if (!req.operator) throw new Error(`${req.method} ${req.url}: no operator identified`);
  return req.operator;
}

/** A service's refusal (a RefusedError, see refusalOf) as a JSON answer naming the problem; anything else is rethrown. */
export function refuse(reply: FastifyReply, e: unknown): FastifyReply {
  const refusal = refusalOf(e);
  if (refusal) return reply.code(refusal.status).send({ error: refusal.message });
  throw e;
}

const sameToken = (given: string, expected: string): boolean => {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
};

/** Read with the bootstrap token by health probes, whatever accounts exist (see registerOperatorAuth). */
const HEALTH_PATH = '/admin/health';

/** An operator call's credential checked: who it is, or the refusal to answer (401). Neither: no credential the DIP knows. */
interface Identified {
  who?: OperatorIdentity;
  refused?: string;
}

/**
 * Set on an answer whose credential was checked against this node's memory of the accounts rather than the
 * store (which could not be read): when that reading was made.
 */
export const CHECKED_AT_HEADER = 'x-opendip-credential-checked-at';

const BOOTSTRAP_REFUSED = `the bootstrap token only creates the first admin account, and an admin account exists: sign in as an operator (dip login, POST ${SIGN_IN_PATH} with name, password and TOTP code) or use an automation account's token`;
const SESSION_ENDED = `this session has ended (expired, signed out, or the account disabled): sign in again (dip login, POST ${SIGN_IN_PATH})`;

/** The operator behind a bearer token, checked against the store (a change of an account is in force at once). */
async function identify(deps: OperatorAuthDeps, token: string, req: FastifyRequest, route: string | undefined): Promise<Identified> {
  if (token && sameToken(token, deps.bootstrapToken)) {
    // The bootstrap token makes the first admin account; once one exists it is refused (README "Operator
    // accounts"), except to read health: the probes read it with this token (Dockerfile, Kubernetes, the
    // `dip cluster` balancer), and must get its answer also while the store is down (asking the store
    // whether an admin exists made it a 503 about authentication, or a hang while the database was frozen).
    const probe = req.method === 'GET' && route === HEALTH_PATH;
    if (!probe && !deps.bootstrapBreakGlass && (await deps.operators.adminExists())) return { refused: BOOTSTRAP_REFUSED };
    return { who: BOOTSTRAP };
  }
  if (token && deps.inProcessKey && sameToken(token, deps.inProcessKey)) {
    const acting = req.headers[ACTING_OPERATOR_HEADER];
    const found = (await deps.operators.list()).find((o) => o.name === acting && !o.disabled);
    return found ? { who: { name: found.name, role: found.role, actor: `operator:${found.name}`, automation: found.automation } } : {};
  }
  if (token && OperatorSessions.isSessionToken(token)) {
    const who = await deps.sessions.identify(token);
    return who ? { who } : { refused: SESSION_ENDED };
  }
  return token ? { who: await deps.operators.identify(token) } : {};
}

/**
 * The same check against this node's last reading of the accounts (a read while the store cannot be
 * read); undefined when the reading cannot say (none young enough, or a credential it does not know):
 * the call is then answered 503 as before, never let through on a guess.
 */
function remember(deps: OperatorAuthDeps, memory: OperatorMemory, token: string, req: FastifyRequest, route: string | undefined): Identified | undefined {
  if (token && sameToken(token, deps.bootstrapToken)) {
    // As identify: the health probe and break-glass need no account.
    if (deps.bootstrapBreakGlass || (req.method === 'GET' && route === HEALTH_PATH)) return { who: BOOTSTRAP };
    const admins = memory.adminExists();
    if (admins === undefined) return undefined;
    return admins ? { refused: BOOTSTRAP_REFUSED } : { who: BOOTSTRAP };
  }
  let who: OperatorIdentity | undefined;
  if (token && deps.inProcessKey && sameToken(token, deps.inProcessKey)) who = memory.named(req.headers[ACTING_OPERATOR_HEADER]);
  else if (token && OperatorSessions.isSessionToken(token)) {
    // An expired or forged token needs no store to be refused.
    const claims = deps.sessions.claims(token);
    if (!claims) return { refused: SESSION_ENDED };
    who = memory.session(claims);
  } else if (token) who = memory.automation(token);
  return who ? { who } : undefined;
}

/** The longest a change's answer waits for the memory's new reading (src/pipeline/operator-memory.ts). */
const MEMORY_REFRESH_WAIT_MS = 2_000;

const BOOTSTRAP: OperatorIdentity = { name: 'bootstrap', role: 'admin', actor: 'bootstrap', automation: false };

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
    // Every decision here is on the route the router matched, which it found in the decoded path, never
    // on the raw URL (/admin/%65vidence runs the evidence route); with no route matched only the 404 runs.
    const route = req.routeOptions.url;
    if ((req.method === 'GET' || req.method === 'HEAD') && route !== undefined && isOperatorDocs(route)) return undefined;
    // Signing in (and finishing a first sign-in) are the calls made before there is a token.
    if (req.method === 'POST' && (route === SIGN_IN_PATH || route === ENROLMENT_PATH)) return undefined;
    const header = String(req.headers.authorization ?? '');
    const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    const read = req.method === 'GET' || req.method === 'HEAD';
    const memory = deps.memory;
    const fromMemory = (): Identified | undefined => {
      const remembered = memory ? remember(deps, memory, token, req, route) : undefined;
      const readAt = memory?.readAt() ?? null;
      if (!remembered || readAt === null) return undefined;
      void reply.header(CHECKED_AT_HEADER, new Date(readAt).toISOString());
      return remembered;
    };
    // The store known to be down (this node's own calls found it so): a read is checked against the
    // memory at once, not after the store's timeout (5 s to connect, 35 s for a query to a server cut off).
    let found = read && deps.storeDown?.() ? fromMemory() : undefined;
    try {
      found ??= await identify(deps, token, req, route);
    } catch (err) {
      // The store cannot be read: a read is checked against this node's last reading of the accounts
      // (OperatorMemory: while it is young enough), so the operator on call still sees the alarms, the
      // queues and the health. Anything else, or with no such reading, is the 503 the error handler gives.
      const remembered = storeFailureKind(err) === 'unavailable' && read ? fromMemory() : undefined;
      if (!remembered) throw err;
      found = remembered;
    }
    if (found.refused) return reply.code(401).send({ error: found.refused });
    const who = found.who;
    if (!who) return reply.code(401).send({ error: `a valid operator credential is required (Authorization: Bearer <token>): a session token from POST ${SIGN_IN_PATH} (dip login), an automation account's token, or, before the first admin account exists, the bootstrap token in <data>/admin-token` });
    const path = req.url.split('?')[0] ?? '';
    const refusal = operatorRefusal(who.role, req.method, route ?? path);
    if (refusal) {
      return reply.code(403).send({ error: `operator ${who.name} (${who.role}) may not ${req.method} ${path}: ${refusal}` });
    }
    req.operator = who;
    return undefined;
  });
  // A body or query the route's schema refuses: the field and why, in the API's one error shape.
  // Every refusal {"error": "<what and why>"}: never Fastify's bare reason phrase ("Unsupported Media Type").
  app.setErrorHandler((error: Error & { validation?: unknown; statusCode?: number; code?: string }, req, reply) => {
    if (error.validation) return reply.code(400).send({ error: error.message });
    // The store cannot be reached (the operator check asks it too): say so, rather than an internal error.
    // Sent as is: a route whose own 503 is another document (/admin/health) has none to give here.
    if (storeFailureKind(error) === 'unavailable') {
      return reply
        .code(503)
        .header('retry-after', String(STORE_RETRY_AFTER_SECONDS))
        .type('application/json')
        .serializer(JSON.stringify)
        .send({
          error:
            // The store lost the answer to its COMMIT and could not find out (PgDatabase.tx): the change
            // may be in place, and a change that is not idempotent, sent again, would run twice.
            error.code === COMMIT_IN_DOUBT
              ? `the store lost its answer as this change committed (${COMMIT_IN_DOUBT}): it may have been done: look before doing it again after the Retry-After interval`
              : `the store is unavailable from this node (${error.code ?? 'storage unavailable'}): nothing was done; try again after the Retry-After interval`,
        });
    }
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) deps.logger.error({ err: error, url: loggedUrl(req.url) }, 'operator API request failed');
    let message = error.message;
    if (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY') message = 'the body is not valid JSON (keys __proto__ and constructor.prototype are refused too)';
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      const type = req.headers['content-type'];
      message = `${type ? `Content-Type '${type}'` : 'a body without a Content-Type'} is not accepted: send application/json`;
    }
    return reply.code(status).send({ error: status === 500 ? 'internal error' : message });
  });
  app.addHook('onSend', async (req, reply, payload) => {
    // A change made through this node (a sign-out, an account disabled, a new token) is in this node's
    // memory of the accounts before its answer goes out: a store lost just after it cannot bring back
    // what it ended, here. Other nodes read it within OPERATOR_MEMORY_REFRESH_MS, and their memory is
    // used only while young enough (src/pipeline/operator-memory.ts).
    if (deps.memory && req.method !== 'GET' && req.method !== 'HEAD' && reply.statusCode < 400) await deps.memory.refreshed(MEMORY_REFRESH_WAIT_MS);
    return payload;
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    // Answers of this listener carry secrets (a session token, a TOTP secret and enrolment token, a first
    // password, an automation token) and operational data: no cache (a proxy, the browser of the Swagger
    // UI) keeps a copy. One hook for every answer, so a new route that answers a secret cannot forget it;
    // one that means to be cached sets its own header.
    if (!reply.hasHeader('cache-control')) void reply.header('cache-control', 'no-store');
    return payload;
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
      deps.logger.error({ err, operator: req.operator.name, url: loggedUrl(req.url) }, 'could not journal an operator action');
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
    automation: { type: 'boolean' },
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
    actor: { type: 'string', description: '`operator:<name>`, `register:<source>`, `participant:<DIP ID>`, `cli:<os user>` (a `dip` command outside the operator API) or `bootstrap`' },
    action: { type: 'string', description: 'e.g. `channel.pause`, `POST /admin/dead-letters/requeue`' },
    target: { type: 'string', description: 'What it acted on; empty when nothing in particular' },
    before: { description: 'The state before the act, where the service recorded it' },
    after: { description: 'The state after the act, where the service recorded it' },
    status: { type: ['integer', 'null'], description: 'The HTTP status the act was answered with (null for acts outside a request)' },
  },
} as const;
/**
 * A new account: a person's first password, or an automation account's token; each shown this once. No
 * TOTP secret: the person sets theirs up at their first sign-in, so it never passes through the creator.
 */
const created = {
  type: 'object',
  required: ['operator'],
  properties: {
    operator: operatorView,
    token: { type: 'string', description: "An automation account's token: only its hash is kept" },
    password: {
      type: 'string',
      description: `A person's first password: its first sign-in (POST ${SIGN_IN_PATH}) sets up their TOTP and must replace it (newPassword), so the admin who saw it cannot sign in with it`,
    },
    passwordExpiresAt: FIRST_PASSWORD_EXPIRY,
  },
  description: 'Created',
} as const;
/** A session, as a sign-in gives it. */
const signedIn = {
  type: 'object',
  required: ['token', 'expiresAt', 'operator'],
  description: 'Signed in',
  properties: {
    token: { type: 'string', description: 'A bearer token for the operator API (Authorization: Bearer …)' },
    expiresAt: isoTime,
    operator: { type: 'object', required: ['name', 'role'], properties: { name: { type: 'string' }, role: roleSchema } },
  },
} as const;
const passwordChangeRequired = { type: 'boolean', enum: [true] } as const;
/** A TOTP code as typed (checked by the sign-in, which answers a malformed one as a wrong one). */
const totpCodeField = { type: 'string', minLength: 1, maxLength: 12 } as const;
/**
 * The sign-in's code: empty is no code, as absent is (the operator portal's form sends its empty field, and
 * a first sign-in has no code yet), so both clients are answered alike.
 */
const signInCodeField = { type: 'string', maxLength: 12 } as const;
const newPasswordField = (description: string) => ({ type: 'string', minLength: 12, maxLength: 200, description }) as const;
const withToken = (description: string, required: boolean) =>
  ({ type: 'object', required: required ? ['operator', 'token'] : ['operator'], properties: { operator: operatorView, token: { type: 'string', description: 'The operator\'s token: shown this once, only its hash is kept' } }, description }) as const;

/** A sign-in step's answer: the session, or what the person must do next (403, 409), or a refusal (401). */
/**
 * A sign-in refused for failing too often (src/security/sign-in-throttle.ts): the name's backoff, or the
 * client address's across every name; nothing was checked or counted. Try again after Retry-After.
 */
const signInThrottled = {
  type: 'object',
  required: ['error'],
  properties: { error: { type: 'string', description: 'What was refused and why, with the time to try again after' } },
  description: "Too many failed sign-ins: the name's backoff (after five failures in 15 minutes, a wait doubling from 1 s to at most a minute, from any address: this sign-in carries no device cookie), or this client address's across every name (after ten, doubling to at most a minute; IPv6 by its /64). Nothing was checked; try again after Retry-After",
};

function sessionAnswer(reply: FastifyReply, answer: SessionAnswer): FastifyReply | OperatorSession {
  if (answer.ok) return answer.session;
  if (answer.enrol) {
    const e = answer.enrol;
    return reply.code(403).send({ error: answer.problem, totpEnrolment: { token: e.token, secret: e.secret, otpauthUri: e.uri, expiresAt: new Date(e.expiresAt).toISOString(), newPasswordRequired: e.choosePassword } });
  }
  if (answer.enrolmentPending) return reply.code(409).send({ error: answer.problem, pendingUntil: new Date(answer.enrolmentPending.until).toISOString() });
  if (answer.choosePassword) return reply.code(403).send({ error: answer.problem, passwordChangeRequired: true });
  if (answer.retryAfterSeconds !== undefined) {
    reply.log.warn({ source: clientAddress(reply.request.raw.socket), retryAfterSeconds: answer.retryAfterSeconds }, 'operator sign-in throttled: too many failures');
    return reply.code(429).header('retry-after', String(answer.retryAfterSeconds)).send({ error: answer.problem });
  }
  return reply.code(401).send({ error: answer.problem });
}

/** Operator accounts (admins only) and the journal of every administrative act (any operator may read it). */
export const operatorRoutes: FastifyPluginAsync<OperatorAuthDeps> = async (app, deps) => {
  const tags = ['Operators'];
  app.get('/admin/whoami', { schema: { tags, summary: 'The operator making the call, and its role', response: answers({ 200: { type: 'object', required: ['name', 'role'], properties: { name: { type: 'string' }, role: roleSchema }, description: 'The caller' } }) } }, async (req) => {
    const who = operatorOf(req);
    return { name: who.name, role: who.role };
  });

  app.get('/admin/operators', { schema: { tags, summary: 'Operator accounts (admins)', response: answers({ 200: { type: 'array', items: operatorView, description: 'Every account' } }) } }, async () => deps.operators.list());

  app.post<{ Body: { name: string; role: OperatorRole; automation?: boolean; displayName?: string } }>(
    '/admin/operators',
    {
      schema: {
        tags,
        summary: "Create an operator account (admins): a person's answer carries their first password (they set up their TOTP at their first sign-in), an automation account's its token, once",
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'role'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 64 },
            role: roleSchema,
            automation: { type: 'boolean', description: 'An account for a script: a long-lived token instead of a password and TOTP; viewer or operator only' },
            displayName: { type: 'string', minLength: 1, maxLength: 100, description: "The person's full name" },
          },
        },
        response: answers({ 201: created }, [409]),
      },
    },
    async (req, reply) => {
      const { name, role } = req.body;
      const automation = req.body.automation ?? false;
      try {
        // A person's sign-in credential is made with the account: checked first, so neither is made alone.
        await deps.operators.check(name, role, automation);
        if (!automation && (await deps.credentials.account('operator', name))) return await reply.code(409).send({ error: `name: '${name}' is already a portal sign-in name; choose another` });
        const created = await deps.operators.create(name, role, operatorOf(req), automation);
        req.journaled = true;
        if (automation) return await reply.code(201).send(created);
        const enrolled = await deps.credentials.createEnrollingAtFirstSignIn({ username: name, displayName: req.body.displayName ?? name, participantDipId: null, admin: true, createdBy: operatorOf(req).actor });
        if ('problem' in enrolled) throw new Error(`the sign-in credential of ${name} was not made: ${enrolled.problem}`);
        return await reply.code(201).send({ operator: created.operator, password: enrolled.password, passwordExpiresAt: new Date(enrolled.passwordExpiresAt).toISOString() });
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  // People sign in with name, password and TOTP code; the answer is a short-lived bearer token.
  app.post<{ Body: { name: string; password: string; code?: string; newPassword?: string } }>(
    SIGN_IN_PATH,
    {
      schema: {
        tags,
        summary: `Sign in (people): name, password and TOTP code for a bearer token good for operators.sessionMinutes (60); no token needed. At an account's first sign-in the password alone starts the TOTP enrolment (403 with totpEnrolment; finish at ${ENROLMENT_PATH}), and the account chooses its own password (newPassword)`,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'password'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 64 },
            password: { type: 'string', minLength: 1, maxLength: 200 },
            code: { ...signInCodeField, description: 'The current code of your authenticator app; not needed (and not looked at) before your TOTP is set up: leave it out, or empty' },
            newPassword: newPasswordField(
              "Replaces the password as the sign-in succeeds, ending every other session. Required while the password is still the one the account's creator chose (the answer is then 403 with passwordChangeRequired, and the code is not used up)",
            ),
          },
        },
        response: answers(
          {
            200: signedIn,
            403: {
              type: 'object',
              required: ['error'],
              description: `The name and password (and code) are right, but no session yet. passwordChangeRequired: the account signs in only with a password of its own (its creator chose this one, or newPassword was not acceptable): send the sign-in again with newPassword (dip login asks for one). totpEnrolment: the account has no second factor yet: add the secret to an authenticator app and send the token and a current code to ${ENROLMENT_PATH} before expiresAt`,
              properties: {
                error: { type: 'string' },
                passwordChangeRequired,
                totpEnrolment: {
                  type: 'object',
                  required: ['token', 'secret', 'otpauthUri', 'expiresAt', 'newPasswordRequired'],
                  properties: {
                    token: { type: 'string', description: `Sent back to ${ENROLMENT_PATH}; good once, until expiresAt (the DIP keeps only its SHA-256)` },
                    secret: { type: 'string', description: 'The new TOTP secret (base32), for an app that takes it typed in' },
                    otpauthUri: { type: 'string', description: 'The same secret as an otpauth:// URI' },
                    expiresAt: isoTime,
                    newPasswordRequired: { type: 'boolean', description: "The confirmation must carry newPassword: the account's creator chose the password in force" },
                  },
                },
              },
            },
            409: {
              type: 'object',
              required: ['error'],
              description: 'The password is right and the account has no second factor, but an enrolment of it is already under way (started by another sign-in with this password): it is not replaced. Finish that one, or sign in again after pendingUntil',
              properties: { error: { type: 'string' }, pendingUntil: { ...isoTime, description: 'When the enrolment under way ends, if not finished: a sign-in after then starts a new one' } },
            },
            429: signInThrottled,
          },
          [401],
        ),
      },
    },
    async (req, reply) => sessionAnswer(reply, await deps.sessions.signIn(req.body.name, req.body.password, req.body.code ?? '', req.body.newPassword, clientAddress(req.raw.socket))),
  );
  app.post<{ Body: { token: string; code: string; newPassword?: string } }>(
    ENROLMENT_PATH,
    {
      schema: {
        tags,
        summary: `Finish a first sign-in (people): the totpEnrolment token from ${SIGN_IN_PATH} and a current code of its secret put the TOTP in force and answer a session, as a sign-in does; no token needed. A wrong code counts as a failed sign-in of the account`,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['token', 'code'],
          properties: {
            token: { type: 'string', minLength: 1, maxLength: 100 },
            code: totpCodeField,
            newPassword: newPasswordField('Your own password, replacing the one your creator chose: required when the enrolment said newPasswordRequired'),
          },
        },
        response: answers(
          {
            200: signedIn,
            403: {
              type: 'object',
              required: ['error', 'passwordChangeRequired'],
              description: 'The code is right, but newPassword is missing or not acceptable: send it again with one (the code is not used up, the enrolment stays)',
              properties: { error: { type: 'string' }, passwordChangeRequired },
            },
            429: signInThrottled,
          },
          [401],
        ),
      },
    },
    async (req, reply) => sessionAnswer(reply, await deps.sessions.confirmEnrolment(req.body.token, req.body.code, req.body.newPassword, clientAddress(req.raw.socket))),
  );
  app.delete(SIGN_IN_PATH, { schema: { tags, summary: "Sign out: ends every session of the caller's account (the portal's too); an automation account has none (400)", response: answers({ 204: empty('Signed out') }, [400]) } }, async (req, reply) => {
    const who = operatorOf(req);
    if (who.actor === 'bootstrap') return reply.code(400).send({ error: 'the bootstrap token has no session to end' });
    if (!(await deps.sessions.signOut(who))) return reply.code(400).send({ error: `${who.name} is an automation account: it has no session to end (its token stays in force until replaced with PATCH /admin/operators/${who.name} newToken, or the account is disabled)` });
    req.journaled = true;
    return reply.code(204).send();
  });

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
        if (req.body.disabled === true) await deps.sessions.endAll(updated.operator);
        req.journaled = true;
        return updated;
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );

  // A person who lost their authenticator: an admin takes the factor away, and the next sign-in enrols anew.
  app.post<{ Params: { name: string } }>(
    '/admin/operators/:name/totp-reset',
    {
      schema: {
        tags,
        summary:
          "Reset a person's lost TOTP factor (admins): the secret is cleared, every session of the account ends, any enrolment under way is dropped, the name's failed sign-ins are forgotten (a locked-out person can use the new password at once), and a new first password is answered once; the next sign-in sets up a new TOTP and must choose the person's own password. Journalled (operator.totp-reset)",
        params: { type: 'object', required: ['name'], properties: { name: { type: 'string', maxLength: 64 } } },
        response: answers(
          {
            200: {
              type: 'object',
              required: ['operator', 'password', 'passwordExpiresAt'],
              description: 'Reset',
              properties: {
                operator: { type: 'string' },
                password: { type: 'string', description: `The account's new first password, shown this once: its next sign-in (POST ${SIGN_IN_PATH}) sets up a new TOTP and replaces it` },
                passwordExpiresAt: FIRST_PASSWORD_EXPIRY,
              },
            },
          },
          [404, 409],
        ),
      },
    },
    async (req, reply) => {
      const { name } = req.params;
      const found = (await deps.operators.list()).find((o) => o.name === name);
      if (!found) return reply.code(404).send({ error: `no operator account named '${name}'` });
      if (found.automation === true) return reply.code(409).send({ error: `${name} is an automation account: it has a token, not a TOTP (PATCH /admin/operators/${name} with newToken)` });
      // Whoever is signed in still holds a factor, so resetting one's own serves nobody but a stolen session,
      // which would become the account for good. The bootstrap token under break-glass acts as 'bootstrap'.
      if (operatorOf(req).actor === `operator:${name}`) return reply.code(409).send({ error: `an operator cannot reset their own factor: ask another admin (or use the bootstrap token under break-glass)` });
      const reset = await deps.credentials.resetTotpFactor(name, null);
      if (!reset) return reply.code(404).send({ error: `operator ${name} has no sign-in credential` });
      req.journaled = true;
      try {
        await deps.journal.append({ at: deps.now(), actor: operatorOf(req).actor, action: 'operator.totp-reset', target: name, before: { hadFactor: reset.hadFactor, pendingEnrolment: reset.pendingEnrolment }, after: { sessionsEnded: true, mustChangePassword: true, failedSignInsCleared: true }, status: 200 });
      } catch (err) {
        // The reset is done: its password is still answered (else the account is left with one nobody knows), the lost entry logged.
        deps.logger.error({ err, operator: operatorOf(req).name, target: name }, 'could not journal a TOTP reset');
      }
      return { operator: name, password: reset.password, passwordExpiresAt: new Date(reset.passwordExpiresAt).toISOString() };
    },
  );

  app.get<{ Querystring: { actor?: string; action?: string; target?: string; before?: number; from?: string; to?: string; limit?: number; format?: 'json' | 'csv' } }>(
    '/admin/journal',
    {
      schema: {
        tags: ['Journal'],
        summary: 'The record of operator actions, newest first',
        description: "A viewer reads applicants' and contacts' details (an `applicant:<e-mail>` actor, `companyName`, `contactName` and e-mail fields of before and after) as `(held back from viewers)`, as GET /admin/onboarding is held back from it, and may not filter by an `applicant:` actor (403).",
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            actor: { type: 'string', maxLength: 100 },
            action: { type: 'string', maxLength: 200 },
            target: { type: 'string', maxLength: 200 },
            before: { type: 'integer', minimum: 1, description: 'Entries with a smaller ID than this (the next page)' },
            from: { type: 'string', format: 'date-time', description: 'Entries at or after this time' },
            to: { type: 'string', format: 'date-time', description: 'Entries before this time' },
            limit: { type: 'integer', minimum: 1, maximum: 10_000, default: 100 },
            format: { type: 'string', enum: ['json', 'csv'], default: 'json', description: 'csv: the entries as CSV (an attachment), before and after as JSON in their cells, a cell that starts like a spreadsheet formula written as text' },
          },
        },
        response: answers(
          {
            200: {
              description: 'The entries',
              content: { 'application/json': { schema: { type: 'array', items: journalEntry } }, 'text/csv': { schema: { type: 'string', description: 'id, at, actor, action, target, before, after, status: a header line first' } } },
            },
          },
          [400],
        ),
      },
    },
    async (req, reply) => {
      const q = req.query;
      const { role } = operatorOf(req);
      const refusal = journalActorRefusal(role, q.actor);
      if (refusal) return reply.code(403).send({ error: refusal });
      const fromMs = q.from === undefined ? undefined : Date.parse(q.from);
      const toMs = q.to === undefined ? undefined : Date.parse(q.to);
      if (fromMs !== undefined && toMs !== undefined && !(fromMs < toMs)) return reply.code(400).send({ error: `from (${q.from ?? ''}) must be before to (${q.to ?? ''})` });
      const entries = await deps.journal.entries({ actor: q.actor, action: q.action, target: q.target, beforeId: q.before, fromMs, toMs, limit: q.limit ?? 100 });
      const shown = entries.map((e) => ({ ...(role === 'viewer' ? journalForViewer(e) : e), at: new Date(e.at).toISOString() }));
      if (q.format !== 'csv') return shown;
      // before and after as one JSON cell each: their shape is each action's own, so flattened they made a column per field of every action.
      const rows = shown.map((e) => ({ id: e.id, at: e.at, actor: e.actor, action: e.action, target: e.target, before: jsonCell(e.before), after: jsonCell(e.after), status: e.status }));
      return reply.header('content-type', 'text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="journal.csv"').send(toCsv(rows, JOURNAL_CSV_COLUMNS));
    },
  );
};

const JOURNAL_CSV_COLUMNS = ['id', 'at', 'actor', 'action', 'target', 'before', 'after', 'status'] as const;

/** A journal entry's before or after in its CSV cell: JSON, empty when nothing was recorded. */
const jsonCell = (v: unknown): string => (v === null || v === undefined ? '' : JSON.stringify(v));
