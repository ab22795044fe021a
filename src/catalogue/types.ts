/** JSON as it comes out of JSON.parse: what the generated catalogue and its schemas are made of. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/** A JSON Schema (draft-07) object. Kept loose on purpose: it is data read from the generated file. */
export type JsonSchema = JsonObject;

/** How the DIP may address a message on a channel (functional specification 5.5.3). */
export type RoutingMode = 'primary' | 'secondary' | 'always';

/** One message channel as the catalogue describes it; what routing and the API need, without the schema. */
export interface ChannelDefinition {
  interfaceId: string;
  publicationId: string;
  name: string;
  /** Event codes without the wire's square brackets: `ActivePower`, sent as `[ActivePower]`. */
  eventCodes: string[];
  schemaVersions: string[];
  senderRoles: string[];
  receiverRoles: string[];
  routingModes: string[];
}

export interface CatalogueChannel extends ChannelDefinition {
  /** Self-contained JSON Schema of one array item, `{ payload: { CommonBlock, CustomBlock } }`. */
  schema: JsonSchema;
}

/** Components of the published API's own operations that the generator copies into the catalogue. */
export const API_SCHEMAS = ['WebhookConfig', 'MessageRequest', 'StandardResponseArray', 'StandardResponse', 'RequeueStatus'] as const;
export type ApiSchemaName = (typeof API_SCHEMAS)[number];

/** The generated file, `src/catalogue/generated/catalogue-<apiVersion>.json`. */
export interface CatalogueDocument {
  apiVersion: string;
  channels: CatalogueChannel[];
  /** Request and answer bodies of the API's own operations, by published component name (API_SCHEMAS). */
  api?: Partial<Record<ApiSchemaName, JsonSchema>>;
}

export interface ValidationIssue {
  /** Dotted path into the item, e.g. `payload.CommonBlock.S1.senderUniqueReference`, arrays as `[3]`. */
  path: string;
  /** The JSON Schema keyword that failed (`required`, `pattern`, `enum`, ...) or `duplicateKey` / `channel`. */
  rule: string;
  message: string;
}

export type ValidationResult =
  | { ok: true; message: unknown; eventCode: string; schemaVersion: string }
  /**
   * `errors`: the first few (firstIssues); `count`: every issue found, so a help text can say how many it
   * leaves out; `paths`: the path of every issue found, uncut, so that which field failed (and so which
   * response code answers it) does not depend on which ten are shown.
   */
  | { ok: false; errors: ValidationIssue[]; count: number; paths: ReadonlySet<string> };

/** "[ActivePower]" on the wire, "ActivePower" in the catalogue. */
export function bareEventCode(code: string): string {
  return code.startsWith('[') && code.endsWith(']') ? code.slice(1, -1) : code;
}

/**
 * The event code a filter names (a replay's or requeue's `eventCode`) as messages carry it: the published
 * API writes them "[ActivePower]" (DT-004N-EventCode) and stores them exactly as the schema's enum has
 * them, but a participant may write "ActivePower" or "[activepower]" for the same one (ingress is
 * lenient about case, as /validate/{interface}/{event} is). One of the channel's codes, matched without
 * regard to brackets or case, is answered as the channel spells it; anything else is only bracketed
 * (an event code the catalogue does not list, such as a test message's, still matches exactly).
 */
export function wireEventCode(given: string, channelCodes: readonly string[]): string {
  const bare = bareEventCode(given);
  const known = channelCodes.find((c) => c.toLowerCase() === bare.toLowerCase());
  return `[${known ?? bare}]`;
}
