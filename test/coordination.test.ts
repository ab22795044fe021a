import { afterEach, describe, expect, it } from 'vitest';
import { RateLimiter } from '../src/security/rate-limit.js';
import { ReplayGuard } from '../src/security/replay-guard.js';
import { SingleProcessLeases } from '../src/adapters/embedded/leases.js';
import { openNatsCoordination } from '../src/adapters/nats/index.js';
import { connectNats, openBucket } from '../src/adapters/nats/connection.js';
import { NatsQueueLeases } from '../src/adapters/nats/leases.js';
import { coordinationContract } from './contract/coordination.contract.js';
import { deleteBuckets, NATS_SERVERS, testPrefix } from './helpers/nats.js';
import { FakeClock, ShiftableClock } from './helpers/clocks.js';
import { monotonicClock } from '../src/adapters/clock.js';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { queueToken } from '../src/adapters/nats/names.js';
import { waitFor } from './helpers/dip-harness.js';
import type { Logger } from '../src/ports/logger.js';

coordinationContract('one process, in memory', {
  shared: false,
  leaseTtlMs: 0,
  leaseSkewMs: 0,
  leaseRollCallMs: 0,
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
  leaseRollCallMs: leases.ttlMs / 3,
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
  const rollCallEveryMs = leases.ttlMs / 3;
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

  it('a node whose clock is behind by more than the leases believe (five lease lengths) gives its leases up and takes none, rather than deliver beside the node that takes them', async () => {
    // 20 s apart with leases of 3 s (the cap: 15 s). b ignores a's clock (its roll calls say a time beyond
    // the cap), reads a's lease by its own expiry, long past in b's time, and took it at each claim once
    // its start's grace had passed, while a still held it by its own clock: both worked the queue.
    const [a, b] = await twoNodes(5 * leases.ttlMs + 5_000);
    expect(await a.leases.acquire(q)).toBe(true);
    for (let i = 0; i < 8; i++) {
      await b.clock.advance(rollCallEveryMs);
      await a.clock.advance(rollCallEveryMs);
      await waitFor(() => a.leases.clockOffset()?.node === b.node, 5_000, "a to hear b's roll call");
      const taken = await b.leases.acquire(q);
      expect(taken && a.leases.holds(q), `both hold the lease after ${i + 1} roll call(s)`).toBe(false);
    }
    expect(b.leases.holds(q), 'the node ahead works the queue').toBe(true);
    expect(await a.leases.acquire(q), 'the node behind takes none while it hears the node ahead').toBe(false);
    expect(a.leases.clockOffset()).toMatchObject({ node: b.node, believed: false });
  });

  /** One node alone on a FakeClock at the machine's time, its leases bucket, and a way to say a roll call as another node. */
  const freshNode = async (logger?: Logger) => {
    const prefix = testPrefix();
    cleanup.push(() => deleteBuckets(prefix));
    const clock = new FakeClock(Date.now());
    const node = await openNatsCoordination({ servers: NATS_SERVERS, prefix, replicas: 1 }, { clock, maxClockSkewMs: 300_000, rateLimit: rate, leases, ...(logger ? { logger } : {}) });
    cleanup.push(() => node.close());
    const bucket = await new Kvm(node.connection).open(`${prefix}_leases`);
    const rollCall = (peer: string, now: number) => node.connection.publish(`${prefix}.nodes`, JSON.stringify({ node: peer, held: 1, taking: true, leaving: false, now }));
    return { node, clock, bucket, rollCall };
  };

  it('a node that has heard no roll call yet does not take the live lease of a peer whose clock is behind, and takes it once the peer stays silent a lease length and a roll call', async () => {
    // A rolling deploy: this node restarts while a peer 5 s behind it delivers. The peer's lease (its time
    // + 3 s = ours - 2 s) looked expired before any roll call told this node the peer's clock, and the
    // first sweep took it from its live holder.
    const { node, clock, bucket } = await freshNode();
    const start = clock.now();
    await bucket.put(queueToken(q), JSON.stringify({ node: 'peer-behind', expiresAt: start - 5_000 + leases.ttlMs }));
    expect(await node.leases.acquire(q), 'claim before any roll call').toBe(false);
    // Never heard from: dead. Its lease was renewed at the latest a roll call after this node began to
    // listen, and lasts a lease length from then.
    const bound = start + leases.ttlMs + rollCallEveryMs + leases.skewMs;
    await clock.advance(bound - 1 - clock.now());
    expect(await node.leases.acquire(q), 'claim just before the bound').toBe(false);
    await clock.advance(1);
    expect(await node.leases.acquire(q), 'claim at the bound').toBe(true);
  });

  it("a bogus or late roll call does not keep a dead peer's lease from being taken beyond a bounded time", async () => {
    // The peer (its clock 2 s behind) renewed its lease, then died. Its roll calls arrive late (a receiver
    // stalled, or nats.js flushing after a reconnect: 12 s old, an offset of -14 s), and one says a bogus
    // time (0: an offset of -1.7e12 ms, its leases valid here for decades).
    const { node, clock, bucket, rollCall } = await freshNode();
    const start = clock.now();
    await bucket.put(queueToken(q), JSON.stringify({ node: 'dead', expiresAt: start - 2_000 + leases.ttlMs }));
    rollCall('dead', start - 14_000);
    rollCall('dead', 0);
    rollCall('other', start);
    await waitFor(() => node.leases.clockOffsetOf('other') !== undefined, 5_000, 'the roll calls to be heard');
    expect(await node.leases.acquire(q), 'claim just after the late roll call').toBe(false);
    // Silent for two lease lengths: the offset heard stops applying, and the lease is read by its own expiry.
    const bound = start + 2 * leases.ttlMs + leases.skewMs + rollCallEveryMs;
    while (!(await node.leases.acquire(q)) && clock.now() < bound) await clock.advance(250);
    expect(node.leases.holds(q), "the dead peer's lease taken within the bound").toBe(true);
  });

  it('a roll call read late (a receiver that stalled) does not warn of a clock offset; a bogus time is an error naming the node, and ignored', async () => {
    const logged: Array<{ level: string; obj: object }> = [];
    const logger: Logger = { info() {}, warn: (obj) => void logged.push({ level: 'warn', obj }), error: (obj) => void logged.push({ level: 'error', obj }) };
    const { node, clock, rollCall } = await freshNode(logger);
    const start = clock.now();
    rollCall('peer', start - 100);
    // Its next roll call, read 3 s late: a sample of -3.1 s (before, a warning that the peer's clock was behind).
    rollCall('peer', start - 100 + rollCallEveryMs - 3_000);
    rollCall('bogus', 0);
    rollCall('other', start);
    await waitFor(() => node.leases.clockOffsetOf('other') !== undefined, 5_000, 'the roll calls to be heard');
    expect(node.leases.clockOffsetOf('peer'), "the peer's offset: the largest sample").toBe(-100);
    expect(node.leases.clockOffsetOf('bogus')).toBeUndefined();
    expect(logged.filter((l) => (l.obj as { node?: string }).node !== undefined)).toEqual([{ level: 'error', obj: expect.objectContaining({ node: 'bogus' }) }]);
  });

  it('after a reconnect, a node does not take the live lease of a peer whose clock is behind before it has heard its roll call again', async () => {
    // Away longer than two lease lengths, this node has forgotten every peer's clock; the first claim pass
    // after the reconnect came before the peer's roll call, and read its lease by its own expiry.
    const { node, clock, bucket } = await freshNode();
    await clock.advance(5 * leases.ttlMs);
    node.leases.connectionLost('test');
    node.leases.connectionBack();
    const back = clock.now();
    await bucket.put(queueToken(q), JSON.stringify({ node: 'peer-behind', expiresAt: back - 5_000 + leases.ttlMs }));
    expect(await node.leases.acquire(q), 'claim just after the reconnect').toBe(false);
    await clock.advance(leases.ttlMs + rollCallEveryMs + leases.skewMs);
    expect(await node.leases.acquire(q), 'claim once the peer stayed silent').toBe(true);
  });
});

