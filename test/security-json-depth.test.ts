/** The pre-parse nesting guard (src/security/json-depth.ts). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Catalogue } from '../src/catalogue/catalogue.js';
import type { JsonSchema } from '../src/catalogue/types.js';
import { DEFAULTS, jsonCountsOf } from '../src/config.js';
import { exceedsJsonDepth, firstDuplicateName, jsonBodyExcess, memberCount, scanJsonBatch } from '../src/security/json-depth.js';

const b = (s: string) => Buffer.from(s, 'utf8');

/** Reference: the depth of a parsed value (arrays and objects count one level each). */
function depthOf(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  let d = 0;
  for (const c of Object.values(v)) d = Math.max(d, depthOf(c));
  return d + 1;
}

/**
 * Reference for any text, JSON or not: the deepest nesting of brackets outside strings, read character by
 * character with an explicit in-string state (the scanner under test skips strings in an inner loop).
 */
function naiveExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (const ch of text) {
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === '\\') escaped = true;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '[' || ch === '{') {
      if (++depth > max) return true;
    } else if (ch === ']' || ch === '}') depth--;
  }
  return false;
}

describe('exceedsJsonDepth', () => {

  it('counts arrays and objects, not brackets inside strings or after escapes', () => {
    expect(exceedsJsonDepth(b('[[[]]]'), 3)).toBe(false);
    expect(exceedsJsonDepth(b('[[[[]]]]'), 3)).toBe(true);
    expect(exceedsJsonDepth(b('{"a":{"b":{"c":{}}}}'), 3)).toBe(true);
    expect(exceedsJsonDepth(b('["[[[[[[", "{{{{{{"]'), 1)).toBe(false);
    expect(exceedsJsonDepth(b('["\\"[[[[[[", 1]'), 1)).toBe(false);
    expect(exceedsJsonDepth(b('["\\\\", [[1]]]'), 2)).toBe(true);
    expect(exceedsJsonDepth(b('["é€😀[[[", 1]'), 1)).toBe(false);
  });

  it('agrees with the depth of the parsed value, for any JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), fc.integer({ min: 0, max: 10 }), (v, max) => {
        const text = JSON.stringify(v);
        expect(exceedsJsonDepth(b(text), max)).toBe(depthOf(v) > max);
      }),
      { numRuns: 500 },
    );
  });

  // Its speed is measured by `npx tsx bench/hotpath.ts depth`, not here (a timed unit test only measures the machine).
  it('scans megabytes, and a million open brackets without recursing', () => {
    const big = b(JSON.stringify(Array.from({ length: 100_000 }, (_, i) => ({ k: `value ${i} "quoted" [x]`, n: [i, i + 1] }))));
    expect(exceedsJsonDepth(big, 64)).toBe(false);
    expect(exceedsJsonDepth(b('['.repeat(1_000_000)), 64)).toBe(true);
    expect(exceedsJsonDepth(b(`${'['.repeat(64)}${']'.repeat(64)}`), 64)).toBe(false);
  });
});

