import { classifyStatus, parseRetryAfter, retryDelayMs, type RetryPolicy } from '../domain/retry.js';
import type { MessageLog, QueueEntry, QueueRef, Webhook } from '../ports/store.js';
import type { OutboundSigner, WebhookTransport } from '../ports/webhook.js';
import type { Logger } from './logger.js';
import type { Registry } from './registry.js';

/** Tells a recipient which queue positions a call carries ("first-last", in body order), so it can spot duplicates and gaps. */
export const SEQUENCE_HEADER = 'x-opendip-sequence';

export interface DeliverySettings {
  timeoutMs: number;
  retry: RetryPolicy;
  /** How long a message waits for an offline recipient before it is set aside as expired. */
  retentionMs: number;
}

export interface DeliveryDeps {
  log: MessageLog;
  registry: Pick<Registry, 'webhook' | 'onChange'>;
  transport: WebhookTransport;
  signer: OutboundSigner;
  settings: DeliverySettings;
  logger: Logger;
  random?: () => number;
  /** A recipient refused a message for good (a non-retryable status). */
  onRejected?: (queue: QueueRef, entry: QueueEntry, status: number) => void;
}

const key = (q: QueueRef): string => `${q.recipientDipId}\u0000${q.channel}`;

/**
 * One worker per recipient queue: at most one call in flight per queue, so order holds across retries,
 * and queues never wait on each other, so a slow or dead recipient delays only itself.
 */
export class Delivery {
  private readonly workers = new Map<string, QueueWorker>();
  private stopped = false;

  constructor(private readonly deps: DeliveryDeps) {
    deps.registry.onChange(() => {
      for (const w of this.workers.values()) w.kick();
    });
  }

  /** Resumes every queue that still holds undelivered entries (after a restart). */
  async start(): Promise<void> {
    this.notify(await this.deps.log.pendingQueues());
  }

  notify(queues: Iterable<QueueRef>): void {
    if (this.stopped) return;
    for (const q of queues) {
      let w = this.workers.get(key(q));
      if (!w) {
        w = new QueueWorker(q, this.deps);
        this.workers.set(key(q), w);
      }
      w.kick();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
  }
}

class QueueWorker {
  private ackedSeq: number | undefined;
  private running: Promise<void> | null = null;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** After a batch is refused, messages go one per call up to here, to find the one the recipient refuses. */
  private singlesUntil = 0;
  private stopped = false;

  constructor(
    private readonly queue: QueueRef,
    private readonly deps: DeliveryDeps,
  ) {}

  kick(): void {
    this.dirty = true;
    if (this.running || this.timer || this.stopped) return;
    this.running = this.run().finally(() => {
      this.running = null;
      // A kick that landed after the loop's last look must not be lost.
      if (this.dirty && !this.timer) this.kick();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private async run(): Promise<void> {
    try {
      this.ackedSeq ??= (await this.deps.log.queueState(this.queue)).ackedSeq;
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        for (;;) {
          if (this.stopped) return;
          const hook = this.deps.registry.webhook(this.queue.recipientDipId, this.queue.channel);
          if (!hook) return; // Messages wait in the queue until the recipient registers a webhook.
          const limit = this.ackedSeq < this.singlesUntil ? 1 : hook.maxMessageCount;
          const entries = await this.deps.log.readQueue(this.queue, this.ackedSeq, limit, hook.maxPayloadKb * 1024);
          if (entries.length === 0) break;
          if (await this.expire(entries)) continue;
          const retryIn = await this.deliver(hook, entries);
          if (retryIn !== null) {
            this.timer = setTimeout(() => {
              this.timer = undefined;
              this.kick();
            }, retryIn);
            return;
          }
        }
      }
    } catch (error) {
      // A store error: try again shortly rather than leave the queue stranded.
      this.deps.logger.error({ queue: this.queue, err: error }, 'delivery worker failed; retrying');
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.kick();
      }, this.deps.settings.retry.baseMs);
    }
  }

  /** Sends one call. Returns null when the queue may move on, or the wait before retrying. */
  private async deliver(hook: Webhook, entries: QueueEntry[]): Promise<number | null> {
    const first = entries[0]!.seq;
    const last = entries[entries.length - 1]!.seq;
    const body = entries.length === 1 ? `[${entries[0]!.outbound}]` : `[${entries.map((e) => e.outbound).join(',')}]`;
    const headers = await this.deps.signer.sign('POST', hook.url, body);
    headers['content-type'] = 'application/json';
    headers[SEQUENCE_HEADER] = `${first}-${last}`;
    const startedAt = Date.now();
    const outcome = await this.deps.transport.post({ url: hook.url, body, headers, timeoutMs: this.deps.settings.timeoutMs });
    const status = outcome.kind === 'answered' ? outcome.status : null;
    const verdict = status === null ? 'retry' : classifyStatus(status);
    const error = outcome.kind === 'failed' ? outcome.error : null;
    this.deps.log
      .recordAttempt({ queue: this.queue, firstSeq: first, lastSeq: last, url: hook.url, startedAt, latencyMs: outcome.latencyMs, status, verdict, error })
      .catch((err: unknown) => this.deps.logger.error({ err }, 'could not record a delivery attempt'));

    if (verdict === 'delivered') {
      await this.settle(last);
      return null;
    }
    if (verdict === 'retry') {
      this.failures += 1;
      const retryAfter = outcome.kind === 'answered' ? parseRetryAfter(outcome.retryAfter, Date.now()) : undefined;
      const wait = retryDelayMs(this.deps.settings.retry, this.failures - 1, (this.deps.random ?? Math.random)(), retryAfter);
      this.deps.logger.warn({ queue: this.queue, first, last, status, error, wait }, 'delivery will be retried');
      return wait;
    }
    if (entries.length > 1) {
      // The recipient refused the call; send its messages singly so only the one it refuses is set aside.
      this.singlesUntil = last;
      return null;
    }
    const entry = entries[0]!;
    await this.deps.log.recordRejection(this.queue, entry, status!, `recipient answered ${status}`);
    this.deps.logger.warn({ queue: this.queue, seq: entry.seq, transactionId: entry.transactionId, status }, 'recipient refused a message');
    this.deps.onRejected?.(this.queue, entry, status!);
    await this.settle(last);
    return null;
  }

  /** Sets aside entries that waited longer than the retention period. True when any were. */
  private async expire(entries: QueueEntry[]): Promise<boolean> {
    const cutoff = Date.now() - this.deps.settings.retentionMs;
    // Only a leading run: settling is by position, so a fresh entry must never be skipped over.
    const firstFresh = entries.findIndex((e) => e.receivedAt >= cutoff);
    const expired = firstFresh === -1 ? entries : entries.slice(0, firstFresh);
    if (expired.length === 0) return false;
    const days = (this.deps.settings.retentionMs / 86_400_000).toFixed(2);
    for (const e of expired) await this.deps.log.recordRejection(this.queue, e, 0, `expired: not delivered within ${days} days`);
    this.deps.logger.warn({ queue: this.queue, count: expired.length, lastSeq: expired.at(-1)!.seq }, 'messages expired undelivered');
    await this.settle(expired.at(-1)!.seq);
    return true;
  }

  private async settle(seq: number): Promise<void> {
    // The acknowledgement is durable before the next call: after a crash at most this one call repeats.
    await this.deps.log.ack(this.queue, seq);
    this.ackedSeq = seq;
    this.failures = 0;
  }
}
