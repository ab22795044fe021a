import { queueKey } from '../ports/queue-ref.js';
import { newAttemptId, type RandomBytes } from '../domain/attempt-id.js';
import { requestedUrl } from '../domain/callback-url.js';
import { heldBackDetail } from '../domain/held-back.js';
import { answerCode, answerEntries, refusedInMultiStatus, type AnswerEntry } from '../domain/recipient-answer.js';
import { classifyStatus, failureKind, parseRetryAfter, retryDelayMs, type RetryPolicy } from '../domain/retry.js';
import { shownUrl } from '../domain/url-secrets.js';
import { API_VERSION_HEADERS } from '../domain/api-version.js';
import { ACKNOWLEDGED_HEADER, formatSequence, SEQUENCE_HEADER } from '../domain/sequence.js';
import type { Archive } from '../ports/archive.js';
import { batchBody, copiesWithin, type EncodedCopies } from './delivery-body.js';
import type { DeliveryShare } from './delivery-share.js';
import type { Cancel, Clock } from '../ports/clock.js';
import type { DeadLetterReason } from '../ports/dead-letters.js';
import { storeFailureKind } from '../ports/errors.js';
import type { Logger } from '../ports/logger.js';
import type { AcceptedBatch, DeadLetterRecord, MessageLog, QueueEntry, QueueRef, SettleOutcome, Settlement } from '../ports/message-log.js';
import type { Webhook } from '../ports/registry.js';
import type { OutboundSigner, WebhookOutcome, WebhookTransport } from '../ports/webhook.js';
import type { WallClockSteps } from './wall-clock-steps.js';
import type { MessageTracer } from '../ports/tracing.js';
import { CopyUnmakeable, CopyWithheld, leadingCopies, type CopySource } from './recipient-copy.js';

/**
 * How many calls may be answered past a settlement being recorded (DeliverySettings.callsPastSettlement),
 * unless configured: the configuration's default too (src/config.ts), so a worker built without it behaves as shipped.
 */
export const DEFAULT_CALLS_PAST_SETTLEMENT = 4;

export interface DeliverySettings {
  timeoutMs: number;
  retry: RetryPolicy;
  /** How often queues nobody is delivering (no webhook, or waiting to retry) are checked for stale messages. */
  sweepIntervalMs: number;
  /**
   * The least time between the starts of two calls to a queue that would carry less than a full call
   * (its webhook's maxMessageCount): the wait fills the next call. 0: a call starts as soon as the last
   * is answered. See QueueWorker.gatherFor.
   */
  gatherMs: number;
  /**
   * How many calls may be answered past the settlement being recorded before the next call waits for it
   * (roomToCall; absent: DEFAULT_CALLS_PAST_SETTLEMENT). What a death can repeat is bounded by it (those calls and the one being
   * recorded); what a queue can deliver while its settlements are slow grows with it (a call per
   * settlement at 1: 3.7 times slower with 200 ms settlements, BENCHMARKS.md).
   */
  callsPastSettlement?: number;
  /**
   * End-to-end latency (spec 5.10.3, 5.11.4): a message delivered by a webhook call more than `afterMs`
   * after its acceptance is late; the run of late deliveries is kept in the status (WorkerStatus.late)
   * until `windowMs` passes without one. Absent: not watched.
   */
  late?: { afterMs: number; windowMs: number };
}

/** Late deliveries (DeliverySettings.late) since `since`, with the last within the window (epoch ms). */
export interface LateDeliveries {
  messages: number;
  worstMs: number;
  since: number;
  last: number;
}

/**
 * The error a call's record carries (its verdict stays delivered) when the recipient answered 207 without
 * naming a failing message. Spec 5.5's callback table: "207 – Some messages created; see response body
 * for details", so at least one failed; which one, the DIP cannot tell. The messages are kept as delivered
 * (sending them again would repeat those the recipient created, and a 2xx is an answer), but the call is a
 * fault of the receiver's contract, which neither its operator nor the senders would otherwise learn of:
 * the webhook's calls list says so, WorkerStatus.contractFault raises the webhook-failing alarm (its own
 * key) and dip_webhook_contract_faults_total counts it.
 */
export const MULTI_STATUS_NAMES_NO_FAILURE = 'CONTRACT: the recipient answered 207 (some messages created) without naming a failing message: all taken as delivered, no sender told of a failure';
/**
 * The same, for a 207 whose body is no StandardResponse (not JSON, or without a messageArray): said apart
 * from one naming no failing message, so the receiver's operator knows which part of the contract to mend.
 */
export const MULTI_STATUS_NOT_STANDARD_RESPONSE = 'CONTRACT: the recipient answered 207 (some messages created) with a body that is no StandardResponse (not JSON, or no messageArray): all taken as delivered, no sender told of a failure';
/** The same, for a 207 whose body was too long (or too slow) to read. */
export const MULTI_STATUS_UNREAD = 'CONTRACT: the recipient answered 207 (some messages created) with a body too long or too slow to read: all taken as delivered, no sender told of a failure';

/** Calls answered against the receiver's contract (a 207 naming no failing message), since `since` (epoch ms). */
export interface ContractFault {
  calls: number;
  since: number;
  error: string;
}

/**
 * How much of a recipient's answer is read: a 207 (Some Messages Created) has an entry per message of
 * the call (the published example's is about 290 bytes), so 64 KiB held the refusals of only about 220;
 * a recipient may ask for 10,000 a call. 1 KiB a message, at least 64 KiB, at most 16 MiB.
 */
export function answerBytes(messages: number): number {
  return Math.min(16 << 20, Math.max(64 << 10, messages * 1024));
}

export interface DeadLetterEvent {
  queue: QueueRef;
  entry: QueueEntry;
  reason: DeadLetterReason;
  status: number | null;
  detail: string;
  answer: string | null;
}

/** The worker's lease ended before a call it had prepared (see WorkerDeps.mayCall). */
class LeaseEnded extends Error {
  constructor(queue: QueueRef) {
    super(`the lease on ${queue.recipientDipId}/${queue.channel} ended before the call`);
  }
}

/**
 * Handles entries in order; a throw leaves them queued and they are offered again after a pause. It may
 * handle only the first few (a consumer whose entries are slow to handle) and return the position of the
 * last it handled: that far is settled and the rest offered again at once; or refuse one (LocalRefusal).
 * Nothing returned: all of them.
 */
export type LocalConsumer = (entries: QueueEntry[]) => Promise<number | void | LocalRefusal>;

/**
 * A local consumer's answer that it handled the entries before `refused` and can never handle that one (it
 * cannot be read: offered again, it would fail again, holding the queue for ever). The worker sets it aside
 * as a dead letter saying `detail` (its sender told, an operator alerted, requeued once repaired), in the
 * settlement that moves past the entries before it.
 */
