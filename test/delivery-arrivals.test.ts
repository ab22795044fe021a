/**
 * What an arrival wakes (Delivery.notify). On one machine a queue its recipient pulls is not worked when
 * a batch lands in it: its worker would only read the store to find nothing to call (with delivery
 * processes, after a message to another process too), once per accepted batch. Its stale entries are
 * still set aside, by the sweep. Queues with a webhook, an in-process consumer, or messages to set aside
 * are worked at once; in a cluster every arrival still wakes (another node's registry may be ahead).
 */
import { describe, expect, it } from 'vitest';
import { SingleProcessLeases } from '../src/adapters/embedded/leases.js';
import { Delivery } from '../src/pipeline/delivery.js';
import type { DeadLetterEvent } from '../src/pipeline/queue-worker.js';
import type { QueueLeases } from '../src/ports/leases.js';
import type { QueueEntry, QueueRef } from '../src/ports/message-log.js';
import { FakeClock } from './helpers/clocks.js';
import { workerDeps } from './helpers/worker-deps.js';

const STALE_MS = 60_000;
const pushed: QueueRef = { recipientDipId: '1000000001', channel: 'IF-021' };
const pulled: QueueRef = { recipientDipId: '1000000002', channel: 'IF-021' };
const mpanFeed: QueueRef = { recipientDipId: 'mpan-lookup', channel: 'IF-021' };
const offboarded: QueueRef = { recipientDipId: '1000000003', channel: 'IF-021' };
const name = (q: QueueRef): string => q.recipientDipId;

const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

function entry(seq: number, receivedAt: number): QueueEntry {
  return { seq, messageId: seq, transactionId: `t${seq}`, receivedAt, outbound: '{}', capacity: null, securityPattern: null };
}

function dip(leases: QueueLeases) {
  const clock = new FakeClock(1_000_000);
  const reads: string[] = [];
  const consumed: number[] = [];
  const deadLettered: DeadLetterEvent[] = [];
  // Each queue holds one message, received at the start; nothing is ever settled past it except by a set-aside.
  const settled = new Map<string, number>();
  const queued = [pushed, pulled, mpanFeed, offboarded];
  const { share: _noShare, ...worker } = workerDeps(clock, {
    log: {
      readQueue: async (q, after) => {
        reads.push(name(q));
        return after >= 1 || (settled.get(name(q)) ?? 0) >= 1 ? [] : [entry(1, 1_000_000)];
      },
      queueState: async (q) => ({ ackedSeq: settled.get(name(q)) ?? 0, headSeq: 1, pulledSeq: 0 }),
      settle: async (q, s) => (settled.set(name(q), s.upTo), 'settled'),
    },
    transport: { post: async () => ({ kind: 'answered', status: 200, retryAfter: undefined, body: '', latencyMs: 1 }), close: async () => {} },
    webhook: (q) => (name(q) === name(pushed) ? { recipientDipId: q.recipientDipId, channel: q.channel, url: 'https://recipients.example/1', maxMessageCount: 500, maxPayloadKb: 1024, registeredBy: q.recipientDipId } : undefined),
    localConsumer: (q) => (name(q) === name(mpanFeed) ? async (entries) => void consumed.push(...entries.map((e) => e.messageId)) : undefined),
    undeliverable: (q) => (name(q) === name(offboarded) ? 'offboarded' : null),
    staleAfterMs: () => STALE_MS,
    deadLettered: (events) => void deadLettered.push(...events),
  });
  const delivery = new Delivery({
    ...worker,
    backend: { health: () => ({ state: 'ok' }), onHealthChange: () => {}, log: { pendingQueues: async () => queued.filter((q) => (settled.get(name(q)) ?? 0) < 1) } },
    onRegistryChange: () => {},
    leases,
  });
  return { clock, delivery, reads, consumed, deadLettered };
}

const fixed = (): QueueLeases => new SingleProcessLeases();

describe('what an arrival wakes', () => {
  it('works a queue with a webhook, an in-process consumer or messages to set aside at once, and leaves a pulled queue to its recipient', async () => {
    const d = dip(fixed());
    d.delivery.notify([pushed, pulled, mpanFeed, offboarded]);
    await settle();
    expect(new Set(d.reads)).toEqual(new Set([name(pushed), name(mpanFeed), name(offboarded)]));
    expect(d.consumed).toEqual([1]);
    expect(d.deadLettered.map((e) => `${name(e.queue)} ${e.reason}`)).toEqual([`${name(offboarded)} rejected`]);
    await d.delivery.stop();
  });

  it('still sets aside what went stale in a pulled queue: the sweep finds it', async () => {
    const d = dip(fixed());
    await d.clock.advance(STALE_MS + 1);
    d.delivery.notify([pulled]);
    await settle();
    expect(d.reads).not.toContain(name(pulled));
    await d.delivery.sweep();
    await settle();
    expect(d.reads).toContain(name(pulled));
    expect(d.deadLettered.map((e) => `${name(e.queue)} ${e.reason}`)).toContainEqual(`${name(pulled)} stale`);
    await d.delivery.stop();
  });

  it('in a cluster, wakes every queue an arrival names: a webhook set on another node may not be in this registry yet', async () => {
    const woken: QueueRef[] = [];
    const shared: QueueLeases = {
      shared: true,
      claimEveryMs: null,
      acquire: async () => false,
      holds: () => false,
      release: async () => {},
      surplus: () => 0,
      willTake: () => {},
      wake: (q) => void woken.push(q),
      onWake: () => {},
      onLost: () => {},
      close: async () => {},
    };
    const d = dip(shared);
    d.delivery.notify([pushed, pulled]);
    await settle();
    expect(woken).toEqual([pushed, pulled]);
    await d.delivery.stop();
  });
});
