import { afterEach, describe, expect, it } from 'vitest';
import { RateLimiter } from '../src/security/rate-limit.js';
import { ReplayGuard } from '../src/security/replay-guard.js';
import { SingleProcessLeases } from '../src/adapters/embedded/leases.js';
import { openNatsCoordination } from '../src/adapters/nats/index.js';
import { BucketRestorer, bucketIncarnation, connectNats, keyEraser, openBucket } from '../src/adapters/nats/connection.js';
import { jetstreamManager } from '@nats-io/jetstream';
import { NatsQueueLeases } from '../src/adapters/nats/leases.js';
import { NatsAlarmNotifierLease } from '../src/adapters/nats/notifier-lease.js';
import { coordinationContract } from './contract/coordination.contract.js';
import { deleteBuckets, NATS_SERVERS, testPrefix } from './helpers/nats.js';
import { FakeClock, SteppedClock } from './helpers/clocks.js';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { queueToken } from '../src/adapters/nats/names.js';
import type { Logger } from '../src/ports/logger.js';
import type { LeaseIncarnationRecords, LostNode, LostNodeRecords } from '../src/ports/backend.js';
import { StoredLeaseIncarnations } from '../src/pipeline/lease-incarnations.js';
import { RecordConflictError, type RegistryStore, type StoredRecord } from '../src/ports/registry.js';

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

/**
 * Nodes of one leases bucket, each on its own connection, on one elapsed-time clock the test advances
 * (FakeClock: their steady clock, whose timers say the roll calls and renewals) and each its own wall
 * clock over it (SteppedClock: a step moves one node's wall clock, never elapsed time). Nothing waits for
 * real time to pass: `io()` waits until every bucket request a node made has its answer and every roll call
 * said has reached every node (a flush of each connection, twice: NATS delivers in order).
 */
const clusterOf = async (
  ids: string[],
  cleanup: Array<() => Promise<void>>,
  logger?: Logger,
  options: {
    loopLateMs?: () => number;
    settings?: typeof leases;
    /** Each node follows the leases bucket's incarnation, as openNatsCoordination has it do (trackGeneration). */
    generations?: boolean;
    /** Runs before a node's update (a renewal, a takeover) is sent: what a test makes happen meanwhile. */
    beforeUpdate?: (node: string) => Promise<void>;
    /** Runs before a node's create (a claim of a key absent) is sent. */
    beforeCreate?: (node: string) => Promise<void>;
    /** With `generations`: the shared store's record of the bucket's incarnations (openNatsCoordination's leaseIncarnations). */
    incarnations?: LeaseIncarnationRecords;
  } = {},
) => {
  const prefix = testPrefix();
  cleanup.push(() => deleteBuckets(prefix));
  const steady = new FakeClock(Date.now());
  const inFlight = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    inFlight.add(p);
    void p.then(
      () => inFlight.delete(p),
      () => inFlight.delete(p),
    );
    return p;
  };
  const nodes: Array<{ leases: NatsQueueLeases; clock: SteppedClock; nc: NatsConnection; bucket: KV }> = [];
  /** Starts a node of the cluster (at once for `ids`; later by the test), its wall clock `offsetMs` from elapsed time. */
  const add = async (id: string, offsetMs = 0) => {
    const nc = await connectNats({ servers: NATS_SERVERS, prefix, replicas: 1 });
    cleanup.push(() => nc.close());
    const kv = await openBucket(nc, `${prefix}_leases`, { history: 1, replicas: 1 });
    const tracked = Object.assign(Object.create(kv) as KV, {
      get: (...args: Parameters<KV['get']>) => track(kv.get(...args)),
      create: (...args: Parameters<KV['create']>) => track((options.beforeCreate?.(id) ?? Promise.resolve()).then(() => kv.create(...args))),
      update: (...args: Parameters<KV['update']>) => track((options.beforeUpdate?.(id) ?? Promise.resolve()).then(() => kv.update(...args))),
      delete: (...args: Parameters<KV['delete']>) => track(kv.delete(...args)),
    });
    const clock = new SteppedClock(steady);
    clock.step(offsetMs);
    const node = new NatsQueueLeases(nc, tracked, prefix, clock, options.settings ?? leases, logger, id, steady, options.loopLateMs);
    cleanup.push(() => node.close());
    const restore = () => new BucketRestorer(nc, [{ name: `${prefix}_leases`, options: { history: 1, replicas: 1 } }], () => steady.now()).restore();
    if (options.generations) await node.trackGeneration(await bucketIncarnation(nc, `${prefix}_leases`), restore, options.incarnations);
    const added = { leases: node, clock, nc, bucket: kv };
    nodes.push(added);
    return added;
  };
  for (const id of ids) await add(id);
  const io = async () => {
    for (let round = 0; round < 2; round++) {
      await Promise.allSettled([...inFlight]);
      for (const n of nodes) await n.nc.flush().catch(() => {});
    }
  };
  /** Elapsed time moves `ms` in steps of at most `stepMs`, its timers run and their I/O landed after each step. */
  const advance = async (ms: number, stepMs = 100) => {
    for (let left = ms; left > 0; left -= stepMs) {
      await steady.advance(Math.min(stepMs, left));
      await io();
    }
  };
  /**
   * A roll call said in the name of `node` (a peer this test plays), heard by every node: by default of
   * this version, its time the elapsed clock's; `steady: false`, one of the version before (its leases
   * end by its wall clock).
   */
  const rollCall = async (node: string, say: { leaving?: boolean; now?: number; steady?: boolean } = {}) => {
    const leaving = say.leaving ?? false;
    nodes[0]!.nc.publish(`${prefix}.nodes`, JSON.stringify({ node, held: 1, taking: !leaving, leaving, now: say.now ?? steady.now(), ...(say.steady === false ? {} : { steady: true }) }));
    await io();
  };
  await io();
  return { nodes, steady, io, advance, rollCall, prefix, add };
};

