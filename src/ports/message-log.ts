import type { SecurityPattern } from '../domain/channel.js';
import type { DeadLetterReason } from './dead-letters.js';
import type { QueueRef } from './queue-ref.js';
import type { JobProgress } from './requeue-jobs.js';

export type { QueueRef };

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
  /**
   * Per recipient, the capacity routing reached it in (src/domain/channel.ts capacityCode), kept with its
   * queue entry: its copy is obfuscated for that. A recipient without one (what the DIP sends itself)
   * gets the copy for all its receiving roles.
   */
  capacities?: Readonly<Record<string, string>>;
  /**
   * The security pattern its channel ran when it was accepted (spec 5.2.2), kept with it: no copy of it is
   * made clearer than that (src/pipeline/recipient-copy.ts copyPattern), whatever the channel runs when the
   * copy is made. What the DIP makes itself records one too (src/pipeline/made-batch.ts). Absent: not known
   * (stored as null, as rows from before it was recorded).
   */
  securityPattern?: SecurityPattern;
}

/** A whole POST: accepted or refused together. The raw request is archived for non-repudiation. */
export interface AcceptedBatch {
  channel: string;
  senderDipId: string;
  receivedAt: number;
  rawRequest: Buffer;
  /**
   * JSON of the signature as received: `{ url, headers }` (the URL verified against, the X-DIP-* headers);
   * `{}` for a request the DIP made itself. Read back by src/security/seal-batch.ts's openReceivedRequest.
   */
  signatureHeaders: string;
  messages: AcceptedMessage[];
  /**
   * The batch's stored forms, made beforehand (src/security/seal-batch.ts) by whoever holds the same
   * sealer, possibly on another thread: the store then writes them as they are instead of compressing
   * and sealing inside its write. Absent, the store makes them itself.
   */
  sealed?: SealedBatch;
}

/**
 * What the store archives of a batch, exactly as it writes it. Plain data (Buffers and strings), so a
 * batch sealed on a worker thread crosses postMessage whole.
 */
export interface SealedBatch {
  /** The raw request, compressed and sealed (the sealer's `compress`: open() gives back its bytes as signed). */
  raw: Buffer | string;
  /** Per message, in order: the outbound copy sealed (a string when nothing seals at rest). */
  outbound: Array<Buffer | string>;
  /** Per message, in order: the MPAN as the archive index keeps it (a keyed hash when sealing), or null. */
  mpan: Array<string | null>;
}

/**
 * Accepted (durable), or refused whole for the sender references it repeats. `originals`: for those
 * stored before, the transaction ID each was accepted under (a sender retrying after a lost 201 learns
 * it); none for a reference repeated within the batch itself, or stored without one (an import).
 */
export type AppendOutcome = { ok: true } | { ok: false; duplicates: string[]; originals?: Record<string, string> };

export interface QueueEntry {
  seq: number;
  messageId: number;
  transactionId: string;
  /** When the entry's staleness clock started: receipt, or the requeue of a dead letter. */
  receivedAt: number;
  outbound: string;
  /**
   * The capacity the entry was routed in (src/domain/channel.ts capacityCode); null for entries queued
   * before capacities were recorded (their copies keep the rule of the time: all receiving roles).
   */
  capacity: string | null;
  /** The pattern its message was accepted under (AcceptedMessage.securityPattern); null: stored before it was recorded. */
  securityPattern: SecurityPattern | null;
  /**
   * Why the stored copy could not be opened (a damaged row, or one sealed with a data key no longer held);
   * `outbound` is then empty. No retry opens it: the queue worker dead-letters it (QueueWorker.passUnreadable).
   */
  unreadable?: string;
}

export interface QueueState {
  /** Highest sequence number settled (delivered, rejected or dead-lettered). 0 when none. */
  ackedSeq: number;
  /** Highest sequence number enqueued. */
  headSeq: number;
  /**
   * Highest sequence number a pull has handed out (0 when none; see markPulled). A pull's acknowledgement
   * may not pass max(pulledSeq, ackedSeq): what no pull handed out was never read. It is kept in the store,
   * not in a node's memory, because a pull and its acknowledgement may reach different nodes.
   */
  pulledSeq: number;
}

