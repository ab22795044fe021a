import type { Catalogue } from './catalogue.js';
import { BUSINESS_FLOWS, type BusinessFlow } from './business-flows.js';
import { exampleMessage, submittable } from './examples.js';
import type { ChannelDefinition, JsonSchema, JsonValue } from './types.js';

/**
 * The data portal's content (spec 5.9), read from the catalogue in force: the logical view of each
 * interface (its blocks and fields in terms of data items and types), the data dictionary, and the
 * business flows linking interfaces. Pure: the HTML and JSON views are in src/api/data-portal.ts.
 */

export interface FieldView {
  name: string;
  required: boolean;
  /** The data item (DI-…) or data type (DT-…) the field is defined by, when the schema names one. */
  definition: string | null;
  type: string;
  constraints: string[];
  /** Fields of an object, or of each item of an array of objects. */
  fields?: FieldView[];
}

export interface BlockView {
  block: string;
  /** CommonBlock or CustomBlock. */
  part: string;
  required: boolean;
  fields: FieldView[];
}

export interface EventView {
  eventCode: string;
  blocks: BlockView[];
  /**
   * A message of this event code with every field filled, which the DIP's validator accepts
   * (src/catalogue/examples.ts), with the header a submission to this DIP carries (its environment tag,
   * no D0, no connection provider): the sender puts in its own IDs, role and reference.
   */
  example: JsonValue;
}

export interface InterfaceView extends ChannelDefinition {
  events: EventView[];
  flows: string[];
}

export interface DataItemView {
  code: string;
  title: string;
  kind: 'data item' | 'data type';
  type: string;
  constraints: string[];
  interfaces: string[];
}

