import { describe, expect, it } from 'vitest';
import { backoffMs, SOURCE_FREE_FAILURES, SOURCE_MAX_DELAY_MS, SOURCE_WINDOW_MS, sourceKey, SourceThrottle, waitAfter } from '../src/security/sign-in-throttle.js';

/** The per-address sign-in throttle on its own: time is passed in, nothing waits. */
describe('sign-in throttle per client address', () => {
  it('lets the first failures through, then doubles the wait from 1 s to its cap', () => {
    expect([0, 4].map((n) => backoffMs(n, 5, 60_000))).toEqual([0, 0]);
    expect([5, 6, 7, 11, 12, 40].map((n) => backoffMs(n, 5, 60_000))).toEqual([1000, 2000, 4000, 60_000, 60_000, 60_000]);
  });

  it('holds an address after its free failures across any names, forgets it after the window, and keeps a bounded table', () => {
    const throttle = new SourceThrottle(3);
    const t0 = Date.UTC(2026, 0, 1);
    for (let i = 0; i < SOURCE_FREE_FAILURES; i++) throttle.failed('192.0.2.7', t0);
    expect(throttle.waitMs('192.0.2.7', t0)).toBe(1000);
    expect(throttle.waitMs('192.0.2.8', t0)).toBe(0);
    for (let i = 0; i < 30; i++) throttle.failed('192.0.2.7', t0);
    expect(throttle.waitMs('192.0.2.7', t0)).toBe(SOURCE_MAX_DELAY_MS);
    expect(throttle.failures('192.0.2.7', t0 + SOURCE_WINDOW_MS)).toBe(0);
    // At most three addresses kept: the least recently failed is forgotten first.
    for (const a of ['198.51.100.1', '198.51.100.2', '198.51.100.3', '198.51.100.4']) throttle.failed(a, t0);
    expect(['198.51.100.1', '198.51.100.2', '198.51.100.3', '198.51.100.4'].map((a) => throttle.failures(a, t0))).toEqual([0, 1, 1, 1]);
  });

  it('never holds an address longer than its backoff when the clock steps back', () => {
    const throttle = new SourceThrottle();
    const t0 = Date.UTC(2026, 0, 1);
    for (let i = 0; i < SOURCE_FREE_FAILURES + 1; i++) throttle.failed('192.0.2.7', t0);
    expect(throttle.waitMs('192.0.2.7', t0 - 3_600_000)).toBe(2000);
  });

  it('waitAfter: the wait left after a failure, at most the backoff whatever the clock did', () => {
    expect(waitAfter(10_000, 2000, 11_000)).toBe(1000);
    expect(waitAfter(10_000, 2000, 13_000)).toBe(0);
    expect(waitAfter(10_000, 2000, 10_000 - 3_600_000)).toBe(2000);
  });

  it('counts an IPv6 address by its /64, an IPv4 or IPv4-mapped one by the address, and caps the wait at a minute', () => {
    expect(['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::9', '2001:DB8:1:2:ffff::1'].map(sourceKey)).toEqual(['2001:db8:1:2::/64', '2001:db8:1:2::/64', '2001:db8:1:2::/64']);
    expect(sourceKey('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
    expect(['192.0.2.7', '::ffff:192.0.2.7', '::ffff:c000:207'].map(sourceKey)).toEqual(['192.0.2.7', '192.0.2.7', '192.0.2.7']);
    expect(sourceKey('::1')).toBe('0:0:0:0::/64');
    expect(SOURCE_MAX_DELAY_MS).toBe(60_000);
  });
});