/** What queueBacklog reads of a queue. */
export interface QueueBacklogState {
  ackedSeq: number;
  headSeq: number;
  /**
   * When the oldest entry past ackedSeq was received (or requeued), epoch ms; null when none waits. When that
   * entry's message is missing (`damage`), the oldest after it whose message is there (null if none is).
   */
  oldestReceivedAt: number | null;
  /**
   * Null, or the damage found at the head of the queue: its oldest unsettled entry refers to a message the
   * store no longer has (purging removes settled entries with their messages, so only damage does this),
   * in the words readQueue's error uses (missingMessage). Delivery would halt on it; a queue no worker
   * reads (a pull recipient's, another node's) must still show it rather than skip it.
   */
  damage: string | null;
}

/** What a queue entry whose message is missing is called, wherever the store finds one (a `damaged database: …` error or a backlog's damage). */
export const missingMessage = (queue: QueueRef, seq: number, messageId: number): string =>
  `queue ${queue.recipientDipId}/${queue.channel} position ${seq} refers to message ${messageId}, which is missing`;

/**
 * A backlog's damage (QueueBacklogState.damage) from the oldest unsettled entry as an adapter read it: its
 * position and message id (null: none waits) and the message's id as found (null: missing).
 */
export const headDamage = (queue: QueueRef, first: { firstSeq: number | null; firstMessage: number | null; found: number | null } | undefined): string | null =>
  first?.firstSeq != null && first.firstMessage != null && first.found == null ? `damaged database: ${missingMessage(queue, first.firstSeq, first.firstMessage)}` : null;

/** A message set aside while settling its queue. */
export interface DeadLetterRecord {
  seq: number;
  messageId: number;
  reason: DeadLetterReason;
  /** The recipient's HTTP status when it refused the message. */
  status: number | null;
  detail: string;
}

/**
 * Moving a queue's position, with what that decides, as ONE atomic step: after a crash either all of it
 * happened or none did, so a dead letter is never raised twice nor lost, and its sender's status message
 * exists exactly when the dead letter does.
 */
export interface Settlement {
  /**
   * Every entry up to and including this position is settled. A settlement the recipient itself answered
   * for every position of (toldRecipient: a delivery, a webhook's or the DIP's own consumer's, and the
   * refusals a webhook's answer named) moves the recipient's acknowledged position with it (see
   * acknowledge), so a pull's acknowledgement after it does not name what was set aside before it: a
   * recipient that turns from webhook to pull is not told of its own refusals again. One that sets aside
   * what the recipient never answered for (gone stale, a copy that could not be made) leaves it: the
   * recipient's next acknowledgement names those.
   */
  upTo: number;
  deadLetters?: DeadLetterRecord[];
  /** Status messages for the senders of the dead letters, appended in the same step. */
  notices?: AcceptedBatch;
}

/**
 * What settle did. 'superseded': the settlement sets aside a position the queue had already passed when it
 * was written (a pull's acknowledgement landed after the caller read the position and picked the entries:
 * they are delivered), and NOTHING of it was written: no dead letter, no notice, the position unmoved. The
 * caller reads the position again and decides afresh from there. 'settled': written now, or found written
 * already (sameSettlement: the settlement recorded again after a COMMIT whose answer was lost, which had
 * committed), so the caller raises what it decided exactly once, either way.
 */
export type SettleOutcome = 'settled' | 'superseded';

/** Whether `settlement` sets aside a position a queue settled up to `ackedSeq` has passed (its settle is then 'superseded', unless sameSettlement). */
export const settingAsidePassed = (settlement: Settlement, ackedSeq: number): boolean => (settlement.deadLetters ?? []).some((d) => d.seq <= ackedSeq);

/**
 * Whether the dead letters found at a settlement's positions (seq → message id, as the store holds them)
 * are the settlement's own: every one it sets aside is there, of the same message. Settlements are atomic
 * and a position is set aside once, so that is this settlement, committed before (its COMMIT unanswered,
 * recorded again): settled, not superseded, or its events and notices' wake-up were lost.
 */
export const sameSettlement = (settlement: Settlement, found: ReadonlyMap<number, number>): boolean => {
  const dead = settlement.deadLetters ?? [];
  return dead.length > 0 && dead.every((d) => found.get(d.seq) === d.messageId);
};

