import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DeliveryAttempt } from '../ports/archive.js';
import type { BackendHealth, CommitGroup } from '../ports/backend.js';
import type { MessageLog, QueueRef } from '../ports/message-log.js';

/** A queue's backlog as a scrape sees it. */
export interface QueueDepth {
  queue: QueueRef;
  depth: number;
  /** Age of the oldest undelivered message (ms), 0 when none waits. */
  oldestAgeMs: number;
}

/**
 * Reads every pending queue's depth and the age of its oldest undelivered entry from the message log
 * (no counter kept on the road: the log's own positions are the truth, whichever node appended).
 */
export async function queueDepths(log: Pick<MessageLog, 'pendingQueues' | 'queueState' | 'readQueue'>, now: number): Promise<QueueDepth[]> {
  const out: QueueDepth[] = [];
  for (const queue of await log.pendingQueues()) {
    const s = await log.queueState(queue);
    const depth = Math.max(0, s.headSeq - s.ackedSeq);
    const oldest = depth > 0 ? (await log.readQueue(queue, s.ackedSeq, 1, 1))[0] : undefined;
    out.push({ queue, depth, oldestAgeMs: oldest ? Math.max(0, now - oldest.receivedAt) : 0 });
  }
  return out;
}

/**
 * The DIP's Prometheus metrics (prom-client). The road is never slowed by them: counters are bumped
 * where an event happens anyway, and queue depths are read from the log only when Prometheus scrapes.
 */