const rollCallMs = leases.ttlMs / 3;

describe('NATS queue leases between nodes whose clocks disagree', () => {
  const q = { recipientDipId: 'SUP0000001', channel: 'IF-021' };
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  /** a on the machine's time, b `aheadMs` ahead of it (a node whose NTP has drifted). */
  const twoNodes = async (aheadMs: number) => {
    const cluster = await clusterOf(['a-0000000a', 'b-0000000b'], cleanup);
    const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    b.clock.step(aheadMs);
    return { ...cluster, a, b };
  };

  it('a node whose clock runs ahead by more than the allowance does not take a lease its live holder renews, and takes it once the holder stops', async () => {
    // 5 s ahead, leases of 3 s renewed every second with 0.5 s of allowance: by b's clock a's lease always
    // looked expired, and b took it from its live holder at every claim (a fault campaign's 8 s skew
    // between two DIP nodes: every queue moved to the node ahead, again and again).
    const { a, b, steady, advance } = await twoNodes(5_000);
    expect(await a.leases.acquire(q)).toBe(true);
    for (let i = 0; i < 6; i++) {
      await advance(rollCallMs, rollCallMs);
      expect(b.leases.clockOffsetOf(a.leases.node), "b heard a's clock").toBe(-5_000);
      expect(await b.leases.acquire(q), `b's claim after ${i + 1} renewal(s)`).toBe(false);
      expect(a.leases.holds(q)).toBe(true);
    }
    // a dies (cut off: nothing renews, no roll call). b takes the lease a lease length and the allowance
    // after a's last roll call, within a roll call and a claim step of it; never while a still works it.
    await a.nc.close();
    const diedAt = steady.now();
    await advance(leases.ttlMs + leases.skewMs - rollCallMs, 250);
    let taken = false;
    while (!taken && steady.now() - diedAt < leases.ttlMs + leases.skewMs + 1_000) {
      await advance(250, 250);
      taken = await b.leases.acquire(q);
      expect(taken && a.leases.holds(q), `both hold the lease ${steady.now() - diedAt} ms after a died`).toBe(false);
    }
    expect(b.leases.holds(q), "b holds the dead holder's lease").toBe(true);
    expect(a.leases.holds(q), 'a stopped working the queue').toBe(false);
  });

  it('a node whose clock is behind by more than the leases believe (five lease lengths) gives its leases up and takes none, rather than deliver beside the node that takes them', async () => {
    // 20 s apart with leases of 3 s (the cap: 15 s). b ignores a's clock (its roll calls say a time beyond
    // the cap), reads a's lease by its own expiry, long past in b's time, and took it at each claim once
    // its start's grace had passed, while a still held it by its own clock: both worked the queue.
    const { a, b, advance } = await twoNodes(5 * leases.ttlMs + 5_000);
    expect(await a.leases.acquire(q)).toBe(true);
    for (let i = 0; i < 8; i++) {
      await advance(rollCallMs, rollCallMs);
      expect(a.leases.clockOffset()?.node, "a heard b's roll call").toBe(b.leases.node);
      const taken = await b.leases.acquire(q);
      expect(taken && a.leases.holds(q), `both hold the lease after ${i + 1} roll call(s)`).toBe(false);
    }
    expect(b.leases.holds(q), 'the node ahead works the queue').toBe(true);
    expect(await a.leases.acquire(q), 'the node behind takes none while it hears the node ahead').toBe(false);
    expect(a.leases.clockOffset()).toMatchObject({ node: b.leases.node, believed: false });
  });

  /** One node alone at the machine's time, its leases bucket, and roll calls said as other nodes. */
  const freshNode = async (logger?: Logger, options: Parameters<typeof clusterOf>[3] = {}) => {
    const cluster = await clusterOf(['here-0000000a'], cleanup, logger, options);
    const { leases: node, bucket } = cluster.nodes[0]!;
    return { ...cluster, node, bucket };
  };

  it('a node that has heard no roll call yet does not take the live lease of a peer whose clock is behind, and takes it once the peer stays silent a lease length and a roll call', async () => {
    // A rolling deploy: this node restarts while a peer 5 s behind it delivers. The peer's lease (its time
    // + 3 s = ours - 2 s) looked expired before any roll call told this node the peer's clock, and the
    // first sweep took it from its live holder.
    const { node, steady, bucket, advance } = await freshNode();
    const start = steady.now();
    await bucket.put(queueToken(q), JSON.stringify({ node: 'peer-behind', expiresAt: start - 5_000 + leases.ttlMs }));
    expect(await node.acquire(q), 'claim before any roll call').toBe(false);
    // Never heard from: dead. Its lease was renewed at the latest a roll call after this node began to
    // listen, and lasts a lease length from then.
    const bound = start + leases.ttlMs + rollCallMs + leases.skewMs;
    await advance(bound - 1 - steady.now(), rollCallMs);
    expect(await node.acquire(q), 'claim just before the bound').toBe(false);
    await advance(1);
    expect(await node.acquire(q), 'claim at the bound').toBe(true);
  });

  it("a bogus or late roll call does not keep a dead peer's lease from being taken beyond a bounded time", async () => {
    // The peer (its clock 2 s behind, a node of the version before: its lease ends by its wall clock)
    // renewed its lease, then died. Its roll calls arrive late (a receiver stalled, or nats.js flushing
    // after a reconnect: 12 s old, an offset of -14 s), and one says a bogus time (0: an offset of
    // -1.7e12 ms, its leases valid here for decades).
    const { node, steady, bucket, advance, rollCall } = await freshNode();
    const start = steady.now();
    await bucket.put(queueToken(q), JSON.stringify({ node: 'dead', expiresAt: start - 2_000 + leases.ttlMs }));
    await rollCall('dead', { now: start - 14_000, steady: false });
    await rollCall('dead', { now: 0, steady: false });
    expect(await node.acquire(q), 'claim just after the late roll call').toBe(false);
    // Silent for two lease lengths: the offset heard stops applying, and the lease is read by its own expiry.
    const bound = start + 2 * leases.ttlMs + leases.skewMs + rollCallMs;
    while (!(await node.acquire(q)) && steady.now() < bound) await advance(250, 250);
    expect(node.holds(q), "the dead peer's lease taken within the bound").toBe(true);
  });

  it('a roll call read late (a receiver that stalled) does not warn of a clock offset; a bogus time is an error naming the node, and ignored', async () => {
    const logged: Array<{ level: string; obj: object }> = [];
    const logger: Logger = { info() {}, warn: (obj) => void logged.push({ level: 'warn', obj }), error: (obj) => void logged.push({ level: 'error', obj }) };
    const { node, steady, rollCall } = await freshNode(logger);
    const start = steady.now();
    await rollCall('peer', { now: start - 100 });
    // Its next roll call, read 3 s late: a sample of -3.1 s (before, a warning that the peer's clock was behind).
    await rollCall('peer', { now: start - 100 + rollCallMs - 3_000 });
    await rollCall('bogus', { now: 0 });
    expect(node.clockOffsetOf('peer'), "the peer's offset: the largest sample").toBe(-100);
    expect(node.clockOffsetOf('bogus')).toBeUndefined();
    expect(logged.filter((l) => (l.obj as { node?: string }).node !== undefined)).toEqual([{ level: 'error', obj: expect.objectContaining({ node: 'bogus' }) }]);
  });

  /** A logger that keeps what it is told about a node's clock. */
  const clockLog = () => {
    const logged: Array<{ level: string; obj: { node?: string; offsetMs?: number } }> = [];
    const logger: Logger = { info() {}, warn: (obj) => void logged.push({ level: 'warn', obj }), error: (obj) => void logged.push({ level: 'error', obj }) };
    return { logger, about: (node: string) => logged.filter((l) => l.obj.node === node) };
  };

  it("a roll call read while this node's event loop ran 10.6 s late (an overloaded host) is no clock offset: not warned of, not shown; its leases are still read that much later", async () => {
    // The fault campaign: the first roll call a node heard from a peer after its loop resumed said a time
    // 10,617 ms before its own, and it warned that the peer's clock was 10,617 ms behind.
    const { logger, about } = clockLog();
    let late = 10_600;
    const { node, steady, rollCall } = await freshNode(logger, { loopLateMs: () => late });
    await rollCall('peer', { now: steady.now() - 10_617 });
    expect(about('peer'), 'no warning of a clock offset').toEqual([]);
    expect(node.clockOffset(), 'shown: behind by no more than its 17 ms beyond the lateness').toMatchObject({ node: 'peer', offsetMs: -17, believed: true });
    // The leases stay on the safe side: a sample only ever underestimates a clock, so the holder's leases are read later.
    expect(node.clockOffsetOf('peer')).toBe(-10_617);
    // A prompt roll call next: the estimate is the sample with the least delay.
    late = 0;
    await rollCall('peer', { now: steady.now() - 40 });
    expect(node.clockOffset()).toMatchObject({ node: 'peer', offsetMs: -40 });
    expect(node.clockOffsetOf('peer')).toBe(-40);
    expect(about('peer')).toEqual([]);
  });

  it('a node starting under load that hears one delayed roll call (its loop prompt by its gauge) does not warn of a peer behind; the next prompt ones correct the estimate', async () => {
    // faults6: a node started under load warned that its peer was 9,643 ms and 14,704 ms behind: the
    // delay was on the way (the peer, NATS, a stall before this node's gauge measured), not its clock.
    const { logger, about } = clockLog();
    const { node, steady, rollCall, advance } = await freshNode(logger, { loopLateMs: () => 0 });
    await rollCall('peer', { now: steady.now() - 9_643 });
    for (let i = 0; i < 3; i++) {
      await advance(leases.ttlMs / 3, leases.ttlMs / 3);
      await rollCall('peer', { now: steady.now() - 20 });
    }
    expect(about('peer')).toEqual([]);
    expect(node.clockOffset()).toMatchObject({ node: 'peer', offsetMs: -20 });
  });

  it('a roll call beyond the believed offset only by how late this node read it is ignored, not logged as a bogus time', async () => {
    const { logger, about } = clockLog();
    const { node, steady, rollCall } = await freshNode(logger, { loopLateMs: () => 20_000 });
    // 25 s behind, five lease lengths being 15 s here; read 20 s late, it says the peer is behind by at most 5 s.
    await rollCall('peer', { now: steady.now() - 25_000 });
    expect(about('peer')).toEqual([]);
    expect(node.clockOffsetOf('peer')).toBeUndefined();
    expect(node.clockOffset()).toBeNull();
  });

  it("a peer whose wall clock is 30 s behind, heard by a node whose loop is prompt, is warned of and shown (for the clock-skew alarm and the gauge)", async () => {
    const { logger, about } = clockLog();
    const settings = { ttlMs: 6_000, skewMs: 1_000 };
    const { node, steady, rollCall, advance } = await freshNode(logger, { settings, loopLateMs: () => 5 });
    await rollCall('peer', { now: steady.now() - 30_000 });
    expect(about('peer'), 'one roll call behind is not yet a clock: a delay on the way looks the same').toEqual([]);
    for (let i = 0; i < 2; i++) {
      await advance(settings.ttlMs / 3, settings.ttlMs / 3);
      await rollCall('peer', { now: steady.now() - 30_000 });
    }
    expect(about('peer')).toEqual([{ level: 'warn', obj: expect.objectContaining({ node: 'peer', offsetMs: -29_995 }) }]);
    expect(node.clockOffset()).toMatchObject({ node: 'peer', offsetMs: -29_995, believed: true, allowanceMs: 1_000 });
    // Ahead: a late loop only ever makes a clock look further behind, so a sample ahead stands whatever the lateness.
    await rollCall('ahead', { now: steady.now() + 20_000 });
    expect(about('ahead')).toEqual([{ level: 'warn', obj: expect.objectContaining({ node: 'ahead', offsetMs: 20_000 }) }]);
  });

  it("a clock offset heard is forgotten two lease lengths after the peer's last roll call by elapsed time, though this node's wall clock stepped back 10 s", async () => {
    const { node, nodes, steady, rollCall, advance } = await freshNode();
    await rollCall('peer', { now: steady.now() - 2_000 });
    expect(node.clockOffsetOf('peer')).toBe(-2_000);
    nodes[0]!.clock.step(-10_000);
    await advance(2 * leases.ttlMs + 100, 500);
    expect(node.clockOffsetOf('peer'), 'forgotten: silent for two lease lengths').toBeUndefined();
    expect(node.clockOffset()).toBeNull();
  });

  it('after a reconnect, a node does not take the live lease of a peer whose clock is behind before it has heard its roll call again', async () => {
    // Away longer than two lease lengths, this node has forgotten every peer's clock; the first claim pass
    // after the reconnect came before the peer's roll call, and read its lease by its own expiry.
    const { node, steady, bucket, advance } = await freshNode();
    await advance(5 * leases.ttlMs, rollCallMs);
    node.connectionLost('test');
    node.connectionBack();
    const back = steady.now();
    await bucket.put(queueToken(q), JSON.stringify({ node: 'peer-behind', expiresAt: back - 5_000 + leases.ttlMs }));
    expect(await node.acquire(q), 'claim just after the reconnect').toBe(false);
    await advance(leases.ttlMs + rollCallMs + leases.skewMs, rollCallMs);
    expect(await node.acquire(q), 'claim once the peer stayed silent').toBe(true);
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
    let inBucket: () => void = () => {};
    const renewed = new Promise<void>((resolve) => (inBucket = resolve));
    const slowAnswers = Object.assign(Object.create(kv) as KV, {
      update: async (...args: Parameters<KV['update']>) => {
        const revision = await kv.update(...args);
        inBucket();
        await answered;
        return revision;
      },
    });
    const giver = new NatsQueueLeases(nc, slowAnswers, prefix, clock, leases, undefined, 'giver-0000000a');
    const taker = new NatsQueueLeases(nc, kv, prefix, clock, leases, undefined, 'taker-0000000b');
    cleanup.push(() => taker.close(), () => giver.close());
    expect(await giver.acquire(q)).toBe(true);
    await clock.advance(leases.ttlMs / 3);
    await renewed;
    const released = giver.release(q, { handOver: true });
    answer();
    await released;
    expect(await taker.acquire(q), 'the taker claims the queue handed over').toBe(true);
  });
});

