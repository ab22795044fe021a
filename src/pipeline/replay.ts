import { randomUUID } from 'node:crypto';
import type { DipMessage } from '../domain/message.js';
import { dipDateTime } from '../domain/time.js';
import { newTransactionId, replayCorrelationId } from '../domain/transaction-id.js';
import type { Archive, ArchivedMessage, ArchiveQuery } from '../ports/archive.js';
import type { Cancel, Clock } from '../ports/clock.js';
import { JOB_MOVED, StoreError, storeFailureKind } from '../ports/errors.js';
import type { Logger } from '../ports/logger.js';
import type { MessageLog, QueueRef, ReplayCopy } from '../ports/message-log.js';
import type { ReplayFilter, RequeueJob, RequeueJobs } from '../ports/requeue-jobs.js';
import { CopyUnmakeable, type RecipientCopies } from './recipient-copy.js';
import { bareEventCode, wireEventCode } from '../catalogue/types.js';
import type { Channel } from './channels.js';
import { STORE_RETRY_AFTER_SECONDS } from './ingest.js';
import { TEST_EVENT_CODE } from './test-message.js';

export { replayCorrelationId };

export type { ReplayFilter };

/** One answer or one background step handles at most this many messages. */
export const REPLAY_PAGE = 1000;

/**
 * A large requeue waits while the recipient's queue holds more than this many undelivered messages, so
 * live traffic is never stuck behind more than about one page of replayed copies.
 */
export const REQUEUE_PACE = 1000;
/**
 * How long a requeue job waits, at most, for a page's rows sealed under a data key this process has not
 * loaded: ten looks a second apart, far longer than reading the key ring takes. A key that is still
 * missing after that is gone (a restore without its keys): the rows are skipped, logged and counted.
 */
const KEY_WAITS = 10;
const KEY_WAIT_MS = 1000;

/** A replay or requeue refused because the recipient has spent its budget of copies (config `replayCopiesPerHour`). */
export class ReplayBudgetSpent extends Error {
  constructor(
    readonly recipientDipId: string,
    readonly perHour: number,
    readonly retryAfterMs: number,
  ) {
    super(`${recipientDipId} has replayed or requeued its budget of ${perHour.toLocaleString('en-GB')} copies an hour: every copy is archived as a message of its own, so the DIP pays them out a page at a time; retry after ${Math.ceil(retryAfterMs / 1000)} s (an operator can requeue dead letters without this limit)`);
  }
}

/**
 * Copies each recipient may still make: a token bucket per recipient that holds up to an hour's worth (at
 * least a page, so a page can always pass) and refills evenly. A replay answers its copies and archives
 * them, a requeue archives and enqueues them: each is a new message row, so without this a recipient
 * sending the same replay over and over (200 requests a second are allowed) writes a page of rows per
 * request, and the disk every participant's submissions need fills within hours. In one process; the
 * nodes of a cluster each keep their own.
 */
export class CopyBudget {
  /** One per recipient that has replayed since the start: no more than the register's participants. */
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly capacity: number;
  private readonly perMs: number;

  constructor(readonly perHour: number) {
    this.capacity = Math.max(perHour, REPLAY_PAGE);
    this.perMs = perHour / 3_600_000;
  }

  /** Takes `n` copies for the recipient, or answers how long until they are there (taking nothing). */
  take(recipientDipId: string, n: number, nowMs: number): { ok: true } | { ok: false; retryAfterMs: number } {
    if (this.perHour <= 0 || n <= 0) return { ok: true };
    const b = this.buckets.get(recipientDipId) ?? { tokens: this.capacity, at: nowMs };
    b.tokens = Math.min(this.capacity, b.tokens + Math.max(0, nowMs - b.at) * this.perMs);
    b.at = nowMs;
    if (b.tokens >= n) {
      b.tokens -= n;
      this.buckets.set(recipientDipId, b);
      return { ok: true };
    }
    this.buckets.set(recipientDipId, b);
    return { ok: false, retryAfterMs: Math.ceil((n - b.tokens) / this.perMs) };
  }