export interface LocalRefusal {
  refused: QueueEntry;
  detail: string;
}

/** What every queue worker shares. */
export interface WorkerDeps {
  log: Pick<MessageLog, 'readQueue' | 'queueState' | 'settle'>;
  archive: Pick<Archive, 'recordAttempt'>;
  webhook(queue: QueueRef): Webhook | undefined;
  transport: WebhookTransport;
  signer: OutboundSigner;
  settings: DeliverySettings;
  clock: Clock;
  logger: Logger;
  random: () => number;
  /** Cryptographic randomness for the attempt IDs (a UUIDv7 per call, src/domain/attempt-id.ts). */
  randomBytes: RandomBytes;
  /** How long a message on this channel may wait undelivered before it is dead-lettered as stale. */
  staleAfterMs(channel: string): number;
  /** The copy a recipient gets (obfuscated, encrypted for it). */
  copyFor(queue: QueueRef, source: CopySource): string | Promise<string>;
  /** Copies' bytes shared between the recipients of a message (none: each call encodes its own). */
  encoded?: Pick<EncodedCopies, 'bytes'>;
  /** In-process consumers (the MPAN lookup's feed) take their queue's entries instead of a webhook. */
  localConsumer(queue: QueueRef): LocalConsumer | undefined;
  /** The status messages that tell the senders of these dead letters, appended in the same settlement. */
  notices(events: DeadLetterEvent[]): Promise<AcceptedBatch | undefined>;
  /** After a settlement that set messages aside is durable: alarms, and the senders' status queues. */
  deadLettered(events: DeadLetterEvent[], notices: AcceptedBatch | undefined): void;
  /** The store cannot take writes: the worker waits for it (see Delivery). */
  storeUnavailable(worker: QueueWorker): void;
  /** A permanent store error on this queue: it stops until an operator resumes it. */
  halted(queue: QueueRef, error: unknown): void;
  /** The channel is paused by the operator: nothing is delivered (nor expires) until it resumes. */
  held?(queue: QueueRef): boolean;
  /**
   * Why nothing on this queue can be delivered any more (its recipient was offboarded, or no longer
   * receives on the channel), or null: such entries are dead-lettered at once and their senders told.
   */
  undeliverable?(queue: QueueRef): string | null;
  /**
   * Why copies the DIP encrypts for this queue's recipient may not be made now (its certificate is revoked
   * or expired, RecipientCopies.withheldFor), or null. Asked at every step, cheaply: when not null, the
   * worker makes the oldest entry's copy to learn whether it is one of them (copyFor throws CopyWithheld,
   * by the pattern of that copy). Such entries wait, in order, for a new certificate (a registration
   * change sweeps the queues), or until the channel's staleness limit sets them aside.
   */
  withheld?(queue: QueueRef): string | null;
  /** The worker has nothing more to do for now (a cluster node may then give the queue's lease up). */
  wentIdle?(worker: QueueWorker): void;
  /**
   * Whether this node may still call the queue's recipient, checked the moment before each call (absent:
   * always). In a cluster: its lease is still valid by its own clock. A node stalled past its lease (a
   * frozen VM, SIGSTOP, a long pause) resumes in the middle of a call it had read and signed before; by
   * then another node works the queue, and the call would arrive far behind what the recipient has (a
   * fault campaign saw 1,180-1,590 positions back). The worker stops instead; the queue is claimed afresh.
   */
  mayCall?(queue: QueueRef): boolean;
  /** The worker stopped because mayCall said no: the lease may yet be renewed (nobody took it), so the queue is claimed again. */
  leaseEnded?(queue: QueueRef): void;
  /** Shares delivery between queues: a queue catching up waits its turn here (none: no waiting). */
  share?: Pick<DeliveryShare, 'behind' | 'grant' | 'giveBack' | 'withdraw' | 'live'>;
  /** OpenTelemetry: told of every webhook call (absent when tracing is off). */
  tracer?: MessageTracer;
  /**
   * The wall clock's steps against the monotonic clock: a message's latency is taken without the steps
   * since its acceptance, and the late run's window is measured on the monotonic clock. Absent (a test's
   * fake clock, which only the test moves): both on `clock`.
   */
  steps?: Pick<WallClockSteps, 'read' | 'since' | 'elapsed'>;
}

/**
 * A worker's states. At most one call is in flight per queue, so order holds across retries; queues never
 * wait on each other, so a slow or dead recipient delays only itself. Working includes waiting for a
 * settlement to land before the next call (at most `callsPastSettlement` calls go past one not yet recorded: `settling`).
 *
 *   idle ──kick──▶ working ──nothing left──▶ idle
 *                  working ──retryable answer──▶ backoff ──timer / new webhook──▶ working
 *                  working ──store unavailable──▶ paused ──store ok──▶ working
 *                  working ──permanent store error──▶ halted ──operator resumes──▶ working
 *   any ──stop──▶ stopped
 */
export type WorkerState = 'idle' | 'working' | 'backoff' | 'paused' | 'halted' | 'stopped';

const TRANSITIONS: Record<WorkerState, readonly WorkerState[]> = {
  idle: ['working', 'stopped'],
  working: ['idle', 'backoff', 'paused', 'halted', 'stopped'],
  backoff: ['working', 'stopped'],
  paused: ['working', 'stopped'],
  halted: ['working', 'stopped'],
  stopped: [],
};

export interface WorkerStatus {
  queue: QueueRef;
  state: WorkerState;
  ackedSeq: number;
  /**
   * Consecutive failed calls since the recipient last answered one (2xx, or a refusal of a message). Kept
   * when the messages those calls carried are dead-lettered as stale: that moves the queue on, it does not
   * mean the webhook works (webhook-failing resolves on an answered call, or a new or removed callback URL).
   */
  failures: number;
  /** When the first of those failed calls was made, epoch ms; null while none failed. */
  failingSince: number | null;
  /** The store error that stopped the worker (paused, halted), else the last failed call's error until an answered one. */
  lastError: string | null;
  /** When the next attempt is due (backoff), epoch ms. */
  retryAt: number | null;
  /** Messages its webhook calls delivered later than DeliverySettings.late.afterMs after acceptance, within the window; null: none (or not watched). */
  late?: LateDeliveries | null;
  /** Why its messages are held back (WorkerDeps.withheld) as of its last look; null: they are not. */
  withheld?: string | null;
  /** Calls the recipient answered against its contract (MULTI_STATUS_NAMES_NO_FAILURE) since its last answer that kept it; null: none. */
  contractFault?: ContractFault | null;
}