describe('the NATS leases bucket deleted and created again while nodes hold leases', () => {
  const q = { recipientDipId: 'SUP0000001', channel: 'IF-021' };
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  // A fault campaign deleted every KV_<prefix>_* stream under load: no node created them again, and
  // delivery stopped cluster-wide. Created again, the bucket is empty: a node finding a queue's key absent
  // would create it at once, while the holder of the bucket before still works the queue until its
  // lease's end (its renewal finds no stream, not a taker). Here the stream is deleted while the holder's
  // renewal is on its way, and created again (as another node, or an operator, would) before the renewal
  // lands: the renewal fails, and the other node's claim, though its create succeeds in the new bucket,
  // is not taken until every holder before has stopped. Before the fix, b held the queue beside a.
  it("a renewal racing the stream's deletion: no node holds the queue beside its holder of before; one takes it once that one has stopped", async () => {
    let race: (() => Promise<void>) | null = null;
    const cluster = await clusterOf(['a-0000000a', 'b-0000000b'], cleanup, undefined, {
      generations: true,
      beforeUpdate: async (node) => {
        const r = node === 'a-0000000a' ? race : null;
        if (!r) return;
        race = null;
        await r();
      },
    });
    const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    expect(await a.leases.acquire(q)).toBe(true);
    const lost: string[] = [];
    a.leases.onLost(() => lost.push('a'));
    race = async () => {
      await (await jetstreamManager(a.nc)).streams.delete(`KV_${cluster.prefix}_leases`);
    };
    let bothHeld = 0;
    let recreatedAt: number | undefined;
    let bTookAt: number | undefined;
    // Three lease lengths and the request timeout, by steps of 100 ms.
    for (let t = 0; t < 3 * leases.ttlMs + 5_000; t += 100) {
      await cluster.advance(100);
      // a's renewal found no stream (no responders: not a taker, so a works the queue until its lease's
      // end); the bucket is then created again, empty (its stream of another creation time), as another
      // node or an operator would. b then tries for the queue at every step: it had not looked at it before (no lease
      // of a's seen, as when a wake-up or a hand-over sends it to the bucket), and finds its key absent.
      if (race === null && recreatedAt === undefined) {
        await openBucket(b.nc, `${cluster.prefix}_leases`, { history: 1, replicas: 1 });
        recreatedAt = cluster.steady.now();
      }
      if (recreatedAt !== undefined && (await b.leases.acquire(q))) bTookAt ??= cluster.steady.now() - recreatedAt;
      if (a.leases.holds(q) && b.leases.holds(q)) bothHeld += 1;
    }
    expect(race, "a's renewal raced the deletion").toBeNull();
    expect(lost, 'a stopped working the queue').toEqual(['a']);
    expect(bothHeld, 'steps at which both nodes held the queue').toBe(0);
    // b holds it, once a lease length, the allowance and the request timeout have passed since it was found created again.
    expect(bTookAt).toBeGreaterThanOrEqual(leases.ttlMs + leases.skewMs + 5_000);
    expect(b.leases.holds(q)).toBe(true);
  }, 60_000);

  /** The shared store's records (registry_records), in memory: the latest version of each. */
  const sharedStore = (): Pick<RegistryStore, 'records' | 'putRecord'> => {
    const latest = new Map<string, StoredRecord>();
    return {
      records: async (kind) => [...latest.values()].filter((r) => r.kind === kind),
      putRecord: async (record, expected) => {
        const at = `${record.kind}/${record.key}`;
        if ((latest.get(at)?.version ?? 0) !== expected) throw new RecordConflictError(record.kind, record.key, expected);
        const stored = { ...record, version: expected + 1 };
        latest.set(at, stored);
        return stored;
      },
    };
  };

  // A node started within a lease length of the bucket's recreation never saw the bucket before, so found
  // no change and claimed at once a queue whose holder of the bucket before still worked it. Fencing every
  // start on the bucket's age alone would hold a fresh cluster's nodes back as long: its bucket is as young.
  it('a node started right after the bucket was created again claims nothing until every holder before has stopped; nodes of a fresh cluster claim at once', async () => {
    const [q2, q3] = [{ ...q, recipientDipId: 'SUP0000002' }, { ...q, recipientDipId: 'SUP0000003' }];
    const fenceMs = leases.ttlMs + leases.skewMs + 5_000;
    const incarnations = new StoredLeaseIncarnations(sharedStore(), new FakeClock(0));
    const cluster = await clusterOf(['a-0000000a'], cleanup, undefined, { generations: true, incarnations });
    const a = cluster.nodes[0]!;
    expect(await a.leases.acquire(q), 'the first node of a fresh cluster').toBe(true);
    const b = await cluster.add('b-0000000b');
    expect(await b.leases.acquire(q2), 'a second node of the fresh cluster, its bucket as young').toBe(true);

    // A NATS store wiped: the bucket created again, empty; a works q until its lease's end (its probe finds the change later).
    await (await jetstreamManager(a.nc)).streams.delete(`KV_${cluster.prefix}_leases`);
    await openBucket(b.nc, `${cluster.prefix}_leases`, { history: 1, replicas: 1 });
    expect(a.leases.holds(q)).toBe(true);
    const c = await cluster.add('c-0000000c');
    expect(await c.leases.acquire(q), 'a node started right after: the queue a holder before still works').toBe(false);
    // Its wall clock a fence ahead of the real time the server created the bucket at (elapsed time, the
    // FakeClock, stands still since the cluster started): the recreation was a fence ago to it.
    const d = await cluster.add('d-0000000d', fenceMs + Date.now() - cluster.steady.now());
    expect(await d.leases.acquire(q3), 'a node started a fence after the recreation').toBe(true);
    await cluster.advance(fenceMs - 100);
    expect(await c.leases.acquire(q), 'inside the fence').toBe(false);
    await cluster.advance(100);
    expect(await c.leases.acquire(q), 'once every holder before has stopped').toBe(true);
  }, 60_000);

  // The alarm notifier lease is kept in the same bucket: created again, its key is absent, and a node
  // that found it so took the lease at once while its holder of before still held it (two notifiers).
  it('the alarm notifier lease shares the fence: not claimed inside it, and dropped by its holder of before', async () => {
    const cluster = await clusterOf(['a-0000000a', 'b-0000000b'], cleanup, undefined, { generations: true });
    const notifiers = await Promise.all(
      cluster.nodes.map(async (n, i) => {
        const records = await openBucket(n.nc, `${cluster.prefix}_alarms`, { history: 1, replicas: 1 });
        const lease = new NatsAlarmNotifierLease(n.bucket, records, await keyEraser(n.nc, `${cluster.prefix}_alarms`, records), ['a-0000000a', 'b-0000000b'][i]!, n.clock, leases, undefined, undefined, n.leases.fence);
        cleanup.push(() => lease.close());
        return lease;
      }),
    );
    const [a, b] = notifiers as [NatsAlarmNotifierLease, NatsAlarmNotifierLease];
    expect(await a.turn(), 'a claims the notifier lease').not.toBeNull();
    expect(await b.turn(), 'b: held by a').toBeNull();

    await (await jetstreamManager(cluster.nodes[0]!.nc)).streams.delete(`KV_${cluster.prefix}_leases`);
    await openBucket(cluster.nodes[1]!.nc, `${cluster.prefix}_leases`, { history: 1, replicas: 1 });
    // A roll call: each node's probe finds the bucket created again.
    await cluster.advance(rollCallMs);
    expect(await b.turn(), 'b, inside the fence, though the key is absent').toBeNull();
    expect(await a.turn(), 'a: its lease went with the bucket before, and it is fenced too').toBeNull();
    const fenceMs = leases.ttlMs + leases.skewMs + 5_000;
    await cluster.advance(fenceMs);
    const holders = [await a.turn(), await b.turn()].filter((t) => t !== null);
    expect(holders, 'once the fence is over, one node holds it').toHaveLength(1);
  }, 60_000);

  // A claim that began before the fence: b reads the queue's key (absent) in the bucket it knows; before
  // its create is sent, the bucket is deleted and created again, and another claim of b's (as a probe
  // would) finds the new incarnation, fences b and takes the new id as b's own. The first claim's create
  // then lands in the new bucket, and its check after the write compared the id read then with the one b
  // knew then, both the new one: 'same', and b held the queue inside its own fence (the old bucket's
  // holders may still work it). Now it is checked against the id it began in, and the fence again.
  it('a claim begun before the bucket was found created again is undone, not held', async () => {
    const q2 = { recipientDipId: 'SUP0000002', channel: 'IF-021' };
    let race: (() => Promise<void>) | null = null;
    const cluster = await clusterOf(['b-0000000b'], cleanup, undefined, {
      generations: true,
      beforeCreate: async () => {
        const r = race;
        race = null;
        await r?.();
      },
    });
    const b = cluster.nodes[0]!;
    race = async () => {
      await (await jetstreamManager(b.nc)).streams.delete(`KV_${cluster.prefix}_leases`);
      await openBucket(b.nc, `${cluster.prefix}_leases`, { history: 1, replicas: 1 });
      expect(await b.leases.acquire(q2), 'the claim that finds the bucket created again').toBe(false);
    };
    expect(await b.leases.acquire(q), 'the claim begun in the bucket before').toBe(false);
    expect(race, 'the bucket was created again while the claim was under way').toBeNull();
    expect(b.leases.holds(q)).toBe(false);
    expect((await b.bucket.get(queueToken(q)))?.operation ?? 'absent', "the claim's write undone").not.toBe('PUT');
  }, 30_000);
});

