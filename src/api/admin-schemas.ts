import type { FastifyInstance, FastifySchemaValidationError, FastifyServerOptions } from 'fastify';
import { COMPONENT_MARK } from './openapi.js';

/**
 * The pieces every operator-API route's `schema` is built from. As on the participant listener
 * (route-schemas.ts), a route's schema is at once its validation, its serialisation (an answer with a
 * schema goes through fast-json-stringify: a field not listed is not sent) and its part of the operator
 * API's OpenAPI document: one declaration, so the three cannot drift.
 */

/** A route's JSON Schema as written here (`as const` literals: read-only arrays). */
export type Schema = object;

/** What each refusal means on the operator listener. */
const REFUSAL: Readonly<Record<number, string>> = {
  400: 'Bad Request: the body, query or path the schema refuses (the field and why), or a value the operation cannot use',
  401: 'No valid operator token (Authorization: Bearer <token>)',
  403: "The operator's role does not allow this call",
  404: 'No such resource',
  409: 'Conflict: the resource is not in a state that allows this (or a newer version exists)',
  421: 'Misdirected Request: the Host header names no name of the operator API (its loopback names, or one in operators.allowedHosts)',
  422: 'Unprocessable: a stored record the answer is made from does not open (damaged, or swapped from another record): named, and counted in dip_archive_unreadable_total',
  429: 'Too many at once (reports: as many as the DIP computes at once are running): try again after Retry-After',
  500: 'Internal error (the details are in the DIP log)',
  502: 'The upstream server failed or could not be reached: nothing applied',
  503: "The DIP's store cannot be reached from this node (restarting, failing over, cut off), or a record is sealed under a data key it is loading: nothing applied; try again after Retry-After",
};

/** The operator API's one refusal shape: `{"error": "<what and why>"}`. */
export function refusal(code: number): Schema {
  const description = REFUSAL[code];
  if (!description) throw new Error(`no meaning recorded for an operator-API refusal ${code}`);
  return {
    type: 'object',
    required: ['error'],
    properties: { error: { type: 'string', description: 'What was refused and why' } },
    description,
    [COMPONENT_MARK]: 'OperatorError',
  };
}

/** An answer with no body. */
export const empty = (description: string): Schema => ({ type: 'null', description });

/** `ok` answers, then a refusal for each of `codes`. */
export function answers(ok: Record<number, Schema>, codes: readonly number[] = []): Record<number, Schema> {
  return { ...ok, ...Object.fromEntries(codes.map((c) => [c, refusal(c)])) };
}

/** JSON Schema for an ISO 8601 date-time string as the operator API sends it. */
export const isoTime = { type: 'string', format: 'date-time' } as const;
/** An epoch-milliseconds timestamp as stored (dead letters, queues, attempts). */
export const epochMs = { type: 'integer', description: 'Milliseconds since the Unix epoch' } as const;
/** When a first password answered with it stops signing in (`portal.firstPasswordHours` after it was made): refused as a wrong password after, until an admin resets the account again. */
export const FIRST_PASSWORD_EXPIRY = { ...isoTime, description: 'When this first password stops signing in (portal.firstPasswordHours after it was made, 72 by default): after it the sign-in is refused as a wrong password is, until an administrator resets the authenticator for a new one' } as const;
export const queueRef = {
  type: 'object',
  required: ['recipientDipId', 'channel'],
  properties: { recipientDipId: { type: 'string' }, channel: { type: 'string' } },
} as const;

/** The path prefix of the operator API's documentation (`/json`, `/yaml` and Swagger UI). */
export const OPERATOR_DOCS = '/admin/api/docs';
export const isOperatorDocs = (path: string): boolean => path === OPERATOR_DOCS || path.startsWith(`${OPERATOR_DOCS}/`);

type RouteSchema = { hide?: boolean; body?: unknown; querystring?: unknown; params?: unknown; response?: Record<string, unknown> };

