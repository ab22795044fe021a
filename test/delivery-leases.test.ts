/**
 * In a cluster, a node whose store stays unavailable (a partition between it and PostgreSQL, NATS still
 * reachable) gives up every queue it holds after PAUSED_RELEASE_MS, without waiting for a store call that
 * may never be answered, and claims none while unhealthy, so a node that can reach the store takes them
 * over; a store restart every node sees (shorter than that) moves no queue. Found by fault campaigns:
 * the cut-off node kept renewing, and its recipients got nothing for the whole partition; then, with the
 * release counted from the worker's own failure, for the 35 s a query went unanswered.
 */
import { describe, expect, it } from 'vitest';
import { Delivery, IDLE_RELEASE_MS, PAUSED_RELEASE_MS } from '../src/pipeline/delivery.js';
import type { BackendHealth } from '../src/ports/backend.js';
import type { QueueLeases } from '../src/ports/leases.js';
import { webhookFailingAlarms } from '../src/pipeline/alarm-sources.js';
import type { QueueEntry, QueueRef, Settlement } from '../src/ports/message-log.js';
import { FakeClock } from './helpers/clocks.js';
import { workerDeps } from './helpers/worker-deps.js';

const queue: QueueRef = { recipientDipId: '1000000001', channel: 'IF-021' };
const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};
const down: BackendHealth = { state: 'unavailable', reason: 'PostgreSQL: Connection terminated', code: 'ECONNRESET' };

/**
 * One node's Delivery over fake leases. `share`: the node's fair share of queues (surplus is what it holds
 * beyond it), with a claim pass every second; `releasing`: what a release waits for (NATS's answer).
 */
function node(options: { share?: number; releasing?: Promise<void>; webhookDown?: boolean; answering?: Promise<void> } = {}) {
  const clock = new FakeClock(1_000_000);
  let health: BackendHealth = { state: 'ok' };
  const healthListeners: Array<(h: BackendHealth) => void> = [];
  const held = new Set<string>();
  const released: QueueRef[] = [];
  /** Releases asked for, before NATS answered. */
  const releasing: QueueRef[] = [];
  const taking: boolean[] = [];
  const releaseOptions: Array<{ handOver?: boolean; balance?: boolean } | undefined> = [];
  const acquired: QueueRef[] = [];
  const woken: QueueRef[] = [];
  /** Queues this node gave away for balance: like the NATS adapter, it does not take them back for a while. */
  const givenAway = new Set<string>();
  const leases: QueueLeases = {
    shared: true,
    claimEveryMs: options.share === undefined ? null : 1_000,
    acquire: async (q) => {
      acquired.push(q);
      if (givenAway.has(q.recipientDipId)) return false;
      held.add(q.recipientDipId);
      return true;
    },
    holds: (q) => held.has(q.recipientDipId),
    release: async (q, how) => {
      releasing.push(q);
      await options.releasing;
      held.delete(q.recipientDipId);
      released.push(q);
      releaseOptions.push(how);
      if (how?.balance) givenAway.add(q.recipientDipId);
    },
    surplus: () => Math.max(0, held.size - (options.share ?? Infinity)),
    willTake: (t) => void taking.push(t),
    wake: (q) => void woken.push(q),
    onWake: () => {},
    onLost: (l) => void lostListeners.push(l),
    close: async () => {},
  };
  const lostListeners: Array<(q: QueueRef) => void> = [];
  /** The lease went to another node, or could not be renewed (NATS out of reach). */
  const lose = (q: QueueRef) => {
    held.delete(q.recipientDipId);
    for (const l of lostListeners) l(q);
  };
  /** Messages waiting (seq 1..n), for a test whose webhook is called. */
  const waiting: QueueEntry[] = [];
  // One message waits; reading its queue's state never answers once the node is cut off (a partition
  // that drops packets: the query waits for its timeout, far longer than the test).
  let cut = false;
  const pending: QueueRef[] = [];
  const never = new Promise<never>(() => {});
  const posts: number[] = [];
  const { share: _noShare, ...worker } = workerDeps(clock, {
    log: {
      readQueue: async (_q: QueueRef, after: number) => (cut ? never : waiting.filter((e) => e.seq > after)),
      queueState: async () => (cut ? never : { ackedSeq: 0, headSeq: waiting.length, pulledSeq: 0 }),
      settle: async () => 'settled',
    },
    transport: {
      post: async () => {
        posts.push(clock.now());
        await options.answering;
        return { kind: 'answered', status: options.webhookDown ? 503 : 200, retryAfter: undefined, body: '', latencyMs: 1 };
      },
      close: async () => {},
    },
  });
  const delivery = new Delivery({
    ...worker,
    backend: { health: () => health, onHealthChange: (l) => void healthListeners.push(l), log: { pendingQueues: async () => pending } },
    onRegistryChange: () => {},
    leases,
  });
  const setHealth = (h: BackendHealth) => {
    health = h;
    for (const l of healthListeners) l(h);
  };
  return { clock, delivery, released, releasing, releaseOptions, acquired, woken, taking, pending, cutOff: () => void (cut = true), setHealth, lose, waiting, posts };
}

