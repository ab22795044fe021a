/**
 * Requests for any operation a listener registers, generated from what the route itself declares
 * (src/api/operations.ts): its path parameters by name, its querystring and body JSON Schemas, and,
 * for the routes that take a channel's message batch (no route schema: the pipeline validates it),
 * the channel's published message schema from the catalogue. Mostly well-formed, partly hostile.
 */
import fc from 'fast-check';
import { Catalogue } from '../../src/catalogue/catalogue.js';
import type { JsonSchema, JsonValue } from '../../src/catalogue/types.js';
import type { Operation } from '../../src/api/operations.js';
import { arbitraryOf } from '../helpers/schema-arbitrary.js';

const catalogue = Catalogue.load();
const channelIds = catalogue.channels().map((c) => c.interfaceId);

export interface Known {
  /** Registered participants' DIP IDs: the callers, and the ones whose data they must not reach. */
  dipIds: string[];
  /** Archived transaction IDs (for fields and parameters that name one). */
  transactionIds: string[];
  /** A batch the data service may submit (valid, never sent before). */
  validBatch: () => unknown;
}

export interface GeneratedRequest {
  path: string;
  params: Record<string, string>;
  body: string | Buffer | undefined;
  /** What the body was made from, for the tally and the counterexample. */
  bodyKind: string;
  /** Content-Type of the body: mostly JSON, sometimes a stream (publications) or something else. */
  contentType: string | undefined;
}

const contentTypes = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  { weight: 1, arbitrary: fc.constantFrom('application/octet-stream', 'text/plain', 'application/json; charset=latin1', 'multipart/form-data; boundary=x') },
);

/** Stands for the calling participant's own DIP ID in a generated path (resolved by `forCaller`). */
export const SELF = 'SELF-DIPID';

/** The request as `dipId` sends it: SELF replaced by its own ID. */
export function forCaller(req: GeneratedRequest, dipId: string): GeneratedRequest {
  return { ...req, path: req.path.replaceAll(SELF, dipId), params: Object.fromEntries(Object.entries(req.params).map(([k, v]) => [k, v === SELF ? dipId : v])) };
}

const junkString = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom('', ' ', '..', '%00', '../admin', '0', '-1', '9'.repeat(40), 'null', '__proto__', 'constructor', 'IF-021\u0000', '\u0406F-021'),
);

/** A value for a path parameter, by its name: mostly one that means something to the DIP. */
function paramArbitrary(name: string, known: Known): fc.Arbitrary<string> {
  const n = name.toLowerCase();
  let meaningful: fc.Arbitrary<string>;
  if (n === 'id' || n.includes('channel') || n.includes('interface')) {
    // Mostly the channel the participants send and receive on, else any channel or none.
    meaningful = fc.oneof({ weight: 3, arbitrary: fc.constantFrom('IF-021', 'if-021') }, { weight: 2, arbitrary: fc.constantFrom(...channelIds, 'IF-999', 'REP-000') });
  }
  else if (n.includes('dipid') || n.includes('recipient') || n.includes('participant') || n.includes('sender')) {
    // Mostly the caller's own (the operation then does something), else another's or nobody's.
    meaningful = fc.oneof({ weight: 3, arbitrary: fc.constant(SELF) }, { weight: 2, arbitrary: fc.constantFrom(...known.dipIds, '0000000000', '9999999999') });
  }
  else if (n.includes('event')) meaningful = fc.constantFrom('ActivePower', ...new Set(catalogue.channels().flatMap((c) => c.eventCodes)));
  else if (n.includes('mpan')) meaningful = fc.stringMatching(/^\d{13}$/);
  else if (n.includes('transaction')) meaningful = fc.constantFrom(...known.transactionIds, 'T-IF-021-0000000000-SDS-0');
  else if (n.includes('job')) meaningful = fc.oneof(fc.uuid(), fc.nat().map(String));
  else meaningful = fc.oneof(fc.nat().map(String), fc.uuid());
  return fc.oneof({ weight: 5, arbitrary: meaningful }, { weight: 1, arbitrary: junkString });
}

const PARAM = /:(\w+)/g;

function schemaOf(op: Operation, part: 'body' | 'querystring'): JsonSchema | undefined {
  const s = (op.schema as Record<string, unknown> | undefined)?.[part];
  return typeof s === 'object' && s !== null ? (s as JsonSchema) : undefined;
}

const memo = new Map<object | string, fc.Arbitrary<JsonValue>>();
function instancesOf(key: object | string, schema: JsonSchema): fc.Arbitrary<JsonValue> {
  let a = memo.get(key);
  if (!a) {
    a = arbitraryOf(schema);
    memo.set(key, a);
  }
  return a;
}

const anyJson = fc.jsonValue({ maxDepth: 4 }) as fc.Arbitrary<JsonValue>;
const hostileBodies = fc.oneof(
  anyJson.map((v) => ({ kind: 'random JSON', body: JSON.stringify(v) })),
  fc.uint8Array({ maxLength: 300 }).map((b) => ({ kind: 'random bytes', body: Buffer.from(b) })),
  fc.constantFrom('', 'null', '[]', '{}', '{"__proto__":{"x":1}}', '[{"payload":null}]', '{', '"\\ud800"').map((b) => ({ kind: 'edge JSON', body: b })),
);

