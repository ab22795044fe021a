import { queueKey } from '../ports/queue-ref.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DeliveryAttempt } from '../ports/archive.js';
import type { BackendHealth, CommitGroup, CoordinationHealth, PeerClockOffset } from '../ports/backend.js';
import type { MessageLog, QueueRef } from '../ports/message-log.js';
import type { OverloadStats } from './overload.js';
import type { ActivityLogStatus } from './activity-recorder.js';

/** A queue's backlog as a scrape sees it. */
export interface QueueDepth {
  queue: QueueRef;
  depth: number;
  /** Age of the oldest undelivered message (ms), 0 when none waits. */
  oldestAgeMs: number;
}

/** A queue's backlog with the positions it comes from (GET /admin/queues shows them beside the worker's state). */
export interface QueueBacklog extends QueueDepth {
  /** Settled (delivered, refused, dead-lettered or acknowledged by a pull) up to here, as the store has it. */
  ackedSeq: number;
  /** The last position enqueued. */
  headSeq: number;
  /** When the oldest undelivered message was received, epoch ms; null when none waits. */
  oldestReceivedAt: number | null;
  /** Null, or the damage at the queue's head: its oldest undelivered entry's message is missing (QueueBacklogState.damage). */
  damage: string | null;
}


/**
 * Reads every pending queue's depth and the age of its oldest undelivered entry from the message log
 * (no counter kept on the road: the log's own positions are the truth, whichever node appended), and
 * those of the queues in `also` (a queue a worker knows of, with nothing pending: depth 0).
 */
export async function queueDepths(log: Pick<MessageLog, 'pendingQueues' | 'queueBacklog'>, now: number, also: Iterable<QueueRef> = []): Promise<QueueBacklog[]> {
  const queues = new Map<string, QueueRef>();
  for (const queue of [...(await log.pendingQueues()), ...also]) if (!queues.has(queueKey(queue))) queues.set(queueKey(queue), queue);
  const out: QueueBacklog[] = [];
  // One reading per queue (queueBacklog): its positions and its oldest waiting entry's receipt together.
  for (const queue of queues.values()) {
    const s = await log.queueBacklog(queue);
    const depth = Math.max(0, s.headSeq - s.ackedSeq);
    const oldest = depth > 0 ? s.oldestReceivedAt : null;
    out.push({ queue, depth, oldestAgeMs: oldest === null ? 0 : Math.max(0, now - oldest), ackedSeq: s.ackedSeq, headSeq: s.headSeq, oldestReceivedAt: oldest, damage: depth > 0 ? s.damage : null });
  }
  return out;
}

/** CPU and memory of one process of the DIP, as `dip_process_*` exports them. */
export interface ProcessUsage {
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
  residentBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
}

/** This process's usage now (a delivery process sends it with its status each second). */
export function processUsage(): ProcessUsage {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  return { cpuUserSeconds: cpu.user / 1e6, cpuSystemSeconds: cpu.system / 1e6, residentBytes: mem.rss, heapUsedBytes: mem.heapUsed, heapTotalBytes: mem.heapTotal };
}

/** The listeners with a connection cap, and the setting of each. */
const CONNECTION_CAPS = {
  participant: 'http.maxConnectionsPerClient',
  anonymous: 'publications.anonymous.maxConnectionsPerAddress',
  portal: 'portal.maxConnectionsPerAddress',
} as const;

/** The `process` label of the main process's series; a delivery process's is `delivery-<n>`. */
export const MAIN_PROCESS = 'main';

/**
 * The `dip_process_*` families that cover every process of the DIP, each series labelled by `process`
 * (prom-client's defaults would cover only the one that answers the scrape, so they are replaced).
 */
