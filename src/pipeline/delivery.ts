import { STEP_READ_MS } from './wall-clock-steps.js';
import { queueKey as key } from '../ports/queue-ref.js';
import type { Backend, BackendHealth } from '../ports/backend.js';
import type { Cancel } from '../ports/clock.js';
import type { QueueLeases } from '../ports/leases.js';
import type { AcceptedBatch, AppendOutcome, MessageLog, QueueRef } from '../ports/message-log.js';
import { EncodedCopies } from './delivery-body.js';
import type { DeliveryShare } from './delivery-share.js';
import { QueueWorker, type WorkerDeps, type WorkerStatus } from './queue-worker.js';

export type { DeadLetterEvent, DeliverySettings, LocalConsumer } from './queue-worker.js';

export interface DeliveryDeps extends WorkerDeps {
  /** Pending queues after a restart, and health changes of the store. */
  backend: Pick<Backend, 'health' | 'onHealthChange'> & { log: Pick<Backend['log'], 'pendingQueues'> };
  /** Registry changes (a webhook set or removed) may make idle or backing-off queues deliverable. */
  onRegistryChange(listener: () => void): void;
  /** Which queues this node may work (all of them in one process; those it holds a lease on in a cluster). */
  leases: QueueLeases;
  /** Shares delivery capacity between queues (catch-up waits its turn; live traffic goes first). */
  share?: DeliveryShare;
}


/** The queues a batch lands in: one per recipient and channel of its messages (a status batch: the senders' status queues). */
export function queuesOf(batch: AcceptedBatch): QueueRef[] {
  const queues = new Map<string, QueueRef>();
  for (const m of batch.messages) for (const to of m.recipients) queues.set(key({ recipientDipId: to, channel: m.channel }), { recipientDipId: to, channel: m.channel });
  return [...queues.values()];
}

/**
 * The log as ingest appends to it: an accepted batch wakes its queues as soon as it is durable, on the
 * writer's thread. Woken from ingest's answer instead, a batch appended for an ingest thread waited for
 * that answer to cross back through the thread's event loop, busy with the next requests, before delivery
 * could see it.
 */
export function wakingLog(log: Pick<MessageLog, 'append'>, wake: (queues: QueueRef[]) => void): Pick<MessageLog, 'append'> {
  return {
    append: async (batch: AcceptedBatch): Promise<AppendOutcome> => {
      const outcome = await log.append(batch);
      if (outcome.ok) wake(queuesOf(batch));
      return outcome;
    },
  };
}

/** A queue left idle this long gives its lease up (cluster): renewals then cost only for queues at work. */
export const IDLE_RELEASE_MS = 30_000;
/**
 * In a cluster, a node whose store has been unavailable this long gives up every queue it holds, so a
 * node that can reach the store takes them over: a node cut off from PostgreSQL but not from NATS renewed
 * its leases throughout, and its recipients got nothing for the whole partition (a fault campaign saw 60 s
 * and 160 s). Counted from the store's health, not from a worker's own failure, which a query left
 * unanswered reports only at its 35 s timeout (the second campaign: 41 s). Long enough that a store
 * restart seen by every node (a second or so) moves no queue.
 */
export const PAUSED_RELEASE_MS = 5_000;

/** A queue whose lease this node is giving up (see Delivery.giveUp). */
interface Leaving {
  why: 'idle' | 'unreachable' | 'balance';
  /** Something arrived for it meanwhile: claimed, or its new holder woken, once it is gone. */
  arrived: boolean;
  /** Its lease released and its worker stopped. */
  gone: Promise<void>;
}

/**
 * Delivery: one QueueWorker per recipient queue, started when something arrives and after a restart;
 * a periodic sweep catches what no event announced (stale messages in queues nobody delivers). While the
 * store cannot take writes every worker pauses, and all resume when it can.
 *
 * With several nodes, a node works only the queues it holds a lease on. What arrives for a queue another
 * node holds is announced to that node (a wake-up); a queue nobody holds is claimed by whoever sees it
 * first; a queue whose holder died is claimed by the next claim pass after its lease expires. Delivery
 * never depends on a wake-up arriving: the holder's own sweep finds what it missed.
 */
export class Delivery {
  private readonly workers = new Map<string, QueueWorker>();
  private stopped = false;
  private readonly timers: Cancel[] = [];
  private readonly paused = new Set<QueueWorker>();
  private readonly idleSince = new Map<string, Cancel>();
  /**
   * Queues being given up: their worker is stopping and their lease not yet released. What arrives
   * meanwhile starts no worker here (it would run beside the next holder's); it is claimed, or its new
   * holder woken, once the lease is gone.
   */
  private readonly leaving = new Map<string, Leaving>();
  /** The timer that gives every queue up while the store stays unavailable (cluster only). */
  private givingUp: Cancel | null = null;
  private readonly workerDeps: WorkerDeps;