/**
 * Whether the recipient itself answered for every position a settlement settles (see Settlement.upTo): a
 * delivery, or a webhook answer's refusals, each set aside with the recipient's HTTP status. Not for what
 * the DIP set aside unanswered (status null: gone stale, no copy could be made).
 */
export const toldRecipient = (settlement: Settlement): boolean => (settlement.deadLetters ?? []).every((d) => d.status !== null);

/** A replayed or requeued copy: a new transaction wrapper over an archived message. */
export interface ReplayCopy {
  originalId: number;
  transactionId: string;
  receivedAt: number;
  outbound: string;
  /**
   * Whom the copy was made for (the replay's or requeue's recipient): the one participant that received
   * it, so the only one that may name it in a status message (Archive.transactionParties).
   */
  recipientDipId: string;
  /** The capacity the original reached that recipient in (its queue entry's), kept with the requeued entry. */
  capacity: string | null;
}

/**
 * The road's durable core: what must be on disk (or on a quorum) before the DIP answers 201, and the
 * per-recipient queues over it. Every write is durable before its promise resolves, and no entry is
 * readable before the write that made it is durable.
 */
export interface MessageLog {
  /** Appends a batch, all or nothing. Refuses it whole if any sender unique reference was seen before. */
  append(batch: AcceptedBatch): Promise<AppendOutcome>;
  /** Durable entries after `afterSeq`, oldest first, at most `limit` entries and about `maxBytes` bytes (at least one). */
  readQueue(queue: QueueRef, afterSeq: number, limit: number, maxBytes: number): Promise<QueueEntry[]>;
  queueState(queue: QueueRef): Promise<QueueState>;
  /**
   * A queue's positions and when its oldest unsettled entry was received (a requeued dead letter: its
   * requeue), in one reading of the store: what GET /admin/queues, the queue metrics and the queue alarms
   * show of every queue, each time. Asking queueState and then readQueue for the oldest took two trips per
   * queue, read (and decrypted) that message whole for one timestamp, and could pair positions with an
   * entry from a moment later.
   */
  queueBacklog(queue: QueueRef): Promise<QueueBacklogState>;
  /** Every queue that holds unsettled entries, for resuming delivery after a restart. */
  pendingQueues(): Promise<QueueRef[]>;
  /**
   * Settles a queue up to a position (see Settlement). Moving backwards is a no-op. One that sets aside a
   * position at or below the queue's settled position as the transaction finds it writes nothing: a message
   * is never both acknowledged and dead-lettered, nor its sender told "not delivered" of a delivered one.
   * The same settlement recorded again (its COMMIT's answer lost, it had committed) writes nothing more and
   * answers 'settled' (sameSettlement).
   */
  settle(queue: QueueRef, settlement: Settlement): Promise<SettleOutcome>;
  /**
   * A pull's acknowledgement of `sequence`, as ONE atomic step on the queue's own row: settles the queue up
   * to it (as settle, setting nothing aside; behind the settled position, nothing moves) and records it as
   * the recipient's acknowledged position. Resolves to where the positions its answer accounts for begin
   * (those after it, up to `sequence`: the set-asides among them are named in the answer), so that each
   * set-aside is named by exactly one acknowledgement: the acknowledged position before this one (a webhook
   * delivery counts as one, its answer's refusals with it: toldRecipient); for an acknowledgement of the position acknowledged last (a retry after a lost
   * answer, another puller's same range), the same as that one's; null for one behind it, whose positions a
   * later acknowledgement accounted for, or when the store has no such queue.
   */
  acknowledge(queue: QueueRef, sequence: number): Promise<number | null>;
  /**
   * Records, durably, that a pull handed out the queue's entries up to `upTo` (QueueState.pulledSeq):
   * the larger of it and what was recorded before, so pulls answered out of order never move it back.
   * One write per pull that hands out something new; the caller skips it otherwise.
   */
  markPulled(queue: QueueRef, upTo: number): Promise<void>;
  /**
   * Archives replay copies; when `enqueueFor` is given, also appends them to that queue (requeue), and
   * records a requeue job's progress in the same step.
   */
  appendReplayCopies(copies: ReplayCopy[], enqueueFor?: QueueRef, progress?: JobProgress): Promise<void>;
}