export class QueueWorker {
  private current: WorkerState = 'idle';
  private ackedSeq = 0;
  private dirty = false;
  private cancelTimer: Cancel | null = null;
  /** The webhook's failure record (WorkerStatus.failures): outlives the messages it failed to deliver. */
  private failures = 0;
  private failingSince: number | null = null;
  private callError: string | null = null;
  /** Failed calls offering the entry at the head now: the backoff and the attempt number. Starts afresh with each settlement (new messages at the head). */
  private retries = 0;
  /** A store error (or an unexpected one) that ended the last run: cleared once a settlement is recorded. */
  private runError: string | null = null;
  private retryAt: number | null = null;
  /** The callback URL the current run of failures was against. */
  private failingUrl: string | undefined;
  /** After a batch is refused, messages go one per call up to here, to find the one the recipient refuses. */
  private singlesUntil = 0;
  /**
   * Messages a final refusal (a 400 …) named as failing in its StandardResponse, by position: each is set
   * aside when it reaches the head, and a call stops before the next of them (so its positions stay
   * consecutive). Kept in memory only: after a restart the call goes again whole and is answered alike.
   */
  private readonly refusedAhead = new Map<number, DeadLetterEvent>();
  /** Late deliveries within the window (DeliverySettings.late). */
  private late: LateDeliveries | null = null;
  /** When the last late delivery was, on the clock that never steps (WorkerDeps.steps.elapsed): the window runs from it. */
  private lateLastElapsed = 0;
  /** Why the entries wait (WorkerDeps.withheld), as of the last step. */
  private withheldWhy: string | null = null;
  /** The run of calls answered against the receiver's contract, ended by the next call answered by it. */
  private contractFault: ContractFault | null = null;
  /**
   * Settlements decided (a call answered 2xx, a message set aside) whose recording failed, or that were
   * decided after one failed: recorded, in order, before anything else. Every call answered is among them
   * until it is durable, so none is sent again for want of its acknowledgement (a fault campaign saw each
   * call answered while a failed settlement was in flight sent again: 20-100 positions a queue).
   */
  private unrecorded: Array<{ settlement: Settlement; events: DeadLetterEvent[] }> = [];
  /**
   * Delivered calls' settlements, being recorded while the next call goes out. In a delivery process a
   * settlement is an IPC round trip to the main process's group commit, which under load took longer than
   * the call itself (bench drain phase: 250-1,400 ms per call), so a queue spent most of its time waiting
   * on it. One settlement is in flight at a time, and at most `callsPastSettlement` calls answered past it
   * (toRecord, callsBehind): the call after those waits for it to land (roomToCall). So what a death can repeat
   * is bounded (2 × callsPastSettlement: the settlement after this one covers those calls while as many again
   * may be answered behind it), where calls that went on unchecked behind a settlement
   * that never landed (its main process stopped) were all repeated. Resolves once the last is durable.
   */
  private settling: Promise<void> | null = null;
  /** True while `settling` still takes calls to record after the one in flight. */
  private recording = false;
  /** The settlement `settling` is recording now: the next call waits for it while one answered call is behind it. */
  private landing: Promise<void> | null = null;
  /** The position of the settlement being recorded now (0: none): owed until it lands (quiet()). */
  private inFlightUpTo = 0;
  /** The last position answered 2xx while a settlement was in flight: recorded once that one lands. */
  private toRecord = 0;
  /** The calls answered 2xx whose positions toRecord holds (roomToCall's count against callsPastSettlement). */
  private callsBehind = 0;
  /** The last position a recipient answered 2xx for in this run: ahead of ackedSeq while its settlement is recorded. */
  private deliveredUpTo = 0;
  private running: Promise<void> | null = null;
  /** The call to the recipient under way, if any (quiet()). */
  private posting: Promise<unknown> | null = null;
  /** The last read found the oldest waiting message old (DeliveryShare.behind): calls wait their turn. */
  private catchingUp = false;
  /** When the last call to the recipient started (the injected clock), null before the first. */
  private lastCallAt: number | null = null;
  /** This queue waited to fill its next call: that call goes with what it reads, full or not. */
  private gathered = false;
  /** Ends the wait of gather() early (stop()). */
  private endGather: (() => void) | null = null;
  private readonly key: string;

  constructor(
    readonly queue: QueueRef,
    private readonly deps: WorkerDeps,
  ) {
    this.key = queueKey(queue);
  }

  get state(): WorkerState {
    return this.current;
  }

  status(): WorkerStatus {
    return { queue: this.queue, state: this.current, ackedSeq: this.ackedSeq, failures: this.failures, failingSince: this.failingSince, lastError: this.runError ?? this.callError, retryAt: this.retryAt, late: this.lateNow(), withheld: this.withheldWhy, contractFault: this.contractFault };
  }

  /** The run of late deliveries, ended once a window passed without one. */
  private lateNow(): LateDeliveries | null {
    const window = this.deps.settings.late?.windowMs;
    // Time passed, not the wall clock's reading: a step forward ended the run early (the alarm resolved
    // falsely), a step back held it for the step.
    if (this.late !== null && window !== undefined && this.elapsed() - this.lateLastElapsed >= window) this.late = null;
    return this.late;
  }

  private elapsed(): number {
    return this.deps.steps ? this.deps.steps.elapsed() : this.deps.clock.now();
  }

  /** Delivered now: each message's time from acceptance (its receivedAt) is checked against the threshold. */
  private deliveredAt(entries: readonly QueueEntry[]): void {
    const threshold = this.deps.settings.late?.afterMs;
    if (threshold === undefined) return;
    const now = this.deps.clock.now();
    const run = this.lateNow();
    let messages = 0;
    let worstMs = 0;
    for (const e of entries) {
      // Accepted by whichever node or process stamped receivedAt: only the wall clock spans them, so the
      // steps this process saw since are taken out (a 10 min step forward made every waiting message late).
      const ms = this.deps.steps ? this.deps.steps.since(e.receivedAt, now) : now - e.receivedAt;
      if (ms <= threshold) continue;
      messages += 1;
      worstMs = Math.max(worstMs, ms);
    }
    if (messages === 0) return;
    this.late = run === null ? { messages, worstMs, since: now, last: now } : { messages: run.messages + messages, worstMs: Math.max(run.worstMs, worstMs), since: run.since, last: now };
    this.lateLastElapsed = this.elapsed();
  }

  /** Its webhook has failed since it last answered (Delivery keeps such a queue's lease and worker, and with them the record). */
  get failing(): boolean {
    return this.failures > 0;
  }

  /** The recipient answered a call: its webhook works, whatever it made of the messages. */
  private answered(): void {
    this.failures = 0;
    this.failingSince = null;
    this.callError = null;
  }

  private to(next: WorkerState): void {
    if (!TRANSITIONS[this.current].includes(next)) throw new Error(`queue worker ${this.queue.recipientDipId}/${this.queue.channel}: ${this.current} → ${next} is not a transition`);
    this.current = next;
  }