describe('delivery leases while this node cannot reach the store', () => {
  it('gives up every queue held PAUSED_RELEASE_MS after the store became unavailable, without waiting for a call that hangs, and claims none while unhealthy', async () => {
    const n = node();
    n.delivery.notify([queue]);
    await settle();
    expect(n.acquired).toHaveLength(1);
    n.cutOff();
    n.delivery.notify([queue]); // the worker's next read hangs: it never fails, so it never pauses
    await settle();
    n.setHealth(down); // what the node's other store calls found
    await n.clock.advance(PAUSED_RELEASE_MS - 1);
    await settle();
    expect(n.released).toEqual([]);
    await n.clock.advance(1);
    await settle();
    expect(n.released).toEqual([queue]);
    // The other nodes are told it takes no queues (they leave it out of their shares).
    expect(n.taking).toEqual([false]);
    // Woken again while still cut off: it does not take the queue back.
    n.delivery.notify([queue]);
    await settle();
    expect(n.acquired).toHaveLength(1);
    void n.delivery.stop();
  });

  it('given up for the store while its call to the recipient is out, releases the lease only once that call is answered: the next holder never calls beside it', async () => {
    let answer = (): void => {};
    const n = node({ answering: new Promise<void>((r) => (answer = r)) });
    n.waiting.push({ seq: 1, messageId: 1, transactionId: 'T-1', receivedAt: n.clock.now(), outbound: '{}', capacity: null, securityPattern: null });
    n.delivery.notify([queue]);
    await settle();
    expect(n.posts).toHaveLength(1); // out, not yet answered
    n.setHealth(down);
    await n.clock.advance(PAUSED_RELEASE_MS);
    await settle();
    expect(n.releasing).toEqual([]); // held while the call is out
    answer();
    await settle();
    expect(n.released).toEqual([queue]);
    expect(n.posts).toHaveLength(1); // the stopped worker made no other call
    void n.delivery.stop();
  });

  it('keeps its queues through a store outage shorter than PAUSED_RELEASE_MS, and counts a new outage afresh', async () => {
    const n = node();
    n.delivery.notify([queue]);
    await settle();
    n.setHealth(down);
    await n.clock.advance(PAUSED_RELEASE_MS - 1_000);
    n.setHealth({ state: 'ok' });
    await n.clock.advance(500);
    n.setHealth(down);
    // 5.5 s after the first outage began, 1 s into the second: nothing given up.
    await n.clock.advance(1_000);
    await settle();
    expect(n.released).toEqual([]);
    await n.clock.advance(PAUSED_RELEASE_MS - 1_000);
    await settle();
    expect(n.released).toEqual([queue]);
    await n.delivery.stop();
  });

  it('starts no worker once stopped, whatever asks for a sweep (a registry change while shutting down)', async () => {
    const n = node();
    n.delivery.notify([queue]); // held, worked, then idle
    await settle();
    await n.delivery.stop();
    n.pending.push(queue);
    await n.delivery.sweep();
    await settle();
    // No worker started: the stopped one is not listed either (status() shows the queues worked here).
    expect(n.delivery.status()).toEqual([]);
  });
});

describe('a queue whose lease was lost', () => {
  it('is no longer shown as worked here, nor keeps its webhook-failing alarm raised on this node', async () => {
    // NATS out of reach for longer than a lease (or the lease taken over): another node works the queue
    // now, and keeps its own failure record. The stopped worker stayed in status() for good, shown as
    // 'stopped' and worked here with the recipient's failures of then: webhook-failing stayed raised on
    // this node, never resolved, however the new holder fared.
    const n = node({ webhookDown: true });
    n.waiting.push({ seq: 1, messageId: 1, transactionId: 'T-1', receivedAt: n.clock.now(), outbound: '{}', capacity: null, securityPattern: null });
    n.delivery.notify([queue]);
    await settle();
    expect(n.delivery.status()).toEqual([expect.objectContaining({ queue, failures: 1 })]);
    n.lose(queue);
    await settle();
    expect(n.delivery.status()).toEqual([]);
    await n.clock.advance(20 * 60_000);
    expect(await webhookFailingAlarms(() => n.delivery.status(), 15 * 60_000, n.clock)()).toEqual([]);
    await n.delivery.stop();
  });
});