/** An instance of the schema, sometimes with one field replaced by any JSON value (or removed). */
function fromSchema(arb: fc.Arbitrary<JsonValue>, kind: string): fc.Arbitrary<{ kind: string; body: string | Buffer }> {
  return fc.tuple(arb, fc.nat(), anyJson, fc.boolean()).map(([value, at, replacement, mutate]) => {
    if (mutate && value && typeof value === 'object' && !Array.isArray(value)) {
      const keys = Object.keys(value);
      if (keys.length > 0) {
        const k = keys[at % keys.length]!;
        if (at % 3 === 0) delete value[k];
        else value[k] = replacement;
        return { kind: `${kind}, one field changed`, body: JSON.stringify(value) };
      }
    }
    return { kind, body: JSON.stringify(value) };
  });
}

function bodyArbitrary(op: Operation, params: Record<string, string>, known: Known): fc.Arbitrary<{ kind: string; body: string | Buffer | undefined }> {
  if (op.method === 'GET' || op.method === 'HEAD') return fc.constant({ kind: 'no body', body: undefined });
  const declared = schemaOf(op, 'body');
  if (declared) return fc.oneof({ weight: 3, arbitrary: fromSchema(instancesOf(declared, declared), 'from the route schema') }, { weight: 1, arbitrary: hostileBodies });
  // A route that takes a channel's messages (its pipeline validates them against the channel's schema).
  const channel = params['id'] !== undefined ? catalogue.schema(params['id']) : undefined;
  if (channel && op.method === 'POST') {
    const items = fc.array(instancesOf(params['id']!.toUpperCase(), channel), { minLength: 1, maxLength: 2 });
    return fc.oneof(
      { weight: 2, arbitrary: fromSchema(items, `${params['id']} messages from the channel schema`) },
      { weight: 1, arbitrary: fc.constant(null).map(() => ({ kind: 'a valid IF-021 batch', body: JSON.stringify(known.validBatch()) })) },
      { weight: 1, arbitrary: hostileBodies },
    );
  }
  return fc.oneof({ weight: 1, arbitrary: fc.constant({ kind: 'no body', body: undefined }) }, { weight: 2, arbitrary: hostileBodies });
}

function queryArbitrary(op: Operation): fc.Arbitrary<string> {
  const declared = schemaOf(op, 'querystring');
  const junk = fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), junkString, { maxKeys: 3 });
  const obj = declared ? fc.oneof({ weight: 3, arbitrary: instancesOf(declared, declared) }, { weight: 1, arbitrary: junk }) : fc.oneof({ weight: 4, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: junk });
  return obj.map((o) => {
    if (!o || typeof o !== 'object' || Array.isArray(o)) return '';
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(o)) q.append(k, typeof v === 'string' ? v : JSON.stringify(v));
    const s = q.toString();
    return s ? `?${s}` : '';
  });
}

/** Requests for `op`: its path with every parameter filled, a query, a body. */
export function requestsFor(op: Operation, known: Known): fc.Arbitrary<GeneratedRequest> {
  const names = [...op.url.matchAll(PARAM)].map((m) => m[1]!);
  const params = fc.record(Object.fromEntries(names.map((n) => [n, paramArbitrary(n, known)])));
  return params.chain((p) =>
    fc.record({ query: queryArbitrary(op), body: bodyArbitrary(op, p, known), contentType: contentTypes }).map(({ query, body, contentType }) => ({
      path: op.url.replace(PARAM, (_m, n: string) => encodeURIComponent(p[n] ?? '')) + query,
      params: p,
      body: body.body,
      bodyKind: body.kind,
      contentType: body.body === undefined ? undefined : contentType,
    })),
  );
}

const channelSet = new Set(channelIds.map((c) => c.toUpperCase()));
const eventsOf = new Map(catalogue.channels().map((c) => [c.interfaceId.toUpperCase(), new Set(c.eventCodes)]));

/**
 * Operations grouped where they differ only in literal channel and event segments: a listener may
 * register /validate/IF-021/ActivePower and 126 others beside /validate/:id/:event, and each family is
 * fuzzed with one budget (each request picks a member) instead of 127.
 */
export function families(ops: readonly Operation[]): Map<string, Operation[]> {
  const out = new Map<string, Operation[]>();
  for (const op of ops) {
    const segments = op.url.split('/');
    const shape = segments.map((seg, i) => {
      if (channelSet.has(seg.toUpperCase())) return ':id';
      const before = segments[i - 1]?.toUpperCase() ?? '';
      return eventsOf.get(before)?.has(seg) ? ':event' : seg;
    });
    const key = `${op.method} ${shape.join('/')}`;
    out.set(key, [...(out.get(key) ?? []), op]);
  }
  return out;
}