export class DipMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'listener' | 'method' | 'route' | 'status'>;
  private readonly ingested: Counter<'channel'>;
  private readonly attempts: Counter<'verdict'>;
  private readonly deliveryLatency: Histogram;
  private readonly deadLetters: Counter<'channel' | 'reason'>;
  private readonly storageErrors: Counter<'state'>;
  private readonly storageOk: Gauge;
  private readonly refusals: Counter<'channel' | 'code'>;
  private readonly ingestLatency: Histogram;
  private readonly groupWrites: Histogram;
  private readonly groupSeconds: Histogram;

  constructor(depths: () => Promise<QueueDepth[]>) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'dip_process_' });
    this.requests = new Counter({ name: 'dip_http_requests_total', help: 'Requests answered, by listener, method, route and HTTP status', labelNames: ['listener', 'method', 'route', 'status'], registers });
    this.ingested = new Counter({ name: 'dip_ingested_messages_total', help: 'Messages accepted (201) by channel', labelNames: ['channel'], registers });
    this.attempts = new Counter({ name: 'dip_delivery_attempts_total', help: 'Webhook calls by outcome (delivered, retry, rejected)', labelNames: ['verdict'], registers });
    this.deliveryLatency = new Histogram({
      name: 'dip_delivery_latency_seconds',
      help: 'Duration of webhook calls, whatever their outcome (dip_delivery_attempts_total counts each outcome)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.deadLetters = new Counter({ name: 'dip_dead_letters_total', help: 'Messages dead-lettered, by channel and reason', labelNames: ['channel', 'reason'], registers });
    this.storageErrors = new Counter({ name: 'dip_storage_errors_total', help: 'Times the store stopped taking writes (unavailable) or failed for good (fatal)', labelNames: ['state'], registers });
    this.storageOk = new Gauge({ name: 'dip_storage_ok', help: '1 while the store takes writes', registers });
    this.storageOk.set(1);
    // Both states exported from the start at 0: increase() then sees the first failure (a series that
    // appears with its first increment has no earlier sample to count it from).
    for (const state of ['unavailable', 'fatal']) this.storageErrors.inc({ state }, 0);
    this.refusals = new Counter({ name: 'dip_refusals_total', help: 'Submissions refused (POST /dip-channel), by channel (unknown for one that is not) and MSG code', labelNames: ['channel', 'code'], registers });
    this.ingestLatency = new Histogram({
      name: 'dip_ingest_latency_seconds',
      help: 'Time from the arrival of an accepted submission to its 201 (durable by then)',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.groupWrites = new Histogram({ name: 'dip_group_commit_writes', help: 'Writes made durable together by one group commit', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], registers });
    this.groupSeconds = new Histogram({
      name: 'dip_group_commit_seconds',
      help: "Time from a group commit's transaction start until it is durable (SQLite: commit and fdatasync; PostgreSQL: the COMMIT)",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    // Both gauges are filled from one read of the log per scrape.
    let pending: Promise<QueueDepth[]> | null = null;
    const once = () => {
      pending ??= depths().finally(() => {
        pending = null;
      });
      return pending;
    };
    new Gauge({
      name: 'dip_queue_depth',
      help: 'Messages waiting in a recipient queue (enqueued, not yet delivered, rejected or dead-lettered)',
      labelNames: ['recipient', 'channel'],
      registers,
      async collect() {
        this.reset();
        for (const d of await once()) this.set({ recipient: d.queue.recipientDipId, channel: d.queue.channel }, d.depth);
      },
    });
    new Gauge({
      name: 'dip_queue_oldest_age_seconds',
      help: 'Age of the oldest undelivered message in a recipient queue',
      labelNames: ['recipient', 'channel'],
      registers,
      async collect() {
        this.reset();
        for (const d of await once()) this.set({ recipient: d.queue.recipientDipId, channel: d.queue.channel }, d.oldestAgeMs / 1000);
      },
    });
  }

  /** Delivery processes by state (workers > 1), and how often each was restarted, read at every scrape. */
  watchProcesses(views: () => ReadonlyArray<{ index: number; state: string; restarts: number }>): void {
    new Gauge({
      name: 'dip_delivery_processes',
      help: 'Delivery processes (workers > 1) by state: running, starting, restarting, stopped',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const state of ['running', 'starting', 'restarting', 'stopped']) this.set({ state }, views().filter((v) => v.state === state).length);
      },
    });
    new Gauge({
      name: 'dip_delivery_process_restarts',
      help: 'Times each delivery process was restarted after it died',
      labelNames: ['process'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const v of views()) this.set({ process: String(v.index) }, v.restarts);
      },
    });
  }

  request(listener: string, method: string, route: string, status: number): void {
    this.requests.inc({ listener, method, route, status: String(status) });
  }

  ingest(channel: string, messages: number): void {
    this.ingested.inc({ channel }, messages);
  }

  /** A submission answered: its time to a 201, or its refusal by MSG code. */
  submission(channel: string, refusal: string | null, seconds: number): void {
    if (refusal === null) this.ingestLatency.observe(seconds);
    else this.refusals.inc({ channel, code: refusal });
  }

  groupCommit(g: CommitGroup): void {
    this.groupWrites.observe(g.writes);
    this.groupSeconds.observe(g.durableMs / 1000);
  }

  attempt(a: Pick<DeliveryAttempt, 'verdict' | 'latencyMs'>): void {
    this.attempts.inc({ verdict: a.verdict });
    this.deliveryLatency.observe(a.latencyMs / 1000);
  }

  deadLetter(channel: string, reason: string): void {
    this.deadLetters.inc({ channel, reason });
  }

  health(h: BackendHealth): void {
    this.storageOk.set(h.state === 'ok' ? 1 : 0);
    if (h.state !== 'ok') this.storageErrors.inc({ state: h.state });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** The message log, counting what it accepts (a write is counted once it is durable). */
export function countedLog<L extends Pick<MessageLog, 'append'>>(log: L, metrics: DipMetrics): L {
  const counted = Object.create(log) as L;
  counted.append = async (batch) => {
    const outcome = await log.append(batch);
    if (outcome.ok) metrics.ingest(batch.channel, batch.messages.length);
    return outcome;
  };
  return counted;
}

/** The delivery journal, observing every webhook call it records. */
export function timedJournal<A extends { recordAttempt(a: DeliveryAttempt): Promise<void> }>(archive: A, metrics: DipMetrics): A {
  const timed = Object.create(archive) as A;
  timed.recordAttempt = (a) => {
    metrics.attempt(a);
    return archive.recordAttempt(a);
  };
  return timed;
}
