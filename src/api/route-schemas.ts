import { ENVELOPE_SCHEMA } from '../catalogue/envelope.js';
import type { JsonSchema } from '../catalogue/types.js';
import type { FastifyInstance } from 'fastify';
import { COMPONENT_MARK } from './openapi.js';
import { publishedSchema } from './schemas.js';

/**
 * The pieces every participant route's `schema` is built from: its path parameters, the signature
 * headers, and its answers. A route's schema is at once its validation (bodies and query strings, by
 * schemas.ts's compiler), its serialisation (answers with a schema go through fast-json-stringify) and
 * its part of the OpenAPI document (src/api/openapi.ts): one declaration, so the three cannot drift.
 */

/** The published path parameters. `:recipientId` is published as `{recipient-id}` (openapi.ts renames it). */
export const channelParams: JsonSchema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', description: 'Interface (channel) ID, e.g. IF-021 or REP-002 (DT-000), any case' } },
};
export const recipientParams: JsonSchema = {
  type: 'object',
  required: ['recipientId'],
  properties: { recipientId: { type: 'string', description: "The caller's own DIP participant ID (DT-006), or the participant it connects for" } },
};
export const channelRecipientParams: JsonSchema = {
  type: 'object',
  required: ['id', 'recipientId'],
  properties: { ...(channelParams['properties'] as object), ...(recipientParams['properties'] as object) },
};

/**
 * The four signature headers every call carries (README "Message signing"). Documentation only: the
 * published answer to a missing or wrong one is 401 from authentication, which needs the raw bytes, not
 * a 400 from schema validation (schemas.ts's compiler passes headers through).
 */
export const signatureHeaders: JsonSchema = {
  type: 'object',
  required: ['X-DIP-Signature', 'X-DIP-Signature-Date', 'X-DIP-Content-Hash', 'X-DIP-Signature-Certificate'],
  properties: {
    'X-DIP-Signature': { type: 'string', description: 'base64 RSASSA-PKCS1-v1_5 SHA-256 signature over METHOD;url-lower-cased;date;content-hash' },
    'X-DIP-Signature-Date': { type: 'string', description: 'UTC ISO-8601 with milliseconds, e.g. 2025-06-27T14:29:09.061Z; bounded clock skew' },
    'X-DIP-Content-Hash': { type: 'string', description: 'base64 SHA-256 of the raw body bytes' },
    'X-DIP-Signature-Certificate': { type: 'string', description: "base64 of the signer's certificate in PEM; it must be the mutual-TLS client certificate's participant" },
  },
};

/**
 * The four headers of a webhook call on an answer the DIP signs (a pull or replay answer of messages), over
 * the answer's own string (answerStringToSign: `RESPONSE <status>;` and then the request's METHOD;url, the
 * answer's date and content hash, and the X-Continuation-Token it names, empty when none), never a
 * request's. Response headers in the OpenAPI document; the route sets them.
 */
export const answerSignatureHeaders: Readonly<Record<string, JsonSchema>> = {
  'X-DIP-Signature': {
    type: 'string',
    description:
      "base64 RSASSA-PKCS1-v1_5 SHA-256 signature by the DIP's signing key over 'RESPONSE <status>;METHOD;url-lower-cased;date;content-hash;continuation-token' (e.g. 'RESPONSE 200;GET;https://dip.example/dip-channel/if-021/pull/1000000001?maxmessagecount=100;<date>;<hash>;'), the method and URL being those of this request, the last field the X-Continuation-Token sent with the answer (a 206 replay page's; empty on any other answer), so the page it names next is the DIP's too: the first field, with its space, is no HTTP method, so this is never the signature of a request or webhook call. Absent, as the other three, on an empty answer ([]), which vouches for no message",
  },
  'X-DIP-Signature-Date': { type: 'string', description: 'UTC ISO-8601 with milliseconds, when the DIP signed the answer' },
  'X-DIP-Content-Hash': { type: 'string', description: 'base64 SHA-256 of the answer body as sent' },
  'X-DIP-Signature-Certificate': { type: 'string', description: "base64 of the DIP's signing certificate in PEM (GET /certificates/dip); it chains to the environment's CA and names no participant" },
};

/** An answer of messages the DIP signs: its schema with the signature headers declared. */
export const signedAnswer = (schema: JsonSchema): JsonSchema => ({ ...schema, headers: answerSignatureHeaders });

