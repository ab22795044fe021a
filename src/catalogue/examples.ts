import type { JsonSchema, JsonValue } from './types.js';

/**
 * Example messages for the data portal, made from a channel's schema: one per event code, holding every
 * field the schema defines (optional ones too, so a reader sees them all) with a value that fits its data
 * item or type. Deterministic, so the page does not change between loads. The DIP's own validator is the
 * judge: test/data-portal.test.ts checks that every example of every channel is accepted.
 * `submittable` turns one into what a participant sends to a DIP of a given environment.
 */

const isSchema = (v: JsonValue | undefined): v is JsonSchema => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Values for data types whose shape the schema leaves to a length only (a date-time is 25 characters). */
const BY_DEFINITION: ReadonlyArray<readonly [RegExp, string]> = [
  [/^DT-003N?-/, '2026-01-31T00:00:00+00:00'],
  [/^DT-021N?-/, '2026-01-31'],
  [/^DT-006N?-/, '1000000001'],
  [/^DT-009-/, 'SUP'],
  [/^DT-018N?-/, 'https://example.com/dip'],
  [/^DT-014-/, 'T-IF-000-EXAMPLE'],
  [/^DT-007N?-/, 'SW1A 1AA'],
  [/^DT-035-Sort/, '123456'],
  [/^DT-034-/, '01234567890'],
];

/** How far into optional objects an example goes: deep optional structures only make it long. */
const OPTIONAL_DEPTH = 8;