/**
 * The answers the listener itself gives to any route, added to each route's schema where it does not
 * say them already: 421 from the Host check (src/api/admin.ts), 401 and 403 from the operator
 * authentication hook (src/api/admin-operators.ts), 400
 * from schema validation where the route takes input, 500 from the error handler. Registered on the
 * listener before its routes, so every route's documentation says them.
 */
export function documentListenerAnswers(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const schema = route.schema as RouteSchema | undefined;
    if (!schema || schema.hide || isOperatorDocs(route.url)) return;
    const input = schema.body !== undefined || schema.querystring !== undefined || schema.params !== undefined;
    const response = { ...(schema.response ?? {}) };
    for (const code of [...(input ? [400] : []), 401, 403, 421, 500, 503]) response[code] ??= refusal(code);
    schema.response = response;
  });
}

/**
 * How the operator listener validates input. Fastify's own Ajv defaults include `removeAdditional: true`,
 * which silently strips a property a schema with `additionalProperties: false` does not list: a misspelt
 * `seqs` on a dead-letter requeue was dropped and the requeue took the whole queue, a typo in a channel
 * override recorded an empty change. Here such a property is refused instead (400 naming it), as the
 * operator API's OpenAPI document says. `verbose` puts the schema an error is about on the error, so the
 * refusal can list the fields the operation does take. The rest stays Fastify's default (query strings
 * are still coerced to their schema's types, defaults still applied).
 */
export const OPERATOR_AJV: NonNullable<FastifyServerOptions['ajv']> = { customOptions: { removeAdditional: false, verbose: true } };

/** A property name as shown in a refusal: long ones cut (the name is the caller's, and may be anything). */
const MAX_NAME_SHOWN = 80;

/** The property names a schema lists (what an object it describes may carry). */
function knownFields(schema: unknown): string[] {
  if (typeof schema !== 'object' || schema === null) return [];
  const properties: unknown = (schema as { properties?: unknown }).properties;
  return typeof properties === 'object' && properties !== null ? Object.keys(properties) : [];
}

/**
 * The operator listener's validation refusal text: Fastify's own (`body must have required property 'x'`,
 * `params/mpan must match pattern …`), except that a property the schema does not take is named, with where
 * it is and the fields that are taken there: `body/settings must NOT have additional property
 * 'staleAfterMinute' (known fields: senderRoles, …)`; a query parameter given more than once is said so.
 * Ajv (verbose) gives each error its parentSchema and the value refused (data).
 */
export function describeOperatorInputErrors(errors: ReadonlyArray<FastifySchemaValidationError & { parentSchema?: unknown; data?: unknown }>, dataVar: string): Error {
  const text = errors.map((e) => {
    const at = `${dataVar}${e.instancePath}`;
    // A query parameter given twice (?limit=1&limit=2) reaches the schema as an array of its values, which
    // Ajv refused as "must be integer": say what happened instead. A parameter whose schema is an array
    // is never refused so (its type is met), and one given once is a string.
    if (dataVar === 'querystring' && e.keyword === 'type' && Array.isArray(e.data) && /^\/[^/]+$/.test(e.instancePath)) {
      return `${at} is given ${e.data.length} times: give it once`;
    }
    const allowed = e.params['allowedValues'];
    if (e.keyword === 'enum' && Array.isArray(allowed)) return `${at} must be equal to one of the allowed values: ${allowed.map(String).join(', ')}`;
    const name = e.params['additionalProperty'];
    if (e.keyword !== 'additionalProperties' || typeof name !== 'string') return `${at} ${e.message ?? 'is not valid'}`;
    const shown = name.length > MAX_NAME_SHOWN ? `${name.slice(0, MAX_NAME_SHOWN)}…` : name;
    const known = knownFields(e.parentSchema);
    return `${at} must NOT have additional property '${shown}' (${known.length > 0 ? `known fields: ${known.join(', ')}` : 'it takes no fields'})`;
  });
  return new Error(text.join(', '));
}