  /** Something may have arrived: an append, a requeue, the sweep. */
  kick(): void {
    this.dirty = true;
    if (this.current === 'idle') this.start();
  }

  /**
   * A new callback URL is a new chance: a queue backing off from the old one tries the new one now. The
   * failure record was the old URL's: a new URL, or none (the recipient pulls now), starts without it, so
   * its webhook-failing alarm resolves (and is raised again if the new URL fails as long).
   */
  webhookMayHaveChanged(): void {
    const hook = this.deps.webhook(this.queue);
    const moved = hook?.url !== this.failingUrl;
    if (this.failures > 0 && moved) this.answered();
    if (this.current === 'backoff' && hook && moved) {
      this.retries = 0;
      this.start();
      return;
    }
    this.kick();
  }

  /** The store takes writes again (from paused), or an operator resumes a halted queue. */
  resume(): void {
    if (this.current === 'paused' || this.current === 'halted') this.start();
  }

  async stop(): Promise<void> {
    if (this.current !== 'stopped') {
      this.cancelTimer?.();
      this.cancelTimer = null;
      this.current = 'stopped';
      this.deps.share?.withdraw(this.key);
      this.endGather?.();
    }
    await this.running;
  }

  /**
   * Stops, and resolves once no call to the recipient is under way (it took at most the webhook timeout),
   * without waiting for a store call: a stopped worker makes no other call (call() checks before each),
   * though its run may still wait on a store that does not answer. What it owes (unrecorded) is lost
   * with it: the queue's next holder sends those calls again (at most 2 × `callsPastSettlement`, see `settling`).
   */
  async quiet(): Promise<number> {
    void this.stop();
    await this.posting?.catch(() => {});
    return this.unrecorded.reduce((n, u) => Math.max(n, u.settlement.upTo), Math.max(this.toRecord, this.inFlightUpTo));
  }

  /** Starts a run that reads the queue afresh (a retry, a resume, a new webhook: all need a look). */
  private start(): void {
    this.dirty = true;
    this.cancelTimer?.();
    this.cancelTimer = null;
    this.retryAt = null;
    this.to('working');
    this.running = this.run().finally(() => {
      this.running = null;
    });
  }

  private wait(ms: number): void {
    this.to('backoff');
    this.retryAt = this.deps.clock.now() + ms;
    this.cancelTimer = this.deps.clock.after(ms, () => {
      this.cancelTimer = null;
      // A retry has waited long enough: it goes at once, not gathered (gatherFor).
      this.gathered = true;
      if (this.current === 'backoff') this.start();
    });
  }

  /** Where the next read starts: past what was delivered, even if its settlement is not yet durable. */
  private position(): number {
    return Math.max(this.ackedSeq, this.deliveredUpTo);
  }

  /** Waits for the settlement being recorded (if any); throws what recording it threw. */
  private async settled(): Promise<void> {
    const pending = this.settling;
    this.settling = null;
    await pending;
  }

  private async run(): Promise<void> {
    // What the last run delivered is in `unrecorded` (answered, not yet durable): recorded first, then read past.
    this.deliveredUpTo = 0;
    try {
      await this.recordUnrecorded();
      // Re-read each time: a recipient that pulls moves its position through the API, not through us.
      this.ackedSeq = Math.max(this.ackedSeq, (await this.deps.log.queueState(this.queue)).ackedSeq);
      while (this.dirty) {
        this.dirty = false;
        for (;;) {
          if (this.current === 'stopped') {
            await this.settled();
            return;
          }
          const next = await this.step();
          if (next === 'drained') {
            await this.settled();
            break;
          }
          if (next === 'wait') return;
        }
      }
      if (this.current === 'working') {
        this.to('idle');
        this.deps.wentIdle?.(this);
      }
    } catch (error) {
      // A settlement still being recorded lands (or fails: it stays unrecorded) before the worker changes state.
      await this.settled().catch(() => {});
      if (this.current === 'stopped') return;
      if (error instanceof LeaseEnded) {
        // Not stop(): that waits for this very run. The lease's own watcher tells Delivery, which claims again.
        this.deps.logger.warn({ queue: this.queue }, 'queue lease ended before the call: not sent, this worker stops');
        this.to('stopped');
        this.deps.share?.withdraw(this.key);
        this.deps.leaseEnded?.(this.queue);
        return;
      }
      const kind = storeFailureKind(error);
      if (kind === 'unavailable' || kind === 'fatal') {
        // Nothing can be recorded: calling the recipient now would only repeat the call later.
        this.runError = (error as Error).message;
        this.to('paused');
        this.deps.storeUnavailable(this);
      } else if (kind === 'permanent') {
        this.runError = (error as Error).message;
        this.to('halted');
        this.deps.halted(this.queue, error);
      } else {
        // An unexpected error (a bug, a consumer that threw): logged, tried again after a pause.
        this.runError = error instanceof Error ? error.message : String(error);
        this.deps.logger.error({ queue: this.queue, err: error }, 'delivery worker failed; retrying');
        this.wait(this.deps.settings.retry.baseMs);
      }
    }
  }