/** What each answer means on this DIP (the published descriptions where they exist). */
const MEANING: Readonly<Record<number, string>> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted: a job works through the request; follow it at the Location header',
  204: 'No Content',
  206: 'Partial Content: one page; send the request again with X-Continuation-Token for the next',
  207: 'Some Messages Created (published; OpenDIP accepts or refuses a batch as a whole)',
  304: 'Not Modified: the client holds these bytes already (If-None-Match named the ETag, or If-Modified-Since is not before Last-Modified); no body',
  400: 'Bad Request: the help text names the field and why',
  401: 'Unauthorised Error: API key, client certificate or signature missing or not agreeing',
  403: 'Forbidden: the caller may not act for this participant, role or channel',
  404: 'Not found: no such channel or resource',
  405: 'Method Not Allowed (Allow names the methods the path takes)',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone: the DIP operator withdrew it; the help says when and why',
  412: 'Precondition Failed: If-Match does not name the ETag, or If-Unmodified-Since is before Last-Modified; no bytes',
  413: 'Payload Too Large',
  416: 'Range Not Satisfiable (Content-Range names the size)',
  421: "Misdirected Request (MSG1000): the Host header (or an absolute request target's host) names no name of this DIP's participant API (its server certificate's, publicUrl's, or one in allowedHosts)",
  422: 'Unprocessable Content: the request is sound, but what it names cannot be done as asked (the help says why and what can)',
  429: 'Too Many Requests (Retry-After says when to try again)',
  500: 'Internal Server Error',
  502: 'Bad Gateway (published; answered by a proxy in front of the DIP)',
  503: 'Service Unavailable: the store takes no writes now; nothing was accepted, unless the help says the DIP cannot tell (its store lost the answer as it committed) (Retry-After)',
  504: 'Gateway Timeout (published; answered by a proxy in front of the DIP)',
  505: 'HTTP Version Not Supported',
};

function meaning(code: number): string {
  const m = MEANING[code];
  if (!m) throw new Error(`no meaning recorded for HTTP ${code}`);
  return m;
}

/** The published StandardResponse, as generated into the catalogue: what every answer below carries. */
const standardResponse = (code: number): JsonSchema => ({ ...publishedSchema('StandardResponse'), description: meaning(code), [COMPONENT_MARK]: 'StandardResponse' });

/** An answer with no body (fast-json-stringify has nothing to serialise). */
export const noBody = (code: number): JsonSchema => ({ description: meaning(code), type: 'null' });

/** An answer whose body the route sends already serialised (copies of stored messages): documentation only. */
export const preSerialised = (code: number, schema: JsonSchema): JsonSchema => {
  const own = schema['description'];
  return { ...schema, description: typeof own === 'string' ? `${meaning(code)}. ${own}` : meaning(code) };
};

/**
 * An answer whose body is a stream of bytes (a download) served as one of `mediaTypes` (by what it holds):
 * documentation only, never serialised.
 */
export const binaryBody = (code: number, description: string, mediaTypes: readonly string[]): JsonSchema => ({
  description: `${meaning(code)}. ${description}`,
  content: Object.fromEntries(mediaTypes.map((t) => [t, { schema: { type: 'string', format: 'binary' } }])),
});

/** What every guarded call may be answered besides its own outcome. */
export const GUARDED = [400, 401, 403, 404, 405, 408, 413, 429, 500, 503] as const;

/** A response map answering each code with a StandardResponse, then `others` as given (they win). */
export function answers(codes: readonly number[], others: Record<number, JsonSchema> = {}): Record<number, JsonSchema> {
  const out: Record<number, JsonSchema> = {};
  for (const code of [...new Set(codes)].sort((a, b) => a - b)) out[code] = standardResponse(code);
  return { ...out, ...others };
}

/**
 * The listener answers any request whose Host is none of its names 421 (src/api/server.ts), before the
 * route is chosen: each documented route says so, where it does not already. Registered before the routes.
 */
export function documentHostAnswer(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const schema = route.schema as { hide?: boolean; response?: Record<string, unknown> } | undefined;
    if (!schema || schema.hide) return;
    schema.response = { ...(schema.response ?? {}), 421: schema.response?.[421] ?? standardResponse(421) };
  });
}

/** POST /dip-channel/{id} and /validate/…: a batch of messages, each `{payload: {CommonBlock, CustomBlock}}`. */
export function messageBatch(item: JsonSchema, description: string): JsonSchema {
  return { type: 'array', minItems: 1, items: item, description };
}

/** The part of every message the DIP itself reads; each channel's own schema applies on top (data portal). */
export const envelopeItem: JsonSchema = ENVELOPE_SCHEMA;

/**
 * DIPMessageEgressArray: messages as the DIP sends them out (with D0 filled in). Sent as stored, never
 * re-serialised, so this is documentation; each channel's schema (data portal) applies to the items.
 */
export function egressArray(description: string): JsonSchema {
  return {
    type: 'array',
    description,
    items: {
      type: 'object',
      required: ['payload'],
      properties: {
        // CustomBlock in the clear (pattern 1, as published), or EncryptedCustomBlock on a channel whose
        // security pattern is 2 or 3: a JWE to the recipient (docs/api-differences.md, "Encrypted payloads").
        payload: {
          type: 'object',
          properties: {
            CommonBlock: { type: 'object', description: 'S0, S1, A0, D0 and the channel\'s other common blocks' },
            CustomBlock: { type: 'object', description: 'Security pattern 1: the message in the clear' },
            EncryptedCustomBlock: { type: 'string', description: 'Security patterns 2 and 3 (OpenDIP): the CustomBlock as a JWE compact serialisation encrypted to the recipient' },
          },
          oneOf: [{ required: ['CommonBlock', 'CustomBlock'] }, { required: ['CommonBlock', 'EncryptedCustomBlock'] }],
        },
      },
    },
  };
}
