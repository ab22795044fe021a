import { formatSequence, SEQUENCE_HEADER } from '../domain/sequence.js';
import { classifyStatus, parseRetryAfter, retryDelayMs, type RetryPolicy } from '../domain/retry.js';
import type { DeadLetterReason, MessageLog, QueueEntry, QueueRef, Webhook } from '../ports/store.js';
import type { OutboundSigner, WebhookTransport } from '../ports/webhook.js';
import type { Logger } from './logger.js';
import type { Registry } from './registry.js';


export interface DeliverySettings {
  timeoutMs: number;
  retry: RetryPolicy;
  /** How often queues nobody is delivering (no webhook, or waiting to retry) are checked for stale messages. */
  sweepIntervalMs: number;
}

export interface DeliveryDeps {
  log: MessageLog;
  registry: Pick<Registry, 'webhook' | 'onChange'>;
  transport: WebhookTransport;
  signer: OutboundSigner;
  settings: DeliverySettings;
  logger: Logger;
  random?: () => number;
  /** How long a message on this channel may wait undelivered before it is dead-lettered as stale. */
  staleAfterMs: (channel: string) => number;
  /** The copy a recipient gets: obfuscation by role happens here. Identity when absent. */
  outboundFor?: (queue: QueueRef, outbound: string) => string | Promise<string>;
  /** In-process consumers (the MPAN lookup's feed) take their queue's entries instead of a webhook. */
  localConsumer?: (queue: QueueRef) => LocalConsumer | undefined;
  /** A message went to the dead-letter queue; `answer` is what a refusing recipient said. */
  onDeadLetter?: (event: DeadLetterEvent) => void;
}

/** Handles entries in order; a throw leaves them queued and they are offered again after a pause. */
export type LocalConsumer = (entries: QueueEntry[]) => Promise<void>;

export interface DeadLetterEvent {
  queue: QueueRef;
  entry: QueueEntry;
  reason: DeadLetterReason;
  status: number | null;
  detail: string;
  answer: string | null;
}

const key = (q: QueueRef): string => `${q.recipientDipId}\u0000${q.channel}`;

/**
 * One worker per recipient queue: at most one call in flight per queue, so order holds across retries,
 * and queues never wait on each other, so a slow or dead recipient delays only itself.
 */
export class Delivery {
  private readonly workers = new Map<string, QueueWorker>();
  private stopped = false;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly deps: DeliveryDeps) {
    deps.registry.onChange(() => {
      for (const w of this.workers.values()) w.webhookMayHaveChanged();
    });
  }

  /** Resumes every queue that still holds undelivered entries (after a restart), then sweeps periodically. */
  async start(): Promise<void> {
    await this.sweep();
    this.sweeper = setInterval(() => {
      this.sweep().catch((err: unknown) => this.deps.logger.error({ err }, 'sweep failed'));
    }, this.deps.settings.sweepIntervalMs);
    this.sweeper.unref();
  }

  /** Looks at every queue holding undelivered entries: delivers what it can, dead-letters what is stale. */
  async sweep(): Promise<void> {
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
    if (this.sweeper) clearInterval(this.sweeper);
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
  }
}

class QueueWorker {
  private ackedSeq = 0;
  private running: Promise<void> | null = null;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** The callback URL the current run of failures was against. */
  private failingUrl: string | undefined;
  /** After a batch is refused, messages go one per call up to here, to find the one the recipient refuses. */
  private singlesUntil = 0;
  private stopped = false;

  constructor(
    private readonly queue: QueueRef,
    private readonly deps: DeliveryDeps,
  ) {}