  /** One read and one action. 'more': go on; 'drained': nothing deliverable left; 'wait': a timer or a webhook will wake us. */
  private async step(): Promise<'more' | 'drained' | 'wait'> {
    const local = this.deps.localConsumer(this.queue);
    if (local) {
      const read = await this.deps.log.readQueue(this.queue, this.position(), 500, 1 << 24);
      if (read.length === 0) return 'drained';
      const entries = await this.passUnreadable(read);
      if (entries === null) return 'more';
      const handled = await local(entries);
      if (typeof handled === 'object') await this.setAside([this.event(handled.refused, 'rejected', null, handled.detail, null)], handled.refused.seq);
      else await this.record({ upTo: typeof handled === 'number' ? handled : entries.at(-1)!.seq }, []);
      return 'more';
    }
    if (this.deps.held?.(this.queue)) return 'drained'; // a registry change (the resume) kicks it again
    const undeliverable = this.deps.undeliverable?.(this.queue);
    if (undeliverable) {
      const entries = await this.deps.log.readQueue(this.queue, this.position(), 500, 1 << 24);
      if (entries.length === 0) return 'drained';
      await this.setAside(entries.map((e) => this.event(e, 'rejected', null, undeliverable, null)), entries.at(-1)!.seq);
      return 'more';
    }
    if (this.deps.withheld?.(this.queue) != null) {
      // Some copies for this recipient cannot be made now, and the head is read to learn whether its own is
      // one: that is the copy's pattern's business (copyFor throws CopyWithheld), not the channel's now.
      // Held, nothing is sent (nor pulled: the pull route makes no such copy either); only staleness moves
      // the queue. Every arrival kicks a queue with a webhook: its head alone is read unless it went stale.
      const head = await this.deps.log.readQueue(this.queue, this.position(), 1, 1 << 24);
      this.withheldWhy = head.length === 0 || head[0]!.unreadable !== undefined ? null : await this.heldBack(head[0]!);
      if (this.withheldWhy !== null) {
        if (head[0]!.receivedAt >= this.staleCutoff()) return 'drained';
        await this.expire(await this.deps.log.readQueue(this.queue, this.position(), 500, 1 << 24));
        return 'more';
      }
    } else this.withheldWhy = null;
    const hook = this.deps.webhook(this.queue);
    const share = hook ? this.deps.share : undefined;
    // With no webhook only the oldest entry matters (is it stale?): the backlog is not re-read per kick.
    let limit = !hook || this.position() < this.singlesUntil ? 1 : hook.maxMessageCount;
    // A queue catching up asks for its turn before reading, so it reads only what it may send.
    let granted = share && this.catchingUp ? await share.grant(this.key, limit) : null;
    if (granted === 0) return 'more'; // withdrawn: the worker is stopping
    if (granted !== null) limit = granted;
    const read = await this.deps.log.readQueue(this.queue, this.position(), limit, hook ? hook.maxPayloadKb * 1024 : 1 << 22);
    if (read.length === 0) {
      if (granted !== null) share!.giveBack(granted);
      this.catchingUp = false;
      return 'drained';
    }
    let entries = await this.passUnreadable(read);
    if (entries === null) {
      if (granted !== null) share!.giveBack(granted);
      return 'more';
    }
    this.catchingUp = share?.behind(entries[0]!.receivedAt) ?? false;
    if (granted !== null && granted > entries.length) share!.giveBack(granted - entries.length);
    if (await this.expire(entries)) return 'more';
    // Messages wait for a webhook, or for the recipient to pull them: one no pull can be given is set aside.
    if (!hook) return (await this.passUnmakeable(entries[0]!)) ? 'more' : 'drained';
    const gather = this.catchingUp || this.current === 'stopped' ? 0 : this.gatherFor(entries, limit, hook.maxPayloadKb * 1024);
    if (gather > 0) {
      if (granted !== null) share!.giveBack(entries.length);
      await this.gather(gather);
      return 'more'; // read again, with what arrived meanwhile
    }
    if (share && this.catchingUp && granted === null) {
      // Found behind on this read (the first after an outage): it waits its turn like the rest.
      granted = await share.grant(this.key, entries.length);
      if (granted === 0) return 'more';
      entries = entries.slice(0, granted);
    }
    // A live call tells the share how late live traffic runs: catch-up yields while it is late.
    if (share && !this.catchingUp) share.live(this.deps.clock.now() - entries[0]!.receivedAt);
    const retryIn = await this.deliver(hook, entries);
    if (retryIn === null) return 'more';
    if (retryIn === 'withheld') return 'drained';
    await this.settled();
    this.wait(retryIn);
    return 'wait';
  }

  /**
   * How long to wait before calling with `entries` (of a call's `limit`), to fill the call. Each call has a
   * fixed cost whatever it carries (a signature, a request over TLS, an attempt journalled, a settlement,
   * each waking a thread or process): at low load each queue calls again as soon as the last is answered,
   * with one or two messages, and those wake-ups are most of the DIP's CPU (BENCHMARKS.md, "a shared
   * clock…": gatherMs 50 cut it by 40 % at 50 msg/s; no gain from 1,000 msg/s, where calls are full). So a
   * call that would not be full starts no sooner than gatherMs after the one before; a full call (by count
   * or by size), the first after a quiet spell, and a retry after its backoff go at once, so a message
   * waits at most gatherMs more, and a recipient that takes one message a call is not held back.
   */
  private gatherFor(entries: QueueEntry[], limit: number, maxBytes: number): number {
    const gatherMs = this.deps.settings.gatherMs;
    if (gatherMs <= 0 || entries.length >= limit || this.lastCallAt === null || this.gathered) return 0;
    // Full by size: the read stopped at the call's byte limit (another message of the size of these would not fit).
    let bytes = 0;
    for (const e of entries) bytes += e.outbound.length;
    if (bytes + bytes / entries.length > maxBytes) return 0;
    return Math.max(0, this.lastCallAt + gatherMs - this.deps.clock.now());
  }

  private gather(ms: number): Promise<void> {
    this.gathered = true;
    return new Promise<void>((resolve) => {
      const cancel = this.deps.clock.after(ms, () => {
        this.endGather = null;
        resolve();
      });
      this.endGather = () => {
        cancel();
        this.endGather = null;
        resolve();
      };
    });
  }

