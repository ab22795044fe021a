import { openPublicationBlobs } from '../adapters/backend.js';
import type { DipConfig } from '../config.js';
import type { Lifecycle } from '../lifecycle.js';
import type { Channel } from '../pipeline/channels.js';
import type { DipMetrics } from '../pipeline/metrics.js';
import { Publications } from '../pipeline/publications.js';
import type { RecipientCopies } from '../pipeline/recipient-copy.js';
import type { Registry } from '../pipeline/registry.js';
import type { Backend } from '../ports/backend.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { Sealer } from '../security/at-rest.js';

/** Where download links point: known once the listeners are (set by whoever starts them). */
export interface PublicationBaseUrls {
  participant: string;
  public: string | null;
}

/**
 * Pattern B: publication bytes in files (embedded) or a JetStream Object Store (cluster), sealed like the
 * archive; their metadata in the backend's database.
 */
export async function openPublications(
  config: DipConfig,
  backend: Backend,
  sealer: Sealer,
  registry: Registry,
  copies: RecipientCopies,
  channel: (id: string) => Channel | undefined,
  clock: Clock,
  logger: Logger,
  life: Lifecycle,
  metrics: DipMetrics,
) {
  const blobs = await openPublicationBlobs(config, sealer);
  life.started('publication store', () => blobs.close());
  const baseUrls: PublicationBaseUrls = { participant: '', public: null };
  const settings = config.publications;
  const publications = new Publications(
    backend.publications,
    blobs,
    backend.log,
    registry,
    {
      maxBytes: (id) => settings.channels[id]?.maxBytes ?? settings.maxBytes,
      retentionMs: (id) => (settings.channels[id]?.retentionDays ?? settings.retentionDays) * 86_400_000,
      orphanGraceMs: settings.orphanGraceMinutes * 60_000,
      publisherRoles: (id) => settings.channels[id]?.publisherRoles,
      participantBaseUrl: () => baseUrls.participant,
      publicBaseUrl: () => baseUrls.public,
      environment: config.environment,
      reachable: (ch, id) => ch.securityPattern !== 2 || copies.encryptable(id),
      channel,
    },
    clock,
    logger,
    metrics,
    backend.journal,
  );
  return { publications, baseUrls };
}

/**
 * In the background: superseded publication versions past their channel's retention, bytes no committed
 * record points to, and notices a crash left unqueued (the last two at start too: a crash is the likeliest
 * cause of them). Started once the listeners are, since a notice carries their URLs.
 */
export function schedulePublicationRetention(publications: Publications, intervalMs: number, clock: Clock, logger: Logger, life: Lifecycle): void {
  const pass = (what: string, task: () => Promise<number>, done: string) => (): void => {
    task().then(
      (removed) => removed > 0 && logger.info({ removed }, done),
      (err: unknown) => logger.error({ err }, `${what} failed; it runs again at the next interval`),
    );
  };
  const sweepOrphans = pass('the sweep for publication bytes with no record', () => publications.sweepOrphans(), 'publication bytes with no committed record removed');
  const purge = pass('publication retention', () => publications.purge(), 'superseded publications past retention removed');
  const queueMissedNotices = pass('the pass for publication notices a crash left unqueued', () => publications.queueMissedNotices(), 'publication notices a crash left unqueued queued');
  sweepOrphans();
  queueMissedNotices();
  life.started('publication retention', clock.every(intervalMs, () => {
    purge();
    sweepOrphans();
    queueMissedNotices();
  }));
}