  /** Gives back copies taken for a write that failed: nothing was archived, so nothing is counted. */
  giveBack(recipientDipId: string, n: number): void {
    const b = this.buckets.get(recipientDipId);
    if (b) b.tokens = Math.min(this.capacity, b.tokens + n);
  }
}

/** The item-level field (beside `payload`) that names the transaction a replayed copy re-issues. */
export const ORIGINAL_TRANSACTION_FIELD = 'originalTransactionID';
/** The item-level field (beside `payload`) that carries the original message's transaction wrapper (D0), as it was. */
export const ORIGINAL_WRAPPER_FIELD = 'originalTransactionWrapper';
/** What marks a replayed copy's IDs (spec 5.5.11: "a Transaction ID and Correlation ID (with a reply prefix)"). */
/** The published RequeueStatus (components/schemas/RequeueStatus in API 2.1.0). */
export interface RequeueProgress {
  percentComplete: number;
  totalTransactions: number;
  processedTransactions: number;
  status: 'Processing' | 'Completed' | 'Failed';
}

/**
 * A synchronous replay's page holds rows sealed under a data key this process has not loaded yet: the rows
 * are sound and open once the key ring is read again (the read that met them starts that), so the caller
 * is asked to send the request again (503 + Retry-After) rather than be answered without them for good.
 */
export class ArchiveKeysNotLoaded extends Error {
  constructor(readonly transactionIds: readonly string[]) {
    super(`${transactionIds.length} archived message(s) of this page (${transactionIds.slice(0, 5).join(', ')}${transactionIds.length > 5 ? ', …' : ''}) are sealed under a data key this DIP is loading: send the request again unchanged after the Retry-After interval`);
    this.name = 'ArchiveKeysNotLoaded';
  }
}

/** A job's state in the published RequeueStatus enum. */
const REQUEUE_STATUS: Readonly<Record<RequeueJob['state'], RequeueProgress['status']>> = { running: 'Processing', done: 'Completed', failed: 'Failed' };

export interface ReplayPage {
  /** The recipient's own copies (obfuscated, encrypted for it), as JSON texts. */
  copies: string[];
  /** Where the next page starts, or null when this was the last. */
  next: number | null;
  /** Archived messages of this page whose stored copy could not be opened: skipped, the rest answered. */
  unreadable: UnreadableArchived[];
}

/** An archived message a replay or requeue skipped: its stored copy does not open (ArchivedMessage.unreadable) or is not a message. */
export interface UnreadableArchived {
  transactionId: string;
  why: string;
}

/** Who is told of skipped rows beside the log (the metric dip_archive_unreadable_total): the reader and how many. */
export type UnreadableSeen = (reader: 'replay' | 'requeue', rows: readonly UnreadableArchived[]) => void;

/**
 * Replay and requeue (spec 5.5.11): archived messages addressed to the recipient, each re-issued under a
 * new transaction wrapper (new 'R-' transaction ID, the correlation ID with the 'R-' prefix,
 * replayIndicator true; beside the payload, the original wrapper whole in `originalTransactionWrapper` and
 * its transaction ID in `originalTransactionID`) and archived as a copy. A requeue also appends the copies
 * to the recipient's queue; one larger than a page runs as a background job that paces itself behind
 * the recipient's live traffic.
 */
export class Replay {
  private readonly running = new Map<string, Cancel | null>();
  /** Each job's waits so far for a page's rows sealed under a data key not loaded (KEY_WAITS at most). */
  private readonly keyWaits = new Map<string, number>();
  private stopped = false;
  private cancelAdopt: Cancel | null = null;