  /** Sends one call. Returns null when the queue may move on, the wait before retrying, or 'withheld' (WorkerDeps.withheld). */
  private async deliver(hook: Webhook, read: QueueEntry[]): Promise<number | null | 'withheld'> {
    const all = this.refusedAhead.size === 0 ? read : await this.beforeNamedRefusal(read);
    if (all === null) return null;
    const prepared = await this.copies(all);
    if (prepared.copies.length === 0 && prepared.withheld) {
      // Revoked (or expired) since this step looked: held like the rest, not set aside.
      this.withheldWhy = prepared.error;
      return 'withheld';
    }
    if (prepared.copies.length === 0) {
      // The first message cannot be made for this recipient (e.g. nothing to encrypt it to): set it aside.
      const event = this.event(all[0]!, 'rejected', null, this.unprepared(prepared.error ?? ''), null);
      await this.setAside([event], all[0]!.seq);
      return null;
    }
    // Encoded once: the same bytes are counted against the call's size, hashed for the signature and sent.
    const encoded = this.deps.encoded;
    const made = prepared.copies.map((copy, i) => (encoded ? encoded.bytes(all[i]!.messageId, copy) : Buffer.from(copy, 'utf8')));
    const fit = copiesWithin(made.map((b) => b.length), hook.maxPayloadKb * 1024);
    const entries = all.slice(0, fit);
    const first = entries[0]!.seq;
    const last = entries[entries.length - 1]!.seq;
    const body = batchBody(made.slice(0, fit));
    const outcome = await this.call(hook.url, body, first, last);
    const { startedAt, tracedFrom } = outcome;
    // Given with the call (stamped with its start): however often its record is written (src/pipeline/attempt-journal.ts), it is one attempt.
    const attemptId = newAttemptId(startedAt, this.deps.randomBytes);
    const status = outcome.kind === 'answered' ? outcome.status : null;
    const verdict = status === null ? 'retry' : classifyStatus(status);
    const error = outcome.kind === 'failed' ? outcome.error : null;
    // Read before the call is traced, so that its spans tell which messages a 207 refused.
    const multi = verdict === 'delivered' && status === 207 && outcome.kind === 'answered' ? this.refusedIn(outcome.body, outcome.truncated === true, entries) : null;
    const refused = multi?.refused ?? new Map<string, AnswerEntry>();
    const fault = multi !== null && refused.size === 0 ? (multi.fault ?? MULTI_STATUS_NAMES_NO_FAILURE) : null;
    if (verdict === 'delivered') this.contractFault = fault === null ? null : { calls: (this.contractFault?.calls ?? 0) + 1, since: this.contractFault?.since ?? startedAt, error: fault };
    if (tracedFrom !== undefined) {
      const q = this.queue;
      const refusals = [...refused].map(([transactionId, entry]) => ({ transactionId, code: answerCode(entry) }));
      // retries counts the calls that failed since the last settlement: all offered the oldest entry of this one.
      this.deps.tracer!.attempted({ channel: q.channel, recipient: q.recipientDipId, transactionIds: entries.map((e) => e.transactionId), attempt: this.retries + 1, status, verdict, ...(refusals.length > 0 ? { refusals } : {}), startedAt: tracedFrom, endedAt: this.deps.tracer!.now() });
    }
    this.deps.archive
      .recordAttempt({ attemptId, queue: this.queue, firstSeq: first, lastSeq: last, url: outcome.shownUrl, startedAt, latencyMs: outcome.latencyMs, status, verdict, error: error ?? fault })
      .catch((err: unknown) => this.deps.logger.error({ err }, 'could not record a delivery attempt'));

    if (refused.size > 0) {
      // Spec 5.5.9: the format issues a recipient finds are relayed back to the sender. A message the
      // 207 names with a failure code is refused like one answered 400 (no retry): set aside, its entry
      // returned to its sender; the rest are delivered. One settlement moves past the whole call.
      this.answered();
      this.deliveredUpTo = last;
      this.deliveredAt(entries.filter((e) => !refused.has(e.transactionId)));
      const events = entries.flatMap((e) => {
        const entry = refused.get(e.transactionId);
        if (!entry) return [];
        return [this.namedRefusal(e, status, entry)];
      });
      await this.setAside(events, last);
      return null;
    }
    if (verdict === 'delivered') {
      this.answered();
      this.deliveredUpTo = last;
      this.deliveredAt(entries);
      // Recorded while the next calls are read, made and sent: FIFO holds (they carry later positions),
      // and a crash before it is durable sends them all again at the same positions (repeats, no gap).
      if (this.recording) {
        this.toRecord = last;
        this.callsBehind += 1;
      }
      else {
        await this.settledBefore({ upTo: last }, []); // a recording that failed stops here
        this.settling = this.recordDelivered(last);
      }
      return null;
    }
    // A failed call is counted after the settlement before it lands (which resets the retries).
    await this.settled();
    if (verdict === 'retry') {
      this.retries += 1;
      this.failures += 1;
      this.failingSince ??= startedAt;
      this.failingUrl = hook.url;
      this.callError = error ?? `HTTP ${status}`;
      const retryAfter = outcome.kind === 'answered' ? parseRetryAfter(outcome.retryAfter, this.deps.clock.now()) : undefined;
      const wait = retryDelayMs(this.deps.settings.retry, this.retries - 1, this.deps.random(), retryAfter);
      this.deps.logger.warn({ queue: this.queue, first, last, status, error, wait }, 'delivery will be retried');
      return wait;
    }
    // A final refusal (400, 404, 505 …): an answer all the same, so the webhook is not failing.
    this.answered();
    if (entries.length > 1) {
      // The recipient refused the call. A StandardResponse naming failing messages (by transactionID, a
      // code other than success, as a 207's does) says which: those are set aside, the rest go together
      // again. Naming none, send its messages singly so only the one it refuses is set aside.
      const named = outcome.kind === 'answered' && !outcome.truncated ? refusedInMultiStatus(outcome.body, entries.map((e) => e.transactionId)) : null;
      if (named !== null && named.size > 0) {
        for (const e of entries) {
          const entry = named.get(e.transactionId);
          if (entry) this.refusedAhead.set(e.seq, this.namedRefusal(e, status, entry));
        }
        return null;
      }
      this.singlesUntil = last;
      return null;
    }
    const answer = outcome.kind === 'answered' ? outcome.body : null;
    await this.setAside([this.event(entries[0]!, 'rejected', status, `${this.queue.recipientDipId} refused the message: HTTP ${status}`, answer)], last);
    return null;
  }

  /** A message the recipient's answer (a 207, or a 400 to several) named with a failure code: set aside, the code and help relayed to its sender. */
  private namedRefusal(e: QueueEntry, status: number | null, entry: AnswerEntry): DeadLetterEvent {
    const detail = `${this.queue.recipientDipId} refused the message in a ${status} answer (${entry.message})`;
    return this.event(e, 'rejected', status, detail, JSON.stringify({ messageArray: [entry] }));
  }

  /**
   * The entries a call may carry with refusals named ahead (refusedAhead): up to the next named one. When
   * the head is named, it (and any named right after it) is set aside now, and null returned.
   */
  private async beforeNamedRefusal(read: QueueEntry[]): Promise<QueueEntry[] | null> {
    const head: DeadLetterEvent[] = [];
    for (const e of read) {
      const named = this.refusedAhead.get(e.seq);
      if (!named) break;
      head.push(named);
    }
    if (head.length > 0) {
      await this.setAside(head, head.at(-1)!.entry.seq);
      return null;
    }
    const cut = read.findIndex((e) => this.refusedAhead.has(e.seq));
    return cut === -1 ? read : read.slice(0, cut);
  }

  /**
   * The messages of a call a 207 answer refused, by transaction ID (empty: none to act on). An answer that
   * cannot say which failed leaves them all delivered: the call was answered 2xx, and sending them again
   * would repeat those the recipient created.
   */
  private refusedIn(body: string, truncated: boolean, entries: QueueEntry[]): { refused: Map<string, AnswerEntry>; fault: string | null } {
    const first = entries[0]!.seq;
    const last = entries[entries.length - 1]!.seq;
    if (truncated) {
      // Kept up to answerBytes(entries.length), ample for an entry per message: a recipient that answers
      // more is misbehaving, and its refusals cannot be read. Said loudly: senders are not told of them.
      this.deps.logger.error({ queue: this.queue, first, last, kept: body.length }, 'the recipient answered 207 with a body too long (or too slow) to read: its refusals could not be read, all taken as delivered');
      return { refused: new Map(), fault: MULTI_STATUS_UNREAD };
    }
    if (answerEntries(body) === null) {
      this.deps.logger.warn({ queue: this.queue, first, last }, 'the recipient answered 207 with a body that is no StandardResponse: all taken as delivered, recorded as a receiver contract fault');
      return { refused: new Map(), fault: MULTI_STATUS_NOT_STANDARD_RESPONSE };
    }
    const refused = refusedInMultiStatus(body, entries.map((e) => e.transactionId));
    if (refused === null || refused.size === 0) {
      this.deps.logger.warn({ queue: this.queue, first, last }, 'the recipient answered 207 without naming a failing message: all taken as delivered, recorded as a receiver contract fault');
      return { refused: new Map(), fault: MULTI_STATUS_NAMES_NO_FAILURE };
    }
    return { refused, fault: null };
  }

