import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isObject, SchemaConverter, SpecFiles, type SchemaRef } from './openapi-schema.js';
import { FALLBACK_ROLES, parseRolesTable, rolesFromText, routingModesFor, type TableRow } from './roles.js';
import { API_SCHEMAS, bareEventCode, type ApiSchemaName, type CatalogueChannel, type CatalogueDocument, type ChannelDefinition, type JsonObject, type JsonSchema, type JsonValue } from './types.js';

/**
 * Builds OpenDIP's interface catalogue from the published DIP API: one channel per payload the
 * ingress schema (`DIPMessage.payload.oneOf`) accepts, each with a self-contained JSON Schema of one
 * array item and default roles and routing modes.
 */

export const SENDER_RECEIVER_TABLE = 'interface_sender_receiver_table_third_party.md';

export interface BuildResult {
  document: CatalogueDocument;
  /** Things in the spec the generator could not take literally; printed by the script. */
  warnings: string[];
}

export interface ImportResult extends BuildResult {
  outFile: string;
  bytes: number;
}

export interface ImportOptions {
  /** The third-party sender/receiver table; default: beside the spec directory. */
  rolesTable?: string;
  /**
   * Channels whose roles to keep where the table has no row (importing a newer API without the
   * table keeps the roles the DIP already knew). Only then: the bundled catalogue is generated
   * without one, so it depends on the reference files alone.
   */
  baseline?: readonly ChannelDefinition[];
}

/** Reads the spec directory (and the sender/receiver table beside it, if present) and writes the catalogue. */
export async function importCatalogue(specDir: string, outFile: string, options: ImportOptions = {}): Promise<ImportResult> {
  const built = buildCatalogue(specDir, options);
  const json = serialiseCatalogue(built.document);
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, json);
  return { ...built, outFile, bytes: Buffer.byteLength(json) };
}

/** Stable text: key order comes from the spec's own order (channels and definitions sorted). */
export function serialiseCatalogue(doc: CatalogueDocument): string {
  return JSON.stringify(doc, null, 2) + '\n';
}

function entryFile(spec: SpecFiles): string {
  if (spec.has('redocly.yaml')) {
    const apis = spec.doc('redocly.yaml')['apis'];
    const main = isObject(apis) ? apis['main'] : undefined;
    const root = isObject(main) ? main['root'] : undefined;
    if (typeof root === 'string' && spec.has(root)) return root;
  }
  return 'SubmitEvents-unresolved.yaml';
}

function at(node: JsonValue | undefined, ...path: string[]): JsonValue | undefined {
  let cur = node;
  for (const p of path) cur = isObject(cur) ? cur[p] : undefined;
  return cur;
}

/** A scalar as text (a YAML version may parse as a number); anything else is absent. */
function text(v: JsonValue | undefined): string | undefined {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;
}

function strings(v: JsonValue | undefined): string[] {
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : [];
}

/** Channel names from the API description: "Channel-021    UTC Settlement Period Consumption Data<br>". */
function channelNames(description: string): Map<string, string> {
  const names = new Map<string, string>();
  // The name runs to the next <br> on its line; asterisks and spacing are tidied below (a pattern that
  // trimmed them itself would backtrack polynomially on a long line without <br>).
  for (const m of description.matchAll(/(Channel-(\d{3})|REP-\d{3}[A-Z]?)\s+([^\s<][^<\n]*)<br>/g)) {
    const id = m[2] ? `IF-${m[2]}` : (m[1] ?? '');
    const name = (m[3] ?? '').replace(/\*+/g, '').replace(/\s+/g, ' ').trim();
    if (id && name && !names.has(id)) names.set(id, name);
  }
  return names;
}

interface Variant {
  ref: SchemaRef;
  raw: JsonObject;
  interfaceIds: string[];
  schemaVersions: string[];
  eventCodes: string[];
  commonBlocks: string[];
}

function readVariant(spec: SpecFiles, ref: SchemaRef): Variant {
  const raw = spec.component(ref);
  if (!isObject(raw)) throw new Error(`${ref.name} is not a schema object`);
  const common = at(raw, 'properties', 'CommonBlock');
  let s0 = at(common, 'properties', 'S0');
  if (isObject(s0) && typeof s0['$ref'] === 'string') s0 = spec.component(spec.parseRef(s0['$ref'], ref.file));
  return {
    ref,
    raw,
    interfaceIds: strings(at(s0, 'properties', 'interfaceID', 'enum')),
    schemaVersions: strings(at(s0, 'properties', 'schemaVersion', 'enum')),
    eventCodes: strings(at(s0, 'properties', 'eventCode', 'enum')),
    commonBlocks: Object.keys(isObject(at(common, 'properties')) ? (at(common, 'properties') as JsonObject) : {}),
  };
}

function eventCodeCondition(codes: string[]): JsonSchema {
  return {
    type: 'object',
    required: ['CommonBlock'],
    properties: {
      CommonBlock: {
        type: 'object',
        required: ['S0'],
        properties: { S0: { type: 'object', required: ['eventCode'], properties: { eventCode: { enum: codes } } } },
      },
    },
  };
}

