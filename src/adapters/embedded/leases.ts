import type { QueueLeases } from '../../ports/leases.js';

/** One process works every queue: every lease is granted, nothing is shared, nothing expires. */
export class SingleProcessLeases implements QueueLeases {
  readonly shared = false;
  readonly claimEveryMs = null;
  async acquire(): Promise<boolean> {
    return true;
  }
  holds(): boolean {
    return true;
  }
  async release(): Promise<void> {}
  surplus(): number {
    return 0;
  }
  willTake(): void {}
  /** The holder is this process, which was told already (Delivery kicks what it holds). */
  wake(): void {}
  onWake(): void {}
  onLost(): void {}
  async close(): Promise<void> {}
}
