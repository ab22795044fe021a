import { describe, expect, it } from 'vitest';
import { newCorrelationId, newTransactionId } from '../src/domain/transaction-id.js';

const FORMAT = /^T-IF-021-0123456789-SUP-20261201-[0-9A-F]{16}$/;
const id = (at: Date): string => newTransactionId('IF-021', '0123456789', 'SUP', at);

describe('transaction IDs', () => {
  it('follow the published format, with the replay prefix for replayed copies', () => {
    const at = new Date('2026-12-01T13:45:07.123Z');
    expect(id(at)).toMatch(FORMAT);
    expect(newTransactionId('IF-021', '0123456789', 'SUP', at, true)).toMatch(/^R-IF-021-0123456789-SUP-20261201-[0-9A-F]{16}$/);
    expect(newCorrelationId(at)).toMatch(/^CI-20261201-[0-9A-F]{24}$/);
  });

  it('start with the millisecond of the receipt day, so they sort by time within a day', () => {
    const at = new Date('2026-12-01T13:45:07.123Z');
    const msOfDay = ((13 * 60 + 45) * 60 + 7) * 1000 + 123;
    expect(id(at).slice(-16, -9)).toBe(msOfDay.toString(16).padStart(7, '0').toUpperCase());
    const times = Array.from({ length: 2000 }, (_, i) => new Date(Date.parse('2026-12-01T00:00:00Z') + i * 43_000 + (i % 7)));
    const ids = times.map(id);
    expect([...ids].sort()).toEqual(ids);
    expect(id(new Date('2026-12-01T00:00:00.000Z')).slice(-16, -9)).toBe('0000000');
    expect(id(new Date('2026-12-01T23:59:59.999Z')).slice(-16, -9)).toBe((86_399_999).toString(16).toUpperCase());
  });

  it('never repeat, and keep their order, when many are stamped in one millisecond', () => {
    const at = new Date('2026-12-01T09:00:00.000Z');
    const ids = Array.from({ length: 100_000 }, () => id(at));
    expect(new Set(ids).size).toBe(ids.length);
    // Counted up from a random start within the millisecond; the start differs from one millisecond to the next.
    const lows = ids.map((t) => Number.parseInt(t.slice(-9), 16));
    expect(lows.every((low, i) => i === 0 || low === lows[i - 1]! + 1 || low < lows[i - 1]!)).toBe(true);
    expect(lows.filter((low, i) => i > 0 && low < lows[i - 1]!).length).toBeLessThanOrEqual(1);
    const next = id(new Date(at.getTime() + 1)).slice(-9);
    const again = id(new Date(at.getTime() + 2)).slice(-9);
    expect(next).not.toBe(again);
  });
});
