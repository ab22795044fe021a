import { afterEach, describe, expect, it } from 'vitest';
import { RateLimiter } from '../src/security/rate-limit.js';
import { ReplayGuard } from '../src/security/replay-guard.js';
import { SingleProcessLeases } from '../src/adapters/embedded/leases.js';
import { openNatsCoordination } from '../src/adapters/nats/index.js';
import { coordinationContract } from './contract/coordination.contract.js';
import { deleteBuckets, NATS_SERVERS, testPrefix } from './helpers/nats.js';
import { FakeClock } from './helpers/clocks.js';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { queueToken } from '../src/adapters/nats/names.js';
import { waitFor } from './helpers/dip-harness.js';

coordinationContract('one process, in memory', {
  shared: false,
  leaseTtlMs: 0,
  leaseSkewMs: 0,
  async system() {
    return {
      node: async (_clock, rate) => ({ leases: new SingleProcessLeases(), replayGuard: ReplayGuard.forClockSkew(300_000), rateLimits: new RateLimiter(rate), close: async () => {} }),
      close: async () => {},
    };
  },
});

const leases = { ttlMs: 3_000, skewMs: 500 };
coordinationContract('NATS JetStream', {
  shared: true,
  leaseTtlMs: leases.ttlMs,
  leaseSkewMs: leases.skewMs,
  async system() {
    const prefix = testPrefix();
    return {
      node: (clock, rateLimit) => openNatsCoordination({ servers: NATS_SERVERS, prefix, replicas: 1 }, { clock, maxClockSkewMs: 300_000, rateLimit, leases }),
      close: () => deleteBuckets(prefix),
    };
  },
});

describe('NATS queue leases between nodes whose clocks disagree', () => {
  const q = { recipientDipId: 'SUP0000001', channel: 'IF-021' };
  const rate = { requestsPerSecond: 1, burst: 20 };
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  let lastPrefix = '';
  /** a on the machine's time, b `aheadMs` ahead of it (a node whose NTP has drifted). */
  const twoNodes = async (aheadMs: number) => {
    const prefix = testPrefix();
    cleanup.push(() => deleteBuckets(prefix));
    const start = Date.now();
    const out = [];
    lastPrefix = prefix;
    for (const clock of [new FakeClock(start), new FakeClock(start + aheadMs)]) {
      const node = await openNatsCoordination({ servers: NATS_SERVERS, prefix, replicas: 1 }, { clock, maxClockSkewMs: 300_000, rateLimit: rate, leases });
      cleanup.push(() => node.close());
      out.push(Object.assign(node, { clock }));
    }
    return out as [(typeof out)[0], (typeof out)[0]];
  };
  /** One renewal interval on both clocks; waits until a's renewal is in the bucket and b has heard a's roll call (its clock with it). */
  const tick = async (a: { clock: FakeClock; node?: string; connection: NatsConnection }, b: { clock: FakeClock; leases: unknown }, prefix: string) => {
    const heard = (b.leases as { clockOffsetOf?: (node: string) => number | undefined }).clockOffsetOf;
    // b first: a's roll call then says a's time against b's new one, as between two real clocks.
    await b.clock.advance(leases.ttlMs / 3);
    await a.clock.advance(leases.ttlMs / 3);
    const bucket = await new Kvm(a.connection).open(`${prefix}_leases`);
    const renewed = a.clock.now() + leases.ttlMs;
    await waitFor(async () => ((await bucket.get(queueToken(q)))?.json<{ expiresAt: number }>().expiresAt ?? 0) >= renewed, 5_000, "a's renewal in the bucket");
    if (heard) await waitFor(() => heard.call(b.leases, a.node!) !== undefined, 5_000, "b to hear a's roll call");
  };

  it('a node whose clock runs ahead by more than the allowance does not take a lease its live holder renews, and takes it once the holder stops', async () => {
    // 5 s ahead, leases of 3 s renewed every second with 0.5 s of allowance: by b's clock a's lease always
    // looked expired, and b took it from its live holder at every claim (a fault campaign's 8 s skew
    // between two DIP nodes: every queue moved to the node ahead, again and again).
    const [a, b] = await twoNodes(5_000);
    expect(await a.leases.acquire(q)).toBe(true);
    for (let i = 0; i < 6; i++) {
      await tick(a, b, lastPrefix);
      expect(await b.leases.acquire(q), `b's claim after ${i + 1} renewal(s)`).toBe(false);
      expect(a.leases.holds(q)).toBe(true);
    }
    // a dies (its clock stands still, nothing renews): b takes the lease once it has expired by a's clock.
    // (Within a second of its expiry plus the allowance: the roll call b last heard may have waited a tick.)
    const diedAt = b.clock.now();
    await b.clock.advance(leases.ttlMs + leases.skewMs);
    while (!(await b.leases.acquire(q)) && b.clock.now() - diedAt < leases.ttlMs + leases.skewMs + 1_000) await b.clock.advance(250);
    expect(b.leases.holds(q), "b holds the dead holder's lease").toBe(true);
  });
});