/**
 * Which variant each event code is validated against. The spec's own per-event-code validation
 * endpoints (`/validate/IF-020/RelatedAdd` → `IF-020-RelatedAdd`) say so; failing those, the variant
 * named after the code, or else the only variant whose S0.eventCode enum lists it. The endpoints
 * matter: some variants list codes that have a variant of their own (IF-020-RelatedCreate also lists
 * RelatedAdd and RelatedRemove), which a literal oneOf would reject as matching twice.
 */
function dispatch(id: string, variants: Variant[], endpoints: Map<string, SchemaRef>, warn: (m: string) => void): Map<Variant, string[]> {
  const byVariant = new Map<Variant, string[]>(variants.map((v) => [v, []]));
  const codes = unique(variants.flatMap((v) => v.eventCodes));
  for (const code of codes) {
    const bare = bareEventCode(code);
    const endpoint = endpoints.get(`${id}/${bare}`);
    const listing = variants.filter((v) => v.eventCodes.includes(code));
    const chosen =
      variants.find((v) => v.ref.file === endpoint?.file && v.ref.name === endpoint.name) ??
      listing.find((v) => v.ref.name === `${id}-${bare}`) ??
      (listing.length === 1 ? listing[0] : undefined);
    if (!chosen) warn(`${id}: event code ${code} has no single variant; validated against the first that lists it`);
    const target = chosen ?? listing[0];
    if (target) byVariant.get(target)?.push(code);
  }
  for (const [v, list] of byVariant) if (list.length === 0) warn(`${v.ref.name}: no event code dispatches to it`);
  return byVariant;
}

/**
 * The payload schema. A payload with one variant per event code (`oneOf`) becomes a guard on
 * S0.eventCode plus one if/then per variant, so errors come from the variant the sender meant rather
 * than from every branch of a oneOf.
 */
function payloadSchema(conv: SchemaConverter, payload: JsonObject, variants: Variant[], dispatched: Map<Variant, string[]>, id: string): JsonSchema {
  if (!Array.isArray(payload['oneOf'])) {
    const only = variants[0];
    if (!only) throw new Error(`${id}: no payload schema`);
    return conv.inline(only.ref);
  }
  const all = [...dispatched.values()].flat();
  const allOf: JsonSchema[] = [eventCodeCondition(all)];
  for (const v of variants) {
    const codes = dispatched.get(v) ?? [];
    if (codes.length > 0) allOf.push({ if: eventCodeCondition(codes), then: conv.inline(v.ref) });
  }
  return { type: 'object', allOf };
}

/** `/validate/{interface}/{eventCode}` → the payload schema that endpoint validates against. */
function validationEndpoints(spec: SpecFiles, root: string): Map<string, SchemaRef> {
  const out = new Map<string, SchemaRef>();
  const paths = at(spec.doc(root), 'paths');
  if (!isObject(paths)) return out;
  for (const [path, item] of Object.entries(paths)) {
    const m = /^\/validate\/([^/]+)\/([^/]+)$/.exec(path);
    const ref = at(item, 'post', 'requestBody', 'content', 'application/json', 'schema', 'items', 'properties', 'payload', '$ref');
    if (m?.[1] && m[2] && typeof ref === 'string') out.set(`${m[1]}/${m[2]}`, spec.parseRef(ref, root));
  }
  return out;
}

function unique(list: string[]): string[] {
  return [...new Set(list)];
}