  constructor(
    private readonly log: Pick<MessageLog, 'appendReplayCopies' | 'queueState'>,
    private readonly archive: Pick<Archive, 'findArchived' | 'countArchived'>,
    /** What the recipient may see of each copy: a synchronous replay answers exactly what its webhook gets. */
    private readonly copies: Pick<RecipientCopies, 'copyFor'>,
    private readonly clock: Clock,
    private readonly jobs?: RequeueJobs,
    private readonly notify: (queue: QueueRef) => void = () => {},
    private readonly logger?: Logger,
    /** Copies per recipient per hour (config `replayCopiesPerHour`); none: no limit. */
    private readonly budget?: CopyBudget,
    private readonly unreadableSeen: UnreadableSeen = () => {},
  ) {}

  /**
   * The messages of a page that can be re-issued, and those skipped: one archived row that does not open
   * (damaged, swapped, or sealed under a data key not held) must not refuse every other message with it.
   * Each skipped row is logged with its transaction ID and counted, so the operator sees it.
   */
  private readable(found: ArchivedMessage[], queue: QueueRef, reader: 'replay' | 'requeue', job?: string): { found: ArchivedMessage[]; unreadable: UnreadableArchived[] } {
    const unreadable: UnreadableArchived[] = [];
    const kept = found.filter((m) => {
      const why = m.unreadable ?? notAMessage(m.outbound);
      if (why === null) return true;
      unreadable.push({ transactionId: m.transactionId, why });
      return false;
    });
    if (unreadable.length > 0) {
      this.logger?.warn({ queue, reader, ...(job ? { job } : {}), unreadable }, `${reader} skipped ${unreadable.length} archived message(s) whose stored copy could not be opened; the rest were re-issued`);
      this.unreadableSeen(reader, unreadable);
    }
    return { found: kept, unreadable };
  }

  /** Takes a page's copies from the recipient's budget, or throws ReplayBudgetSpent (nothing written). */
  private spend(queue: QueueRef, n: number): void {
    const taken = this.budget?.take(queue.recipientDipId, n, this.clock.now()) ?? { ok: true };
    if (!taken.ok) throw new ReplayBudgetSpent(queue.recipientDipId, this.budget!.perHour, taken.retryAfterMs);
  }

