import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { ENVELOPE_SCHEMA, nullRecipientIssues } from './envelope.js';
import { allIssues, firstIssues } from './errors.js';
import { buildKeyTree, normaliseKeys, type KeyNode, type NormaliseProblem } from './key-case.js';
import { suggestSecurityCategory, type CategorySuggestion } from './security-category.js';
import type { ImportOptions, ImportResult } from './spec-import.js';
import { bareEventCode, type ApiSchemaName, type CatalogueChannel, type CatalogueDocument, type ChannelDefinition, type JsonSchema, type ValidationIssue, type ValidationResult } from './types.js';

export type { ChannelDefinition, ValidationIssue, ValidationResult } from './types.js';

/** Security pattern 3: the CustomBlock travels encrypted and is absent, so what the schema says of it is not a fault. */
function aboutCustomBlock(e: ValidationIssue): boolean {
  return e.path.startsWith('payload.CustomBlock') || (e.rule === 'required' && /CustomBlock/.test(e.message));
}

/** ajv-formats is CommonJS; under NodeNext its default export arrives wrapped. */
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

const BUNDLED = 'catalogue-2.1.0.json';

/**
 * Ajv errors of one message that are described and grouped for its answer (which shows ten: MAX_ISSUES);
 * any beyond are counted in the answer's "+N more", one each.
 */
export const MAX_COLLECTED_ERRORS = 1_000;

/** The bundled file sits beside this module: in src/, and in dist/ where `npm run build` copies it. */
function bundledPath(): string {
  return fileURLToPath(new URL(`./generated/${BUNDLED}`, import.meta.url));
}

interface Compiled {
  validate: ValidateFunction;
  keys: KeyNode;
}

function newAjv(): Ajv {
  // strict: false — the published schemas carry keyword combinations Ajv's strict mode would flag.
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  return ajv;
}

