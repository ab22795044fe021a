import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { Catalogue } from '../catalogue/catalogue.js';
import { toIssues } from '../catalogue/errors.js';
import { parseDipDateTime } from '../domain/time.js';
import type { ApiSchemaName, JsonSchema } from '../catalogue/types.js';

// ajv-formats is CommonJS; under NodeNext its default import is the module object.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/**
 * Request bodies of the API's own operations. The published ones (WebhookConfig, MessageRequest,
 * StandardResponseArray) are generated from API 2.1.0 into the bundled catalogue, so a body is
 * accepted exactly when the published schema accepts it; OpenDIP's own rules on top of them (a
 * webhook needs a callbackURL, …) are the functions below, listed in docs/api-differences.md.
 * The server's request shapes are its wire contract: an imported newer catalogue changes channels,
 * not these.
 */
export function publishedSchema(name: ApiSchemaName): JsonSchema {
  const schema = Catalogue.load().apiSchema(name);
  if (!schema) throw new Error(`the bundled catalogue has no ${name} schema: run npm run catalogue:generate`);
  return schema;
}

/**
 * POST /dip-channel/{id}/ack/{recipient-id} (pull consumption, an OpenDIP extension). A safe integer at
 * most: JSON.parse reads a larger one rounded (9007199254740993 as …992), so it would be judged, and
 * echoed, as a number the caller did not send.
 */
export const ACK_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['sequence'],
  properties: { sequence: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } },
};

const ajv = new Ajv({ allErrors: true, strict: false, coerceTypes: false, useDefaults: false, removeAdditional: false });
addFormats(ajv);
const compiled = new WeakMap<object, ValidateFunction>();

/** Route body schemas compile here: all errors, no type coercion, nothing added or removed. */
export function compileBodySchema(schema: object): ValidateFunction {
  let v = compiled.get(schema);
  if (!v) {
    v = ajv.compile(schema);
    compiled.set(schema, v);
  }
  return v;
}

const documented = (): boolean => true;

/**
 * The participant listener's validator compiler. Bodies, query strings and path parameters are checked
 * against the route's schema. Headers are documentation only: a missing or wrong signature header is
 * answered 401 by authentication (the published answer), not 400 by validation.
 */
export function compileRequestSchema({ schema, httpPart }: { schema: object; httpPart?: string }): ValidateFunction | (() => boolean) {
  return httpPart === 'headers' ? documented : compileBodySchema(schema);
}

/**
 * For routes that read their query string through readQuery (src/api/query.ts: names in any case, each
 * once): the querystring schema documents the names; checked by Fastify it would hold only the exact
 * spelling to its types, and answer a repeated one otherwise than the route does.
 */
export function compileReadQueryRouteSchema(part: { schema: object; httpPart?: string }): ValidateFunction | (() => boolean) {
  return part.httpPart === 'querystring' ? documented : compileRequestSchema(part);
}

/**
 * For routes whose pipeline reads the raw batch itself (POST /dip-channel/{id}, /validate/…): the body
 * schema documents the channel's published schema, and ingest validates against that same catalogue
 * schema with the published per-item answers, so Fastify must not validate the raw bytes again.
 */
export function compileRawBodyRouteSchema(part: { schema: object; httpPart?: string }): ValidateFunction | (() => boolean) {
  return part.httpPart === 'body' ? documented : compileRequestSchema(part);
}

/**
 * Ajv errors on a body that is an array of items (a batch of status messages), as each failing item's
 * help beginning `item N:` (README, "Answers to a submission"), fields named within the item. Null when
 * an error is about the array itself (not an array, too few items): one help for the body then.
 */
export function describeItemErrors(errors: readonly ErrorObject[]): Map<number, string> | null {
  const byItem = new Map<number, ErrorObject[]>();
  for (const e of errors) {
    const m = /^\/(\d+)(\/.*)?$/.exec(e.instancePath);
    if (!m) return null;
    const index = Number(m[1]);
    byItem.set(index, [...(byItem.get(index) ?? []), { ...e, instancePath: m[2] ?? '' }]);
  }
  if (byItem.size === 0) return null;
  return new Map([...byItem].sort(([a], [b]) => a - b).map(([index, es]) => [index, `item ${index}: ${toIssues(es, { root: 'the entry' }).map((i) => i.message).join('; ')}`]));
}

/** Ajv errors on a request body as one help text naming each field and why (at most ten, shallowest first). */
export function describeBodyErrors(errors: readonly ErrorObject[]): string {
  return toIssues(errors, { root: 'the body' })
    .map((i) => i.message)
    .join('; ');
}

// ---------------------------------------------------------------------------------------------------
// OpenDIP's rules beyond the published schemas (docs/api-differences.md)

/** Published MessageRequest (replay / requeue filters): the five named fields are required, and may be null. */
export interface MessageRequestBody {
  datetimeFrom: string | null;
  datetimeTo: string | null;
  eventCode: string | null;
  MPAN: string | null;
  transactionIDs?: string[];
  version: string | null;
}

/** From the start of a second to its last ms. */
const SECOND_LAST_MS = 999;

/**
 * The window a replay filter names, in ms, both ends inclusive. The published date-time type only fixes
 * the length (25 characters), so the date itself is checked here (a calendar date that does not exist is
 * refused, not rolled over). A null bound is open: from the oldest archived message, or up to now.
 *
 * The bounds are transaction times (spec: "Date/time to" is the transaction time of the last message to
 * replay), written to the second, while a message's receipt is kept to the ms and its
 * D0.transactionTimestamp is that receipt cut to the second. So datetimeTo takes in the whole second it
 * names (up to .999): a message stamped 13:07:55 but received at 13:07:55.600 is in a window ending
 * 13:07:55, and from = to is a one-second window. Both stores compare receipt ms against these bounds.
 */
export function replayWindow(body: MessageRequestBody): { fromMs: number; toMs: number } | { problem: string } {
  const bound = (name: 'datetimeFrom' | 'datetimeTo', open: number): number | string => {
    const v = body[name];
    if (v === null) return open;
    const parsed = parseDipDateTime(v);
    return 'problem' in parsed ? `${name} '${v}' is not a date-time like 2022-03-21T19:05:00+00:00 (${parsed.problem})` : parsed.ms;
  };
  const fromMs = bound('datetimeFrom', 0);
  const toMs = bound('datetimeTo', Number.MAX_SAFE_INTEGER);
  if (typeof fromMs === 'string') return { problem: fromMs };
  if (typeof toMs === 'string') return { problem: toMs };
  if (fromMs > toMs) return { problem: `datetimeFrom ${body.datetimeFrom} is after datetimeTo ${body.datetimeTo}` };
  return { fromMs, toMs: body.datetimeTo === null ? toMs : toMs + SECOND_LAST_MS };
}