  /** Makes or writes copies taken from the budget; a step that fails (the store unavailable) gives them back. */
  private async archiveCopies<T>(queue: QueueRef, n: number, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      this.budget?.giveBack(queue.recipientDipId, n);
      throw err;
    }
  }

  /** One page of a synchronous replay, starting after queue position `afterSeq`. */
  async replay(queue: QueueRef, filter: ReplayFilter, afterSeq = 0): Promise<ReplayPage> {
    const page = await this.page(queue, filter, afterSeq, undefined);
    // Not skipped as a damaged row is: the recipient would never be answered these sound messages.
    const unkeyed = page.found.filter((m) => m.keyNotLoaded);
    if (unkeyed.length > 0) throw new ArchiveKeysNotLoaded(unkeyed.map((m) => m.transactionId));
    const { found, unreadable } = this.readable(page.found, queue, 'replay');
    const next = page.next;
    this.spend(queue, found.length);
    const copies = this.reissue(found, queue);
    // Made before anything is written: a copy that cannot be made (CopyUnmakeable, naming its original), or
    // must wait (CopyWithheld: one the DIP encrypts for a recipient whose certificate is revoked or expired),
    // leaves no replay copy archived and gives the budget back. Each for its pattern (copyPattern).
    const made = await this.archiveCopies(queue, found.length, () =>
      Promise.all(
        copies.map(async (c, i) => {
          try {
            return await this.copies.copyFor(queue, { ...c, securityPattern: found[i]!.securityPattern });
          } catch (err) {
            if (err instanceof CopyUnmakeable) throw new CopyUnmakeable(`${found[i]!.transactionId}: ${err.message}`);
            throw err;
          }
        }),
      ),
    );
    if (copies.length > 0) await this.archiveCopies(queue, found.length, () => this.log.appendReplayCopies(copies));
    return { copies: made, next, unreadable };
  }

  /**
   * Requeues what matches. Up to a page is requeued at once (the answer says how many); more becomes a
   * job, answered with its ID, worked off in the background.
   */
  async requeue(queue: QueueRef, filter: ReplayFilter): Promise<{ requeued: number; unreadable: UnreadableArchived[] } | { job: RequeueJob }> {
    const { headSeq } = await this.log.queueState(queue);
    const page = await this.page(queue, filter, 0, headSeq);
    if (page.next === null || !this.jobs) {
      const { found, unreadable } = this.readable(page.found, queue, 'requeue');
      this.spend(queue, found.length);
      const copies = this.reissue(found, queue);
      if (copies.length > 0) await this.archiveCopies(queue, found.length, () => this.log.appendReplayCopies(copies, queue));
      this.notify(queue);
      return { requeued: copies.length, unreadable };
    }
    const now = this.clock.now();
    const job: RequeueJob = { id: randomUUID(), queue, filter, upToSeq: headSeq, cursor: 0, requeued: 0, state: 'running', error: null, createdAt: now, updatedAt: now };
    await this.jobs.createJob(job);
    this.startJob(job);
    return { job };
  }

  /** A requeue job as its recipient may see it; undefined when it is not that recipient's. */
  async job(queue: QueueRef, id: string): Promise<RequeueJob | undefined> {
    const job = await this.jobs?.job(id);
    return job && job.queue.recipientDipId === queue.recipientDipId && job.queue.channel === queue.channel ? job : undefined;
  }

  /** A recipient's requeue jobs, newest first (the user portal lists them: never another recipient's). */
  async jobsOf(recipientDipId: string, limit: number): Promise<RequeueJob[]> {
    return (await this.jobs?.jobs({ recipientDipId, limit })) ?? [];
  }

  /**
   * Resumes a failed job from where it stopped (an operator's call, once the cause is repaired). Its
   * cursor and count are kept: each page's copies were written with the cursor past them, so it goes on
   * after the last page it wrote, in queue order, and nothing already requeued is requeued again. A job
   * that is not failed is left alone and answered as it stands: two resumes of one job start it once.
   */
  async resume(id: string): Promise<{ resumed: RequeueJob } | { refused: RequeueJob | undefined }> {
    if (!this.jobs || !(await this.jobs.resumeJob(id, this.clock.now()))) return { refused: await this.jobs?.job(id) };
    const job = await this.jobs.job(id);
    if (!job) throw new Error(`requeue job ${id} vanished as it was resumed`);
    this.startJob(job);
    return { resumed: job };
  }

  /**
   * A job's progress as the published RequeueStatus reports it. The transactions are the archived
   * messages the job requeues: those it has requeued (processed) and those matching its filter it has
   * not yet reached, counted at the time of asking (so the total drops if retention purges some first).
   * A finished job has none left; a failed one keeps its remainder, so its percentage says how far it got.
   */
  async progress(job: RequeueJob): Promise<RequeueProgress> {
    const remaining = job.state === 'done' ? 0 : await this.archive.countArchived({ ...archiveQuery(job.queue, job.filter), afterSeq: job.cursor, upToSeq: job.upToSeq });
    const total = job.requeued + remaining;
    return {
      // Whole per cent, rounded down: 100 only once nothing is left.
      percentComplete: total === 0 ? 100 : Math.floor((job.requeued * 100) / total),
      totalTransactions: total,
      processedTransactions: job.requeued,
      status: REQUEUE_STATUS[job.state],
    };
  }

  /**
   * Resumes the jobs a previous run left unfinished, and looks again every minute: with several nodes, a
   * job whose node died is carried on by another (each page is requeued once: JobProgress.from).
   */
  async start(): Promise<void> {
    await this.adopt();
    this.cancelAdopt = this.clock.every(60_000, () => {
      this.adopt().catch((err: unknown) => this.logger?.error({ err }, 'could not look for unfinished requeue jobs'));
    });
  }

  private async adopt(): Promise<void> {
    for (const job of (await this.jobs?.openJobs()) ?? []) this.startJob(job);
  }

  stop(): void {
    this.stopped = true;
    this.cancelAdopt?.();
    for (const cancel of this.running.values()) cancel?.();
    this.running.clear();
  }

  private startJob(job: RequeueJob): void {
    if (this.stopped || this.running.has(job.id)) return;
    this.running.set(job.id, null);
    void this.step(job.id, job.queue, job.filter, job.upToSeq, job.cursor);
  }

  /** One page of a job, then the next after a pause if the recipient is still busy with earlier ones. */
  private async step(id: string, queue: QueueRef, filter: ReplayFilter, upToSeq: number, cursor: number): Promise<void> {
    const again = (ms: number, at: number) => {
      if (this.stopped) return;
      this.running.set(id, this.clock.after(ms, () => void this.step(id, queue, filter, upToSeq, at)));
    };
    /** Where the job stands: past this step's page once its copies are written (a later refusal resumes there). */
    let stands = cursor;
    try {
      const state = await this.log.queueState(queue);
      if (state.headSeq - state.ackedSeq > REQUEUE_PACE) return again(500, cursor);
      const page = await this.page(queue, filter, cursor, upToSeq);
      // A row sealed under a data key not loaded yet opens once the key ring is read again (its read
      // starts that): the job waits for it a while rather than skip, for good, a message that is sound.
      const waited = this.keyWaits.get(id) ?? 0;
      if (waited < KEY_WAITS && page.found.some((m) => m.keyNotLoaded)) {
        this.keyWaits.set(id, waited + 1);
        return again(KEY_WAIT_MS, cursor);
      }
      this.keyWaits.delete(id);
      const next = page.next;
      // The cursor moves past the skipped rows too: the job goes on with the rest (the log and the metric name them).
      const reached = page.found.at(-1)?.seq ?? upToSeq;
      const { found } = this.readable(page.found, queue, 'requeue', id);
      // A job waits for its recipient's budget as it waits for its queue: it is not refused, only slowed.
      const taken = this.budget?.take(queue.recipientDipId, found.length, this.clock.now()) ?? { ok: true };
      if (!taken.ok) return again(taken.retryAfterMs, cursor);
      const copies = this.reissue(found, queue);
      await this.archiveCopies(queue, found.length, () => this.log.appendReplayCopies(copies, queue, { jobId: id, from: cursor, cursor: reached, added: copies.length, at: this.clock.now() }));
      stands = reached;
      this.notify(queue);
      if (next !== null) return again(0, reached);
      await this.jobs!.finishJob(id, 'done', null, this.clock.now());
      this.running.delete(id);
    } catch (err) {
      if (err instanceof StoreError && err.code === JOB_MOVED) {
        // Another node (resuming the same job) requeued this page first: it carries the job on.
        this.running.delete(id);
        return;
      }
      const kind = storeFailureKind(err);
      if (kind === 'unavailable' || kind === 'fatal') {
        // The store refused for now (a full disk, a lost connection; fatal: this process restarts). A page
        // and its progress are written together or not at all, so the job waits and goes on from where it
        // stands: marked Failed, the recipient's only way on would be a new requeue, which would copy the
        // pages already done again.
        this.logger?.warn({ err, job: id, queue }, 'requeue job waits: the store is unavailable');
        return again(STORE_RETRY_AFTER_SECONDS * 1000, stands);
      }
      this.logger?.error({ err, job: id, queue }, 'requeue job failed');
      this.running.delete(id);
      await this.jobs?.finishJob(id, 'failed', (err as Error).message, this.clock.now()).catch(() => {});
    }
  }

  private async page(queue: QueueRef, filter: ReplayFilter, afterSeq: number, upToSeq: number | undefined): Promise<{ found: ArchivedMessage[]; next: number | null }> {
    const found = await this.archive.findArchived({
      ...archiveQuery(queue, filter),
      afterSeq,
      ...(upToSeq !== undefined ? { upToSeq } : {}),
      limit: REPLAY_PAGE + 1,
    });
    if (found.length <= REPLAY_PAGE) return { found, next: null };
    const page = found.slice(0, REPLAY_PAGE);
    return { found: page, next: page.at(-1)!.seq };
  }

  private reissue(found: ArchivedMessage[], queue: QueueRef): ReplayCopy[] {
    const now = new Date(this.clock.now());
    return found.map((m) => {
      const message = JSON.parse(m.outbound) as DipMessage & Record<string, unknown>;
      const original = message.payload.CommonBlock.D0 ?? {};
      // "Identified as replayed, and hence downstream processes are not triggered" (spec 5.5.11): both
      // IDs carry the prefix; "the initial message transaction wrapper will also be sent".
      const d0 = {
        ...original,
        transactionID: newTransactionId(m.channel, m.senderDipId, m.senderRole, now, true),
        transactionTimestamp: dipDateTime(now),
        initialCorrelationID: replayCorrelationId(original.initialCorrelationID),
        replayIndicator: true,
      };
      message.payload.CommonBlock.D0 = d0;
      // D0 admits no further fields (the published schema), the item does: the original goes there.
      message[ORIGINAL_TRANSACTION_FIELD] = m.transactionId;
      message[ORIGINAL_WRAPPER_FIELD] = original;
      return { originalId: m.id, transactionId: String(d0.transactionID), receivedAt: now.getTime(), outbound: JSON.stringify(message), recipientDipId: queue.recipientDipId, capacity: m.capacity };
    });
  }
}

