import type { JsonSchema, JsonValue } from './types.js';

/**
 * What an obfuscation rule (src/domain/obfuscation.ts: a path under `payload`, `[]` into arrays, `=x` to
 * mask) does to a channel's published schema: a rule that removes a field the schema requires, or masks
 * with 'x' a value whose type, enum, pattern or length 'x' does not fit, makes every copy for that role
 * fail the published schema, and a strict recipient answers 400 (a dead letter each). The DIP warns and
 * does not refuse: an operator may mean it (recipients told to expect it). A rule naming nothing the
 * schema defines is reported too: it hides nothing.
 */
export interface ObfuscationWarning {
  role: string;
  rule: string;
  warning: string;
}

const isSchema = (v: JsonValue | undefined): v is JsonSchema => typeof v === 'object' && v !== null && !Array.isArray(v);

interface Found {
  /** The schema of the field itself (each element's with `name[]`), $refs resolved. */
  field: JsonSchema;
  /** The data item and type the field is, when the schema names them ("DI-147 (DT-016)"). */
  definition: string | null;
  /** Required by the object that holds it (in some branch of the schema). */
  required: boolean;
}

export function obfuscationWarnings(schema: JsonSchema, rules: Readonly<Record<string, readonly string[]>>): ObfuscationWarning[] {
  const definitions = isSchema(schema['definitions']) ? schema['definitions'] : {};
  /** Follows $refs; `name`: the data items and types passed on the way (DI-147 → DT-016), as "DI-147 (DT-016)". */
  const deref = (s: JsonSchema, name: string | null, depth = 0): { s: JsonSchema; name: string | null } => {
    const ref = s['$ref'];
    if (typeof ref !== 'string' || depth > 20) return { s, name };
    const target = ref.replace(/^#\/definitions\//, '');
    const to = definitions[target];
    const code = /^((?:DI|DT)-\d+[A-Z]?)-/.exec(target)?.[1];
    const named = code === undefined ? name : name === null ? code : `${name.replace(/\)$/, '')}${name.endsWith(')') ? ', ' : ' ('}${code})`;
    return isSchema(to) ? deref(to, named, depth + 1) : { s, name: named };
  };
  /** The schema and every branch that may define its properties (allOf, if/then/else, oneOf, anyOf). */
  const variants = (s: JsonSchema, depth = 0): JsonSchema[] => {
    const own = deref(s, null).s;
    if (depth > 20) return [own];
    const out = [own];
    for (const k of ['allOf', 'oneOf', 'anyOf'] as const) {
      const list = own[k];
      if (Array.isArray(list)) for (const b of list) if (isSchema(b)) out.push(...variants(b, depth + 1));
    }
    for (const k of ['then', 'else'] as const) {
      const b = own[k];
      if (isSchema(b)) out.push(...variants(b, depth + 1));
    }
    return out;
  };

  const find = (node: JsonSchema, steps: string[]): Found[] => {
    const [step, ...rest] = steps;
    if (step === undefined) return [];
    const each = step.endsWith('[]');
    const name = (each ? step.slice(0, -2) : step).toLowerCase();
    const found: Found[] = [];
    for (const v of variants(node)) {
      const props = v['properties'];
      if (!isSchema(props)) continue;
      const key = Object.keys(props).find((k) => k.toLowerCase() === name);
      const child = key === undefined ? undefined : props[key];
      if (key === undefined || !isSchema(child)) continue;
      const required = Array.isArray(v['required']) && v['required'].includes(key);
      const elements = each ? variants(child).flatMap((c) => (isSchema(c['items']) ? [c['items']] : [])) : [child];
      for (const e of elements) {
        if (rest.length > 0) found.push(...find(e, rest));
        else {
          const r = deref(e, null);
          found.push({ field: r.s, definition: r.name, required });
        }
      }
    }
    return found;
  };

  const warnings: ObfuscationWarning[] = [];
  const payload = deref(schema, null).s;
  const root = variants(payload).map((v) => v['properties']).find((p) => isSchema(p) && isSchema(p['payload']));
  const payloadSchema = isSchema(root) && isSchema(root['payload']) ? root['payload'] : schema;
  for (const [role, list] of Object.entries(rules)) {
    for (const rule of list) {
      const mask = rule.endsWith('=x');
      const path = mask ? rule.slice(0, -2) : rule;
      const found = find(payloadSchema, path.split('.'));
      const say = (warning: string) => warnings.push({ role, rule, warning: `obfuscation ${role}: '${rule}' ${warning}` });
      if (found.length === 0) {
        say(`names nothing the channel's schema defines (payload.${path}): it hides nothing`);
        continue;
      }
      if (!mask) {
        if (found.some((f) => f.required)) say(`removes payload.${path}, which the published schema requires (for at least one event code): every copy for ${role} fails it, and a strict recipient answers 400`);
        continue;
      }
      const broken = new Set<string>();
      for (const f of found) for (const c of unmet(f.field, 'x')) broken.add(`${f.definition ? `${f.definition}'s ` : ''}${c}`);
      if (broken.size > 0) say(`masks payload.${path} with 'x', which breaks ${[...broken].join('; ')}: every copy for ${role} fails the published schema, and a strict recipient answers 400`);
    }
  }
  return warnings;
}

/** The constraints of `s` (its own keywords, not its branches) that the string `value` does not meet. */
function unmet(s: JsonSchema, value: string): string[] {
  const out: string[] = [];
  const type = s['type'];
  const types = Array.isArray(type) ? type.filter((t): t is string => typeof t === 'string') : typeof type === 'string' ? [type] : [];
  if (types.length > 0 && !types.includes('string')) out.push(`type ${types.join('/')}`);
  const en = s['enum'];
  if (Array.isArray(en) && !en.includes(value)) out.push(en.length <= 8 ? `enum ${JSON.stringify(en)}` : `enum (${en.length} values, no '${value}')`);
  const pattern = s['pattern'];
  if (typeof pattern === 'string') {
    if (!fitsPattern(pattern, value)) out.push(`pattern ${pattern}`);
  }
  if (typeof s['minLength'] === 'number' && value.length < s['minLength']) out.push(`minLength ${s['minLength']}`);
  if (typeof s['maxLength'] === 'number' && value.length > s['maxLength']) out.push(`maxLength ${s['maxLength']}`);
  return out;
}

/** Whether `value` matches the schema's pattern (as the validator compiles it, Unicode); true for a pattern that does not compile. */
function fitsPattern(pattern: string, value: string): boolean {
  try {
    // eslint-disable-next-line security/detect-non-literal-regexp -- the published catalogue's own pattern, tried on one character
    return new RegExp(pattern, 'u').test(value);
  } catch {
    return true;
  }
}
