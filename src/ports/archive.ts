import type { SecurityPattern } from '../domain/channel.js';
import type { QueueRef } from './queue-ref.js';

export interface ArchivedMessage {
  id: number;
  /** The message's position in the queue the query named: the cursor for the next page. */
  seq: number;
  transactionId: string;
  channel: string;
  eventCode: string;
  senderDipId: string;
  senderRole: string;
  correlationId: string | null;
  receivedAt: number;
  /** The outbound copy as stored, opened; empty when it could not be (`unreadable`). */
  outbound: string;
  /**
   * Why the stored copy could not be opened (a damaged or swapped row, one sealed with a data key not held):
   * the one row is skipped and counted by its reader (a replay page), not a failure of every row read with it.
   */
  unreadable?: string;
  /**
   * Set with `unreadable` when the row was sealed under a data key this process has not loaded (yet): the
   * row may be sound and open after the key ring is read again, so a requeue job waits for it a while
   * before it skips it for good.
   */
  keyNotLoaded?: true;
  /** The capacity its entry in the queue was routed in (QueueEntry.capacity): what the recipient's copy is made for. */
  capacity: string | null;
  /** The pattern it was accepted under (QueueEntry.securityPattern). */
  securityPattern: SecurityPattern | null;
}

export interface ArchiveQuery {
  recipientDipId: string;
  channel: string;
  fromMs?: number;
  toMs?: number;
  eventCode?: string;
  mpan?: string;
  transactionIds?: string[];
  /** Only messages after this queue position (paging: the last `seq` of the previous page). */
  afterSeq?: number;
  /** Only messages up to this queue position. */
  upToSeq?: number;
  limit: number;
}

/** Original messages about one MPAN on some channels that one participant sent or received (the DIP Replay Service). */
export interface MpanArchiveQuery {
  /** A plain MPAN core; engines compare it as stored (a keyed hash with encryption at rest). */
  mpan: string;
  /**
   * Only messages this participant may view (spec 5.5.11): those it sent, and those with an entry in one of
   * its queues, the same notion findArchived's replay applies to one queue (src/adapters/archive-sql.ts).
   */
  party: string;
  channels: readonly string[];
  /** Only messages after this archive id (paging: the last `id` of the previous page); 0 for the first. */
  afterId: number;
  limit: number;
}

/**
 * An archived message found by MPAN: no queue position, since no one recipient's queue was asked. Its
 * outbound copy is null when the stored row cannot be opened (a damaged row, or sealed with a data key
 * this DIP no longer holds): one such row is reported, not a failure of the whole page.
 */
export type MpanArchivedMessage = Omit<ArchivedMessage, 'seq' | 'outbound' | 'capacity' | 'securityPattern'> & { outbound: string | null };

export interface TransactionParties {
  senderDipId: string;
  channel: string;
  recipients: string[];
  /** The sender's own reference and the workflow it belongs to, so a status message can name them. */
  senderUniqueReference: string | null;
  correlationId: string | null;
  /**
   * For a replayed or requeued copy (an R- transaction): the transaction ID of the original it copies,
   * the one its sender knows. The reference and correlation ID above are then the original's, and
   * `recipients` the copy's own recipient. Null for any other transaction.
   */
  replayOf: string | null;
}

/**
 * The request a transaction arrived in, as its sender sent it: the evidence against repudiation (spec
 * 5.2.2). The body is the whole batch the transaction was part of, byte for byte as signed.
 */
export interface ReceivedRequest {
  channel: string;
  senderDipId: string;
  receivedAt: number;
  body: Buffer;
  /**
   * What the DIP stored of the signature: the X-DIP-* headers as received and the URL they were verified
   * against (null for requests stored before the URL was kept). Empty headers: the DIP made the request
   * itself (a status message, a publication notice), nobody signed it.
   */
  signature: { url: string | null; headers: Record<string, string | string[]> };
}

/** What a delivery attempt's `url` holds when the recipient pulled and acknowledged the messages (no call was made). */
export const PULL_ACKNOWLEDGED = 'pull';

export interface DeliveryAttempt {
  /**
   * Given when the attempt is made (src/domain/attempt-id.ts), so that every write of its record carries
   * it: the store keeps one record per ID, and a record written again (a retry after a write whose answer
   * was lost) is not stored twice.
   */
  attemptId: string;
  queue: QueueRef;
  firstSeq: number;
  lastSeq: number;
  url: string;
  startedAt: number;
  latencyMs: number;
  status: number | null;
  verdict: 'delivered' | 'retry' | 'rejected';
  error: string | null;
}

/** A delivery attempt as the journal gives it back: records written before attempt IDs (2026-12-03) have none. */
export type RecordedAttempt = Omit<DeliveryAttempt, 'attemptId'> & { attemptId: string | null };

/**
 * The archive and the delivery journal: what replay, audit and reports query, and what retention purges.
 * Nothing here is on the 201's critical path.
 */
export interface Archive {
  /**
   * Original messages in the recipient's queue that match, in queue order. Copies made by an earlier
   * requeue are not matched again, and a message with more than one entry in the queue (a requeued dead
   * letter) is matched once, at its first: a replay returns what was sent, once.
   */
  findArchived(query: ArchiveQuery): Promise<ArchivedMessage[]>;
  /**
   * Original messages (no replayed or requeued copies) about the MPAN on the channels that `party` sent or
   * was queued to receive, in archive order (by id). Not on the 201's path: the DIP Replay Service (IF-015) reads
   * it. No index holds the MPAN, so it reads the channels' archived rows; see README "Consumption replay".
   */
  findForMpan(query: MpanArchiveQuery): Promise<MpanArchivedMessage[]>;
  /** How many messages findArchived would find without a limit (a requeue job's total), without reading them. */
  countArchived(query: Omit<ArchiveQuery, 'limit'>): Promise<number>;
  /** Who sent a transaction and who it was addressed to: for routing status messages back. */
  transactionParties(transactionId: string): Promise<TransactionParties | undefined>;
  /** The request the transaction arrived in (src/pipeline/evidence.ts), or undefined when it is not archived. */
  receivedRequest(transactionId: string): Promise<ReceivedRequest | undefined>;
  /** Writes the attempt's record; a record whose attemptId is already stored is left as it is (not an error). */
  recordAttempt(attempt: DeliveryAttempt): Promise<void>;
  /** The queue's delivery attempts, newest first. */
  attempts(queue: QueueRef, limit: number): Promise<RecordedAttempt[]>;
  /** Channels that have anything archived. */
  archivedChannels(): Promise<string[]>;
  /**
   * Deletes up to `limit` archived messages of the channel received before `beforeMs` that no queue still
   * waits to deliver, with their queue positions, dead letters and raw batches. Returns how many went.
   */
  purgeArchive(channel: string, beforeMs: number, limit: number): Promise<number>;
  /**
   * Drops whole days received before `beforeMs` at once, where the engine keeps the archive in day
   * partitions (PostgreSQL), skipping any day a queue still waits on; returns about how many messages
   * went. Cost-flat at any volume. Engines without partitions purge row by row (purgeArchive) and return 0.
   */
  purgeDays(beforeMs: number): Promise<number>;
  /** Deletes up to `limit` delivery attempts older than `beforeMs`. */
  purgeAttempts(beforeMs: number, limit: number): Promise<number>;
}
