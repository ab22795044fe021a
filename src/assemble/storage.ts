import { EventEmitter } from 'node:events';
import { openBackend, openCoordination } from '../adapters/backend.js';
import type { DipConfig } from '../config.js';
import type { Lifecycle } from '../lifecycle.js';
import type { DeadLetterEvent } from '../pipeline/delivery.js';
import { DipMetrics, queueDepths } from '../pipeline/metrics.js';
import type { Backend, BackendHealth, Coordination } from '../ports/backend.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { Sealer } from '../security/at-rest.js';
import { agreeOnCoordinationPrefix } from '../pipeline/coordination-prefix.js';
import { shareNodeSecrets } from '../security/node-secrets.js';
import { StoredLostNodes } from '../pipeline/lost-node-records.js';
import { StoredLeaseIncarnations } from '../pipeline/lease-incarnations.js';

export interface Storage {
  backend: Backend;
  /** The at-rest sealer in force (publication bytes and portal secrets are sealed with it too). */
  sealer: Sealer;
  coordination: Coordination;
  /** 'dead-letter', 'queue-halted', 'health': metrics and the delivery processes follow 'health'; alarms read state, not these. */
  events: EventEmitter;
  metrics: DipMetrics;
}

/**
 * The message store and what nodes share, with the events and metrics that watch them. A storage
 * failure for good is reported to `onFatal` (`dip serve` exits so that its supervisor restarts it).
 */
export async function openStorage(config: DipConfig, clock: Clock, logger: Logger, life: Lifecycle, onFatal?: (reason: string) => void, acceptWalLoss = false): Promise<Storage> {
  const { backend, sealer } = await openBackend(config, { clock, logger, acceptWalLoss });
  life.started('storage', () => backend.close());
  if (backend.walLossAccepted) {
    // The operator chose to go on without what the WAL lost: said in the log, in the journal (who acted
    // is the one who started the process with the flag), and as a storage alarm while this process runs.
    logger.error({ lost: backend.walLossAccepted }, 'started accepting committed transactions the WAL lost');
    await backend.journal.append({ at: clock.now(), actor: 'bootstrap', action: 'storage.accept-wal-loss', target: 'dip.db', before: null, after: { lost: backend.walLossAccepted }, status: null });
  }
  // Queue leases, replay guard, rate limits: shared through NATS in a cluster, in memory otherwise.
  // Stopped after delivery (registered before it), so every lease is released once its worker stopped.
  // Checked before NATS is touched: a node with another prefix than its database's would deliver twice.
  if (config.storage.kind === 'cluster') {
    await agreeOnCoordinationPrefix(backend.registry, config.storage.nats.prefix, clock.now());
    // Sessions, cookies and continuation tokens signed at one node must verify at every other.
    await shareNodeSecrets(backend.registry, sealer, config.dataDir, logger, clock.now());
  }
  // Lost nodes recorded in the store: a node started after a loss raises node-lost too. The leases
  // bucket's incarnations too: a node started right after the bucket was created again is fenced.
  const coordination = await openCoordination(config, { clock, logger, lostNodeRecords: new StoredLostNodes(backend.registry, clock), leaseIncarnations: new StoredLeaseIncarnations(backend.registry, clock) });
  life.started('coordination', () => coordination.close());
  const events = new EventEmitter();
  const metrics = new DipMetrics(() => queueDepths(backend.log, clock.now()));
  metrics.watchCoordination(() => coordination.health());
  const clockOffset = coordination.clockOffset?.bind(coordination);
  if (clockOffset) metrics.watchClockOffset(clockOffset);
  events.on('health', (h: BackendHealth) => metrics.health(h));
  events.on('dead-letter', (e: DeadLetterEvent) => metrics.deadLetter(e.queue.channel, e.reason));
  backend.onGroupCommit((g) => metrics.groupCommit(g));
  metrics.watchBackfill(() => backend.backfillPending());
  backend.onHealthChange((health: BackendHealth) => {
    events.emit('health', health);
    if (health.state === 'fatal') {
      logger.error({ reason: health.reason }, 'storage failed for good: refusing writes and reporting not ready');
      onFatal?.(health.reason);
    } else if (health.state === 'unavailable') logger.error({ reason: health.reason, code: health.code }, 'storage cannot take writes: ingest answers 503 and delivery pauses until it can');
    else logger.info({}, 'storage takes writes again');
  });
  return { backend, sealer, coordination, events, metrics };
}
