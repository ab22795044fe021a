/** The pre-parse nesting guard (src/security/json-depth.ts). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { exceedsJsonDepth, firstDuplicateName, memberCount, scanJsonBatch } from '../src/security/json-depth.js';

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