  /**
   * Signs and sends one call. The URL signed and the URL requested are one string, requestedUrl(): the
   * recipient verifies the signature against the URL it received, which is the client's serialisation
   * of the callback URL, not the text registered (`https://Sup.example:443/dip` is requested, and must
   * be signed, as `https://sup.example/dip`).
   */
  private async call(callbackUrl: string, body: Buffer, first: number, last: number): Promise<WebhookOutcome & { startedAt: number; tracedFrom: number | undefined; shownUrl: string }> {
    const url = requestedUrl(callbackUrl);
    if (url === null) {
      // Registered before such URLs were refused: no call can be made, and none is signed. Retried (the
      // recipient may register a new URL) until the channel's staleness limit sets the messages aside.
      const shown = shownUrl(callbackUrl);
      const error = `the callbackURL ${shown} is not a URL that can be called: register a new one`;
      return { kind: 'failed', error, latencyMs: 0, startedAt: this.deps.clock.now(), tracedFrom: this.deps.tracer?.now(), shownUrl: shown };
    }
    // Room first, then the signature: a wait behind a slow settlement (a stopped main process: unbounded)
    // would otherwise send a signature date as old as the wait, which a receiver refuses as clock skew.
    await this.roomToCall();
    const headers = await this.deps.signer.sign('POST', url, body);
    headers['content-type'] = 'application/json';
    headers[SEQUENCE_HEADER] = formatSequence(first, last);
    // The version the call's body and headers follow, as every participant API answer says it (README "API versions").
    Object.assign(headers, API_VERSION_HEADERS);
    // Every position before the call's first is settled: delivered to this webhook, or set aside by the DIP
    // (stale, refused: its sender told). Said as a pull answer says it, so a receiver does not take the
    // positions the DIP set aside for a gap (sequence.ts, gapBefore).
    headers[ACKNOWLEDGED_HEADER] = String(first - 1);
    // Nor once stopped: the call under way when stop() came is the only one a stopped worker finishes. One
    // stopped while its step read the store (a PostgreSQL restart) called when the read came back if its
    // node held the lease again by then, beside the queue's new worker.
    if (this.current === 'stopped' || this.deps.mayCall?.(this.queue) === false) throw new LeaseEnded(this.queue);
    const startedAt = this.deps.clock.now();
    this.lastCallAt = startedAt;
    this.gathered = false;
    const tracedFrom = this.deps.tracer?.now();
    const posting = this.deps.transport.post({ url, body, headers, timeoutMs: this.deps.settings.timeoutMs, maxAnswerBytes: answerBytes(last - first + 1) });
    this.posting = posting;
    const outcome = await posting.finally(() => {
      if (this.posting === posting) this.posting = null;
    });
    // Journalled as requested (and signed), secrets masked: a disputed signature can be rebuilt from it.
    return { ...outcome, startedAt, tracedFrom, shownUrl: shownUrl(url) };
  }

  /** Each entry's copy for this recipient, stopping at the first that cannot be made (withheld: it must wait, CopyWithheld). */
  private async copies(entries: QueueEntry[]): Promise<{ copies: string[]; error: string | null; withheld: boolean }> {
    const { copies, failure } = await leadingCopies((queue, source) => this.deps.copyFor(queue, source), this.queue, entries);
    return { copies, error: failure?.message ?? null, withheld: failure instanceof CopyWithheld };
  }

  private event(entry: QueueEntry, reason: DeadLetterReason, status: number | null, detail: string, answer: string | null): DeadLetterEvent {
    return { queue: this.queue, entry, reason, status, detail, answer };
  }

  /** Entries received before this have waited longer than the channel's staleness limit. */
  private staleCutoff(): number {
    return this.deps.clock.now() - this.deps.staleAfterMs(this.queue.channel);
  }

  /**
   * The entries before the first whose stored copy cannot be opened (QueueEntry.unreadable); when that is
   * the first, it is dead-lettered and null returned. No retry opens it: retried, it held the queue for ever.
   */
  private async passUnreadable(entries: QueueEntry[]): Promise<QueueEntry[] | null> {
    const at = entries.findIndex((e) => e.unreadable !== undefined);
    if (at === -1) return entries;
    if (at > 0) return entries.slice(0, at);
    const head = entries[0]!;
    await this.setAside([this.event(head, 'rejected', null, `the stored copy could not be opened (${head.unreadable}): it cannot be delivered`, null)], head.seq);
    return null;
  }

  /**
   * For a recipient that pulls: sets the oldest entry aside, as deliver() does for a webhook, when no copy
   * of it can be made (CopyUnmakeable: the pull route refuses it, and would until it went stale). True when it did.
   */
  /** Why `head`'s copy waits (CopyWithheld), or null: it can be made, or is set aside on the road it takes. */
  private async heldBack(head: QueueEntry): Promise<string | null> {
    const { failure } = await leadingCopies((queue, source) => this.deps.copyFor(queue, source), this.queue, [head]);
    return failure instanceof CopyWithheld ? failure.message : null;
  }

  private async passUnmakeable(head: QueueEntry): Promise<boolean> {
    const { failure } = await leadingCopies((queue, source) => this.deps.copyFor(queue, source), this.queue, [head]);
    if (!(failure instanceof CopyUnmakeable)) return false;
    await this.setAside([this.event(head, 'rejected', null, this.unprepared(failure.message), null)], head.seq);
    return true;
  }

  private unprepared(why: string): string {
    return `could not prepare the copy for ${this.queue.recipientDipId}: ${why}`;
  }

  /** Dead-letters entries that waited longer than the channel's staleness limit. True when any did. */
  private async expire(entries: QueueEntry[]): Promise<boolean> {
    const staleMs = this.deps.staleAfterMs(this.queue.channel);
    const cutoff = this.staleCutoff();
    // Only a leading run: settling is by position, so a fresh entry must never be skipped over.
    const firstFresh = entries.findIndex((e) => e.receivedAt >= cutoff);
    const expired = firstFresh === -1 ? entries : entries.slice(0, firstFresh);
    if (expired.length === 0) return false;
    // Why, when the webhook was failing: a host that does not resolve, a closed port, a timeout. The
    // dead letter is what the operator and the sender read; without it they had to search the attempts.
    // Its kind only (failureKind): the sender must not learn the recipient's hosts and addresses.
    const why = this.failures > 0 && this.callError !== null ? `; the last call failed: ${failureKind(this.callError)} (${this.failures} failed call${this.failures === 1 ? '' : 's'} in a row)` : '';
    // The operator's reading; its sender's (Return to Sender, reports) has the reason replaced (detailForSender).
    const held = this.withheldWhy === null ? '' : heldBackDetail(this.withheldWhy);
    const detail = `stale: not delivered to ${this.queue.recipientDipId} within ${formatDuration(staleMs)}${why}${held}`;
    await this.setAside(
      expired.map((e) => this.event(e, 'stale', null, detail, null)),
      expired.at(-1)!.seq,
    );
    return true;
  }