const isSchema = (v: JsonValue | undefined): v is JsonSchema => typeof v === 'object' && v !== null && !Array.isArray(v);
const refName = (s: JsonSchema): string | null => (typeof s['$ref'] === 'string' ? s['$ref'].replace(/^#\/definitions\//, '') : null);

/** "DI-015-Connection-Type-Indicator" → DI-015, "Connection Type Indicator". */
export function splitDefinitionName(name: string): { code: string; title: string } {
  const m = /^((?:DI|DT)-\d+[A-Z]?)-(.*)$/.exec(name);
  return m ? { code: m[1]!, title: m[2]!.replace(/-/g, ' ') } : { code: name, title: name };
}

function describeType(s: JsonSchema): { type: string; constraints: string[] } {
  const constraints: string[] = [];
  const t = s['type'];
  const type = Array.isArray(t) ? t.map(String).join(' or ') : typeof t === 'string' ? t : Array.isArray(s['enum']) ? 'code' : 'any';
  if (typeof s['minLength'] === 'number' && s['minLength'] === s['maxLength']) constraints.push(`exactly ${s['minLength']} characters`);
  else {
    if (typeof s['minLength'] === 'number') constraints.push(`at least ${s['minLength']} characters`);
    if (typeof s['maxLength'] === 'number') constraints.push(`at most ${s['maxLength']} characters`);
  }
  if (typeof s['pattern'] === 'string') constraints.push(`pattern ${s['pattern']}`);
  if (Array.isArray(s['enum'])) constraints.push(`one of ${s['enum'].map((v) => JSON.stringify(v)).join(', ')}`);
  if (typeof s['format'] === 'string') constraints.push(`format ${s['format']}`);
  for (const k of ['minimum', 'maximum', 'minItems', 'maxItems'] as const) if (typeof s[k] === 'number') constraints.push(`${k} ${s[k]}`);
  return { type, constraints };
}

export class DataPortal {
  private readonly views = new Map<string, InterfaceView>();
  private items: DataItemView[] | null = null;

  /** `environment`: the tag of the DIP serving the portal, which its examples carry (S1.environmentTag). */
  constructor(
    private readonly catalogue: Catalogue,
    private readonly environment: string,
  ) {}

  interfaces(): ChannelDefinition[] {
    return this.catalogue.channels().sort((a, b) => a.interfaceId.localeCompare(b.interfaceId));
  }

  flows(): readonly BusinessFlow[] {
    return BUSINESS_FLOWS;
  }

  interface(id: string): InterfaceView | undefined {
    const def = this.catalogue.channel(id);
    const schema = this.catalogue.schema(id);
    if (!def || !schema) return undefined;
    let view = this.views.get(def.interfaceId);
    if (!view) {
      const definitions = isSchema(schema['definitions']) ? schema['definitions'] : {};
      view = {
        ...def,
        events: def.eventCodes.map((eventCode) => ({ eventCode, blocks: blocksOf(schema, eventCode, definitions), example: submittable(exampleMessage(schema, eventCode), this.environment) })),
        flows: BUSINESS_FLOWS.filter((f) => f.steps.some((s) => s.interfaceId === def.interfaceId)).map((f) => f.id),
      };
      this.views.set(def.interfaceId, view);
    }
    return view;
  }

  /** Every data item and data type any interface uses, with the interfaces that use it. */
  dataItems(): DataItemView[] {
    if (this.items) return this.items;
    const byName = new Map<string, DataItemView>();
    for (const c of this.interfaces()) {
      const schema = this.catalogue.schema(c.interfaceId);
      const definitions = schema && isSchema(schema['definitions']) ? schema['definitions'] : {};
      for (const [name, def] of Object.entries(definitions)) {
        if (!/^D[IT]-/.test(name) || !isSchema(def)) continue;
        let item = byName.get(name);
        if (!item) {
          const { code, title } = splitDefinitionName(name);
          item = { code, title, kind: name.startsWith('DI-') ? 'data item' : 'data type', ...describeType(def), interfaces: [] };
          byName.set(name, item);
        }
        item.interfaces.push(c.interfaceId);
      }
    }
    this.items = [...byName.values()].sort((a, b) => a.code.localeCompare(b.code, 'en', { numeric: true }));
    return this.items;
  }

  /** Interfaces and data items whose ID, name, event codes, roles or fields contain every word of the query. */
  search(query: string): { interfaces: ChannelDefinition[]; dataItems: DataItemView[] } {
    const words = query.toLowerCase().split(/\s+/).filter(Boolean).slice(0, 10);
    if (words.length === 0) return { interfaces: this.interfaces(), dataItems: [] };
    const matches = (text: string) => words.every((w) => text.includes(w));
    const interfaces = this.interfaces().filter((c) => {
      const v = this.interface(c.interfaceId)!;
      const fields = v.events.flatMap((e) => e.blocks.flatMap((b) => [b.block, ...flatten(b.fields).map((f) => `${f.name} ${f.definition ?? ''}`)]));
      return matches([c.interfaceId, c.publicationId, c.name, ...c.eventCodes, ...c.senderRoles, ...c.receiverRoles, ...fields].join(' ').toLowerCase());
    });
    const dataItems = this.dataItems().filter((d) => matches(`${d.code} ${d.title} ${d.constraints.join(' ')}`.toLowerCase()));
    return { interfaces, dataItems };
  }
}

function flatten(fields: FieldView[]): FieldView[] {
  return fields.flatMap((f) => [f, ...flatten(f.fields ?? [])]);
}

/** The blocks of one event code: the branch of the channel schema whose `if` names it. */
function blocksOf(schema: JsonSchema, eventCode: string, definitions: JsonSchema): BlockView[] {
  const payload = isSchema(schema['properties']) && isSchema(schema['properties']['payload']) ? schema['properties']['payload'] : {};
  const branches = Array.isArray(payload['allOf']) ? payload['allOf'].filter(isSchema) : [];
  const branch = branches.find((b) => JSON.stringify(b['if'] ?? null).includes(JSON.stringify(`[${eventCode}]`)));
  const then = branch && isSchema(branch['then']) ? branch['then'] : payload;
  const blocks: BlockView[] = [];
  const props = isSchema(then['properties']) ? then['properties'] : {};
  for (const part of ['CommonBlock', 'CustomBlock']) {
    const p = props[part];
    if (!isSchema(p)) continue;
    const required = new Set(Array.isArray(p['required']) ? p['required'].map(String) : []);
    for (const [block, s] of Object.entries(isSchema(p['properties']) ? p['properties'] : {})) {
      if (!isSchema(s)) continue;
      blocks.push({ block, part, required: required.has(block), fields: fieldsOf(resolve(s, definitions), definitions, 0) });
    }
  }
  return blocks;
}

function resolve(s: JsonSchema, definitions: JsonSchema): JsonSchema {
  const name = refName(s);
  const target = name ? definitions[name] : undefined;
  return isSchema(target) ? target : s;
}

function fieldsOf(s: JsonSchema, definitions: JsonSchema, depth: number): FieldView[] {
  if (depth > 4) return [];
  const required = new Set(Array.isArray(s['required']) ? s['required'].map(String) : []);
  const out: FieldView[] = [];
  for (const [name, raw] of Object.entries(isSchema(s['properties']) ? s['properties'] : {})) {
    if (!isSchema(raw)) continue;
    const definition = refName(raw);
    const target = resolve(raw, definitions);
    const field: FieldView = { name, required: required.has(name), definition: definition && /^D[IT]-/.test(definition) ? definition : null, ...describeType(target) };
    const items = isSchema(target['items']) ? resolve(target['items'], definitions) : null;
    const nested = target['type'] === 'object' ? fieldsOf(target, definitions, depth + 1) : items && items['type'] === 'object' ? fieldsOf(items, definitions, depth + 1) : [];
    if (nested.length > 0) field.fields = nested;
    if (definition && !field.definition && nested.length > 0) field.type = `${field.type} (${definition})`;
    out.push(field);
  }
  return out;
}