  constructor(private readonly deps: DeliveryDeps) {
    const workerDeps: WorkerDeps = {
      ...deps,
      encoded: deps.encoded ?? new EncodedCopies(),
      storeUnavailable: (w) => {
        this.paused.add(w);
        // The store may have recovered between the failure and now.
        if (this.deps.backend.health().state === 'ok') this.resumePaused();
      },
      wentIdle: (w) => this.wentIdle(w),
      // Only a cluster's leases end by the clock; one machine's are fixed.
      mayCall: (q) => !deps.leases.shared || deps.leases.holds(q),
      // A freeze shorter than the lease's life in the bucket: the next renewal may still succeed, and no
      // loss would be told; claiming again starts a new worker if this node holds it, else leaves it.
      leaseEnded: (q) => this.claim(q, false),
    };
    this.workerDeps = workerDeps;
    deps.onRegistryChange(() => {
      for (const w of this.workers.values()) if (deps.leases.holds(w.queue)) w.webhookMayHaveChanged();
    });
    deps.backend.onHealthChange((h: BackendHealth) => {
      if (!this.stopped) deps.leases.willTake(h.state === 'ok');
      if (h.state === 'ok') {
        this.givingUp?.();
        this.givingUp = null;
        this.resumePaused();
      } else this.giveUpLater();
    });
    deps.leases.onWake((q) => this.claim(q, false));
    deps.leases.onLost((q) => this.lost(q));
  }

  /** Resumes every queue that still holds undelivered entries (after a restart), then sweeps periodically. */
  async start(): Promise<void> {
    this.deps.share?.start();
    await this.sweep();
    const every = (ms: number, pass: () => Promise<void>, what: string) =>
      this.timers.push(this.deps.clock.every(ms, () => void pass().catch((err: unknown) => this.deps.logger.error({ err }, `${what} failed`))));
    every(this.deps.settings.sweepIntervalMs, () => this.sweep(), 'sweep');
    // The wall clock read against the monotonic one every second: a step is placed within a second of when it happened.
    const steps = this.deps.steps;
    if (steps) this.timers.push(this.deps.clock.every(STEP_READ_MS, () => steps.read()));
    const claimEvery = this.deps.leases.claimEveryMs;
    if (claimEvery !== null) every(claimEvery, () => this.claimPass(), 'claim pass');
  }

  /** Looks at every queue holding undelivered entries: delivers what it can, dead-letters what is stale. */
  async sweep(): Promise<void> {
    // Stopped (shutting down): a sweep asked for by a registry change starts no worker.
    if (this.stopped) return;
    for (const q of await this.deps.backend.log.pendingQueues()) {
      if (this.stopped) return;
      if (this.holding(q)) this.worker(q).kick();
      else this.claim(q, false);
    }
  }

  /** Claims queues with undelivered entries that no live node holds (their holder died); then evens out. */
  private async claimPass(): Promise<void> {
    for (const q of await this.deps.backend.log.pendingQueues()) if (!this.holding(q)) this.claim(q, false);
    this.balance();
  }

  /**
   * Hands over the queues this node holds beyond its share (QueueLeases.surplus), idle ones first, each
   * once its call and settlement are done: a queue is claimed by whichever node sees its message first,
   * and a fault campaign found every queue on one node, so that one node's fault stopped every recipient.
   * Queues backing off, paused or halted stay: moving them would restart their retries elsewhere; so do
   * idle ones whose webhook is failing (their failure record, and its alarm, would be lost in the move).
   */
  private balance(): void {
    // Those already going count: a call can take the webhook timeout to end before its lease is released,
    // and claim passes come more often than that.
    const going = [...this.leaving.values()].filter((l) => l.why === 'balance').length;
    const surplus = this.deps.leases.surplus() - going;
    if (surplus <= 0 || this.stopped || this.deps.backend.health().state !== 'ok') return;
    const movable = [...this.workers.values()].filter((w) => (w.state === 'idle' || w.state === 'working') && !w.failing && this.holding(w.queue));
    movable.sort((a, b) => Number(b.state === 'idle') - Number(a.state === 'idle'));
    const moving = movable.slice(0, surplus);
    if (moving.length > 0) this.deps.logger.info({ queues: moving.length, surplus }, 'this node holds more than its share of the queues: handing some over');
    for (const w of moving) this.giveUp(w, 'balance');
  }