let envelope: ValidateFunction | null = null;
/** The shape the DIP itself reads (S0, S1), checked beside each channel's published schema. */
function envelopeValidator(): ValidateFunction {
  envelope ??= newAjv().compile(ENVELOPE_SCHEMA);
  return envelope;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Frozen: lookups hand out the same object every time, so nobody may change it under the others. */
function definitionOf(c: CatalogueChannel): ChannelDefinition {
  return Object.freeze({
    interfaceId: c.interfaceId,
    publicationId: c.publicationId,
    name: c.name,
    eventCodes: Object.freeze([...c.eventCodes]) as string[],
    schemaVersions: Object.freeze([...c.schemaVersions]) as string[],
    senderRoles: Object.freeze([...c.senderRoles]) as string[],
    receiverRoles: Object.freeze([...c.receiverRoles]) as string[],
    routingModes: Object.freeze([...c.routingModes]) as string[],
  });
}

let bundled: Catalogue | null = null;

/**
 * The interface catalogue: channel definitions and payload validation against the published schema.
 * Each channel's schema is compiled on first use and kept.
 */
export class Catalogue {
  readonly version: string;
  private readonly byId = new Map<string, CatalogueChannel>();
  private readonly definitions = new Map<string, ChannelDefinition>();
  private readonly compiled = new Map<string, Compiled>();
  private readonly categories = new Map<string, CategorySuggestion>();
  private readonly api: Partial<Record<ApiSchemaName, JsonSchema>>;
  private ajv: Ajv | null = null;

  constructor(doc: CatalogueDocument) {
    this.version = doc.apiVersion;
    this.api = doc.api ?? {};
    for (const c of doc.channels) {
      this.byId.set(c.interfaceId.toUpperCase(), c);
      this.definitions.set(c.interfaceId.toUpperCase(), definitionOf(c));
    }
  }

  /** The catalogue generated from the published API and committed with the code (read once, shared). */
  static load(): Catalogue {
    bundled ??= Catalogue.fromFile(bundledPath());
    return bundled;
  }

  static fromFile(path: string): Catalogue {
    const doc = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (!isRecord(doc) || typeof doc['apiVersion'] !== 'string' || !Array.isArray(doc['channels'])) {
      throw new Error(`${path} is not an interface catalogue`);
    }
    return new Catalogue(doc as unknown as CatalogueDocument);
  }

  /** Case-insensitive: `if-021` finds IF-021. The definition is frozen; copy it to derive an override. */
  channel(id: string): ChannelDefinition | undefined {
    return this.definitions.get(id.toUpperCase());
  }

  channels(): ChannelDefinition[] {
    return [...this.definitions.values()];
  }

  /** A request or answer body of the API's own operations (WebhookConfig, …), as generated. */
  apiSchema(name: ApiSchemaName): JsonSchema | undefined {
    return this.api[name];
  }

  /** The channel's JSON Schema of one message item, as generated. */
  schema(id: string): CatalogueChannel['schema'] | undefined {
    return this.byId.get(id.toUpperCase())?.schema;
  }

  /** Spec 5.2.2: the security category suggested by the data items the channel's schema carries (for review). */
  suggestedSecurityCategory(id: string): CategorySuggestion | undefined {
    const channel = this.byId.get(id.toUpperCase());
    if (!channel) return undefined;
    let hit = this.categories.get(channel.interfaceId);
    if (!hit) {
      hit = suggestSecurityCategory(channel.schema);
      this.categories.set(channel.interfaceId, hit);
    }
    return hit;
  }

  /**
   * Validates one array item `{ payload: { CommonBlock, CustomBlock } }` for a channel. Field names
   * are matched case-insensitively; on success `message` carries the spec's exact case (the input
   * itself when it already did). Beside the published schema, the envelope the DIP reads (S0, S1) must
   * hold, whatever the channel's schema leaves open, and no primary recipient may be null. `encryptedPayload`: the CustomBlock travels
   * encrypted (security pattern 3) and is absent; everything else must still be valid.
   */
  validate(channelId: string, item: unknown, opts: { encryptedPayload?: boolean } = {}): ValidationResult {
    const channel = this.byId.get(channelId.toUpperCase());
    if (!channel) {
      return { ok: false, errors: [{ path: '', rule: 'channel', message: `unknown channel ${channelId}` }], count: 1, paths: new Set(['']) };
    }
    const { validate, keys } = this.compile(channel);
    const problems: NormaliseProblem[] = [];
    const message = normaliseKeys(item, keys, problems);
    if (problems.length > 0) {
      return {
        ok: false,
        errors: firstIssues(problems).map((p) => ({
          path: p.path,
          rule: 'duplicateKey',
          message: `${p.path} is given twice (as "${p.key}" and in another case); field names are case-insensitive`,
        })),
        count: problems.length,
        paths: new Set(problems.map((p) => p.path)),
      };
    }
    const published = validate(message) ? [] : (validate.errors ?? []);
    const checkEnvelope = envelopeValidator();
    const shape = checkEnvelope(message) ? [] : (checkEnvelope.errors ?? []);
    const nulls = nullRecipientIssues(message);
    if (published.length > 0 || shape.length > 0 || nulls.length > 0) {
      // Ajv reports every extra field and every bad element: describing and grouping 100,000 of them took
      // seconds of an ingest thread. The first MAX_COLLECTED_ERRORS are read; the rest are only counted.
      const found = [...shape, ...published.slice(0, MAX_COLLECTED_ERRORS)];
      const unread = shape.length + published.length - found.length;
      const issues = [
        ...allIssues(found, {
          channelId: channel.interfaceId,
          ...eventCodeOf(message),
          root: 'the message',
          ...(opts.encryptedPayload ? { omit: aboutCustomBlock } : {}),
        }),
        ...nulls,
      ];
      if (issues.length > 0) return { ok: false, errors: firstIssues(issues), count: issues.length + unread, paths: new Set(issues.map((i) => i.path)) };
    }
    // The envelope schema has checked these are strings.
    const s0 = (message as { payload: { CommonBlock: { S0: Record<string, unknown> } } }).payload.CommonBlock.S0;
    return {
      ok: true,
      message,
      eventCode: bareEventCode(String(s0['eventCode'])),
      schemaVersion: String(s0['schemaVersion']),
    };
  }

  private compile(channel: CatalogueChannel): Compiled {
    const hit = this.compiled.get(channel.interfaceId);
    if (hit) return hit;
    this.ajv ??= newAjv();
    const compiled = { validate: this.ajv.compile(channel.schema), keys: buildKeyTree(channel.schema) };
    this.compiled.set(channel.interfaceId, compiled);
    return compiled;
  }
}

/**
 * Generates a catalogue file from a published spec directory (`dip catalogue import`). Where the
 * sender/receiver table is missing, channels keep the roles the bundled catalogue gives them.
 * Loaded on demand: the YAML reader is not needed to serve traffic.
 */
export async function importCatalogue(specDir: string, outFile: string, options: ImportOptions = {}): Promise<ImportResult> {
  const mod = await import('./spec-import.js');
  return mod.importCatalogue(specDir, outFile, { baseline: Catalogue.load().channels(), ...options });
}

/** The event code a message gives (S0.eventCode, bare), if it gives one as a string: for the help of a failed validation. */
function eventCodeOf(message: unknown): { eventCode?: string } {
  const s0 = (message as { payload?: { CommonBlock?: { S0?: Record<string, unknown> } } } | null)?.payload?.CommonBlock?.S0;
  const code = s0?.['eventCode'];
  return typeof code === 'string' && code.length > 0 ? { eventCode: bareEventCode(code).slice(0, 100) } : {};
}
