/**
 * In a cluster, a node that cannot reach the store (a partition between it and PostgreSQL, NATS still
 * reachable) gives up the leases of the queues it had to pause, so a node that can reach the store takes
 * them over; a store restart every node sees (shorter than PAUSED_RELEASE_MS) moves no queue. Found by a
 * fault campaign: the cut-off node kept renewing, and its recipients got nothing for the whole partition.
 */
import { describe, expect, it } from 'vitest';
import { Delivery, PAUSED_RELEASE_MS } from '../src/pipeline/delivery.js';
import type { BackendHealth } from '../src/ports/backend.js';
import { StoreError } from '../src/ports/errors.js';
import type { QueueLeases } from '../src/ports/leases.js';
import type { QueueRef } from '../src/ports/message-log.js';
import { FakeClock } from './helpers/clocks.js';
import { workerDeps } from './helpers/worker-deps.js';

const queue: QueueRef = { recipientDipId: '1000000001', channel: 'IF-021' };
const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

function node() {
  const clock = new FakeClock(1_000_000);
  let health: BackendHealth = { state: 'ok' };
  const healthListeners: Array<(h: BackendHealth) => void> = [];
  let reachable = true;
  const held = new Set<string>();
  const released: QueueRef[] = [];
  const acquired: QueueRef[] = [];
  const leases: QueueLeases = {
    shared: true,
    claimEveryMs: null,
    acquire: async (q) => {
      acquired.push(q);
      held.add(q.recipientDipId);
      return true;
    },
    holds: (q) => held.has(q.recipientDipId),
    release: async (q) => {
      held.delete(q.recipientDipId);
      released.push(q);
    },
    wake: () => {},
    onWake: () => {},
    onLost: () => {},
    close: async () => {},
  };
  const unreachable = () => new StoreError('unavailable', 'PostgreSQL: Connection terminated', 'ECONNRESET');
  // The worker surroundings, without a delivery share (Delivery takes the full scheduler, not a worker's view of it).
  const { share: _noShare, ...worker } = workerDeps(clock, {
    log: {
      readQueue: async () => {
        if (!reachable) throw unreachable();
        return [];
      },
      queueState: async () => {
        if (!reachable) throw unreachable();
        return { ackedSeq: 0, headSeq: 1 };
      },
      settle: async () => {},
    },
    transport: { post: async () => ({ kind: 'answered', status: 200, retryAfter: undefined, body: '', latencyMs: 1 }), close: async () => {} },
  });
  const delivery = new Delivery({
    ...worker,
    backend: { health: () => health, onHealthChange: (l) => void healthListeners.push(l), log: { pendingQueues: async () => [] } },
    onRegistryChange: () => {},
    leases,
  });
  const setHealth = (h: BackendHealth) => {
    health = h;
    for (const l of healthListeners) l(h);
  };
  return { clock, delivery, released, acquired, cutOff: (cut: boolean) => void (reachable = !cut), setHealth };
}

describe('delivery leases while this node cannot reach the store', () => {
  it('gives up a paused queue for another node after PAUSED_RELEASE_MS, and claims none while unhealthy', async () => {
    const n = node();
    n.delivery.notify([queue]);
    await settle();
    expect(n.acquired).toHaveLength(1);
    n.cutOff(true);
    n.setHealth({ state: 'unavailable', reason: 'PostgreSQL unreachable', code: null });
    n.delivery.notify([queue]); // held: the worker runs, meets the store failure and pauses
    await settle();
    await n.clock.advance(PAUSED_RELEASE_MS - 1);
    await settle();
    expect(n.released).toEqual([]);
    await n.clock.advance(1);
    await settle();
    expect(n.released).toEqual([queue]);
    // Woken again while still cut off: it does not take the queue back.
    n.delivery.notify([queue]);
    await settle();
    expect(n.acquired).toHaveLength(1);
    await n.delivery.stop();
  });

  it('keeps the queue through a store outage shorter than PAUSED_RELEASE_MS', async () => {
    const n = node();
    n.delivery.notify([queue]);
    await settle();
    n.cutOff(true);
    n.setHealth({ state: 'unavailable', reason: 'restarting', code: null });
    n.delivery.notify([queue]);
    await settle();
    await n.clock.advance(1_000);
    n.cutOff(false);
    n.setHealth({ state: 'ok' });
    await settle();
    await n.clock.advance(PAUSED_RELEASE_MS);
    await settle();
    expect(n.released).toEqual([]);
    await n.delivery.stop();
  });
});
