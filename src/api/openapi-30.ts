/**
 * A document's schemas in OpenAPI 3.0's dialect. The published DIP API 2.1.0 documents are OpenAPI 3.0,
 * and participants generate clients from them with tools that read 3.0 only; the participant document
 * is made in the same version. The published message schemas are draft-07, which 3.0's Schema Object
 * (a subset of draft-05 with `nullable`) cannot say as they are: each construct is rewritten to one that
 * accepts exactly the same values, and one with no such rewrite stops the document being built (the
 * route's own schema, which validates and serialises, is not changed).
 */

import { setOwn } from '../catalogue/key-case.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObj = { [k: string]: Json };
const isObj = (v: Json | undefined): v is JsonObj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Keywords 3.1 (JSON Schema 2020-12) has and 3.0 has not, with no rewrite here: refused where found. */
const UNSUPPORTED = ['else', 'prefixItems', '$defs', 'dependentRequired', 'dependentSchemas', 'dependencies', 'unevaluatedProperties', 'unevaluatedItems', 'contains', 'propertyNames', 'patternProperties', '$anchor', '$dynamicRef', 'contentSchema'];
/** Where a value is data, not a schema: left as it is. */
const DATA = new Set(['example', 'enum', 'default', 'x-examples']);

/** The whole document: `openapi` set to 3.0.3 and every schema in it (components and operations) rewritten. */
export function toOpenApi30(doc: JsonObj): JsonObj {
  return { ...doc, openapi: '3.0.3', ...(isObj(doc['components']) ? { components: visit(doc['components'], '#/components') } : {}), ...(isObj(doc['paths']) ? { paths: visit(doc['paths'], '#/paths') } : {}) };
}

/** Maps whose keys are names (a property named `if` or `const` is no keyword): their values are visited, the map is not rewritten. */
const NAMED = new Set(['properties', 'schemas']);

/** `named`: a map of names (above); `member`: a member of allOf, whose if/then the allOf rewrites. */
/** One schema rewritten as the document's are. */
export function schemaIn30(schema: JsonObj): JsonObj {
  const out = visit(schema, '#');
  if (!isObj(out)) throw new Error('a schema object rewritten is one');
  return out;
}

function visit(node: Json, at: string, named = false, member = false): Json {
  if (Array.isArray(node)) return node.map((n, i) => visit(n, `${at}/${i}`, false, member));
  if (!isObj(node)) return node;
  const out: JsonObj = {};
  for (const [k, v] of Object.entries(node)) setOwn(out, k, DATA.has(k) && !named ? v : visit(v, `${at}/${k}`, !named && NAMED.has(k) && isObj(v), !named && k === 'allOf'));
  return named ? out : schema30(out, at, member);
}

/** One schema object whose members are already rewritten. */
function schema30(s: JsonObj, at: string, member: boolean): JsonObj {
  for (const k of UNSUPPORTED) if (Object.hasOwn(s, k)) throw new Error(`OpenAPI 3.0 has no '${k}' (at ${at}): the document cannot be made in 3.0`);
  const out: JsonObj = { ...s };
  delete out['$schema'];
  delete out['$id'];
  if ('const' in out) {
    out['enum'] = [out['const']!];
    delete out['const'];
  }
  if (Array.isArray(out['examples'])) {
    if (out['examples'].length > 0) out['example'] = out['examples'][0]!;
    delete out['examples'];
  }
  for (const [bound, plain] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']] as const) {
    if (typeof out[bound] === 'number') {
      out[plain] = out[bound];
      out[bound] = true;
    }
  }
  if (Array.isArray(out['type'])) typeUnion(out, out['type'], at);
  if (Array.isArray(out['allOf']) && out['allOf'].some((m) => isObj(m) && 'if' in m)) conditionsToOneOf(out, out['allOf'], at);
  if (!member && ('if' in out || 'then' in out)) throw new Error(`OpenAPI 3.0 has no 'if'/'then' (at ${at}), and this one is not of the form rewritten (a member of allOf choosing by an enum)`);
  return out;
}