describe('NATS queue leases when a node’s wall clock steps (injected clocks, elapsed time advanced by the test)', () => {
  const q = { recipientDipId: 'SUP0000001', channel: 'IF-021' };
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  /** Holder a and taker b, each having heard the other's roll call, a holding the queue's lease. */
  const holderAndTaker = async () => {
    const cluster = await clusterOf(['a-0000000a', 'b-0000000b'], cleanup);
    const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    expect(await a.leases.acquire(q)).toBe(true);
    await cluster.advance(rollCallMs);
    expect([b.leases.clockOffsetOf(a.leases.node), a.leases.clockOffsetOf(b.leases.node)], 'each node heard the other').toEqual([0, 0]);
    return { ...cluster, a, b };
  };

  // A fault campaign stepped one DIP node's wall clock by 90 s (libfaketime): the node ahead read its live
  // peer's lease as long expired and took it, and the old holder went on delivering until it heard the
  // new one's roll call, or its renewal failed: 15 positions delivered twice within a second. Here 10 s
  // (beyond the allowance, within what the roll calls believe): no roll call tells the holder to yield.
  // (These ran on real time before, b claiming every 100 ms of two real lease lengths: slow, and a loaded
  // runner could miss a renewal.)
  for (const [who, stepMs] of [['the taker', 10_000], ['the holder', -10_000]] as const) {
    it(`a step of ${who}'s wall clock by ${stepMs / 1000} s does not let a live holder's lease be taken while it renews it; released, it is taken at once`, async () => {
      const { a, b, advance, io } = await holderAndTaker();
      (who === 'the taker' ? b : a).clock.step(stepMs);
      // Two lease lengths of the holder renewing: b claims every 100 ms and must not get the lease.
      for (let claims = 1; claims <= (2 * leases.ttlMs) / 100; claims++) {
        await advance(100);
        const taken = await b.leases.acquire(q);
        expect(taken && a.leases.holds(q), `both hold the lease after ${claims} claim(s) of b`).toBe(false);
        expect(taken, `b took a's live lease at claim ${claims}`).toBe(false);
      }
      expect(a.leases.holds(q), 'a still holds it').toBe(true);
      await a.leases.release(q, { handOver: true });
      await io();
      expect(await b.leases.acquire(q), 'b takes the released lease').toBe(true);
    });
  }

  it("a taker whose wall clock stepped back takes a dead holder's queue once the holder is silent a lease length and the allowance, not that much later; never while the holder still works it", async () => {
    // The wait was the larger of the wall clocks' expiry and the steady clock's silence: a step of -10 s
    // at the taker made a dead holder's queues wait 10 s longer. The holder says in its roll calls that
    // it works its leases by its steady clock, so its silence alone decides.
    const { a, b, steady, advance } = await holderAndTaker();
    b.clock.step(-10_000);
    await advance(rollCallMs);
    // a is cut off (its connection closed: no roll call nor renewal reaches anyone) and runs on: its
    // timers and its holds() still say whether it works the queue.
    await a.nc.close();
    const cutAt = steady.now();
    let taken = false;
    while (!taken && steady.now() - cutAt < 10_000 + 2 * leases.ttlMs) {
      await advance(100);
      taken = await b.leases.acquire(q);
      expect(taken && a.leases.holds(q), `both hold the lease ${steady.now() - cutAt} ms after a was cut off`).toBe(false);
    }
    expect(taken, 'b took the queue').toBe(true);
    // a's last roll call was heard at most a roll call before it was cut off.
    expect(steady.now() - cutAt, 'b took it within a lease length, the allowance and a roll call').toBeLessThanOrEqual(leases.ttlMs + leases.skewMs + rollCallMs + 100);
  });
});