/** Why an opened copy cannot be re-issued (it does not parse as a message), or null when it can. */
function notAMessage(outbound: string): string | null {
  try {
    const message = JSON.parse(outbound) as { payload?: { CommonBlock?: unknown } } | null;
    return typeof message?.payload?.CommonBlock === 'object' && message.payload.CommonBlock !== null ? null : 'the stored copy is not a message (no payload.CommonBlock)';
  } catch (err) {
    return `the stored copy is not JSON (${(err as Error).message})`;
  }
}

/** The archive query a replay filter makes for a recipient's queue. */
function archiveQuery(queue: QueueRef, filter: ReplayFilter): Omit<ArchiveQuery, 'limit'> {
  return {
    recipientDipId: queue.recipientDipId,
    channel: queue.channel,
    fromMs: filter.fromMs,
    toMs: filter.toMs,
    eventCode: filter.eventCode === null ? undefined : bracketed(filter.eventCode),
    mpan: filter.mpan ?? undefined,
    transactionIds: filter.transactionIds ?? undefined,
  };
}

/**
 * Event codes travel as "[ActivePower]"; a filter may name them with or without the brackets (a job
 * stored before filters were put in archivedEventCode's form; the test message's code is stored bare).
 */
function bracketed(code: string): string {
  return code.startsWith('[') || code === TEST_EVENT_CODE ? code : `[${code}]`;
}

/**
 * The event code a filter names (replay, requeue, the user portal's search), in the form the archive
 * holds it on `channel`, so that it matches however the participant wrote it: one of the channel's
 * codes whatever its brackets and case (wireEventCode: "[ActivePower]"), and the DIP's test message's
 * code, which it stores bare ("OpenDIPTest", sent by "Send a test message").
 */
export function archivedEventCode(given: string, channel: Pick<Channel, 'definition'>): string {
  if (bareEventCode(given).toLowerCase() === TEST_EVENT_CODE.toLowerCase()) return TEST_EVENT_CODE;
  return wireEventCode(given, channel.definition.eventCodes);
}
