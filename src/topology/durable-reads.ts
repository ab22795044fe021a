import { queueKey as key } from '../ports/queue-ref.js';
import type { MessageLog, QueueEntry, QueueRef, SettleOutcome, Settlement } from '../ports/message-log.js';


/** What a delivery process asks of the main process (src/topology/delivery-process.ts sends it over IPC). */
export interface WriterCalls {
  /** The queue's highest durable position now. */
  cap(queue: QueueRef): Promise<number>;
  /** Settles the queue; resolves once that is durable, to what it did (MessageLog.settle). */
  settle(queue: QueueRef, settlement: Settlement): Promise<SettleOutcome>;
}

/**
 * The log as a delivery process sees it: its own connection reads the file, which also shows what the
 * main process committed but has not yet synced; so reads stop at the durable position the main process
 * last reported, and settlements go to the main process, the only writer.
 *
 * Each wake-up carries the queue's durable position, and the main process wakes a queue after every
 * append that became durable, unless its recipient pulls (no webhook: nothing here to call; see
 * Delivery.actsOnArrival), and again when a webhook is set for it: so a queue drained up to its last
 * reported position waits for the next wake-up rather than asking (a round trip through the busiest event
 * loop per drained batch). It asks only when it may have missed one: the first read of a queue in this
 * process, and each queue a sweep finds pending (at start, periodically, after a resume), so nothing
 * waits on a lost wake-up longer than a sweep.
 */
export class DurableReads implements Pick<MessageLog, 'readQueue' | 'queueState' | 'pendingQueues' | 'settle'> {
  private readonly caps = new Map<string, number>();
  /** Queues whose next drained read asks the main process for their position. */
  private readonly unsure = new Set<string>();

  constructor(
    private readonly local: Pick<MessageLog, 'readQueue' | 'queueState' | 'pendingQueues'>,
    private readonly writer: WriterCalls,
  ) {}

  /** A durable position reported by the main process (they only grow). */
  learn(q: QueueRef, cap: number): void {
    if (cap > (this.caps.get(key(q)) ?? 0)) this.caps.set(key(q), cap);
  }

  async readQueue(q: QueueRef, afterSeq: number, limit: number, maxBytes: number): Promise<QueueEntry[]> {
    const k = key(q);
    let cap = this.caps.get(k) ?? 0;
    if (cap <= afterSeq) {
      if (this.caps.has(k) && !this.unsure.has(k)) return [];
      this.unsure.delete(k);
      this.learn(q, await this.writer.cap(q));
      cap = this.caps.get(key(q)) ?? 0;
      if (cap <= afterSeq) return [];
    }
    // Positions are contiguous above the settled one, so the first (cap - afterSeq) entries are all durable;
    // the filter guards that assumption.
    const entries = await this.local.readQueue(q, afterSeq, Math.min(limit, cap - afterSeq), maxBytes);
    return entries.filter((e) => e.seq <= cap);
  }

  queueState(q: QueueRef): ReturnType<MessageLog['queueState']> {
    return this.local.queueState(q);
  }

  async pendingQueues(): ReturnType<MessageLog['pendingQueues']> {
    const pending = await this.local.pendingQueues();
    for (const q of pending) this.unsure.add(key(q));
    return pending;
  }

  settle(queue: QueueRef, settlement: Settlement): Promise<SettleOutcome> {
    return this.writer.settle(queue, settlement);
  }
}
