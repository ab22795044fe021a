import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/ports/clock.js';
import type { QueueLeases } from '../../src/ports/leases.js';
import type { RateLimits } from '../../src/ports/rate-limits.js';
import type { SignatureReplayGuard } from '../../src/ports/replay-guard.js';
import type { RateLimitSettings } from '../../src/security/rate-limit.js';
import { FakeClock } from '../helpers/clocks.js';
import { waitFor } from '../helpers/dip-harness.js';

export interface CoordinationNode {
  leases: QueueLeases;
  replayGuard: SignatureReplayGuard;
  rateLimits: RateLimits;
  close(): Promise<void>;
}

export interface CoordinationFactory {
  /** Nodes of one test share one system when `shared` (the cluster); the embedded default has one node only. */
  shared: boolean;
  /** Lease length the factory's nodes use (takeover tests move clocks past it). */
  leaseTtlMs: number;
  leaseSkewMs: number;
  /**
   * How long a node waits, beyond a lease length, for a roll call from a holder it has not heard from
   * since it started (that holder may be alive with its clock behind): NatsQueueLeases' roll-call period.
   */
  leaseRollCallMs: number;
  /** A fresh shared system for one test. */
  system(): Promise<{ node(clock: Clock, rate: RateLimitSettings): Promise<CoordinationNode>; close(): Promise<void> }>;
}

const q = { recipientDipId: 'SUP0000001', channel: 'IF-021' };
const rate: RateLimitSettings = { requestsPerSecond: 1, burst: 20 };

