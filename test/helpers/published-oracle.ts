import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { JsonValue } from '../../src/catalogue/types.js';
import { REFERENCE } from './reference.js';

/**
 * An oracle for the published API 2.1.0, built straight from the reference YAML with its own $ref
 * resolver and Ajv's native OpenAPI `nullable`, independently of the generator that made the DIP's
 * schemas. Callers skip when the reference is absent (HAVE_REFERENCE).
 */
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

export type Node = JsonValue;
export const isObject = (v: Node | undefined): v is Record<string, Node> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The published component, every $ref (absolute GitHub URLs or local) inlined from the reference files.
 * `file`: the one that defines it (an interface's payload is in Interfaces-EventCodes-unresolved.yaml).
 */
export function publishedComponent(name: string, file: string = 'SubmitEvents-unresolved.yaml'): Node {
  const files = new Map<string, Node>();
  const read = (f: string): Node => {
    let doc = files.get(f);
    if (doc === undefined) {
      doc = parse(readFileSync(join(REFERENCE, f), 'utf8')) as Node;
      files.set(f, doc);
    }
    return doc;
  };
  const resolve = (node: Node, inFile: string, depth: number): Node => {
    if (depth > 40) throw new Error('reference too deep');
    if (Array.isArray(node)) return node.map((n) => resolve(n, inFile, depth + 1));
    if (!isObject(node)) return node;
    const ref = node['$ref'];
    if (typeof ref === 'string') {
      const [location, pointer] = ref.split('#');
      const target = location ? location.replace(/^https:\/\/raw\.githubusercontent\.com\/[^/]+\/[^/]+\/[^/]+\//, '') : inFile;
      let at: Node = read(target);
      for (const step of (pointer ?? '').split('/').filter(Boolean)) at = isObject(at) ? at[step]! : null;
      return resolve(at, target, depth + 1);
    }
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, k === 'example' ? v : resolve(v, inFile, depth + 1)]));
  };
  return resolve({ $ref: `#/components/schemas/${name}` }, file, 0);
}

export function oracle(name: string, file?: string): ValidateFunction {
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  return ajv.compile(publishedComponent(name, file) as object);
}