  /** Something arrived for these queues (an append, a requeue): the node that holds each works it. */
  notify(queues: Iterable<QueueRef>): void {
    if (this.stopped) return;
    for (const q of queues) {
      if (!this.actsOnArrival(q)) continue;
      if (this.holding(q)) this.worker(q).kick();
      else this.claim(q, true);
    }
  }

  /**
   * Whether an arrival gives the queue's worker anything to do now: a webhook to call, an in-process
   * consumer, messages to set aside. A queue its recipient pulls has nothing until the recipient pulls;
   * whether its oldest entry went stale is the sweep's to find. Waking it read the store (and, with
   * delivery processes, crossed to another process) once per accepted batch for nothing: about a tenth
   * of the main thread's time per single-message request when recipients pull (BENCHMARKS.md).
   * In a cluster every arrival still wakes: a webhook just set on another node may not have reached this
   * node's registry yet, and a skipped wake would wait for the holder's sweep. In one machine the
   * registry consulted here is the one a webhook is written to (configureWebhook refreshes it first).
   */
  private actsOnArrival(q: QueueRef): boolean {
    if (this.deps.leases.shared) return true;
    return this.deps.webhook(q) !== undefined || this.deps.localConsumer(q) !== undefined || (this.deps.undeliverable?.(q) ?? null) !== null;
  }

  /** Whether this node works the queue now: it holds the lease and is not giving it up. */
  private holding(q: QueueRef): boolean {
    return this.deps.leases.holds(q) && !this.leaving.has(key(q));
  }

  /** Takes the queue's lease if it is free and works it; else, when asked, tells its holder. */
  private claim(q: QueueRef, wakeHolder: boolean): void {
    if (this.stopped) return;
    const leaving = this.leaving.get(key(q));
    if (leaving) {
      leaving.arrived = true;
      return;
    }
    if (this.deps.leases.holds(q)) {
      this.worker(q).kick();
      return;
    }
    // A node that cannot reach the store takes no queue (it would only pause it): one that can will.
    if (this.deps.leases.shared && this.deps.backend.health().state !== 'ok') return;
    this.deps.leases.acquire(q).then(
      async (ok) => {
        if (this.stopped) return;
        if (!ok) {
          if (wakeHolder) this.deps.leases.wake(q);
          return;
        }
        // A worker stopped when its lease was lost finishes its call before a new one starts.
        const old = this.workers.get(key(q));
        if (old?.state === 'stopped') {
          await old.stop();
          if (this.workers.get(key(q)) === old) this.workers.delete(key(q));
        }
        if (!this.stopped && this.holding(q)) this.worker(q).kick();
      },
      (err: unknown) => this.deps.logger.error({ err, queue: q }, 'could not claim a queue'),
    );
  }

  /** The lease went to another node (or could not be renewed): stop working the queue at once. */
  private lost(q: QueueRef): void {
    const w = this.workers.get(key(q));
    this.idleSince.get(key(q))?.();
    this.idleSince.delete(key(q));
    if (!w) return;
    this.paused.delete(w);
    void w.stop();
  }

  /**
   * In a cluster, a queue left idle gives its lease up after a while (the next arrival claims it again).
   * Not while its webhook is failing (its stale messages dead-lettered, nothing left to call): the worker
   * holds the failure record that keeps webhook-failing raised; it goes idle again after an answered call
   * or a new callback URL, and gives the lease up then.
   */
  private wentIdle(w: QueueWorker): void {
    if (!this.deps.leases.shared || this.stopped || w.failing) return;
    const k = key(w.queue);
    this.idleSince.get(k)?.();
    this.idleSince.set(
      k,
      this.deps.clock.after(IDLE_RELEASE_MS, () => {
        this.idleSince.delete(k);
        // A timer set before the webhook started failing (a registry change kicks workers without passing here) must not drop the record.
        if (w.state !== 'idle' || w.failing || this.workers.get(k) !== w) return;
        this.giveUp(w, 'idle');
      }),
    );
  }

  /** In a cluster, while the store stays unavailable for PAUSED_RELEASE_MS, every queue held is left to a node that can reach it. */
  private giveUpLater(): void {
    if (!this.deps.leases.shared || this.stopped || this.givingUp) return;
    this.givingUp = this.deps.clock.after(PAUSED_RELEASE_MS, () => {
      this.givingUp = null;
      if (this.stopped || this.deps.backend.health().state === 'ok') return;
      const held = [...this.workers.values()].filter((w) => this.deps.leases.holds(w.queue));
      if (held.length > 0) this.deps.logger.warn({ queues: held.length }, 'the store is unreachable from this node: its queues are given up for nodes that can reach it');
      for (const w of held) this.giveUp(w, 'unreachable');
    });
  }