/** Queue leases, the signature replay guard and rate limits: what DIP nodes share besides storage. */
export function coordinationContract(name: string, factory: CoordinationFactory): void {
  describe(`Coordination contract: ${name}`, () => {
    const cleanup: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const c of cleanup.splice(0).reverse()) await c();
    });
    const nodes = async (count: number) => {
      const system = await factory.system();
      cleanup.push(() => system.close());
      const out: Array<CoordinationNode & { clock: FakeClock }> = [];
      // One start for every node's clock: started apart, a node made later would be ahead by the time it
      // took to make the first (over 100 ms on a loaded machine), and take a lease over before its expiry.
      const start = Date.now();
      for (let i = 0; i < (factory.shared ? count : 1); i++) {
        const clock = new FakeClock(start);
        const node = await system.node(clock, rate);
        cleanup.push(() => node.close());
        out.push(Object.assign(node, { clock }));
      }
      return out;
    };

    it('a signature is accepted once, whichever node sees it again', async () => {
      const all = await nodes(2);
      const t0 = Date.now();
      expect(await all[0]!.replayGuard.check('sig-1', t0)).toEqual({ replayed: false });
      const again = await all.at(-1)!.replayGuard.check('sig-1', t0 + 500);
      expect(again).toEqual({ replayed: true, firstSeenAt: new Date(t0) });
      expect(await all.at(-1)!.replayGuard.check('sig-2', t0 + 500)).toEqual({ replayed: false });
    });

    it('a released signature (its request was told to retry) is accepted again, once, whichever node sees it', async () => {
      const all = await nodes(2);
      const t0 = Date.now();
      expect(await all[0]!.replayGuard.check('sig-r', t0)).toEqual({ replayed: false });
      await all[0]!.replayGuard.release('sig-r');
      expect(await all.at(-1)!.replayGuard.check('sig-r', t0 + 1_000)).toEqual({ replayed: false });
      expect(await all[0]!.replayGuard.check('sig-r', t0 + 2_000)).toEqual({ replayed: true, firstSeenAt: new Date(t0 + 1_000) });
      // Releasing one never seen is harmless.
      await all[0]!.replayGuard.release('sig-never');
      expect(await all[0]!.replayGuard.check('sig-never', t0)).toEqual({ replayed: false });
    });

    it("a caller's burst is shared by every node: never more than the burst at once, refills with time", async () => {
      const all = await nodes(2);
      const t0 = Date.now();
      let ok = 0;
      let refused: number | null = null;
      for (let i = 0; i < 40; i++) {
        const d = await all[i % all.length]!.rateLimits.take('p:SUP0000001', t0);
        if (d.ok) ok += 1;
        else refused ??= d.retryAfterMs;
      }
      expect(ok).toBeLessThanOrEqual(rate.burst);
      // A node may hold back at most a slice (a tenth of the burst) another could have spent.
      expect(ok).toBeGreaterThanOrEqual(rate.burst - all.length * Math.ceil(rate.burst / 10));
      expect(refused).toBeGreaterThan(0);
      expect(refused).toBeLessThanOrEqual(1000);
      // Another caller has its own bucket; ten seconds later ten more tokens are there.
      expect((await all[0]!.rateLimits.take('p:MDS0000001', t0)).ok).toBe(true);
      let later = 0;
      for (let i = 0; i < 20; i++) if ((await all[i % all.length]!.rateLimits.take('p:SUP0000001', t0 + 10_000)).ok) later += 1;
      expect(later).toBeGreaterThanOrEqual(10 - all.length * 2);
      expect(later).toBeLessThanOrEqual(10 + all.length * 2);
    });

    if (!factory.shared) {
      it('grants every queue to its one process', async () => {
        const [a] = await nodes(1);
        expect(await a!.leases.acquire(q)).toBe(true);
        expect(a!.leases.holds(q)).toBe(true);
      });
      return;
    }

    it('exactly one of two nodes gets a free lease, and the other can wake it', async () => {
      const [a, b] = await nodes(2);
      const got = await Promise.all([a!.leases.acquire(q), b!.leases.acquire(q)]);
      expect(got.filter(Boolean).length).toBe(1);
      const [holder, other] = got[0] ? [a!, b!] : [b!, a!];
      expect(holder.leases.holds(q)).toBe(true);
      expect(other.leases.holds(q)).toBe(false);
      const woken: string[] = [];
      holder.leases.onWake((w) => woken.push(w.recipientDipId));
      // Core NATS delivers wake-ups at most once, and only once the holder's subscription reached the server.
      await waitFor(() => {
        other.leases.wake(q);
        return woken.length > 0;
      }, 5_000, 'a wake-up at the holder');
      expect(woken[0]).toBe('SUP0000001');
    });

    it('a lease its holder stops renewing is taken over after it expires, and the old holder learns it lost it', async () => {
      const [a, b] = await nodes(2);
      expect(await a!.leases.acquire(q)).toBe(true);
      expect(await b!.leases.acquire(q)).toBe(false);
      // a's clock stands still (a node that died before b heard its roll call); b's moves to just before the
      // expiry plus a roll call (b waits that long to hear from a holder it has not heard) plus skew: still a's.
      await b!.clock.advance(factory.leaseTtlMs + factory.leaseRollCallMs + factory.leaseSkewMs - 100);
      expect(await b!.leases.acquire(q)).toBe(false);
      await b!.clock.advance(200);
      expect(await b!.leases.acquire(q)).toBe(true);
      const lost: string[] = [];
      a!.leases.onLost((l) => lost.push(l.channel));
      // a wakes up and tries to renew: the lease is b's now.
      await a!.clock.advance(factory.leaseTtlMs / 3);
      await waitFor(() => lost.length > 0, 5_000, 'the old holder to learn it lost the lease');
      expect(a!.leases.holds(q)).toBe(false);
      expect(b!.leases.holds(q)).toBe(true);
    });

    it('a lease handed over (its holder cannot reach the store) is taken by another node at once, though that node had seen it held', async () => {
      const [a, b] = await nodes(2);
      const woken: string[] = [];
      b!.leases.onWake((w) => woken.push(w.channel));
      expect(await a!.leases.acquire(q)).toBe(true);
      // b has seen it held (and would not ask again until the lease's end); its bucket request also means
      // the server has b's subscriptions, sent before it.
      expect(await b!.leases.acquire(q)).toBe(false);
      await a!.leases.release(q, { handOver: true });
      await waitFor(() => woken.length > 0, 5_000, 'the other node told of the hand-over');
      expect(await b!.leases.acquire(q)).toBe(true);
    });

    it('a node holding more than its share says how many, and a queue it gives away for balance goes to a node under its share, not back', async () => {
      const [a, b] = await nodes(2);
      const queues = ['IF-021', 'IF-022', 'IF-023', 'IF-024'].map((channel) => ({ ...q, channel }));
      for (const x of queues) expect(await a!.leases.acquire(x)).toBe(true);
      const woken: string[] = [];
      b!.leases.onWake((w) => woken.push(w.channel));
      // Each node says at every renewal how many it holds; until b is heard, a is alone and at its share.
      expect(a!.leases.surplus()).toBe(0);
      await b!.clock.advance(factory.leaseTtlMs / 3);
      await waitFor(() => a!.leases.surplus() === 2, 5_000, 'a to hear b');
      expect(b!.leases.surplus()).toBe(0);
      await a!.leases.release(queues[0]!, { handOver: true, balance: true });
      // Still over its share by its count (3 of 4), but it waits to hear what the others took before judging again.
      expect(a!.leases.surplus()).toBe(0);
      await waitFor(() => woken.length > 0, 5_000, 'b told of the hand-over');
      expect(woken).toEqual(['IF-021']);
      // Free, but not for the node that gave it away.
      expect(await a!.leases.acquire(queues[0]!)).toBe(false);
      expect(await b!.leases.acquire(queues[0]!)).toBe(true);
    });

    it('a node that takes no queues (its store out of reach) is left out of the shares', async () => {
      const [a, b] = await nodes(2);
      for (const channel of ['IF-021', 'IF-022']) expect(await a!.leases.acquire({ ...q, channel })).toBe(true);
      await b!.clock.advance(factory.leaseTtlMs / 3);
      await waitFor(() => a!.leases.surplus() === 1, 5_000, 'a to hear b');
      b!.leases.willTake(false);
      await waitFor(() => a!.leases.surplus() === 0, 5_000, 'a to leave b out');
      b!.leases.willTake(true);
      await waitFor(() => a!.leases.surplus() === 1, 5_000, 'a to count b again');
    });

    it('a balance hand-over is left alone by a node holding as many as the giver has left', async () => {
      const [a, b] = await nodes(2);
      const mine = ['IF-021', 'IF-022', 'IF-023'].map((channel) => ({ ...q, channel }));
      const theirs = ['IF-024', 'IF-025'].map((channel) => ({ ...q, channel }));
      for (const x of mine) expect(await a!.leases.acquire(x)).toBe(true);
      for (const x of theirs) expect(await b!.leases.acquire(x)).toBe(true);
      const woken: string[] = [];
      b!.leases.onWake((w) => woken.push(w.channel));
      await a!.leases.release(mine[0]!, { handOver: true, balance: true }); // a keeps 2, b holds 2: not for b
      await a!.leases.release(mine[1]!, { handOver: true }); // a hand-over for the store: for anyone
      // One publisher, one subscriber: core NATS keeps their order, so the first was heard and passed over.
      await waitFor(() => woken.length > 0, 5_000, 'b told of the second hand-over');
      expect(woken).toEqual(['IF-022']);
    });

    it('a released lease is free for another node at once; closing releases every lease', async () => {
      const [a, b] = await nodes(2);
      const q2 = { ...q, channel: 'IF-022' };
      expect(await a!.leases.acquire(q)).toBe(true);
      expect(await a!.leases.acquire(q2)).toBe(true);
      await a!.leases.release(q);
      expect(await b!.leases.acquire(q)).toBe(true);
      await a!.leases.close();
      expect(await b!.leases.acquire(q2)).toBe(true);
    });
  });
}
