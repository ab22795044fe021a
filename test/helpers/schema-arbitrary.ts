/**
 * fast-check arbitraries of instances of the catalogue's generated JSON Schemas (draft-07, local
 * `#/definitions/…` refs): enough of the keywords the generator emits to produce messages a channel's
 * schema accepts, for property tests over every channel. Instances are candidates: where a schema
 * constrains across fields (the if/then dispatch on S0.eventCode), filter with the validator itself.
 */
import fc from 'fast-check';
import type { JsonSchema, JsonValue } from '../../src/catalogue/types.js';

type Arb = fc.Arbitrary<JsonValue>;

function isSchema(v: JsonValue | undefined): v is JsonSchema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A valid DIP date-time (DT-003: exactly 25 characters, offset included). */
const DATE_TIME = fc
  .date({ min: new Date('2020-01-01T00:00:00Z'), max: new Date('2030-12-31T23:59:59Z'), noInvalidDate: true })
  .map((d) => `${d.toISOString().slice(0, 19)}+00:00`);

export function arbitraryOf(root: JsonSchema): Arb {
  const defs = isSchema(root['definitions']) ? root['definitions'] : {};
  const memo = new Map<string, Arb>();

  const of = (s: JsonSchema, depth: number): Arb => {
    const ref = s['$ref'];
    if (typeof ref === 'string') {
      const name = ref.replace(/^#\/definitions\//, '');
      let hit = memo.get(name);
      if (!hit) {
        const target = defs[name];
        hit = isSchema(target) ? of(target, depth + 1) : fc.constant(null);
        memo.set(name, hit);
      }
      return hit;
    }
    const allOf = s['allOf'];
    if (Array.isArray(allOf)) {
      // The generator's dispatch: a guard on S0.eventCode, then one if/then per variant. Pick a variant.
      const variants = allOf.filter(isSchema).map((b) => b['then']).filter(isSchema);
      if (variants.length > 0) return fc.oneof(...variants.map((v) => of(v, depth + 1)));
    }
    for (const k of ['oneOf', 'anyOf'] as const) {
      const list = s[k];
      if (Array.isArray(list)) return fc.oneof(...list.filter(isSchema).map((b) => of(b, depth + 1)));
    }
    const en = s['enum'];
    if (Array.isArray(en)) return fc.constantFrom(...en);
    const type = s['type'];
    const types = Array.isArray(type) ? type.filter((t): t is string => typeof t === 'string') : typeof type === 'string' ? [type] : [];
    const nonNull = types.filter((t) => t !== 'null');
    const main = nonNull[0] ?? (isSchema(s['properties']) ? 'object' : 'string');
    const arb = ofType(main, s, depth);
    return types.includes('null') ? fc.oneof({ weight: 4, arbitrary: arb }, { weight: 1, arbitrary: fc.constant(null) }) : arb;
  };

  const ofType = (type: string, s: JsonSchema, depth: number): Arb => {
    switch (type) {
      case 'string':
        return stringOf(s);
      case 'integer':
      case 'number': {
        const min = typeof s['minimum'] === 'number' ? s['minimum'] : 0;
        const max = typeof s['maximum'] === 'number' ? s['maximum'] : min + 1000;
        const step = typeof s['multipleOf'] === 'number' ? s['multipleOf'] : 1;
        return fc.integer({ min: Math.ceil(min / step), max: Math.floor(max / step) }).map((n) => Number((n * step).toFixed(6)));
      }
      case 'boolean':
        return fc.boolean();
      case 'array': {
        const items = isSchema(s['items']) ? of(s['items'], depth + 1) : fc.constant('x');
        const minLength = typeof s['minItems'] === 'number' ? s['minItems'] : 0;
        const maxLength = Math.min(typeof s['maxItems'] === 'number' ? s['maxItems'] : 3, minLength + 2, depth > 6 ? minLength : 99);
        return fc.array(items, { minLength, maxLength });
      }
      case 'object': {
        const props = isSchema(s['properties']) ? s['properties'] : {};
        const required = Array.isArray(s['required']) ? s['required'].filter((r): r is string => typeof r === 'string') : [];
        const model: Record<string, Arb> = {};
        for (const [name, sub] of Object.entries(props)) {
          // Optional blocks far down only bloat the instance; required ones are always there.
          if (!required.includes(name) && depth > 4) continue;
          model[name] = isSchema(sub) ? of(sub, depth + 1) : fc.constant(null);
        }
        return fc.record(model, { requiredKeys: required.filter((r) => r in model) });
      }
      default:
        return fc.constant(null);
    }
  };

  return of(root, 0);
}

function stringOf(s: JsonSchema): Arb {
  const minLength = typeof s['minLength'] === 'number' ? s['minLength'] : 0;
  const maxLength = typeof s['maxLength'] === 'number' ? s['maxLength'] : Math.max(minLength, 20);
  const fits = (v: string) => v.length >= minLength && v.length <= maxLength;
  if (typeof s['pattern'] === 'string') return fc.stringMatching(new RegExp(s['pattern'])).filter(fits);
  if (s['format'] === 'email') return fc.constant('someone@example.com');
  if (s['format'] === 'uri') return fc.oneof(fc.webUrl({ withQueryParameters: true }), fc.constantFrom('http://127.0.0.1:9/hook', 'https://example.com/dip'));
  if (s['format'] === 'byte') return fc.base64String({ maxLength: 40 });
  if (minLength === 25 && maxLength === 25) return DATE_TIME;
  return fc.string({ unit: 'grapheme-ascii', minLength, maxLength: Math.min(maxLength, minLength + 20) });
}
