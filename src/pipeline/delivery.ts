import type { Backend, BackendHealth } from '../ports/backend.js';
import type { Cancel } from '../ports/clock.js';
import type { QueueRef } from '../ports/message-log.js';
import { QueueWorker, type WorkerDeps, type WorkerStatus } from './queue-worker.js';

export type { DeadLetterEvent, DeliverySettings, LocalConsumer } from './queue-worker.js';

export interface DeliveryDeps extends WorkerDeps {
  /** Pending queues after a restart, and health changes of the store. */
  backend: Pick<Backend, 'health' | 'onHealthChange'> & { log: Pick<Backend['log'], 'pendingQueues'> };
  /** Registry changes (a webhook set or removed) may make idle or backing-off queues deliverable. */
  onRegistryChange(listener: () => void): void;
}

const key = (q: QueueRef): string => `${q.recipientDipId}\u0000${q.channel}`;

/**
 * Delivery: one QueueWorker per recipient queue, started when something arrives and after a restart;
 * a periodic sweep catches what no event announced (stale messages in queues nobody delivers). While the
 * store cannot take writes every worker pauses, and all resume when it can.
 */
export class Delivery {
  private readonly workers = new Map<string, QueueWorker>();
  private stopped = false;
  private cancelSweep: Cancel | null = null;
  private readonly paused = new Set<QueueWorker>();
  private readonly workerDeps: WorkerDeps;

  constructor(private readonly deps: DeliveryDeps) {
    const workerDeps: WorkerDeps = {
      ...deps,
      storeUnavailable: (w) => {
        this.paused.add(w);
        // The store may have recovered between the failure and now.
        if (this.deps.backend.health().state === 'ok') this.resumePaused();
      },
    };
    this.workerDeps = workerDeps;
    deps.onRegistryChange(() => {
      for (const w of this.workers.values()) w.webhookMayHaveChanged();
    });
    deps.backend.onHealthChange((h: BackendHealth) => {
      if (h.state === 'ok') this.resumePaused();
    });
  }

  /** Resumes every queue that still holds undelivered entries (after a restart), then sweeps periodically. */
  async start(): Promise<void> {
    await this.sweep();
    this.cancelSweep = this.deps.clock.every(this.deps.settings.sweepIntervalMs, () => {
      this.sweep().catch((err: unknown) => this.deps.logger.error({ err }, 'sweep failed'));
    });
  }

  /** Looks at every queue holding undelivered entries: delivers what it can, dead-letters what is stale. */
  async sweep(): Promise<void> {
    this.notify(await this.deps.backend.log.pendingQueues());
  }

  notify(queues: Iterable<QueueRef>): void {
    if (this.stopped) return;
    for (const q of queues) this.worker(q).kick();
  }

  /** An operator resumes a queue halted by a permanent store error (after repairing the cause). */
  resume(queue: QueueRef): boolean {
    const w = this.workers.get(key(queue));
    if (!w || w.state !== 'halted') return false;
    w.resume();
    return true;
  }

  /** Every queue this process has worked on, and how it stands (admin API, metrics). */
  status(): WorkerStatus[] {
    return [...this.workers.values()].map((w) => w.status());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelSweep?.();
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
  }

  private worker(q: QueueRef): QueueWorker {
    let w = this.workers.get(key(q));
    if (!w) {
      w = new QueueWorker({ recipientDipId: q.recipientDipId, channel: q.channel }, this.workerDeps);
      this.workers.set(key(q), w);
    }
    return w;
  }

  private resumePaused(): void {
    const paused = [...this.paused];
    this.paused.clear();
    for (const w of paused) w.resume();
  }
}