const PER_PROCESS: ReadonlyArray<{ name: string; help: string; counter: boolean; of: (u: ProcessUsage) => number }> = [
  { name: 'dip_process_process_cpu_user_seconds_total', help: 'User CPU time spent, in seconds, by process', counter: true, of: (u) => u.cpuUserSeconds },
  { name: 'dip_process_process_cpu_system_seconds_total', help: 'System CPU time spent, in seconds, by process', counter: true, of: (u) => u.cpuSystemSeconds },
  { name: 'dip_process_process_cpu_seconds_total', help: 'User and system CPU time spent, in seconds, by process', counter: true, of: (u) => u.cpuUserSeconds + u.cpuSystemSeconds },
  { name: 'dip_process_process_resident_memory_bytes', help: 'Resident memory size in bytes, by process', counter: false, of: (u) => u.residentBytes },
  { name: 'dip_process_nodejs_heap_size_used_bytes', help: 'JavaScript heap in use, in bytes, by process', counter: false, of: (u) => u.heapUsedBytes },
  { name: 'dip_process_nodejs_heap_size_total_bytes', help: 'JavaScript heap size, in bytes, by process', counter: false, of: (u) => u.heapTotalBytes },
];

/**
 * The DIP's Prometheus metrics (prom-client). The road is never slowed by them: counters are bumped
 * where an event happens anyway, and queue depths are read from the log only when Prometheus scrapes.
 */