describe('scanJsonBatch', () => {
  /** What a caller gets from the spans: each item parsed on its own, or null when one does not parse. */
  const itemsOf = (buf: Buffer): unknown[] | null => {
    const { items } = scanJsonBatch(buf, 64);
    if (!items) return null;
    try {
      return items.map((s) => JSON.parse(buf.toString('utf8', s.start, s.end)) as unknown);
    } catch {
      return null;
    }
  };

  it('finds the items of a top-level array, not commas inside strings or nested values', () => {
    expect(itemsOf(b(' [1, "a,]", {"b": [2, 3]}, [4,5] ]\n'))).toEqual([1, 'a,]', { b: [2, 3] }, [4, 5]]);
    const tricky = ['\\', '\\",', 'é€😀,', ']'];
    expect(itemsOf(b(JSON.stringify(tricky)))).toEqual(tricky);
  });

  it('leaves to the whole-body parse what is not a framed array with items', () => {
    for (const text of ['{"a": [1, 2]}', '1', '[]', '[ ]', '[1, 2] x', '[1, 2}', '[1, 2', '[1, 2], [3]', '["abc', '\ufeff[1]', '']) {
      expect(scanJsonBatch(b(text), 64).items, text).toBeNull();
    }
    // What follows a closed array still counts towards the depth, from where the array closed.
    expect(scanJsonBatch(b('[1] [[[[2]]]]'), 3).tooDeep).toBe(true);
    expect(scanJsonBatch(b('[1]} [[[2]]]'), 3).tooDeep).toBe(false);
    // Framed, but an item is malformed: it does not parse on its own, and the caller parses the whole.
    for (const text of ['[1,]', '[,1]', '[1 2]', '[{"a":1], 2}', '[{"a": [1}], 2]']) expect(itemsOf(b(text)), text).toBeNull();
  });

  it('agrees with exceedsJsonDepth, and its items with JSON.parse of the whole, for any JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.integer({ min: 0, max: 8 }), fc.constantFrom(undefined, 1, '\t', ' \r\n'), (v, max, space) => {
        const text = b(JSON.stringify(v, null, space));
        const scan = scanJsonBatch(text, max);
        expect(scan.tooDeep).toBe(depthOf(v) > max);
        expect(scan.tooDeep).toBe(exceedsJsonDepth(text, max));
        if (!scan.tooDeep && Array.isArray(v) && v.length > 0) expect(itemsOf(text)).toEqual(JSON.parse(text.toString('utf8')));
      }),
      { numRuns: 500 },
    );
  });

  it('never yields items for a text that JSON.parse refuses or reads otherwise (mutated batches)', () => {
    const arrays = fc.array(fc.jsonValue({ maxDepth: 3 }), { minLength: 1, maxLength: 5 }).map((a) => JSON.stringify(a));
    const edits = fc.array(fc.tuple(fc.nat(), fc.constantFrom('', ',', '[', ']', '{', '}', '"', '\\', ' ', 'x', '1')), { minLength: 1, maxLength: 3 });
    fc.assert(
      fc.property(arrays, edits, (text, changes) => {
        let t = text;
        for (const [at, ch] of changes) {
          const i = at % (t.length + 1);
          t = `${t.slice(0, i)}${ch}${t.slice(i + (ch === '' ? 1 : 0))}`;
        }
        for (const max of [0, 1, 2, 3]) {
          expect(scanJsonBatch(b(t), max).tooDeep, `${t} @${max}`).toBe(naiveExceeds(t, max));
          expect(exceedsJsonDepth(b(t), max), `${t} @${max}`).toBe(naiveExceeds(t, max));
        }
        const items = itemsOf(b(t));
        if (items === null) return;
        expect(items).toEqual(JSON.parse(t));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('member names given twice (memberCount against the scan, firstDuplicateName for the answer)', () => {
  const scanned = (text: string) => scanJsonBatch(b(`[${text}]`), 1000).items![0]!.members;

  it('counts as many members in the parsed value as the text spells out, for any JSON (names unique)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => {
        const text = JSON.stringify(v);
        expect(memberCount(JSON.parse(text))).toBe(scanned(text));
        expect(firstDuplicateName(text)).toBeNull();
      }),
      { numRuns: 500 },
    );
  });

  it('counts fewer when a name is given twice, at any depth, and names the first one given twice', () => {
    const text = '{"__proto__":{"a":1},"b":[{"c":"x:\\"y","c":2}],"d":{"e":1,"f":{"g":1,"g":1}}}';
    expect(memberCount(JSON.parse(text))).toBe(scanned(text) - 2);
    expect(firstDuplicateName(text)).toEqual({ path: 'b[0]', name: 'c' });
    expect(firstDuplicateName('[1,{"a":{"b":1,"b\\u0000":2,"b":3}}]')).toEqual({ path: '[1].a', name: 'b' });
    // Another case is another name here (the key-case check refuses those).
    expect(firstDuplicateName('{"a":1,"A":2}')).toBeNull();
  });
});


/** Reference: the most members of any one object in a parsed value, and its values (members and array elements past each array's first). */
function countsOf(v: unknown): { largest: number; values: number } {
  if (typeof v !== 'object' || v === null) return { largest: 0, values: 0 };
  const entries = Object.values(v);
  let largest = Array.isArray(v) ? 0 : entries.length;
  let values = Array.isArray(v) ? Math.max(0, entries.length - 1) : entries.length;
  for (const c of entries) {
    const inner = countsOf(c);
    largest = Math.max(largest, inner.largest);
    values += inner.values;
  }
  return { largest, values };
}

describe('members and values counted before parsing (jsonBodyExcess, scanJsonBatch)', () => {
  const caps = { maxObjectMembers: 1_000, maxValues: 100_000 };
  const objectOf = (n: number) => `{${Array.from({ length: n }, (_, i) => `"k${i}":0`).join(',')}}`;

  it('refuses an object of more members than the cap, naming the cap, and accepts one at it', () => {
    expect(jsonBodyExcess(b(objectOf(1_000)), 64, caps)).toBeNull();
    expect(jsonBodyExcess(b(objectOf(1_001)), 64, caps)).toBe('an object of the JSON body holds more than the limit of 1000 members');
    // Members are counted per object: many objects of a few members each are not one large one.
    expect(jsonBodyExcess(b(`[${Array.from({ length: 500 }, () => objectOf(10)).join(',')}]`), 64, caps)).toBeNull();
    // Colons and commas inside strings are text.
    expect(jsonBodyExcess(b(JSON.stringify({ a: ':'.repeat(5_000), b: ','.repeat(200_000) })), 64, caps)).toBeNull();
  });

  it('refuses a body of more values than the cap, however they are spread', () => {
    expect(jsonBodyExcess(b(`[${'0,'.repeat(100_001)}0]`), 64, caps)).toBe('the JSON body holds more than the limit of 100000 values (object members and array elements)');
    expect(jsonBodyExcess(b(`[${'0,'.repeat(100_000)}0]`), 64, caps)).toBeNull();
    expect(jsonBodyExcess(b(`[${Array.from({ length: 101 }, () => objectOf(1_000)).join(',')}]`), 64, caps)).toMatch(/limit of 100000 values/);
  });

  it('counts values per message in a batch, and names the message', () => {
    const batch = `[${objectOf(900)},${objectOf(1_001)}]`;
    const scan = scanJsonBatch(b(batch), 64, caps);
    expect(scan).toEqual({ tooDeep: false, excess: 'item 1: an object of the JSON body holds more than the limit of 1000 members', items: null });
    const many = Array.from({ length: 200 }, () => objectOf(900)).join(',');
    expect(scanJsonBatch(b(`[${many}]`), 64, caps).items).toHaveLength(200); // 180,000 values, 900 a message
    expect(scanJsonBatch(b(`[${objectOf(10)},{"a":[${'0,'.repeat(100_000)}0]}]`), 64, caps).excess).toBe('item 1: the JSON message holds more than the limit of 100000 values (object members and array elements)');
  });

  it('agrees with the counts of the parsed value, for any JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 30 }), (v, maxObjectMembers, maxValues) => {
        const text = b(JSON.stringify(v));
        const { largest, values } = countsOf(v);
        const excess = jsonBodyExcess(text, 64, { maxObjectMembers, maxValues });
        expect(excess !== null).toBe(largest > maxObjectMembers || values > maxValues);
      }),
      { numRuns: 500 },
    );
  });

  // An IF-013-shaped message: `days` MPAN-days of 48 defaulted periods (the array has no maxItems).
  const if013 = (days: number): string =>
    JSON.stringify({ payload: { CommonBlock: { S0: { eventCode: 'X' } }, CustomBlock: { B920List: Array.from({ length: days }, (_, i) => ({ mpan: String(1000000000000 + i), settlementDayConsumptionPeriods: [{ settlementDate: '2026-01-01', defaultedConsumptionPeriods: Array.from({ length: 48 }, (_, p) => ({ p: p + 1, c: 1.234, r: 'D' })) }] })) } } });

  it('never refuses, with the defaults, a legitimate message that fits the body limit (arrays without maxItems are unbounded)', () => {
    const counts = jsonCountsOf(DEFAULTS);
    const small = b(`[${if013(600)}]`); // 847 KB: refused before, "item 0: ... more than the limit of 100000 values"
    expect(scanJsonBatch(small, DEFAULTS.http.maxJsonDepth, counts).excess).toBeNull();
    const days = Math.floor((DEFAULTS.bodyLimitBytes - 2) / (small.length / 600)) - 1;
    const large = b(`[${if013(days)}]`);
    expect(large.length).toBeLessThanOrEqual(DEFAULTS.bodyLimitBytes);
    expect(large.length).toBeGreaterThan(DEFAULTS.bodyLimitBytes * 0.95);
    expect(scanJsonBatch(large, DEFAULTS.http.maxJsonDepth, counts).excess).toBeNull();
    expect(jsonBodyExcess(large, DEFAULTS.http.maxJsonDepth, counts)).toBeNull();
    // The densest JSON there is (a value and its comma in 2 bytes) at the body limit is still within the cap.
    const densest = b(`[${'0,'.repeat(DEFAULTS.bodyLimitBytes / 2 - 1)}0]`);
    expect(jsonBodyExcess(densest, DEFAULTS.http.maxJsonDepth, counts)).toBeNull();
  });

  it('counts values per entry of a batch (POST /statusmessage, jsonValuesPerItem), not over the whole body', () => {
    const entry = `{"a":[${'0,'.repeat(99)}0]}`; // 101 values
    const batch = b(`[${entry},${entry},${entry}]`);
    const counts = { maxObjectMembers: 1_000, maxValues: 150 };
    expect(jsonBodyExcess(batch, 64, counts)).toBe('the JSON body holds more than the limit of 150 values (object members and array elements)');
    expect(scanJsonBatch(batch, 64, counts).excess).toBeNull();
  });

  it("leaves room for the catalogue's largest object within maxJsonObjectMembers, and its bounded arrays within maxJsonValues", () => {
    const catalogue = Catalogue.load();
    type S = JsonSchema & { $ref?: string; properties?: Record<string, S>; items?: S; maxItems?: number; allOf?: S[]; oneOf?: S[]; anyOf?: S[] };
    let largestObject = 0;
    let largestMessage = 0;
    for (const channel of catalogue.channels()) {
      const root = catalogue.schema(channel.interfaceId) as S;
      const resolve = (s: S): S => {
        let r = s;
        while (r.$ref) r = r.$ref.replace(/^#\//, '').split('/').reduce<Record<string, unknown>>((o, k) => o[decodeURIComponent(k)] as Record<string, unknown>, root as Record<string, unknown>) as S;
        return r;
      };
      // The most values a message of the schema holds with its bounded arrays full. An array without maxItems
      // (185 paths) is counted at one item here: no schema bound exists for it, which is why the values cap
      // defaults to what the body limit allows (the test above sends such a message near the body limit).
      const values = (given: S, depth: number): number => {
        const s = resolve(given);
        if (depth > 40) return 0;
        const alternatives = [...(s.oneOf ?? []), ...(s.anyOf ?? [])].map((x) => values(x, depth + 1));
        let own = (s.allOf ?? []).reduce((n, x) => n + values(x, depth + 1), 0);
        const names = Object.keys(s.properties ?? {});
        largestObject = Math.max(largestObject, names.length);
        for (const name of names) own += 1 + values(s.properties![name]!, depth + 1);
        if (s.items) own += (s.maxItems ?? 1) * (1 + values(s.items, depth + 1));
        return Math.max(own, ...alternatives);
      };
      largestMessage = Math.max(largestMessage, values(root, 0));
    }
    expect(largestObject).toBeGreaterThan(20); // the walk reached the catalogue's objects
    expect(largestMessage).toBeGreaterThan(40_000); // IF-014 / IF-021 with every period present
    expect(largestObject).toBeLessThanOrEqual(DEFAULTS.http.maxJsonObjectMembers / 10);
    expect(largestMessage).toBeLessThanOrEqual(jsonCountsOf(DEFAULTS).maxValues / 1.5);
  });
});
