import type { Appointment, AppointmentChange } from '../domain/mpan-lookup.js';
import type { Participant } from '../domain/participant.js';

/** A recipient's FIFO queue: one per (recipient DIP ID, channel), as webhooks are registered per channel. */
export interface QueueRef {
  recipientDipId: string;
  channel: string;
}

/** One accepted message, ready to be made durable: the archived inbound item and its outbound copy. */
export interface AcceptedMessage {
  transactionId: string;
  channel: string;
  eventCode: string;
  senderDipId: string;
  senderRole: string;
  /** Null for what the DIP itself originates (status messages). */
  senderUniqueReference: string | null;
  correlationId: string | null;
  mpan: string | null;
  receivedAt: number;
  /** The outbound copy (A0/D0 stamped), serialised once: exactly the bytes recipients get. */
  outbound: string;
  recipients: string[];
}

/** A whole POST: accepted or refused together. The raw request is archived for non-repudiation. */
export interface AcceptedBatch {
  channel: string;
  senderDipId: string;
  receivedAt: number;
  rawRequest: Buffer;
  signatureHeaders: string;
  messages: AcceptedMessage[];
}

export type AppendOutcome = { ok: true } | { ok: false; duplicates: string[] };

export interface QueueEntry {
  seq: number;
  messageId: number;
  transactionId: string;
  receivedAt: number;
  outbound: string;
}

export interface QueueState {
  /** Highest sequence number delivered (or otherwise settled: rejected). 0 when none. */
  ackedSeq: number;
  /** Highest sequence number enqueued. */
  headSeq: number;
}

export interface DeliveryAttempt {
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

export interface TransactionParties {
  senderDipId: string;
  channel: string;
  recipients: string[];
  /** The sender's own reference and the workflow it belongs to, so a status message can name them. */
  senderUniqueReference: string | null;
  correlationId: string | null;
}

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

export interface Webhook {
  recipientDipId: string;
  channel: string;
  url: string;
  maxMessageCount: number;
  maxPayloadKb: number;
}

export interface ArchivedMessage {
  id: number;
  transactionId: string;
  channel: string;
  eventCode: string;
  senderDipId: string;
  senderRole: string;
  correlationId: string | null;
  receivedAt: number;
  outbound: string;
}

export interface ArchiveQuery {
  recipientDipId: string;
  channel: string;
  fromMs?: number;
  toMs?: number;
  eventCode?: string;
  mpan?: string;
  transactionIds?: string[];
  limit: number;
}

/** A replayed or requeued copy: a new transaction wrapper over an archived message. */
export interface ReplayCopy {
  originalId: number;
  transactionId: string;
  receivedAt: number;
  outbound: string;
}

/**
 * The message log: what must be durable before the DIP answers 201, and the per-recipient queues
 * that are cursors over it. Shaped so a JetStream stream + PostgreSQL archive can implement it.
 */
export interface MessageLog {
  /** Durably appends a batch (all or nothing). Refuses it whole if any sender unique reference was seen before. */
  append(batch: AcceptedBatch): Promise<AppendOutcome>;
  /** Entries after `afterSeq`, oldest first, at most `limit` entries and about `maxBytes` bytes (at least one). */
  readQueue(queue: QueueRef, afterSeq: number, limit: number, maxBytes: number): Promise<QueueEntry[]>;
  queueState(queue: QueueRef): Promise<QueueState>;
  /** Every queue that holds undelivered entries, for resuming delivery after a restart. */
  pendingQueues(): Promise<QueueRef[]>;
  /** Marks entries up to `seq` settled. Durable before it resolves. */
  ack(queue: QueueRef, seq: number): Promise<void>;
  recordAttempt(attempt: DeliveryAttempt): Promise<void>;
  /**
   * Sets a message aside on the dead-letter queue: refused for good by the recipient ('rejected') or not
   * delivered within its channel's staleness limit ('stale'). The caller then acknowledges past it.
   */
  recordDeadLetter(queue: QueueRef, entry: QueueEntry, reason: DeadLetterReason, status: number | null, detail: string): Promise<void>;
  deadLetters(query: DeadLetterQuery): Promise<DeadLetter[]>;
  /** Re-appends dead letters (same message, same transaction ID) to the tail of their queue; returns how many. */
  requeueDeadLetters(queue: QueueRef, seqs: number[]): Promise<number>;
  discardDeadLetters(queue: QueueRef, seqs: number[]): Promise<number>;
  /** Who sent a transaction and who it was addressed to: for routing status messages back. */
  transactionParties(transactionId: string): Promise<TransactionParties | undefined>;
  findArchived(query: ArchiveQuery): Promise<ArchivedMessage[]>;
  /** Archives replay copies; when `enqueueFor` is given, also appends them to that queue (requeue). */
  appendReplayCopies(copies: ReplayCopy[], enqueueFor?: QueueRef): Promise<void>;
  attempts(queue: QueueRef, limit: number): Promise<DeliveryAttempt[]>;
  /**
   * Deletes up to `limit` archived messages of the channel received before `beforeMs` that no queue still
   * waits to deliver, with their queue positions, dead letters and raw batches. Returns how many went.
   */
  purgeArchive(channel: string, beforeMs: number, limit: number): Promise<number>;
  /** Deletes up to `limit` delivery attempts older than `beforeMs`. */
  purgeAttempts(beforeMs: number, limit: number): Promise<number>;
  /** Channels that have anything archived. */
  archivedChannels(): Promise<string[]>;
  close(): Promise<void>;
}

export interface ParticipantRegistry {
  upsertParticipant(p: Participant, apiKeyHash: string | null): Promise<void>;
  participants(): Promise<Array<{ participant: Participant; apiKeyHash: string }>>;
  /** Changes whenever a participant or webhook changes, in this process or another (the CLI). */
  registryVersion(): Promise<number>;
}

export interface WebhookRegistry {
  putWebhook(w: Webhook): Promise<void>;
  deleteWebhook(recipientDipId: string, channel: string): Promise<boolean>;
  webhooks(): Promise<Webhook[]>;
}

/** The durable side of the MPAN address lookup (the pipeline caches over it). */
export interface MpanStore {
  /** Every slot's history for the MPAN, oldest first. */
  mpanHistory(mpan: string): Promise<Appointment[]>;
  /** Folds the changes, in order, into the histories they touch: durably, all or nothing. */
  applyAppointments(changes: AppointmentChange[]): Promise<void>;
}

export interface Store extends MessageLog, ParticipantRegistry, WebhookRegistry, MpanStore {}