describe('delivery leases shared out between nodes', () => {
  it('hands over the queues it holds beyond its share on a claim pass, and only those', async () => {
    const n = node({ share: 1 });
    const other = { ...queue, recipientDipId: '1000000002' };
    await n.delivery.start();
    n.delivery.notify([queue, other]); // both claimed here (this node saw their messages first), then idle
    await settle();
    expect(n.acquired).toHaveLength(2);
    await n.clock.advance(1_000);
    await settle();
    expect(n.released).toHaveLength(1);
    expect(n.releaseOptions).toEqual([{ handOver: true, balance: true }]);
    // At its share now: the next passes move nothing more.
    await n.clock.advance(3_000);
    await settle();
    expect(n.released).toHaveLength(1);
    await n.delivery.stop();
  });

  it('counts the queues it is still handing over: a slow release does not make it give more away', async () => {
    let released!: () => void;
    const n = node({ share: 1, releasing: new Promise<void>((r) => (released = r)) });
    const queues = ['1000000002', '1000000003', '1000000004'].map((recipientDipId) => ({ ...queue, recipientDipId }));
    await n.delivery.start();
    n.delivery.notify(queues);
    await settle();
    await n.clock.advance(1_000);
    await settle();
    expect(n.releasing).toHaveLength(2);
    // NATS has not answered: the leases still count as held, but two are already going.
    await n.clock.advance(1_000);
    await settle();
    expect(n.releasing).toHaveLength(2);
    released();
    await settle();
    expect(n.released).toHaveLength(2);
    await n.delivery.stop();
  });

  it('starts no worker for a queue whose lease it is giving up, and wakes the new holder once it is gone', async () => {
    let released!: () => void;
    const n = node({ share: 0, releasing: new Promise<void>((r) => (released = r)) });
    await n.delivery.start();
    n.delivery.notify([queue]);
    await settle();
    await n.clock.advance(1_000); // the claim pass: over its share, the queue is being handed over
    await settle();
    expect(n.delivery.status()).toEqual([]);
    // A message arrives before NATS answered the release: still "held", but not worked here.
    n.delivery.notify([queue]);
    await settle();
    expect(n.delivery.status()).toEqual([]);
    expect(n.woken).toEqual([]);
    released();
    await settle();
    // Given away (not taken back), so the node that took it is woken.
    expect(n.released).toEqual([queue]);
    expect(n.woken).toEqual([queue]);
    expect(n.delivery.status()).toEqual([]);
    await n.delivery.stop();
  });
});

describe('an idle queue whose webhook is failing', () => {
  it('keeps its lease, and with it the failure record behind webhook-failing, past IDLE_RELEASE_MS; gives it up once a call is answered', async () => {
    const clock = new FakeClock(1_000_000);
    const held = new Set<string>();
    const released: QueueRef[] = [];
    const leases: QueueLeases = {
      shared: true,
      claimEveryMs: null,
      acquire: async (q) => {
        held.add(q.recipientDipId);
        return true;
      },
      holds: (q) => held.has(q.recipientDipId),
      release: async (q) => {
        held.delete(q.recipientDipId);
        released.push(q);
      },
      surplus: () => 0,
      willTake: () => {},
      wake: () => {},
      onWake: () => {},
      onLost: () => {},
      close: async () => {},
    };
    const entries: QueueEntry[] = [];
    let acked = 0;
    let up = false;
    const { share: _noShare, ...worker } = workerDeps(clock, {
      log: {
        readQueue: async (_q, after, limit) => entries.filter((e) => e.seq > after).slice(0, limit),
        queueState: async () => ({ ackedSeq: acked, headSeq: entries.length, pulledSeq: 0 }),
        settle: async (_q, s: Settlement) => ((acked = Math.max(acked, s.upTo)), 'settled'),
      },
      transport: { post: async () => (up ? { kind: 'answered', status: 200, retryAfter: undefined, body: '', latencyMs: 1 } : { kind: 'failed', error: 'ECONNREFUSED', latencyMs: 1 }), close: async () => {} },
      staleAfterMs: () => 1_000,
    });
    const delivery = new Delivery({
      ...worker,
      backend: { health: () => ({ state: 'ok' }), onHealthChange: () => {}, log: { pendingQueues: async () => (entries.length > acked ? [queue] : []) } },
      onRegistryChange: () => {},
      leases,
    });
    const arrive = (): void => {
      entries.push({ seq: entries.length + 1, messageId: entries.length + 1, transactionId: `T-${entries.length + 1}`, receivedAt: clock.now(), outbound: '{}', capacity: null, securityPattern: null });
      delivery.notify([queue]);
    };
    arrive();
    await settle();
    await clock.advance(2_000); // the retries fail; the message goes stale and is dead-lettered: idle
    await settle();
    expect(delivery.status()).toMatchObject([{ state: 'idle', ackedSeq: 1, failures: expect.any(Number) as number }]);
    expect(delivery.status()[0]!.failures).toBeGreaterThan(0);
    await clock.advance(IDLE_RELEASE_MS * 2);
    await settle();
    expect(released).toEqual([]);
    expect(delivery.status()[0]!.failures).toBeGreaterThan(0);
    up = true;
    arrive();
    await settle();
    expect(delivery.status()).toMatchObject([{ state: 'idle', failures: 0 }]);
    await clock.advance(IDLE_RELEASE_MS);
    await settle();
    expect(released).toEqual([queue]);
    await delivery.stop();
  });
});
