import { describe, expect, it } from 'vitest';
import { checkMaintenance } from '../src/domain/maintenance.js';

/**
 * A maintenance window's times are read against the calendar: a day or time that does not exist is refused,
 * naming the field and why. Date.parse rolled them over: 2026-11-31 was stored as 1 December, 2026-02-30
 * was refused as "longer than 31 days", and 24:30 as "not a date-time with a zone".
 */
describe('maintenance window times', () => {
  const now = Date.UTC(2026, 0, 1);
  const known = (id: string): boolean => id === 'IF-021';
  const errors = (start: string, end: string): string[] => {
    const c = checkMaintenance({ start, end, text: 'upgrade' }, now, known);
    return c.ok ? [] : c.errors;
  };

  it('refuses a day the month does not have, naming the field, never rolling it over', () => {
    expect(errors('2026-11-31T01:00:00Z', '2026-12-01T02:00:00Z')).toEqual(["start: '2026-11-31T01:00:00Z' names no instant: 2026-11 has no day 31"]);
    expect(errors('2026-02-27T01:00:00Z', '2026-02-30T02:00:00+01:00')).toEqual(["end: '2026-02-30T02:00:00+01:00' names no instant: 2026-02 has no day 30"]);
  });

  it('refuses a time of day that does not exist, and says so rather than blaming the zone', () => {
    expect(errors('2026-12-06T24:30:00Z', '2026-12-07T02:00:00Z')).toEqual(["start: '2026-12-06T24:30:00Z' names no instant: 24:30:00 is not a time of day"]);
    expect(errors('2026-12-06T01:00:00Z', '2026-12-06T02:61Z')).toEqual(["end: '2026-12-06T02:61Z' names no instant: 02:61:00 is not a time of day"]);
  });

  it('still refuses a date-time without a zone, or a date alone, and takes a leap day and fractions', () => {
    expect(errors('2026-12-06T01:00:00', '2026-12-06T02:00:00Z')).toEqual(["start: '2026-12-06T01:00:00' has no time zone: add Z for UTC or an offset such as +01:00"]);
    expect(errors('2026-12-06', '2026-12-06T02:00:00Z')[0]).toMatch(/^start: '2026-12-06' is a date alone/);
    const leap = checkMaintenance({ start: '2028-02-29T01:00:00.5Z', end: '2028-02-29T02:00+01:00', text: 'x' }, now, known);
    expect(leap).toEqual({ ok: false, errors: ["end: 2028-02-29T02:00+01:00 is not after start 2028-02-29T01:00:00.5Z"] });
    const ok = checkMaintenance({ start: '2028-02-29T01:00:00.5Z', end: '2028-02-29T03:30+01:00', text: 'x' }, now, known);
    expect(ok.ok && [ok.value.start, ok.value.end]).toEqual([Date.UTC(2028, 1, 29, 1, 0, 0, 500), Date.UTC(2028, 1, 29, 2, 30)]);
  });
});
