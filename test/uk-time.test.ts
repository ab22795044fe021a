/**
 * UK local time beside UTC (src/domain/uk-time.ts) across both changes of the clocks in 2026: BST from
 * 01:00 UTC on 29 March, GMT again from 01:00 UTC on 25 October. The instants are given, never the
 * machine's clock or zone.
 */
import { describe, expect, it } from 'vitest';
import { ukTime, utcAndUk, utcAndUkOrDash, utcTime } from '../src/domain/uk-time.js';

const at = (iso: string) => Date.parse(iso);

describe('UK local time', () => {
  it('names GMT before the spring change and BST from it, an hour ahead', () => {
    expect(ukTime(at('2026-03-29T00:59:00Z'))).toBe('2026-03-29 00:59 GMT');
    expect(ukTime(at('2026-03-29T01:00:00Z'))).toBe('2026-03-29 02:00 BST');
    expect(utcAndUk(at('2026-03-29T01:30:00Z'))).toBe('2026-03-29 01:30 UTC (02:30 BST)');
  });

  it('names BST before the autumn change and GMT from it (01:xx local happens twice, told apart by the name)', () => {
    expect(ukTime(at('2026-10-25T00:30:00Z'))).toBe('2026-10-25 01:30 BST');
    expect(ukTime(at('2026-10-25T01:30:00Z'))).toBe('2026-10-25 01:30 GMT');
    expect(utcAndUk(at('2026-10-25T00:30:00Z'))).toBe('2026-10-25 00:30 UTC (01:30 BST)');
  });

  it('says the UK date again when it is not the UTC one (late evening UTC in summer)', () => {
    expect(utcAndUk(at('2026-07-01T23:15:00Z'))).toBe('2026-07-01 23:15 UTC (2026-07-02 00:15 BST)');
    expect(utcAndUk(at('2026-01-15T23:15:00Z'))).toBe('2026-01-15 23:15 UTC (23:15 GMT)');
    expect(utcTime(at('2026-01-15T23:15:00.123Z'))).toBe('2026-01-15 23:15 UTC');
  });

  it('says seconds when the instant has some (an alarm raised), on both sides', () => {
    expect(utcAndUk(at('2026-03-29T01:00:07Z'))).toBe('2026-03-29 01:00:07 UTC (02:00:07 BST)');
    expect(utcAndUkOrDash(null)).toBe('—');
  });
});
