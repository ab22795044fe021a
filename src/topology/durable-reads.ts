import type { MessageLog, QueueEntry, QueueRef, Settlement } from '../ports/message-log.js';

const key = (q: QueueRef): string => `${q.recipientDipId}\u0000${q.channel}`;

/** What a delivery process asks of the main process (src/topology/delivery-process.ts sends it over IPC). */
export interface WriterCalls {
  /** The queue's highest durable position now. */
  cap(queue: QueueRef): Promise<number>;
  /** Settles the queue; resolves once that is durable. */
  settle(queue: QueueRef, settlement: Settlement): Promise<void>;
}

/**
 * The log as a delivery process sees it: its own connection reads the file, which also shows what the
 * main process committed but has not yet synced; so reads stop at the durable position the main process
 * last reported (each wake-up carries one; a queue that looks drained asks for the current one), and
 * settlements go to the main process, the only writer.
 */
export class DurableReads implements Pick<MessageLog, 'readQueue' | 'queueState' | 'pendingQueues' | 'settle'> {
  private readonly caps = new Map<string, number>();

  constructor(
    private readonly local: Pick<MessageLog, 'readQueue' | 'queueState' | 'pendingQueues'>,
    private readonly writer: WriterCalls,
  ) {}

  /** A durable position reported by the main process (they only grow). */
  learn(q: QueueRef, cap: number): void {
    if (cap > (this.caps.get(key(q)) ?? 0)) this.caps.set(key(q), cap);
  }

  async readQueue(q: QueueRef, afterSeq: number, limit: number, maxBytes: number): Promise<QueueEntry[]> {
    let cap = this.caps.get(key(q)) ?? 0;
    if (cap <= afterSeq) {
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

  pendingQueues(): ReturnType<MessageLog['pendingQueues']> {
    return this.local.pendingQueues();
  }

  settle(queue: QueueRef, settlement: Settlement): Promise<void> {
    return this.writer.settle(queue, settlement);
  }
}
