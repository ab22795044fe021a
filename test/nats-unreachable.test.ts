/**
 * While NATS cannot answer (JetStream without its quorum), the shared replay guard and rate limits take
 * their fallbacks at once for 5 s after a failure instead of waiting out the client's timeout on every
 * request (a fault campaign saw each submission take 5 s). A stand-in KV that fails counts the calls.
 */
import type { KV } from '@nats-io/kv';
import { describe, expect, it } from 'vitest';
import { NatsRateLimits } from '../src/adapters/nats/rate-limits.js';
import { NatsReplayGuard } from '../src/adapters/nats/replay-guard.js';

function failingKv(): { kv: KV; calls: () => number } {
  let calls = 0;
  const fail = async (): Promise<never> => {
    calls += 1;
    throw new Error('TimeoutError: timeout');
  };
  return { kv: { create: fail, get: fail, update: fail, delete: fail } as unknown as KV, calls: () => calls };
}

describe('the shared stores while NATS does not answer', () => {
  it('the replay guard asks NATS once, then checks this node only for 5 s, still refusing a replay to it', async () => {
    const { kv, calls } = failingKv();
    const guard = new NatsReplayGuard(kv, 600_000);
    const t0 = 1_000_000;
    expect(await guard.check('sig-1', t0)).toEqual({ replayed: false });
    expect(await guard.check('sig-2', t0 + 1_000)).toEqual({ replayed: false });
    expect((await guard.check('sig-1', t0 + 2_000)).replayed).toBe(true);
    expect(calls()).toBe(1);
    await guard.check('sig-3', t0 + 5_001);
    expect(calls()).toBe(2);
  });

  it('the rate limits let requests through without asking for 5 s after a failure', async () => {
    const { kv, calls } = failingKv();
    const limits = new NatsRateLimits(kv, { requestsPerSecond: 10, burst: 10 });
    const t0 = 1_000_000;
    for (let i = 0; i < 20; i++) expect((await limits.take('p:1', t0 + i)).ok).toBe(true);
    expect(calls()).toBe(1);
    await limits.take('p:1', t0 + 6_000);
    expect(calls()).toBe(2);
  });
});
