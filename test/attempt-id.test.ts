/** Delivery attempt IDs (src/domain/attempt-id.ts): UUIDv7, made from an injected time and random bytes. */
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ATTEMPT_ID, attemptIdTime, newAttemptId } from '../src/domain/attempt-id.js';

const fixed = (byte: number) => (count: number) => new Uint8Array(count).fill(byte);

describe('attempt IDs', () => {
  it('lay out the time, the version and the variant as RFC 9562 does, the rest from the random bytes', () => {
    // RFC 9562 appendix A.6's example time, 2022-02-22T19:22:22Z = 0x017F22E279B0.
    const at = Date.UTC(2022, 1, 22, 19, 22, 22);
    expect(at.toString(16)).toBe('17f22e279b0');
    expect(newAttemptId(at, fixed(0x00))).toBe('017f22e2-79b0-7000-8000-000000000000');
    expect(newAttemptId(at, fixed(0xff))).toBe('017f22e2-79b0-7fff-bfff-ffffffffffff');
    expect(newAttemptId(at + 0.9, fixed(0))).toBe(newAttemptId(at, fixed(0))); // whole milliseconds
  });

  it('keep their time and sort by it, whatever the random bytes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 48 - 2 }), fc.integer({ min: 1, max: 2 ** 20 }), fc.uint8Array({ minLength: 10, maxLength: 10 }), fc.uint8Array({ minLength: 10, maxLength: 10 }), (ms, gap, a, b) => {
        const earlier = newAttemptId(ms, () => a);
        const later = newAttemptId(Math.min(ms + gap, 2 ** 48 - 1), () => b);
        expect(earlier).toMatch(ATTEMPT_ID);
        expect(attemptIdTime(earlier)).toBe(ms);
        expect(earlier < later).toBe(true);
      }),
    );
  });

  it('differ within one millisecond, from the random bytes alone', () => {
    const at = Date.UTC(2026, 11, 3);
    const ids = Array.from({ length: 10_000 }, () => newAttemptId(at, randomBytes));
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('refuse a time they cannot hold and too few random bytes', () => {
    expect(() => newAttemptId(-1, fixed(0))).toThrow(RangeError);
    expect(() => newAttemptId(2 ** 48, fixed(0))).toThrow(RangeError);
    expect(() => newAttemptId(Number.NaN, fixed(0))).toThrow(RangeError);
    expect(() => newAttemptId(0, () => new Uint8Array(9))).toThrow(/10 random bytes/);
    expect(() => attemptIdTime('not-an-id')).toThrow(RangeError);
  });
});