  /** Sets messages aside and moves past them, with their senders' status messages: one atomic settlement. */
  private async setAside(events: DeadLetterEvent[], upTo: number): Promise<void> {
    const deadLetters: DeadLetterRecord[] = events.map((e) => ({ seq: e.entry.seq, messageId: e.entry.messageId, reason: e.reason, status: e.status, detail: e.detail }));
    const notices = await this.deps.notices(events);
    await this.record({ upTo, deadLetters, ...(notices ? { notices } : {}) }, events);
  }

  /**
   * Waits, before a call, while `callsPastSettlement` calls answered past the settlement being recorded wait
   * to be recorded themselves (toRecord): no more go past an unrecorded settlement. Throws what that settlement's
   * recording threw (the call is then not made).
   */
  private async roomToCall(): Promise<void> {
    const limit = this.deps.settings.callsPastSettlement ?? DEFAULT_CALLS_PAST_SETTLEMENT;
    while (this.recording && this.callsBehind >= limit && this.landing) await this.landing;
  }

  /** Records delivered positions from `upTo` on, and any answered while each is recorded, one settlement at a time. */
  private recordDelivered(upTo: number): Promise<void> {
    this.recording = true;
    const done = (async () => {
      try {
        for (let next = upTo; next > 0; next = this.toRecord) {
          this.toRecord = 0;
          this.callsBehind = 0;
          this.landing = this.recordNow({ upTo: next }, []);
          await this.landing;
        }
      } catch (error) {
        // The call answered meanwhile is owed too (after the one that failed): never sent again for it.
        if (this.toRecord > 0) this.owe({ upTo: this.toRecord }, []);
        this.toRecord = 0;
        this.callsBehind = 0;
        throw error;
      } finally {
        this.recording = false;
        this.landing = null;
      }
    })();
    done.catch(() => {}); // awaited (and its failure handled) by settled(); not an unhandled rejection meanwhile
    return done;
  }

  /** Records a settlement; if the store cannot take it, it is kept and recorded first when the worker resumes. */
  private async record(settlement: Settlement, events: DeadLetterEvent[]): Promise<void> {
    // Settlements go one at a time, in order: the ones being recorded land first.
    await this.settledBefore(settlement, events);
    await this.recordNow(settlement, events);
  }

  /** settled(), for a settlement decided meanwhile: if the one before failed, this one is owed after it. */
  private async settledBefore(settlement: Settlement, events: DeadLetterEvent[]): Promise<void> {
    try {
      await this.settled();
    } catch (error) {
      this.owe(settlement, events);
      throw error;
    }
  }

  /**
   * Keeps a settlement to record when the store takes writes again, after those owed before it. A plain
   * delivery after another is folded into it (positions are cumulative).
   */
  private owe(settlement: Settlement, events: DeadLetterEvent[]): void {
    const before = this.unrecorded.at(-1);
    const plain = (s: Settlement, e: DeadLetterEvent[]) => e.length === 0 && !s.deadLetters?.length && !s.notices;
    if (before && plain(before.settlement, before.events) && plain(settlement, events)) before.settlement = { upTo: Math.max(before.settlement.upTo, settlement.upTo) };
    else this.unrecorded.push({ settlement, events });
  }

  /** Records what is owed, oldest first; what the store cannot take stays owed. */
  private async recordUnrecorded(): Promise<void> {
    while (this.unrecorded.length > 0) {
      const { settlement, events } = this.unrecorded[0]!;
      const outcome = await this.deps.log.settle(this.queue, settlement);
      this.unrecorded.shift();
      if (outcome === 'superseded') await this.superseded(settlement);
      else this.recorded(settlement, events);
    }
  }

  private async recordNow(settlement: Settlement, events: DeadLetterEvent[]): Promise<void> {
    // One at a time (settledBefore): a store that never answers leaves it here, still owed.
    this.inFlightUpTo = settlement.upTo;
    let outcome: SettleOutcome;
    try {
      outcome = await this.deps.log.settle(this.queue, settlement);
    } catch (error) {
      this.owe(settlement, events);
      throw error;
    } finally {
      this.inFlightUpTo = 0;
    }
    if (outcome === 'superseded') await this.superseded(settlement);
    else this.recorded(settlement, events);
  }

  /**
   * The store wrote nothing of a settlement that set aside positions the queue had passed (MessageLog.settle):
   * a pull's acknowledgement landed after the position was read (the stale sweep read it, then built the
   * senders' notices), so those messages are delivered and nobody is told otherwise. The position is read
   * again and the next step decides afresh from it: entries beyond it that are still stale are set aside then.
   */
  private async superseded(settlement: Settlement): Promise<void> {
    this.ackedSeq = Math.max(this.ackedSeq, (await this.deps.log.queueState(this.queue)).ackedSeq);
    // The store answered: an error it gave before (the settlement owed since) is no longer this queue's state.
    this.runError = null;
    this.deps.logger.info({ queue: this.queue, upTo: settlement.upTo, ackedSeq: this.ackedSeq }, 'nothing set aside: the recipient acknowledged those positions meanwhile');
  }

  /** A settlement is durable. */
  private recorded(settlement: Settlement, events: DeadLetterEvent[]): void {
    this.ackedSeq = Math.max(this.ackedSeq, settlement.upTo);
    // Named refusals settled (set aside, or gone stale first) are done with.
    for (const seq of this.refusedAhead.keys()) if (seq <= this.ackedSeq) this.refusedAhead.delete(seq);
    // New messages at the head start their backoff afresh; the webhook's failure record (failures,
    // failingSince, its error) stays: a settlement of stale messages is no answer from the recipient.
    this.retries = 0;
    this.runError = null;
    for (const e of events) {
      this.deps.logger.warn({ queue: this.queue, seq: e.entry.seq, transactionId: e.entry.transactionId, reason: e.reason, status: e.status }, 'message dead-lettered');
    }
    if (events.length > 0) this.deps.deadLettered(events, settlement.notices);
  }
}

function formatDuration(ms: number): string {
  if (ms >= 86_400_000) return `${+(ms / 86_400_000).toFixed(2)} days`;
  if (ms >= 3_600_000) return `${+(ms / 3_600_000).toFixed(2)} hours`;
  return `${+(ms / 1000).toFixed(1)} seconds`;
}
