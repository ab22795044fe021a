/** The pre-parse nesting guard (src/security/json-depth.ts). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { exceedsJsonDepth } from '../src/security/json-depth.js';

/** Reference: the depth of a parsed value (arrays and objects count one level each). */
function depthOf(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  let d = 0;
  for (const c of Object.values(v)) d = Math.max(d, depthOf(c));
  return d + 1;
}

describe('exceedsJsonDepth', () => {
  const b = (s: string) => Buffer.from(s, 'utf8');

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

  it('scans megabytes in well under a second', () => {
    const big = b(JSON.stringify(Array.from({ length: 100_000 }, (_, i) => ({ k: `value ${i} "quoted" [x]`, n: [i, i + 1] }))));
    const started = performance.now();
    expect(exceedsJsonDepth(big, 64)).toBe(false);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
