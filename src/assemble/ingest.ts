import { jsonCountsOf, type DipConfig } from '../config.js';
import { Ingest, type IngestLog } from '../pipeline/ingest.js';
import type { Clock } from '../ports/clock.js';
import type { MessageTracer } from '../ports/tracing.js';
import type { Core } from './core.js';

/**
 * POST /dip-channel/{id}'s pipeline over a core (registry, catalogue, channels, MPAN directory, keys) and
 * an append: the main thread's own, and each ingest thread's (src/topology/ingest-thread.ts), whose
 * append is a call into the main thread's one writer.
 */
export function buildIngest(config: DipConfig, core: Core, log: IngestLog, clock: Clock, tracer: MessageTracer | null): Ingest {
  const { registry, channel, copies, mpan, catalogue, encryption } = core;
  return new Ingest(
    {
      dipId: config.dipId,
      environment: config.environment,
      maxClockSkewMs: config.maxClockSkewSeconds * 1000,
      maxBatchMessages: config.maxBatchMessages,
      maxJsonDepth: config.http.maxJsonDepth,
      jsonCounts: jsonCountsOf(config),
    },
    { validate: (id, item, opts) => catalogue.current().validate(id, item, opts) },
    channel,
    registry,
    log,
    mpan,
    { dipKeys: () => encryption.decryptionKeys(), encryptable: (id) => copies.encryptable(id), withheld: (id) => copies.withheld(id), senderMustNotEncrypt: (id) => copies.senderMustNotEncrypt(id) },
    () => new Date(clock.now()),
    tracer ?? undefined,
  );
}