/** `type: ["string", "null"]` → `type: string, nullable: true`; several types → anyOf of each. */
function typeUnion(out: JsonObj, types: Json[], at: string): void {
  const named = types.filter((t): t is string => typeof t === 'string' && t !== 'null');
  if (named.length !== types.length - (types.includes('null') ? 1 : 0)) throw new Error(`type ${JSON.stringify(types)} at ${at} is not a list of type names`);
  if (types.includes('null')) out['nullable'] = true;
  if (named.length === 1) {
    out['type'] = named[0]!;
    return;
  }
  delete out['type'];
  // 3.0's nullable applies to a type given beside it, so a null allowed among several types is one of the alternatives.
  const alternatives: Json[] = named.map((type) => ({ type }));
  if (out['nullable'] === true) {
    delete out['nullable'];
    alternatives.push({ type: 'object', nullable: true, enum: [null] });
  }
  if ('anyOf' in out) out['allOf'] = [...(Array.isArray(out['allOf']) ? out['allOf'] : []), { anyOf: alternatives }];
  else out['anyOf'] = alternatives;
}

/** The path of required single properties a schema follows down to an `enum`, and its values (`if` selecting one value of one field). */
function choice(s: Json, path: string[] = []): { path: string; values: Json[] } | null {
  if (!isObj(s)) return null;
  if (Array.isArray(s['enum']) && !('properties' in s)) return { path: path.join('.'), values: s['enum'] };
  const props = isObj(s['properties']) ? Object.entries(s['properties']) : [];
  const required = Array.isArray(s['required']) ? s['required'] : [];
  if (props.length !== 1 || !required.includes(props[0]![0])) return null;
  return choice(props[0]![1], [...path, props[0]![0]]);
}

/**
 * The catalogue's per-event-code rule: `allOf: [eventCode ∈ U, {if: eventCode ∈ A, then: X}, {if: eventCode ∈ B, then: Y}, …]`.
 * With A, B, … disjoint and U their union, every value meets exactly one `if` and so the rule is
 * `oneOf: [allOf[A, X], allOf[B, Y], …]` beside the other members: the same values, in 3.0's words.
 * Anything else (overlapping choices, a union not pinned, an `else`) is refused rather than guessed at.
 */
function conditionsToOneOf(out: JsonObj, members: Json[], at: string): void {
  const plain = members.filter((m) => !(isObj(m) && 'if' in m));
  const conditional = members.filter((m): m is JsonObj => isObj(m) && 'if' in m);
  const refuse = (why: string): never => {
    throw new Error(`allOf at ${at}: its if/then ${why}, which OpenAPI 3.0 cannot say (no if/then) and is not rewritten`);
  };
  const choices = conditional.map((m) => {
    if (Object.keys(m).some((k) => k !== 'if' && k !== 'then')) refuse('has keywords beside if and then');
    return choice(m['if']!) ?? refuse('does not choose by one enumerated field');
  });
  const path = choices[0]!.path;
  if (choices.some((c) => c.path !== path)) refuse('choose by different fields');
  const chosen = choices.flatMap((c) => c.values.map((v) => JSON.stringify(v)));
  if (new Set(chosen).size !== chosen.length) refuse('choices overlap');
  const union = new Set(chosen);
  const pinned = plain.some((m) => {
    const c = choice(m);
    return c !== null && c.path === path && c.values.length === union.size && c.values.every((v) => union.has(JSON.stringify(v)));
  });
  if (!pinned) refuse(`choices are not the only values allowed of ${path}`);
  const branches: Json[] = conditional.map((m) => ({ allOf: [m['if']!, ...(m['then'] === undefined ? [] : [m['then']])] }));
  out['allOf'] = [...plain, { oneOf: branches }];
}
