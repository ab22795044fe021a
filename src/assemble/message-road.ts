import { createPrivateKey } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { LookupFunction } from 'node:net';
import { rootCertificates } from 'node:tls';
import { EventLoopGauge } from '../adapters/event-loop-gauge.js';
import { UndiciWebhookTransport } from '../adapters/http/webhook-client.js';
import type { DipConfig } from '../config.js';
import type { Lifecycle } from '../lifecycle.js';
import { DEFAULT_SHARE, DeliveryShare } from '../pipeline/delivery-share.js';
import { Delivery, type DeadLetterEvent } from '../pipeline/delivery.js';
import { Ingest } from '../pipeline/ingest.js';
import { countedLog, timedJournal, type DipMetrics } from '../pipeline/metrics.js';
import { mpanFeed } from '../pipeline/mpan-feed.js';
import { queueRules } from '../pipeline/queue-rules.js';
import { Replay } from '../pipeline/replay.js';
import { returnToSender } from '../pipeline/return-to-sender.js';
import { queuesOf, STATUS_CHANNEL } from '../pipeline/status.js';
import type { Backend, Coordination } from '../ports/backend.js';
import type { Clock } from '../ports/clock.js';
import type { LoadGauge } from '../ports/load.js';
import type { Logger } from '../ports/logger.js';
import type { QueueRef } from '../ports/message-log.js';
import type { MessageTracer } from '../ports/tracing.js';
import type { PkiMaterial } from '../security/pki.js';
import { WebhookDestinations } from '../security/webhook-destinations.js';
import type { Core } from './core.js';

export interface MessageRoadParts {
  config: DipConfig;
  pki: PkiMaterial;
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
}

/**
 * Ingest → route → append, delivery to webhooks and the replay/requeue jobs, wired but not started:
 * delivery and the jobs start once the listeners are up.
 */
export function assembleMessageRoad({ config, pki, backend, coordination, core, events, metrics, clock, logger, life, lookup, load: givenLoad, tracer }: MessageRoadParts) {
  const { registry, channel, copies, mpan, status, signing, catalogue, encryption, defaultStaleMs } = core;
  // Outside DEV no webhook may point the DIP at internal networks, checked at registration and per connection.
  const destinations = new WebhookDestinations({ enforce: config.environment !== 'DEV', allowList: config.webhookAllowList, lookup });
  const transport = new UndiciWebhookTransport({
    destinations,
    // Recipients may use commercial certificates or the environment's own CA; the DIP's server
    // certificate doubles as its client certificate for recipients that ask for mutual TLS.
    ca: [...rootCertificates, pki.ca.certPem],
    cert: pki.server.certPem,
    key: pki.server.keyPem,
  });
  life.started('webhook transport', () => transport.close());
  // Measured load: delivery's fair share slows catch-up while the event loop runs late.
  let load = givenLoad;
  if (!load) {
    const gauge = new EventLoopGauge();
    gauge.start();
    life.started('load gauge', () => gauge.stop());
    load = gauge;
  }
  const share = new DeliveryShare(
    { ...DEFAULT_SHARE, catchUpAfterMs: config.delivery.catchUpAfterMs, catchUpPerSecond: config.delivery.catchUpPerSecond },
    clock,
    load,
  );
  const delivery: Delivery = new Delivery({
    share,
    ...(tracer ? { tracer } : {}),
    backend,
    log: backend.log,
    archive: timedJournal(backend.archive, metrics),
    webhook: (q: QueueRef) => registry.webhook(q.recipientDipId, q.channel),
    ...queueRules(registry, channel),
    onRegistryChange: (l) => registry.onChange(l),
    leases: coordination.leases,
    transport,
    signer: { sign: async (method, url, body) => ({ ...(await signing.current().sign(method, url, body)) }) },
    settings: {
      timeoutMs: config.delivery.timeoutMs,
      retry: { baseMs: config.delivery.retryBaseMs, capMs: config.delivery.retryCapMs },
      sweepIntervalMs: config.sweepIntervalSeconds * 1000,
    },
    clock,
    random: Math.random,
    logger,
    staleAfterMs: (id) => (id === STATUS_CHANNEL ? config.retentionDays * 86_400_000 : (channel(id)?.staleAfterMs ?? defaultStaleMs)),
    copyFor: (queue, outbound) => copies.copyFor(queue, outbound),
    localConsumer: mpanFeed(mpan),
    notices: returnToSender(status),
    deadLettered: (deadLetters: DeadLetterEvent[], notices) => {
      for (const e of deadLetters) events.emit('dead-letter', e);
      if (notices) delivery.notify(queuesOf(notices));
    },
    storeUnavailable: () => {},
    halted: (queue, error) => {
      logger.error({ queue, err: error }, 'queue halted by a permanent storage error: repair, then resume it (POST /admin/queues/resume)');
      events.emit('queue-halted', { queue, error });
    },
  });
  const ingest = new Ingest(
    {
      dipId: config.dipId,
      environment: config.environment,
      maxClockSkewMs: config.maxClockSkewSeconds * 1000,
      maxBatchMessages: config.maxBatchMessages,
    },
    { validate: (id, item, opts) => catalogue.current().validate(id, item, opts) },
    channel,
    registry,
    countedLog(backend.log, metrics),
    mpan,
    { dipKey: createPrivateKey(encryption.keyPem), recipientKey: (id) => copies.recipientKey(id) },
    () => new Date(clock.now()),
    tracer ?? undefined,
  );
  const replay = new Replay(backend.log, backend.archive, copies, clock, backend.requeueJobs, (q) => delivery.notify([q]), logger);
  return { destinations, load, delivery, ingest, replay };
}
