import type { EventEmitter } from 'node:events';
import type { LookupFunction } from 'node:net';
import { monotonicClock } from '../adapters/clock.js';
import { WallClockSteps } from '../pipeline/wall-clock-steps.js';
import { EventLoopGauge } from '../adapters/event-loop-gauge.js';
import type { DipConfig } from '../config.js';
import type { Lifecycle } from '../lifecycle.js';
import { deliveryJournal } from '../pipeline/attempt-journal.js';
import { countedLog, type DipMetrics } from '../pipeline/metrics.js';
import { consumptionReplay } from '../pipeline/consumption-replay.js';
import { mpanFeed } from '../pipeline/mpan-feed.js';
import { CopyBudget, Replay } from '../pipeline/replay.js';
import { queuesOf, wakingLog, type DeadLetterEvent } from '../pipeline/delivery.js';
import type { Backend, BackendHealth, Coordination } from '../ports/backend.js';
import type { Clock } from '../ports/clock.js';
import type { LoadGauge } from '../ports/load.js';
import type { Logger } from '../ports/logger.js';
import type { QueueRef } from '../ports/message-log.js';
import type { MessageTracer } from '../ports/tracing.js';
import type { PkiMaterial } from '../security/pki.js';
import type { ListenerCertificate } from '../security/server-certificate.js';
import { deliveryProcesses, type DeliveryControl } from '../topology/delivery-processes.js';
import { ingestThreads } from '../topology/ingest-threads.js';
import type { Core } from './core.js';
import { buildDelivery, webhookTransport } from './delivery.js';
import { buildIngest } from './ingest.js';

export interface MessageRoadParts {
  config: DipConfig;
  pki: PkiMaterial;
  /** The DIP's TLS pair in force: webhook calls present it to receivers that ask. */
  certificate: ListenerCertificate;
  backend: Backend;
  coordination: Coordination;
  core: Core;
  events: EventEmitter;
  metrics: DipMetrics;
  clock: Clock;
  logger: Logger;
  life: Lifecycle;
  /** Name resolution for webhook destinations (dns.lookup by default). */
  lookup?: LookupFunction;
  /** How far behind the process runs (the event loop's delay by default). */
  load?: LoadGauge;
  /** OpenTelemetry, when turned on. */
  tracer: MessageTracer | null;
  /** A test's fake time: it cannot cross into delivery processes. */
  injectedClock: boolean;
  /** The at-rest data key in force (ingest threads seal under it). */
  sealKeyId: () => number;
}

/**
 * Ingest → route → append, delivery to webhooks and the replay/requeue jobs, wired but not started:
 * delivery and the jobs start once the listeners are up.
 */
export function assembleMessageRoad({ config, pki, certificate, backend, coordination, core, events, metrics, clock, logger, life, lookup, load: givenLoad, tracer, injectedClock, sealKeyId }: MessageRoadParts) {
  const { registry, copies, mpan } = core;
  const { transport, destinations } = webhookTransport(config, pki, certificate, lookup);
  life.started('webhook transport', () => transport.close());
  // Measured load: the overload guard refuses submissions while the event loop runs late.
  let load = givenLoad;
  if (!load) {
    const gauge = new EventLoopGauge();
    gauge.start();
    life.started('load gauge', () => gauge.stop());
    load = gauge;
  }
  // Registered before the delivery processes: stopped after them, so their last calls' records reach it.
  const journal = deliveryJournal(backend.archive, metrics, clock, logger);
  life.started('delivery journal', () => journal.stop());
  metrics.watchJournal(() => journal.pending());
  const deadLettered = (deadLetters: DeadLetterEvent[], queues: QueueRef[]): void => {
    for (const e of deadLetters) events.emit('dead-letter', e);
    if (queues.length > 0) delivery.notify(queues);
  };
  const halted = (queue: QueueRef, error: unknown): void => {
    logger.error({ queue, err: error }, 'queue halted by a permanent storage error: repair, then resume it (POST /admin/queues/resume)');
    events.emit('queue-halted', { queue, error });
  };
  // workers > 1 (README "Every core"): delivery runs in processes of its own; this one keeps every write.
  const processes = deliveryProcesses(config, backend, { logger, now: () => clock.now(), timers: monotonicClock, shared: core, journal, deadLettered, halted, injectedClock });
  // Queues the DIP consumes itself: the MPAN lookup's feed, and the IF-015 requests the replay service answers.
  const feed = mpanFeed(mpan);
  const replayService = consumptionReplay({
    log: countedLog(backend.log, metrics),
    notify: (queues) => delivery.notify(queues),
    archive: backend.archive,
    mpan,
    channel: core.channel,
    clock,
    logger,
    dipId: config.dipId,
    environment: config.environment,
  });
  const localConsumer = (q: QueueRef) => feed(q) ?? replayService(q);
  const local = buildDelivery(
    // A test's injected clock is moved by the test alone: read against the monotonic clock, its jumps would be steps.
    { config, core, transport, tracer, clock, logger, ...(injectedClock ? {} : { steps: new WallClockSteps(clock, monotonicClock) }) },
    {
      backend,
      log: backend.log,
      archive: journal,
      // With delivery processes this one works only the queues consumed in process (they write the MPAN lookup).
      leases: processes ? processes.leases((q) => localConsumer(q) !== undefined) : coordination.leases,
      localConsumer,
      deadLettered: (deadLetters, notices) => deadLettered(deadLetters, notices ? queuesOf(notices) : []),
      halted,
    },
  );
  let delivery: DeliveryControl = local;
  if (processes) {
    events.on('health', (h: BackendHealth) => processes.health(h));
    metrics.watchProcesses(() => processes.processes());
    // Started now, while this process warms its catalogue; delivery.start() waits for them.
    delivery = processes.control(local, processes.start());
    life.started('delivery processes', () => processes.stop());
  }
  const appendLog = wakingLog(countedLog(backend.log, metrics), (queues) => delivery.notify(queues));
  const onThisThread = buildIngest(config, core, appendLog, clock, tracer);
  // ingestThreads > 0 (README "Every core"): the pipeline runs in threads; this one keeps the one writer.
  const threads = ingestThreads(
    config,
    {
      config,
      logger,
      now: () => clock.now(),
      append: (batch) => appendLog.append(batch),
      shared: core,
      registryVersion: () => registry.loadedVersion,
      sealKeyId: () => sealKeyId(),
      // With delivery processes the store keeps no appended copies (they read the file), so none cross.
      keepsCopies: processes === null,
    },
    onThisThread,
    injectedClock,
  );
  if (threads) {
    threads.start();
    life.started('ingest threads', () => threads.stop());
  }
  const ingest = threads ?? onThisThread;
  const replay = new Replay(backend.log, backend.archive, copies, clock, backend.requeueJobs, (q) => delivery.notify([q]), logger, new CopyBudget(config.replayCopiesPerHour), (reader, rows) => metrics.archiveUnreadable(reader, rows.length));
  return { destinations, load, delivery, processes, ingest, threads, replay };
}
