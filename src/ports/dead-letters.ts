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
  limit: number;
}

/** The dead-letter queue (recorded by MessageLog.settle): what the operator browses, requeues and discards. */
export interface DeadLetters {
  deadLetters(query: DeadLetterQuery): Promise<DeadLetter[]>;
  /** Re-appends dead letters (same message, same transaction ID) to the tail of their queue; returns how many. */
  requeueDeadLetters(queue: QueueRef, seqs: number[]): Promise<number>;
  discardDeadLetters(queue: QueueRef, seqs: number[]): Promise<number>;
}