export function exampleMessage(schema: JsonSchema, eventCode: string): JsonValue {
  const definitions = isSchema(schema['definitions']) ? schema['definitions'] : {};

  const of = (s: JsonSchema, depth: number, definition: string | null): JsonValue => {
    const ref = s['$ref'];
    if (typeof ref === 'string') {
      const name = ref.replace(/^#\/definitions\//, '');
      const target = definitions[name];
      return isSchema(target) ? of(target, depth, name) : null;
    }
    const allOf = s['allOf'];
    if (Array.isArray(allOf)) {
      // The catalogue's dispatch on S0.eventCode: the branch whose `if` names this event code.
      const branch = allOf.filter(isSchema).find((b) => JSON.stringify(b['if'] ?? null).includes(JSON.stringify(`[${eventCode}]`)));
      if (branch && isSchema(branch['then'])) return of(branch['then'], depth, definition);
    }
    for (const k of ['oneOf', 'anyOf'] as const) {
      const list = s[k];
      if (Array.isArray(list) && isSchema(list[0])) return of(list[0], depth, definition);
    }
    const en = s['enum'];
    if (Array.isArray(en)) {
      const named = en.find((v) => v === `[${eventCode}]`);
      return named ?? en.find((v) => v !== null) ?? null;
    }
    const t = s['type'];
    const types = (Array.isArray(t) ? t : [t]).filter((x): x is string => typeof x === 'string' && x !== 'null');
    const type = types[0] ?? (isSchema(s['properties']) ? 'object' : 'string');
    switch (type) {
      case 'object': {
        const required = new Set(Array.isArray(s['required']) ? s['required'].map(String) : []);
        const entries = Object.entries(isSchema(s['properties']) ? s['properties'] : {}).filter((e): e is [string, JsonSchema] => isSchema(e[1]) && (required.has(e[0]) || depth < OPTIONAL_DEPTH));
        return Object.fromEntries(entries.map(([name, sub]) => [name, of(sub, depth + 1, null)]));
      }
      case 'array': {
        const n = Math.max(1, typeof s['minItems'] === 'number' ? s['minItems'] : 1);
        return isSchema(s['items']) ? Array.from({ length: n }, () => of(s['items'] as JsonSchema, depth + 1, null)) : [];
      }
      case 'integer':
      case 'number':
        return numberOf(s);
      case 'boolean':
        return false;
      default:
        return stringOf(s, definition);
    }
  };
  return of(schema, 0, null);
}

const isObject = (v: JsonValue | undefined): v is { [k: string]: JsonValue } => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What a participant's own message carries in S1 and A0 (see `submittable`). */
export interface Submitter {
  senderDipId: string;
  senderRole: string;
  /** A0.primaryRecipients; empty leaves addressing to the DIP (MPAN lookup, always-routed roles). */
  primaryRecipients: readonly string[];
  now: Date;
  /** The last part of S1.senderUniqueReference (letters and digits), unique per message. */
  uniqueSuffix: string;
}

/**
 * An example as a submission to a DIP of `environment` would carry it (a copy; the input is not changed):
 * S1.environmentTag that environment's (another is refused, MSG1001), no D0 (the transaction wrapper is
 * the DIP's to fill on what it sends out), S1.DIPConnectionProviderID null (only a connection provider
 * names itself there, MSG1011 otherwise), S1.senderCorrelationID null (no workflow yet), and the A0 recipients the DIP resolves (secondary, always) left
 * empty. With `who`, also the sender's own S1 (DIP ID, role, a new senderUniqueReference of the published
 * pattern, senderTimestamp now) and its primary recipients: then it is a message to send as it is.
 */
export function submittable(example: JsonValue, environment: string, who?: Submitter): JsonValue {
  const copy = structuredClone(example);
  const common = isObject(copy) && isObject(copy['payload']) ? copy['payload']['CommonBlock'] : undefined;
  if (!isObject(common)) return copy;
  delete common['D0'];
  const s1 = common['S1'];
  if (isObject(s1)) {
    s1['environmentTag'] = environment;
    if ('DIPConnectionProviderID' in s1) s1['DIPConnectionProviderID'] = null;
    // A message of no workflow yet: a workflow's correlation ID is the DIP's to assign on the channels
    // that start one (MSG1012 for one given there), and the sender carries the one it was given on the
    // later messages; the schema's example value would name a workflow that does not exist.
    if ('senderCorrelationID' in s1) s1['senderCorrelationID'] = null;
    if (who) {
      const s0 = common['S0'];
      const iface = isObject(s0) && typeof s0['interfaceID'] === 'string' ? s0['interfaceID'] : 'IF-000';
      const day = who.now.toISOString().slice(0, 10).replace(/-/g, '');
      s1['senderDIPID'] = who.senderDipId;
      s1['senderRoleID'] = who.senderRole;
      s1['senderUniqueReference'] = `S-${iface}-${who.senderDipId}-${who.senderRole}-${day}-${who.uniqueSuffix}`;
      s1['senderTimestamp'] = `${who.now.toISOString().slice(0, 19)}+00:00`;
    }
  }
  const a0 = common['A0'];
  if (isObject(a0)) {
    // Required by the schema; the DIP resolves them (what the sender puts there is replaced).
    if ('secondaryRecipients' in a0) a0['secondaryRecipients'] = [];
    if ('always' in a0) a0['always'] = [];
    if (who) a0['primaryRecipients'] = [...who.primaryRecipients];
  }
  return copy;
}

function numberOf(s: JsonSchema): number {
  const min = typeof s['minimum'] === 'number' ? s['minimum'] : 1;
  const step = typeof s['multipleOf'] === 'number' ? s['multipleOf'] : 1;
  return Math.ceil(min / step) * step;
}

function stringOf(s: JsonSchema, definition: string | null): string {
  const min = typeof s['minLength'] === 'number' ? s['minLength'] : 1;
  const max = typeof s['maxLength'] === 'number' ? s['maxLength'] : Math.max(min, 20);
  const fits = (v: string) => v.length >= min && v.length <= max;
  if (typeof s['pattern'] === 'string') {
    const v = fromPattern(s['pattern']);
    if (v !== null) return v;
  }
  if (s['format'] === 'email') return 'someone@example.com';
  if (s['format'] === 'byte') return 'RXhhbXBsZQ==';
  const hinted = definition ? BY_DEFINITION.find(([re]) => re.test(definition))?.[1] : undefined;
  if (hinted !== undefined && fits(hinted)) return hinted;
  return 'example'.padEnd(Math.max(min, 1), 'x').slice(0, max);
}

/**
 * A string a regular expression matches, for the plain patterns the catalogue uses: literals, escapes
 * (\d \w \s and escaped punctuation), character classes, groups with alternatives, and the quantifiers
 * ? * + {n} {n,} {n,m} (lazy or not). Each repetition takes its least count (one for ? and +, so optional
 * parts show), a group its first alternative, a class its members in turn; digits count up 1234567890.
 * Null for anything else (look-arounds, back-references): the caller falls back to a plain value.
 */
export function fromPattern(pattern: string): string | null {
  let i = 0;
  const src = pattern;
  const DIGITS = '1234567890';

  type Node = { kind: 'chars'; chars: string } | { kind: 'group'; alternatives: Node[][] };

  const parseClass = (): string | null => {
    // At '[': the members, ranges expanded; a negated class is not supported.
    i += 1;
    if (src[i] === '^') return null;
    let members = '';
    while (i < src.length && src[i] !== ']') {
      let c = src[i]!;
      if (c === '\\') {
        i += 1;
        const e = src[i]!;
        c = e === 'd' ? DIGITS : e === 'w' ? 'a' : e === 's' ? ' ' : e;
        members += c;
        i += 1;
        continue;
      }
      if (src[i + 1] === '-' && src[i + 2] !== undefined && src[i + 2] !== ']') {
        const from = c.charCodeAt(0);
        const to = src[i + 2]!.charCodeAt(0);
        for (let k = from; k <= to; k += 1) members += String.fromCharCode(k);
        i += 3;
        continue;
      }
      members += c;
      i += 1;
    }
    i += 1;
    // Digits first, so [0-9a-f] reads as a number.
    const digits = [...members].filter((c) => /\d/.test(c)).sort((a, b) => DIGITS.indexOf(a) - DIGITS.indexOf(b));
    return digits.length ? digits.join('') : members;
  };

  const parseSequence = (): Node[][] | null => {
    const alternatives: Node[][] = [[]];
    while (i < src.length) {
      const c = src[i]!;
      if (c === ')') break;
      if (c === '|') {
        alternatives.push([]);
        i += 1;
        continue;
      }
      let node: Node;
      if (c === '^' || c === '$') {
        i += 1;
        continue;
      } else if (c === '(') {
        i += 1;
        if (src[i] === '?') {
          if (src[i + 1] !== ':') return null;
          i += 2;
        }
        const inner = parseSequence();
        if (!inner || src[i] !== ')') return null;
        i += 1;
        node = { kind: 'group', alternatives: inner };
      } else if (c === '[') {
        const members = parseClass();
        if (members === null || members.length === 0) return null;
        node = { kind: 'chars', chars: members };
      } else if (c === '\\') {
        const e = src[i + 1];
        if (e === undefined || /[1-9bBkpP]/.test(e)) return null;
        node = { kind: 'chars', chars: e === 'd' ? DIGITS : e === 'w' ? 'a' : e === 's' ? ' ' : e };
        i += 2;
      } else if (c === '.') {
        node = { kind: 'chars', chars: 'x' };
        i += 1;
      } else if ('?*+{'.includes(c)) {
        return null;
      } else {
        node = { kind: 'chars', chars: c };
        i += 1;
      }
      const count = parseQuantifier();
      if (count === null) return null;
      for (let k = 0; k < count; k += 1) alternatives[alternatives.length - 1]!.push(node);
    }
    return alternatives;
  };

  const parseQuantifier = (): number | null => {
    const c = src[i];
    let n = 1;
    if (c === '?' || c === '+') {
      i += 1;
    } else if (c === '*') {
      n = 0;
      i += 1;
    } else if (c === '{') {
      const m = /^\{(\d+)(?:,\d*)?\}/.exec(src.slice(i));
      if (!m) return null;
      n = Number(m[1]);
      i += m[0].length;
    }
    if (src[i] === '?') i += 1; // lazy: the same least count
    return n;
  };

  const alternatives = parseSequence();
  if (!alternatives || i !== src.length) return null;
  const counters = new Map<Node, number>();
  const emit = (seq: Node[]): string =>
    seq
      .map((node) => {
        if (node.kind === 'group') return emit(node.alternatives[0] ?? []);
        const k = counters.get(node) ?? 0;
        counters.set(node, k + 1);
        return node.chars[k % node.chars.length]!;
      })
      .join('');
  return emit(alternatives[0] ?? []);
}
