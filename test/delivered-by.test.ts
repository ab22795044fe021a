import { describe, expect, it } from 'vitest';
import { deliveringCall } from '../src/domain/delivered-by.js';

const call = (verdict: string, startedAt: number) => ({ verdict, startedAt });

describe('deliveringCall: which call delivered a copy', () => {
  it('is the first 2xx call of a copy never set aside', () => {
    const calls = [call('retry', 1), call('delivered', 2), call('delivered', 3)];
    expect(deliveringCall(calls, null)).toBe(calls[1]);
    expect(deliveringCall([call('retry', 1)], null)).toBeUndefined();
  });

  it('is none while the copy lies dead, even after a 2xx call (a 207 that named it with a failure code)', () => {
    expect(deliveringCall([call('delivered', 5)], { state: 'dead', at: 5 })).toBeUndefined();
  });

  it('is a 2xx call made since a requeued copy was set aside, not the one that set it aside before', () => {
    const calls = [call('delivered', 5), call('retry', 8), call('delivered', 9)];
    expect(deliveringCall(calls, { state: 'requeued', at: 6 })).toBe(calls[2]);
    expect(deliveringCall(calls.slice(0, 2), { state: 'requeued', at: 6 })).toBeUndefined();
  });
});