  /** A new callback URL is a new chance: a queue backing off from the old one tries the new one now. */
  webhookMayHaveChanged(): void {
    const hook = this.deps.registry.webhook(this.queue.recipientDipId, this.queue.channel);
    if (this.timer && hook && hook.url !== this.failingUrl) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.failures = 0;
    }
    this.kick();
  }

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
      // Re-read each time: a recipient that pulls moves its position through the API, not through us.
      this.ackedSeq = Math.max(this.ackedSeq, (await this.deps.log.queueState(this.queue)).ackedSeq);
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        for (;;) {
          if (this.stopped) return;
          const local = this.deps.localConsumer?.(this.queue);
          if (local) {
            const entries = await this.deps.log.readQueue(this.queue, this.ackedSeq, 500, 1 << 24);
            if (entries.length === 0) break;
            await local(entries);
            await this.settle(entries.at(-1)!.seq);
            continue;
          }
          const hook = this.deps.registry.webhook(this.queue.recipientDipId, this.queue.channel);
          // With no webhook only the oldest entry matters (is it stale?): the backlog is not re-read per kick.
          const limit = !hook ? 1 : this.ackedSeq < this.singlesUntil ? 1 : hook.maxMessageCount;
          const entries = await this.deps.log.readQueue(this.queue, this.ackedSeq, limit, hook ? hook.maxPayloadKb * 1024 : 1 << 22);
          if (entries.length === 0) break;
          if (await this.expire(entries)) continue;
          if (!hook) return; // Messages wait for a webhook, or for the recipient to pull them.
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
  private async deliver(hook: Webhook, all: QueueEntry[]): Promise<number | null> {
    const prepared = await this.copies(all);
    if (prepared.copies.length === 0) {
      // The first message cannot be made for this recipient (e.g. nothing to encrypt it to): set it aside.
      await this.deadLetter(all[0]!, 'rejected', null, `could not prepare the copy for ${this.queue.recipientDipId}: ${prepared.error}`, null);
      await this.settle(all[0]!.seq);
      return null;
    }
    const entries = all.slice(0, prepared.copies.length);
    const first = entries[0]!.seq;
    const last = entries[entries.length - 1]!.seq;
    // Encoded once: the same bytes are hashed for the signature and sent.
    const body = Buffer.from(`[${prepared.copies.join(',')}]`, 'utf8');
    const headers = await this.deps.signer.sign('POST', hook.url, body);
    headers['content-type'] = 'application/json';
    headers[SEQUENCE_HEADER] = formatSequence(first, last);
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
      this.failingUrl = hook.url;
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
    const answer = outcome.kind === 'answered' ? outcome.body : null;
    await this.deadLetter(entries[0]!, 'rejected', status, `${this.queue.recipientDipId} refused the message: HTTP ${status}`, answer);
    await this.settle(last);
    return null;
  }

  /** Each entry's copy for this recipient, stopping at the first that cannot be made. */
  private async copies(entries: QueueEntry[]): Promise<{ copies: string[]; error: string | null }> {
    const make = this.deps.outboundFor;
    if (!make) return { copies: entries.map((e) => e.outbound), error: null };
    const copies: string[] = [];
    for (const e of entries) {
      try {
        copies.push(await make(this.queue, e.outbound));
      } catch (err) {
        return { copies, error: (err as Error).message };
      }
    }
    return { copies, error: null };
  }

  private async deadLetter(entry: QueueEntry, reason: DeadLetterReason, status: number | null, detail: string, answer: string | null): Promise<void> {
    await this.deps.log.recordDeadLetter(this.queue, entry, reason, status, detail);
    this.deps.logger.warn({ queue: this.queue, seq: entry.seq, transactionId: entry.transactionId, reason, status }, 'message dead-lettered');
    this.deps.onDeadLetter?.({ queue: this.queue, entry, reason, status, detail, answer });
  }

  /** Dead-letters entries that waited longer than the channel's staleness limit. True when any did. */
  private async expire(entries: QueueEntry[]): Promise<boolean> {
    const staleMs = this.deps.staleAfterMs(this.queue.channel);
    const cutoff = Date.now() - staleMs;
    // Only a leading run: settling is by position, so a fresh entry must never be skipped over.
    const firstFresh = entries.findIndex((e) => e.receivedAt >= cutoff);
    const expired = firstFresh === -1 ? entries : entries.slice(0, firstFresh);
    if (expired.length === 0) return false;
    for (const e of expired) {
      await this.deadLetter(e, 'stale', null, `stale: not delivered to ${this.queue.recipientDipId} within ${formatDuration(staleMs)}`, null);
    }
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

function formatDuration(ms: number): string {
  if (ms >= 86_400_000) return `${+(ms / 86_400_000).toFixed(2)} days`;
  if (ms >= 3_600_000) return `${+(ms / 3_600_000).toFixed(2)} hours`;
  return `${+(ms / 1000).toFixed(1)} seconds`;
}