  /**
   * Stops working the queue and gives its lease up. Idle, or for balance: once its call and settlement
   * are done. For a store out of reach: once its call to the recipient (if one is out) is answered, not
   * waiting for a store call that may never be answered (calls answered and not yet recorded, at most 2 × callsPastSettlement,
   * are made again by the next holder, as after a crash).
   * The other nodes are told to take it now unless it went idle (the next arrival claims it).
   */
  private giveUp(w: QueueWorker, why: 'idle' | 'unreachable' | 'balance'): void {
    const k = key(w.queue);
    this.idleSince.get(k)?.();
    this.idleSince.delete(k);
    this.paused.delete(w);
    if (this.workers.get(k) === w) this.workers.delete(k);
    const stopped = w.stop().catch((err: unknown) => this.deps.logger.error({ err, queue: w.queue }, 'a queue worker did not stop cleanly'));
    // Given up for the store, once its call to the recipient (if any) is answered: released while that call
    // was out, the queue's next holder called beside it. Not its store calls, which may never be answered.
    const quiet = why === 'unreachable' ? w.quiet().then((owed) => this.owedLost(w, owed)) : stopped;
    const released = quiet.then(() => this.deps.leases.release(w.queue, { handOver: why !== 'idle', balance: why === 'balance' }));
    // Gone once its lease is released and its worker has stopped (given up for the store, the lease goes
    // first, and the worker may still wait for a store call): no second worker here before both.
    const gone = Promise.all([released, stopped]).then(() => {});
    const leaving: Leaving = { why, arrived: false, gone };
    this.leaving.set(k, leaving);
    void gone.finally(() => {
      if (this.leaving.get(k) === leaving) this.leaving.delete(k);
      // Something arrived while the lease was going: claim it again (idle), or wake its new holder.
      if (leaving.arrived) this.claim(w.queue, true);
    });
  }

  /** Said when a worker given up for the store leaves answered calls unrecorded: its next holder sends them again. */
  private owedLost(w: QueueWorker, owed: number): void {
    const acked = w.status().ackedSeq;
    if (owed > acked) this.deps.logger.warn({ queue: w.queue, ackedSeq: acked, answeredUpTo: owed }, 'queue given up with answered calls not yet recorded (the store is out of reach): its next holder sends them again, at the same positions');
  }

  /** An operator resumes a queue halted by a permanent store error (after repairing the cause). */
  resume(queue: QueueRef): boolean {
    const w = this.workers.get(key(queue));
    if (!w || w.state !== 'halted') return false;
    w.resume();
    return true;
  }

  /**
   * Every queue this process works, and how it stands (admin API, alarms, metrics). Not a worker stopped
   * when its lease was lost or ended: it is kept only until a claim here waits for its last call, and
   * another node works the queue, with a failure record of its own. Listed, it showed the queue as worked
   * here ('stopped', its ackedSeq and failures of then) for as long as this node did not claim it again,
   * and kept webhook-failing raised here, never resolved, whatever the new holder's calls did.
   */
  status(): WorkerStatus[] {
    return [...this.workers.values()].filter((w) => w.state !== 'stopped').map((w) => w.status());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.deps.leases.willTake(false);
    this.deps.share?.stop();
    this.givingUp?.();
    for (const cancel of this.timers.splice(0)) cancel();
    for (const cancel of this.idleSince.values()) cancel();
    this.idleSince.clear();
    // Queues being handed over finish their call first too: the leases are released after this (when the
    // node closes them), and another node may start on a queue at once. Those given up for the store have
    // their lease released once their call is answered (their worker may wait for a store call that never answers).
    const handingOver = [...this.leaving.values()].filter((l) => l.why !== 'unreachable').map((l) => l.gone.catch(() => {}));
    await Promise.all([...[...this.workers.values()].map((w) => w.stop()), ...handingOver]);
  }

  private worker(q: QueueRef): QueueWorker {
    let w = this.workers.get(key(q));
    if (!w || w.state === 'stopped') {
      w = new QueueWorker({ recipientDipId: q.recipientDipId, channel: q.channel }, this.workerDeps);
      this.workers.set(key(q), w);
    }
    // Busy again: it keeps its lease.
    this.idleSince.get(key(q))?.();
    this.idleSince.delete(key(q));
    return w;
  }

  private resumePaused(): void {
    const paused = [...this.paused];
    this.paused.clear();
    for (const w of paused) w.resume();
  }
}