describe('lost nodes (node-lost), by elapsed time and by unique id', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  /** The store's records of lost nodes, in memory: `resolved` says what was resolved, and why. */
  const records = (lost: LostNode[]) => {
    const resolved: Array<[string, string]> = [];
    const store: LostNodeRecords = {
      lost: async () => lost,
      recordLost: async () => {},
      resolve: async (node, why) => void resolved.push([node, why]),
    };
    return { store, resolved };
  };
  const listenMs = leases.ttlMs + rollCallMs;

  for (const stepMs of [60_000, -60_000]) {
    it(`a step of ${stepMs / 1000} s of a node's wall clock neither hastens nor delays its raising the lost nodes recorded in the store (a lease length and a roll call of listening)`, async () => {
      // listenedLongEnough read the wall clock: +60 s raised the stored records at once, before a live
      // node recorded by mistake could be heard; -60 s raised them a minute late.
      const { nodes, steady, advance } = await clusterOf(['here-0000000a'], cleanup);
      const node = nodes[0]!;
      await node.leases.remember(records([{ node: 'gone-0000000b', lastHeardAt: steady.now() - 60_000 }]).store);
      node.clock.step(stepMs);
      await advance(listenMs, rollCallMs);
      expect(node.leases.lostNodes(), 'after a lease length and a roll call').toEqual([]);
      await advance(1);
      expect(node.leases.lostNodes().map((l) => l.node), 'once listened longer').toEqual(['gone-0000000b']);
    });
  }

  it("a node started resolves no stored record of another id of its name (its host's other process may still be lost), and raises none", async () => {
    // remember() resolved every lost id of its name as returned: a host running two processes under one
    // name, one dead, the other restarted for a deploy, cleared the dead one's record.
    const { nodes, advance } = await clusterOf(['host-0000000c'], cleanup);
    const node = nodes[0]!;
    const { store, resolved } = records([
      { node: 'host-0000000b', lastHeardAt: Date.now() - 60_000 },
      { node: 'other-0000000d', lastHeardAt: Date.now() - 60_000 },
    ]);
    await node.leases.remember(store);
    await advance(listenMs + 1, rollCallMs);
    expect(resolved).toEqual([]);
    expect(node.leases.lostNodes().map((l) => l.node)).toEqual(['other-0000000d']);
  });

  it("a new id of a lost node's name is its restart only if it succeeds no node heard stopping, and stands for one lost id", async () => {
    // Two processes of one host, one name: b dies; a stops for a deploy and starts again as c. c's roll
    // call resolved b (every lost id of its name). Now c succeeds a; d, heard next, is b's restart.
    const { nodes, advance, rollCall } = await clusterOf(['survivor-0000000e'], cleanup);
    const survivor = nodes[0]!.leases;
    await rollCall('host-0000000a');
    await rollCall('host-0000000b');
    for (let t = 0; t <= 2 * leases.ttlMs; t += rollCallMs) {
      await advance(rollCallMs, rollCallMs);
      await rollCall('host-0000000a');
    }
    expect(survivor.lostNodes().map((l) => l.node), 'b silent two lease lengths').toEqual(['host-0000000b']);
    await rollCall('host-0000000a', { leaving: true });
    await rollCall('host-0000000c');
    expect(survivor.lostNodes().map((l) => l.node), "after a's successor said its roll call").toEqual(['host-0000000b']);
    await rollCall('host-0000000d');
    expect(survivor.lostNodes(), "after b's restart said its roll call").toEqual([]);
  });

  it("a node heard stopping for good leaves no vacancy beyond forgetAfterMs: a sibling's later restart is a restart, not its successor", async () => {
    // vacancies never expired: a left for good (a host scaled down from two processes to one); b crashed
    // long after and its supervisor started c, which filled a's old vacancy, so b stayed lost (its
    // node-lost alarm raised) until an operator removed it.
    const { nodes, advance, rollCall } = await clusterOf(['survivor-0000000e'], cleanup);
    const survivor = nodes[0]!.leases;
    await rollCall('host-0000000a');
    await rollCall('host-0000000b');
    await rollCall('host-0000000a', { leaving: true });
    for (let t = 0; t <= 2 * leases.ttlMs; t += rollCallMs) {
      await advance(rollCallMs, rollCallMs);
      await rollCall('host-0000000b');
    }
    await advance(2 * leases.ttlMs + rollCallMs, rollCallMs);
    expect(survivor.lostNodes().map((l) => l.node), 'b silent two lease lengths').toEqual(['host-0000000b']);
    await rollCall('host-0000000c');
    expect(survivor.lostNodes(), "after b's restart said its roll call").toEqual([]);
  });
});
