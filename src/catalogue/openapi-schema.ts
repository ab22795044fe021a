import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { parse } from 'yaml';
import { setOwn } from './key-case.js';
import type { JsonObject, JsonSchema, JsonValue } from './types.js';

/**
 * Reads the published DIP API (OpenAPI 3.0, split into "unresolved" files whose $refs point at the
 * same files on GitHub) and turns its schemas into self-contained draft-07 JSON Schemas.
 */

/** The published $refs are absolute GitHub URLs; they name files of the spec directory itself. */
const PUBLISHED_BASE = /^https:\/\/raw\.githubusercontent\.com\/elexon-data\/dip-api-documentation\/[^/]+\//;

export interface SchemaRef {
  file: string;
  name: string;
}

export function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every YAML file of a spec directory, keyed by its path relative to that directory (POSIX). */
export class SpecFiles {
  private constructor(
    readonly dir: string,
    private readonly docs: Map<string, JsonObject>,
  ) {}

  static load(dir: string): SpecFiles {
    const docs = new Map<string, JsonObject>();
    const walk = (rel: string): void => {
      const entries = readdirSync(join(dir, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
      for (const e of entries) {
        const path = rel ? posix.join(rel, e.name) : e.name;
        if (e.isDirectory()) walk(path);
        else if (/\.ya?ml$/i.test(e.name)) {
          const doc = parse(readFileSync(join(dir, path), 'utf8')) as JsonValue;
          if (isObject(doc)) docs.set(path, doc);
        }
      }
    };
    walk('');
    return new SpecFiles(dir, docs);
  }

  has(file: string): boolean {
    return this.docs.has(file);
  }

  doc(file: string): JsonObject {
    const d = this.docs.get(file);
    if (!d) throw new Error(`spec file ${file} not found in ${this.dir}`);
    return d;
  }

  component(ref: SchemaRef): JsonValue {
    const schemas = this.doc(ref.file)['components'];
    const all = isObject(schemas) ? schemas['schemas'] : undefined;
    const node = isObject(all) ? all[ref.name] : undefined;
    if (node === undefined) throw new Error(`schema ${ref.name} not found in ${ref.file}`);
    return node;
  }

  componentNames(file: string): string[] {
    const c = this.doc(file)['components'];
    const s = isObject(c) ? c['schemas'] : undefined;
    return isObject(s) ? Object.keys(s) : [];
  }

  /** Resolves a $ref written in `fromFile` to a (file, schema name) pair of this directory. */
  parseRef(ref: string, fromFile: string): SchemaRef {
    const hash = ref.indexOf('#');
    const location = hash < 0 ? ref : ref.slice(0, hash);
    const fragment = hash < 0 ? '' : ref.slice(hash + 1);
    let file = fromFile;
    if (location) {
      file = PUBLISHED_BASE.test(location)
        ? location.replace(PUBLISHED_BASE, '')
        : posix.normalize(posix.join(posix.dirname(fromFile), location));
    }
    const m = /^\/components\/schemas\/(.+)$/.exec(fragment);
    if (!m?.[1]) throw new Error(`unsupported $ref ${ref} in ${fromFile}`);
    const name = m[1].replaceAll('~1', '/').replaceAll('~0', '~');
    if (!this.docs.has(file)) throw new Error(`$ref ${ref} in ${fromFile}: file ${file} not found`);
    return { file, name };
  }

  /** Follows components that are nothing but a $ref (most DI-… items alias a DT-… type). */
  followAliases(start: SchemaRef): SchemaRef {
    let ref = start;
    for (let hops = 0; hops < 32; hops++) {
      const node = this.component(ref);
      if (!isObject(node) || typeof node['$ref'] !== 'string') return ref;
      if (Object.keys(node).some((k) => k !== '$ref' && !ANNOTATIONS.has(k))) return ref;
      ref = this.parseRef(node['$ref'], ref.file);
    }
    throw new Error(`$ref chain too long from ${start.file}#${start.name}`);
  }
}

/** Documentation-only keywords: dropped, as they do not affect validation. */
const ANNOTATIONS = new Set(['description', 'example', 'examples', 'title', 'xml', 'externalDocs', 'deprecated', 'default', 'summary']);
/** Keywords copied as they are (same meaning in OpenAPI 3.0 and draft-07). */
const PLAIN = new Set([
  'type', 'enum', 'const', 'format', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum', 'multipleOf',
  'minItems', 'maxItems', 'uniqueItems', 'required', 'minProperties', 'maxProperties',
]);
const SUBSCHEMA = new Set(['items', 'not', 'additionalProperties']);
const SUBSCHEMA_LIST = new Set(['oneOf', 'anyOf', 'allOf']);

/**
 * Converts OpenAPI schema nodes into one draft-07 schema. Named components reached through $ref are
 * hoisted into `definitions` (one entry per component, aliases collapsed) so a block used many times
 * is written once.
 */
export class SchemaConverter {
  private readonly defs = new Map<string, JsonSchema>();
  private readonly keyOf = new Map<string, string>();
  private readonly owner = new Map<string, string>();

  constructor(
    private readonly spec: SpecFiles,
    private readonly warn: (message: string) => void,
  ) {}

  /** Converts a named component in place (not hoisted), e.g. a payload variant being restructured. */
  inline(ref: SchemaRef): JsonSchema {
    return this.convert(this.spec.component(ref), ref.file, `${ref.file}#${ref.name}`);
  }

  definitions(): JsonObject {
    const out: JsonObject = {};
    for (const key of [...this.defs.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
      const d = this.defs.get(key);
      if (d) setOwn(out, key, d);
    }
    return out;
  }

  private hoist(ref: SchemaRef): JsonSchema {
    const target = this.spec.followAliases(ref);
    const id = `${target.file}#${target.name}`;
    let key = this.keyOf.get(id);
    if (key === undefined) {
      key = this.allocateKey(target);
      this.keyOf.set(id, key);
      this.defs.set(key, {}); // placeholder: a self-referencing block then resolves to itself
      this.defs.set(key, this.convert(this.spec.component(target), target.file, id));
    }
    return { $ref: `#/definitions/${key}` };
  }

  private allocateKey(ref: SchemaRef): string {
    const plain = ref.name.replace(/[^\w.-]/g, '_');
    const holder = this.owner.get(plain);
    if (holder === undefined || holder === ref.file) {
      this.owner.set(plain, ref.file);
      return plain;
    }
    const stem = posix.basename(ref.file).replace(/(?:-unresolved)?\.ya?ml$/i, '');
    return `${stem}.${plain}`;
  }

  convert(node: JsonValue, file: string, where: string): JsonSchema {
    if (!isObject(node)) {
      if (node === null || node === undefined) return {};
      throw new Error(`${where}: schema is not an object`);
    }
    if (typeof node['$ref'] === 'string') {
      const extra = Object.keys(node).filter((k) => k !== '$ref' && !ANNOTATIONS.has(k));
      // OpenAPI 3.0 ignores keywords next to $ref; say so rather than silently differ from a reader's intuition.
      if (extra.length > 0) this.warn(`${where}: keywords beside $ref ignored (${extra.join(', ')})`);
      return this.hoist(this.spec.parseRef(node['$ref'], file));
    }
    const out: JsonSchema = {};
    const nullable = node['nullable'] === true;
    for (const [k, v] of Object.entries(node)) {
      if (ANNOTATIONS.has(k) || k === 'nullable') continue;
      if (k === 'type') {
        // OpenAPI 3.0.3: nullable adds "null" to the type only; an enum must list null itself to allow it.
        out['type'] = nullable && typeof v === 'string' ? [v, 'null'] : v;
      } else if (PLAIN.has(k)) {
        setOwn(out, k, v);
      } else if (k === 'properties') {
        if (!isObject(v)) throw new Error(`${where}: properties is not an object`);
        const props: JsonObject = {};
        for (const [name, sub] of Object.entries(v)) setOwn(props, name, this.convert(sub, file, `${where}.${name}`));
        out['properties'] = props;
      } else if (SUBSCHEMA.has(k)) {
        setOwn(out, k, typeof v === 'boolean' ? v : this.convert(v, file, `${where}.${k}`));
      } else if (SUBSCHEMA_LIST.has(k)) {
        if (!Array.isArray(v)) throw new Error(`${where}: ${k} is not a list`);
        setOwn(out, k, v.map((s, i) => this.convert(s, file, `${where}.${k}[${i}]`)));
      } else if (k === 'exclusiveMinimum' || k === 'exclusiveMaximum') {
        // OpenAPI 3.0 uses a boolean modifier of minimum/maximum; draft-07 takes the bound itself.
        const bound = node[k === 'exclusiveMinimum' ? 'minimum' : 'maximum'];
        if (v === true && typeof bound === 'number') out[k] = bound;
        else if (typeof v === 'number') out[k] = v;
      } else {
        this.warn(`${where}: unsupported keyword ${k} dropped`);
      }
    }
    if (nullable && out['type'] === undefined) this.warn(`${where}: nullable without type has no effect`);
    if (out['exclusiveMinimum'] !== undefined) delete out['minimum'];
    if (out['exclusiveMaximum'] !== undefined) delete out['maximum'];
    return out;
  }
}