describe('a NATS queue lease given up while its renewal is on the way', () => {
  const q = { recipientDipId: 'SUP0000002', channel: 'IF-021' };
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('is deleted from the bucket all the same: the node it is handed to takes it at once', async () => {
    // A balance hand-over on a loaded machine (cluster-nodes' "shares the queues out" timed out in CI):
    // the giver's renewal landed between its drop of the lease and its delete, which named the revision
    // before the renewal, failed, and was ignored. The lease stayed in the bucket, renewed to a lease
    // length ahead; the taker read it as held and did not take it; the queue, idle, had nothing pending
    // for a claim pass to find; the giver held one fewer, the taker none more.
    const prefix = testPrefix();
    cleanup.push(() => deleteBuckets(prefix));
    const clock = new FakeClock(Date.now());
    const nc = await connectNats({ servers: NATS_SERVERS, prefix, replicas: 1 });
    cleanup.push(() => nc.close());
    const kv = await openBucket(nc, `${prefix}_leases`, { history: 1, replicas: 1 });
    // The giver's renewals reach the bucket at once, and their answers wait for `answer` to open.
    let answer: () => void = () => {};
    const answered = new Promise<void>((resolve) => (answer = resolve));
    let renewed = false;
    const slowAnswers = Object.assign(Object.create(kv) as KV, {
      update: async (...args: Parameters<KV['update']>) => {
        const revision = await kv.update(...args);
        renewed = true;
        await answered;
        return revision;
      },
    });
    const giver = new NatsQueueLeases(nc, slowAnswers, prefix, clock, leases, undefined, 'giver-0000000a');
    const taker = new NatsQueueLeases(nc, kv, prefix, clock, leases, undefined, 'taker-0000000b');
    cleanup.push(() => taker.close(), () => giver.close());
    expect(await giver.acquire(q)).toBe(true);
    await clock.advance(leases.ttlMs / 3);
    await waitFor(() => renewed, 5_000, "the giver's renewal in the bucket");
    const released = giver.release(q, { handOver: true });
    answer();
    await released;
    expect(await taker.acquire(q), 'the taker claims the queue handed over').toBe(true);
  });
});

