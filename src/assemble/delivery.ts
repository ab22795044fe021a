import type { WallClockSteps } from '../pipeline/wall-clock-steps.js';
import { randomBytes } from 'node:crypto';
import type { LookupFunction } from 'node:net';
import { rootCertificates } from 'node:tls';
import { UndiciWebhookTransport } from '../adapters/http/webhook-client.js';
import type { DipConfig } from '../config.js';
import { DEFAULT_SHARE, DeliveryShare } from '../pipeline/delivery-share.js';
import { Delivery, type DeliveryDeps } from '../pipeline/delivery.js';
import { queueRules } from '../pipeline/queue-rules.js';
import { returnToSender } from '../pipeline/return-to-sender.js';
import { STATUS_CHANNEL } from '../pipeline/status.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { QueueRef } from '../ports/message-log.js';
import type { MessageTracer } from '../ports/tracing.js';
import type { PkiMaterial } from '../security/pki.js';
import type { ListenerCertificate } from '../security/server-certificate.js';
import { WebhookDestinations } from '../security/webhook-destinations.js';
import type { Core } from './core.js';

/**
 * Delivery as the main process (src/assemble/message-road.ts) and a delivery process
 * (src/topology/delivery-process.ts) build it alike; each passes what differs (DeliveryPlacement).
 */

/**
 * The HTTPS client that calls recipients' webhooks, and the destination rules it enforces per connection.
 * It presents the DIP's TLS pair in force (`certificate`), the renewed one from the next call.
 */
export function webhookTransport(config: DipConfig, pki: Pick<PkiMaterial, 'ca'>, certificate: ListenerCertificate, lookup?: LookupFunction): { transport: UndiciWebhookTransport; destinations: WebhookDestinations } {
  // Outside DEV no webhook may point the DIP at internal networks, checked at registration and per connection.
  const destinations = new WebhookDestinations({ enforce: config.environment !== 'DEV', allowList: config.webhookAllowList, lookup });
  const transport = new UndiciWebhookTransport({
    destinations,
    // Recipients may use commercial certificates or the environment's own CA; the DIP's server
    // certificate doubles as its client certificate for recipients that ask for mutual TLS.
    ca: [...rootCertificates, pki.ca.certPem],
    cert: certificate.inForce().certPem,
    key: certificate.inForce().keyPem,
    // A connection that takes longer than the call may does not linger behind the call's own timeout.
    connectTimeoutMs: config.delivery.timeoutMs,
  });
  certificate.onChange(() => transport.presentCertificate(certificate.inForce()));
  return { transport, destinations };
}

export interface DeliveryWiring {
  config: DipConfig;
  core: Pick<Core, 'registry' | 'channel' | 'copies' | 'status' | 'signing' | 'defaultStaleMs'>;
  transport: UndiciWebhookTransport;
  tracer: MessageTracer | null;
  clock: Clock;
  logger: Logger;
  /** The wall clock's steps against the monotonic clock, for delivery latency (absent with a test's injected clock). */
  steps?: WallClockSteps;
}

/** Where the log is read and settled, which queues this process holds, what a dead letter or a halt sets off. */
export type DeliveryPlacement = Pick<DeliveryDeps, 'backend' | 'log' | 'archive' | 'leases' | 'localConsumer' | 'deadLettered' | 'halted'>;

export function buildDelivery(w: DeliveryWiring, placement: DeliveryPlacement): Delivery {
  const { config, clock } = w;
  const { registry, channel, copies, status, signing, defaultStaleMs } = w.core;
  const share = new DeliveryShare({ ...DEFAULT_SHARE, catchUpAfterMs: config.delivery.catchUpAfterMs, catchUpPerSecond: config.delivery.catchUpPerSecond }, clock);
  return new Delivery({
    ...placement,
    share,
    ...(w.tracer ? { tracer: w.tracer } : {}),
    webhook: (q: QueueRef) => registry.webhook(q.recipientDipId, q.channel),
    ...queueRules(registry, channel),
    onRegistryChange: (l) => registry.onChange(l),
    transport: w.transport,
    signer: signing.outbound(),
    settings: {
      timeoutMs: config.delivery.timeoutMs,
      retry: { baseMs: config.delivery.retryBaseMs, capMs: config.delivery.retryCapMs },
      sweepIntervalMs: config.sweepIntervalSeconds * 1000,
      gatherMs: config.delivery.gatherMs,
      callsPastSettlement: config.delivery.callsPastSettlement,
      // Watched even with alarms off: GET /admin/queues shows each queue's late deliveries too.
      late: { afterMs: config.observability.alarms.deliveryLatencySeconds * 1000, windowMs: config.observability.alarms.deliveryLatencyWindowMinutes * 60_000 },
    },
    clock,
    ...(w.steps ? { steps: w.steps } : {}),
    random: Math.random,
    randomBytes,
    logger: w.logger,
    staleAfterMs: (id) => (id === STATUS_CHANNEL ? config.retentionDays * 86_400_000 : (channel(id)?.staleAfterMs ?? defaultStaleMs)),
    copyFor: (queue, source) => copies.copyFor(queue, source),
    withheld: (queue) => copies.withheldFor(queue),
    notices: returnToSender(status),
    storeUnavailable: () => {},
  });
}