export function buildCatalogue(specDir: string, options: ImportOptions = {}): BuildResult {
  const warnings: string[] = [];
  const warn = (m: string): void => {
    warnings.push(m);
  };
  const spec = SpecFiles.load(specDir);
  const root = entryFile(spec);
  const rootDoc = spec.doc(root);
  const apiVersion = text(at(rootDoc, 'info', 'version')) ?? 'unknown';
  const names = channelNames(text(at(rootDoc, 'info', 'description')) ?? '');

  const tablePath = options.rolesTable ?? join(specDir, '..', SENDER_RECEIVER_TABLE);
  const table = existsSync(tablePath) ? parseRolesTable(readFileSync(tablePath, 'utf8')) : new Map<string, TableRow>();
  if (table.size === 0) warn(`no sender/receiver table at ${tablePath}: roles from ${options.baseline ? 'the current catalogue and ' : ''}built-in defaults`);
  const baseline = new Map((options.baseline ?? []).map((c) => [c.interfaceId, c]));

  const ingress = at(rootDoc, 'components', 'schemas', 'DIPMessage', 'properties', 'payload', 'oneOf');
  if (!Array.isArray(ingress)) throw new Error(`${root}: DIPMessage.payload.oneOf not found`);
  const payloadRefs: SchemaRef[] = ingress.map((n) => {
    const r = at(n, '$ref');
    if (typeof r !== 'string') throw new Error(`${root}: DIPMessage payload entry without $ref`);
    return spec.parseRef(r, root);
  });

  const endpoints = validationEndpoints(spec, root);
  const declared = new Set(strings(at(parseDataTypes(spec), 'enum')));
  const channels: CatalogueChannel[] = [];
  for (const ref of payloadRefs) {
    const id = /^(.+)-Payload$/.exec(ref.name)?.[1];
    if (!id) {
      warn(`${ref.name}: not named <interface>-Payload; skipped`);
      continue;
    }
    if (declared.size > 0 && !declared.has(id)) warn(`${id}: not in DT-000-InterfaceID`);
    const payload = spec.component(ref);
    if (!isObject(payload)) throw new Error(`${ref.name} is not a schema object`);
    const variantRefs = Array.isArray(payload['oneOf'])
      ? payload['oneOf'].map((n, i) => {
          const target = text(at(n, '$ref'));
          if (target === undefined) throw new Error(`${ref.name}: oneOf entry ${i} has no $ref`);
          return spec.parseRef(target, ref.file);
        })
      : [ref];
    const variants = variantRefs.map((r) => readVariant(spec, r));
    for (const v of variants) {
      if (v.interfaceIds.length !== 1 || v.interfaceIds[0] !== id) warn(`${v.ref.name}: S0.interfaceID enum is ${JSON.stringify(v.interfaceIds)}`);
    }

    const conv = new SchemaConverter(spec, warn);
    const body = payloadSchema(conv, payload, variants, dispatch(id, variants, endpoints, warn), id);
    const schema: JsonSchema = {
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'object',
      required: ['payload'],
      properties: { payload: body },
      definitions: conv.definitions(),
    };

    const row = table.get(id);
    const fallback = baseline.get(id) ?? FALLBACK_ROLES[id];
    let senderRoles = row ? rolesFromText(row.sender) : [];
    let receiverRoles = row ? rolesFromText(row.receiver) : [];
    if (senderRoles.length === 0) senderRoles = [...(fallback?.senderRoles ?? [])];
    if (receiverRoles.length === 0) receiverRoles = [...(fallback?.receiverRoles ?? [])];
    if (senderRoles.length === 0 || receiverRoles.length === 0) warn(`${id}: no default sender/receiver roles`);
    const commonBlocks = unique(variants.flatMap((v) => v.commonBlocks));
    // "Public (All Roles)", "Public (via separate file-sharing mechanism)": published to everyone.
    const isPublic = row ? /\bpublic\b/i.test(row.receiver) : (baseline.get(id)?.routingModes.includes('always') ?? false);

    channels.push({
      interfaceId: id,
      publicationId: id.startsWith('IF-') ? id.replace(/^IF-/, 'PUB-') : id,
      name: names.get(id) || (typeof payload['description'] === 'string' ? payload['description'].trim() : '') || row?.name || id,
      eventCodes: unique(variants.flatMap((v) => v.eventCodes.map(bareEventCode))),
      schemaVersions: unique(variants.flatMap((v) => v.schemaVersions)),
      senderRoles,
      receiverRoles,
      routingModes: routingModesFor(commonBlocks, receiverRoles, isPublic),
      schema,
    });
  }
  channels.sort((a, b) => channelOrder(a.interfaceId) - channelOrder(b.interfaceId) || (a.interfaceId < b.interfaceId ? -1 : 1));
  return { document: { apiVersion, channels, api: apiSchemas(spec, root, warn) }, warnings };
}

/**
 * The request bodies of the API's own operations (webhook configuration, replay filters, status
 * messages) and the answer they share, each a self-contained draft-07 schema: the DIP validates
 * requests with exactly what the published API accepts, not with a hand copy of it.
 */
function apiSchemas(spec: SpecFiles, root: string, warn: (m: string) => void): Partial<Record<ApiSchemaName, JsonSchema>> {
  const out: Partial<Record<ApiSchemaName, JsonSchema>> = {};
  const names = new Set(spec.componentNames(root));
  for (const name of API_SCHEMAS) {
    if (!names.has(name)) {
      warn(`${root}: schema ${name} not found; the DIP keeps the one of the bundled catalogue`);
      continue;
    }
    const conv = new SchemaConverter(spec, warn);
    const body = conv.inline({ file: root, name });
    out[name] = { $schema: 'http://json-schema.org/draft-07/schema#', ...body, definitions: conv.definitions() };
  }
  return out;
}

/** IF-… before REP-…, each by number. */
function channelOrder(id: string): number {
  const n = Number(/\d+/.exec(id)?.[0] ?? 0);
  return (id.startsWith('REP-') ? 10_000 : 0) + n;
}

function parseDataTypes(spec: SpecFiles): JsonValue | undefined {
  const file = 'DataTypes-unresolved.yaml';
  return spec.has(file) ? at(spec.doc(file), 'components', 'schemas', 'DT-000-InterfaceID') : undefined;
}