describe('NATS queue leases when a node’s wall clock steps (real time, ShiftableClock)', () => {
  const q = { recipientDipId: 'SUP0000001', channel: 'IF-021' };
  const rate = { requestsPerSecond: 1, burst: 20 };
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  const twoNodes = async () => {
    const prefix = testPrefix();
    cleanup.push(() => deleteBuckets(prefix));
    const out = [];
    for (let i = 0; i < 2; i++) {
      const clock = new ShiftableClock();
      // Elapsed time is the machine's monotonic clock: a step of the wall clock does not move it.
      const node = await openNatsCoordination({ servers: NATS_SERVERS, prefix, replicas: 1 }, { clock, steadyClock: monotonicClock, maxClockSkewMs: 300_000, rateLimit: rate, leases });
      cleanup.push(() => node.close());
      out.push(Object.assign(node, { clock }));
    }
    return out as [(typeof out)[0], (typeof out)[0]];
  };

  // A fault campaign stepped one DIP node's wall clock by 90 s (libfaketime): the node ahead read its live
  // peer's lease as long expired and took it, and the old holder went on delivering until it heard the
  // new one's roll call, or its renewal failed: 15 positions delivered twice within a second. Here 10 s
  // (beyond the allowance, within what the roll calls believe): no roll call tells the holder to yield.
  for (const [who, stepMs] of [['the taker', 10_000], ['the holder', -10_000]] as const) {
    it(`a step of ${who}'s wall clock by ${stepMs / 1000} s does not let a live holder's lease be taken while it renews it; released, it is taken at once`, async () => {
      const [a, b] = await twoNodes();
      expect(await a.leases.acquire(q)).toBe(true);
      await waitFor(() => b.leases.clockOffsetOf(a.node!) !== undefined && a.leases.clockOffsetOf(b.node!) !== undefined, 5_000, 'each node to hear the other');
      (who === 'the taker' ? b : a).clock.jump(stepMs);
      // Two lease lengths of the holder renewing: b claims every 100 ms and must not get the lease.
      const until = Date.now() + 2 * leases.ttlMs;
      let claims = 0;
      while (Date.now() < until) {
        const taken = await b.leases.acquire(q);
        claims += 1;
        expect(taken && a.leases.holds(q), `both hold the lease after ${claims} claim(s) of b`).toBe(false);
        expect(taken, `b took a's live lease at claim ${claims}`).toBe(false);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(a.leases.holds(q), 'a still holds it').toBe(true);
      await a.leases.release(q, { handOver: true });
      await waitFor(() => b.leases.acquire(q), 5_000, 'b to take the released lease');
    });
  }
});
