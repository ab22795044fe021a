import type { QueueRef } from './queue-ref.js';

export type DeadLetterReason = 'rejected' | 'stale';

export interface DeadLetter {
  queue: QueueRef;
  seq: number;
  messageId: number;
  transactionId: string;
  senderDipId: string;
  senderUniqueReference: string | null;
  receivedAt: number;
  reason: DeadLetterReason;
  status: number | null;
  detail: string;
  at: number;
  state: 'dead' | 'requeued' | 'discarded';
}

export interface DeadLetterQuery {
  recipientDipId?: string;
  channel?: string;
  state?: DeadLetter['state'];
  /** Only these positions (of the queue the other fields name). */
  seqs?: number[];
  /** Only positions after this one (of the queue the other fields name). */
  after?: number;
  /** Only positions up to this one (of the queue the other fields name). */
  upTo?: number;
  limit: number;
}

/** The dead-letter queue (recorded by MessageLog.settle): what the operator browses, requeues and discards. */
export interface DeadLetters {
  deadLetters(query: DeadLetterQuery): Promise<DeadLetter[]>;
  /**
   * Re-appends the named dead letters still in state `dead` (same message, same transaction ID) to the
   * tail of their queue. Returns the positions requeued (ascending), or null when the store has no such
   * queue (nothing was ever enqueued for that recipient on that channel): the operator API tells an
   * unknown queue from positions that are not dead letters, and says which were not acted on.
   */
  requeueDeadLetters(queue: QueueRef, seqs: number[]): Promise<number[] | null>;
  /** Marks the named dead letters still in state `dead` discarded; the positions discarded, or null as for requeue. */
  discardDeadLetters(queue: QueueRef, seqs: number[]): Promise<number[] | null>;
}
