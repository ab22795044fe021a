import type { QueueLeases } from '../ports/leases.js';
import type { QueueRef } from '../ports/message-log.js';

/**
 * Queue ownership between the processes of one embedded DIP, fixed for the processes' lifetime: the main
 * process works the queues consumed in process (the MPAN feed, which writes the lookup); every other
 * queue belongs to one delivery process, by hash. Nothing expires and nothing is taken over: a delivery
 * process that dies is restarted by the main process and resumes its own queues from their settled
 * positions. Delivery's existing lease logic does the routing: a queue this process does not hold is
 * "woken" at its holder.
 */
abstract class FixedLeases implements QueueLeases {
  readonly shared = false;
  readonly claimEveryMs = null;
  abstract holds(queue: QueueRef): boolean;
  async acquire(queue: QueueRef): Promise<boolean> {
    return this.holds(queue);
  }
  async release(): Promise<void> {}
  /** Fixed by hash for the processes' lifetime: nothing to even out. */
  surplus(): number {
    return 0;
  }
  willTake(): void {}
  abstract wake(queue: QueueRef): void;
  onWake(_listener: (queue: QueueRef) => void): void {}
  onLost(): void {}
  async close(): Promise<void> {}
}

/** The main process's view: it holds the in-process queues and wakes the delivery process that holds each other one. */
export class MainProcessLeases extends FixedLeases {
  constructor(
    private readonly local: (queue: QueueRef) => boolean,
    private readonly wakeWorker: (queue: QueueRef) => void,
  ) {
    super();
  }
  holds(queue: QueueRef): boolean {
    return this.local(queue);
  }
  wake(queue: QueueRef): void {
    this.wakeWorker(queue);
  }
}

/** A delivery process's view: it holds its share of the other queues and is woken by the main process. */
export class DeliveryProcessLeases extends FixedLeases {
  private listener: (queue: QueueRef) => void = () => {};
  constructor(private readonly mine: (queue: QueueRef) => boolean) {
    super();
  }
  holds(queue: QueueRef): boolean {
    return this.mine(queue);
  }
  /** Only the main process appends, so only it wakes anyone. */
  wake(): void {}
  override onWake(listener: (queue: QueueRef) => void): void {
    this.listener = listener;
  }
  /** The main process says something arrived for a queue. */
  woken(queue: QueueRef): void {
    this.listener(queue);
  }
}