export class DipMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'listener' | 'method' | 'route' | 'status'>;
  private readonly ingested: Counter<'channel'>;
  private readonly attempts: Counter<'verdict'>;
  private readonly contractFaults: Counter<'channel'>;
  private readonly deliveryLatency: Histogram;
  private readonly deadLetters: Counter<'channel' | 'reason'>;
  private readonly storageErrors: Counter<'state'>;
  private readonly storageOk: Gauge;
  private readonly refusals: Counter<'channel' | 'code'>;
  private readonly unreachedHolders: Counter<'channel' | 'code'>;
  private readonly ingestLatency: Histogram;
  private readonly groupWrites: Histogram;
  private readonly groupSeconds: Histogram;
  private readonly unqueuedNotices: Counter<'reason'>;
  private readonly unreadableRows: Counter<'reader'>;
  /** The store takes writes, as last reported (health): the queue depths are read only then. */
  private storeOk = true;
  /** The delivery processes' last reported usage (workers > 1), by `process` label. */
  private others: () => ReadonlyArray<{ name: string; usage: ProcessUsage | null }> = () => [];
  /** The listeners whose connection caps are watched (watchConnections), by `listener` label. */
  private readonly connectionCaps = new Map<string, () => { open: number; refused: number }>();

  constructor(depths: () => Promise<QueueDepth[]>) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'dip_process_' });
    this.perProcess();
    this.requests = new Counter({ name: 'dip_http_requests_total', help: 'Requests answered, by listener, method, route and HTTP status', labelNames: ['listener', 'method', 'route', 'status'], registers });
    this.ingested = new Counter({ name: 'dip_ingested_messages_total', help: 'Messages accepted (201) by channel', labelNames: ['channel'], registers });
    this.attempts = new Counter({ name: 'dip_delivery_attempts_total', help: 'Webhook calls by outcome (delivered, retry, rejected)', labelNames: ['verdict'], registers });
    this.contractFaults = new Counter({ name: 'dip_webhook_contract_faults_total', help: 'Webhook calls answered against the receiver contract (a 207 naming no failing message): taken as delivered, no sender told', labelNames: ['channel'], registers });
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
    this.unreachedHolders = new Counter({
      name: 'dip_mpan_holders_unreached_total',
      help: 'Holders the MPAN lookup named for an accepted message that got no copy (not a participant: MSG1033; without the role: MSG1034), by channel and code',
      labelNames: ['channel', 'code'],
      registers,
    });
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
    this.unqueuedNotices = new Counter({
      name: 'dip_publication_notices_unqueued_total',
      help: 'Publication notices a pass for missed notices could not queue, by reason (failed: queueing it failed; no-channel: its channel is not in the catalogue); each is tried again at the next pass, and counted again',
      labelNames: ['reason'],
      registers,
    });
    // Exported at 0 from the start, as dip_storage_errors_total: increase() then sees the first.
    for (const reason of ['failed', 'no-channel']) this.unqueuedNotices.inc({ reason }, 0);
    this.unreadableRows = new Counter({
      name: 'dip_archive_unreadable_total',
      help: 'Archived messages a replay, requeue or report skipped because their stored copy could not be opened (damaged, swapped, or sealed under a data key not held); the log names each',
      labelNames: ['reader'],
      registers,
    });
    // Exported at 0 from the start, as dip_storage_errors_total: increase() then sees the first.
    for (const reader of UNREADABLE_READERS) this.unreadableRows.inc({ reader }, 0);
    const depthReadErrors = new Counter({
      name: 'dip_queue_depth_read_errors_total',
      help: 'Scrapes whose queue depths could not be read from the store (dip_queue_depth and dip_queue_oldest_age_seconds have no samples in them)',
      registers,
      // Shares the scrape's one read, so that it counts this scrape's failure, not only the last one's.
      async collect() {
        await once();
      },
    });
    depthReadErrors.inc(0);
    // Both gauges are filled from one read of the log per scrape. A read that fails leaves them without
    // samples (unknown, not 0) and the rest of the scrape is answered: a failed collect made the whole
    // scrape a 503, so Prometheus saw nothing, dip_storage_ok 0 included, for as long as the store was
    // down. A store known to be down is not asked: a query to a server cut off waits for its timeout
    // (35 s on PostgreSQL), longer than a scrape's.
    let pending: Promise<QueueDepth[]> | null = null;
    const once = () => {
      if (!this.storeOk) return Promise.resolve([]);
      pending ??= depths()
        .catch(() => {
          depthReadErrors.inc();
          return [];
        })
        .finally(() => {
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

  private perProcess(): void {
    // This process now; the others as of their last status (each second), none while one (re)starts.
    const all = (): Array<{ name: string; usage: ProcessUsage }> => [
      { name: MAIN_PROCESS, usage: processUsage() },
      ...this.others().flatMap((o) => (o.usage ? [{ name: o.name, usage: o.usage }] : [])),
    ];
    for (const f of PER_PROCESS) {
      this.registry.removeSingleMetric(f.name);
      const collect = function (this: Counter<'process'> | Gauge<'process'>): void {
        // Absolute values (a restarted process starts again from 0, which Prometheus reads as a counter reset).
        this.reset();
        for (const p of all()) {
          if (this instanceof Counter) this.inc({ process: p.name }, f.of(p.usage));
          else this.set({ process: p.name }, f.of(p.usage));
        }
      };
      const options = { name: f.name, help: f.help, labelNames: ['process'] as const, registers: [this.registry], collect };
      if (f.counter) new Counter(options);
      else new Gauge(options);
    }
  }

  /** 1 while what the nodes share (NATS) answers this node: 0 means no queue can be claimed, nothing is delivered. */
  watchCoordination(health: () => CoordinationHealth): void {
    this.gaugeRead(
      'dip_coordination_ok',
      '1 while the nodes\' coordination (NATS JetStream: queue leases) answers this node; at 0 no queue can be claimed or renewed and nothing is delivered',
      () => (health().state === 'ok' ? 1 : 0),
    );
  }

  /**
   * How far the clock of the peer furthest off is from this node's, either way (0 when no peer is heard
   * from): beyond the lease allowance (1 s) takeovers wait longer, beyond five lease lengths (30 s) a node
   * behind works no queue while it hears the node ahead (docs/cluster.md). The `clock-skew` alarm reads the same.
   */
  watchClockOffset(offset: () => PeerClockOffset | null): void {
    this.gaugeRead(
      'dip_cluster_clock_offset_seconds',
      "How far the clock of the peer node furthest off (either way) is from this node's, as their roll calls say; 0 when none is heard from",
      () => Math.abs(offset()?.offsetMs ?? 0) / 1000,
    );
  }

  /** A gauge of one number, read at every scrape. */
  private gaugeRead(name: string, help: string, read: () => number): void {
    new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()); } });
  }

  /** Delivery processes by state (workers > 1), and how often each was restarted, read at every scrape. */
  watchProcesses(views: () => ReadonlyArray<{ index: number; name: string; state: string; restarts: number; usage: ProcessUsage | null }>): void {
    this.others = views;
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
        for (const v of views()) this.set({ process: v.name }, v.restarts);
      },
    });
  }

  /** The API activity log's backlog (pipeline/activity-recorder.ts), read at every scrape: an audit gap shows here. */
  watchActivityLog(status: () => ActivityLogStatus): void {
    this.gaugeRead('dip_activity_log_waiting', 'API activity log records in memory not yet written (the store refuses them while dip_activity_log_ok is 0; lost if the process stops)', () => status().waiting);
    new Counter({
      name: 'dip_activity_log_refused_total',
      help: 'Requests refused 503 since the start because the API activity log backlog was full (observability.activityLog.maxWaiting records waited): a request that cannot be audited is not served',
      registers: [this.registry],
      // The recorder's own count, read at every scrape (absolute: a restart starts it again from 0, which Prometheus reads as a counter reset).
      collect() {
        this.reset();
        this.inc(status().refused);
      },
    });
    this.gaugeRead('dip_activity_log_full', '1 while the API activity log backlog is full and new requests are refused 503', () => (status().full ? 1 : 0));
    this.gaugeRead('dip_activity_log_ok', '1 while the API activity log store takes this process\'s records', () => (status().failing === null ? 1 : 0));
  }

  /** An upgrade's background backfill (PostgreSQL), read at every scrape: 0 once every row it fills is filled. */
  watchBackfill(pending: () => boolean): void {
    this.gaugeRead('dip_storage_backfill_pending', '1 while rows an upgrade left empty are still being filled in the background (their readers compute them meanwhile); failures are logged and retried', () => (pending() ? 1 : 0));
  }

  /** Delivery attempt records held while the store is out of reach (pipeline/attempt-journal.ts), read at every scrape. */
  watchJournal(held: () => number): void {
    this.gaugeRead('dip_delivery_attempts_held', 'Delivery attempt records the store has not taken yet (it was out of reach); written in order once it answers', held);
  }

  /** The overload guard's state (README, Overload), read at every scrape: how close submissions are to a 503. */
  watchOverload(stats: () => OverloadStats): void {
    const registers = [this.registry];
    const gauges: Array<[string, string, (s: OverloadStats) => number]> = [
      ['dip_overload_submissions_in_hand', 'Submissions read whole and not yet answered (overload.maxSubmissionsInFlight)', (s) => s.submissionsInFlight],
      ['dip_overload_bytes_in_hand', 'Bytes of those submissions (overload.maxBytesInFlight)', (s) => s.bytesInFlight],
      ['dip_overload_bytes_arriving', 'Bytes declared by submissions whose body is still arriving (overload.maxBytesArriving)', (s) => s.bytesArriving],
      ['dip_overload_event_loop_delay_seconds', 'Mean event-loop delay the guard judges by (overload.maxEventLoopDelayMs)', (s) => s.eventLoopDelayMs / 1000],
    ];
    for (const [name, help, of] of gauges) this.gaugeRead(name, help, () => of(stats()));
    new Counter({
      name: 'dip_overload_refused_total',
      help: 'Submissions answered 503 because the DIP was overloaded',
      registers,
      collect() {
        this.reset();
        this.inc(stats().refused);
      },
    });
  }

  /**
   * A listener's connection cap (README, Fair delivery and overload), read at every scrape: per participant
   * on the participant listener, per client address on the anonymous and the portals' ones. Its open
   * connections are a gauge of its own (dip_participant_connections, dip_anonymous_connections,
   * dip_portal_connections); those refused are one counter labelled by `listener`, so one query shows
   * every listener's.
   */
  watchConnections(listener: keyof typeof CONNECTION_CAPS, stats: () => { open: number; refused: number }): void {
    this.gaugeRead(`dip_${listener}_connections`, `Connections open on the ${listener} listener within its caps (${CONNECTION_CAPS[listener]})`, () => stats().open);
    const first = this.connectionCaps.size === 0;
    this.connectionCaps.set(listener, stats);
    if (!first) return;
    const caps = this.connectionCaps;
    new Counter({
      name: 'dip_connections_refused_total',
      help: `Connections answered 429 and closed because their client already had its cap open, by listener (${Object.values(CONNECTION_CAPS).join(', ')})`,
      labelNames: ['listener'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [name, read] of caps) this.inc({ listener: name }, read().refused);
      },
    });
  }

  /**
   * Connections a listener closed before their TLS handshake was done (src/api/connection-cap.ts
   * useHandshakeGuard), by why: `address` its client address had http.maxConnectionsPerAddress open,
   * `silent` no byte within http.firstByteTimeoutMs, `displaced` the oldest in its handshake closed for a
   * new one (the handshakes' share of http.maxConnections taken, or the listener full).
   */
  watchHandshakes(listener: 'participant', stats: () => Readonly<Record<string, number>>): void {
    new Counter({
      name: 'dip_handshakes_refused_total',
      help: 'Connections closed before their TLS handshake was done, by listener and reason: address (http.maxConnectionsPerAddress open from its address), silent (no byte within http.firstByteTimeoutMs), displaced (the oldest still in its handshake closed for a new one: http.authenticatedReservePercent, or the listener full)',
      labelNames: ['listener', 'reason'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(stats())) this.inc({ listener, reason }, n);
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

  /** Holders the MPAN lookup named for an accepted submission's messages that got no copy (IngestResult.unreached), by MSG code. */
  unreached(channel: string, codes: readonly string[]): void {
    for (const code of codes) this.unreachedHolders.inc({ channel, code });
  }

  /** A publication notice the pass for missed notices left unqueued (src/pipeline/publications.ts queueMissedNotices). */
  publicationNoticeUnqueued(reason: 'failed' | 'no-channel'): void {
    this.unqueuedNotices.inc({ reason });
  }

  /** Archived messages a reader skipped as unreadable (src/pipeline/replay.ts, the reports' journey). */
  archiveUnreadable(reader: UnreadableReader, n: number): void {
    this.unreadableRows.inc({ reader }, n);
  }

  groupCommit(g: CommitGroup): void {
    this.groupWrites.observe(g.writes);
    this.groupSeconds.observe(g.durableMs / 1000);
  }

  attempt(a: Pick<DeliveryAttempt, 'verdict' | 'latencyMs' | 'error' | 'queue'>): void {
    this.attempts.inc({ verdict: a.verdict });
    // A delivered call carries an error only when answered against the receiver's contract (queue-worker.ts, MULTI_STATUS_NAMES_NO_FAILURE).
    if (a.verdict === 'delivered' && a.error !== null) this.contractFaults.inc({ channel: a.queue.channel });
    this.deliveryLatency.observe(a.latencyMs / 1000);
  }

  deadLetter(channel: string, reason: string): void {
    this.deadLetters.inc({ channel, reason });
  }

  health(h: BackendHealth): void {
    this.storeOk = h.state === 'ok';
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

/** The readers that skip an archived message whose stored copy does not open (dip_archive_unreadable_total). */
export const UNREADABLE_READERS = ['replay', 'requeue', 'report', 'evidence'] as const;
export type UnreadableReader = (typeof UNREADABLE_READERS)[number];

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
