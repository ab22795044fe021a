import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DipConfig } from '../config.js';
import type { Backend, Coordination, LeaseIncarnationRecords, LostNodeRecords } from '../ports/backend.js';
import type { ChunkSealer, PublicationBlobs } from '../ports/publications.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import { FileKeyEncryptionKey, Sealer, type KeyEncryptionKey } from '../security/at-rest.js';
import { RateLimiter } from '../security/rate-limit.js';
import { ReplayGuard } from '../security/replay-guard.js';
import { monotonicClock, systemClock } from './clock.js';
import { SingleProcessLeases } from './embedded/leases.js';
import { FilePublicationBlobs } from './files/publication-blobs.js';
import { connectNats, type NatsSettings } from './nats/connection.js';
import { openNatsCoordination } from './nats/index.js';
import { JetStreamPublicationBlobs } from './nats/publication-blobs.js';
import { openPostgresBackend } from './postgres/index.js';
import { openSqliteBackend } from './sqlite/index.js';
import { SqliteActivityLog } from './sqlite/activity-log.js';
import { PgActivityLog } from './postgres/activity-log.js';
import type { ActivityLogStore } from '../ports/activity-log.js';
import type { AlarmMemory, AlarmSubscriptionStore } from '../ports/alarms.js';
import { SqliteAlarmSubscriptions } from './sqlite/alarm-subscriptions.js';
import { PgAlarmSubscriptions } from './postgres/alarm-subscriptions.js';
import type { OnboardingApplications } from '../ports/onboarding.js';
import { SqliteOnboardingApplications } from './sqlite/onboarding.js';
import { PgOnboardingApplications } from './postgres/onboarding.js';

export const databaseFile = (config: DipConfig): string => join(config.dataDir, 'dip.db');
export const activityLogFile = (config: DipConfig): string => join(config.dataDir, 'activity.db');

/**
 * Alarm subscriptions: a small file of their own, or a table on the cluster's PostgreSQL. `lostOnOpen`: what
 * the file's WAL had lost after a crash (SqliteAlarmSubscriptions.lostOnOpen), else null or absent.
 */
export async function openAlarmSubscriptions(config: DipConfig): Promise<AlarmSubscriptionStore & AlarmMemory & { readonly lostOnOpen?: string | null }> {
  return config.storage.kind === 'cluster' ? PgAlarmSubscriptions.open(config.storage.postgres.url, config.storage.postgres.migrationUrl ?? undefined) : new SqliteAlarmSubscriptions(join(config.dataDir, 'alarms.db'));
}

/** Companies' onboarding applications: a small file of their own, or a table on the cluster's PostgreSQL. */
export async function openOnboardingApplications(config: DipConfig): Promise<OnboardingApplications> {
  return config.storage.kind === 'cluster' ? PgOnboardingApplications.open(config.storage.postgres.url, config.storage.postgres.migrationUrl ?? undefined) : new SqliteOnboardingApplications(join(config.dataDir, 'onboarding.db'));
}

/**
 * The API activity log's store, apart from the message store (its own file, or its own pool on the
 * cluster's PostgreSQL) so that recording requests never contends with the road's group commits.
 */
export async function openActivityLog(config: DipConfig, clock: Clock, logger?: Logger): Promise<ActivityLogStore> {
  // An upgrade's index build waits for the transactions open in the database: the log says which.
  const onIndexWait = logger ? (said: string) => logger.warn({ store: 'activity log' }, said) : undefined;
  return config.storage.kind === 'cluster' ? PgActivityLog.open(config.storage.postgres.url, config.storage.postgres.migrationUrl ?? undefined, onIndexWait) : new SqliteActivityLog(activityLogFile(config), clock, { witness: databaseFile(config) });
}

/**
 * The key-encryption key: a key file in the data directory by default. DIP_KMS_MODULE names an ES
 * module whose default export is a function returning a KeyEncryptionKey (wrap/unwrap through a KMS).
 */
export async function keyEncryptionKey(config: DipConfig): Promise<KeyEncryptionKey> {
  const module = process.env.DIP_KMS_MODULE;
  if (!module) return new FileKeyEncryptionKey(join(config.dataDir, 'keys', 'kek.key'));
  const loaded = (await import(pathToFileURL(module).href)) as { default: (config: DipConfig) => KeyEncryptionKey | Promise<KeyEncryptionKey> };
  return loaded.default(config);
}

export interface OpenedBackend {
  backend: Backend;
  /** The at-rest sealer in force (rotated by the operator API). */
  sealer: Sealer;
}

export interface OpenOptions {
  clock?: Clock;
  logger?: Logger;
  /** In a cluster: where the nodes found lost are recorded for every node (openCoordination). */
  lostNodeRecords?: LostNodeRecords;
  /** In a cluster: where the leases bucket's incarnations are recorded for every node (openCoordination). */
  leaseIncarnations?: LeaseIncarnationRecords;
  /** The embedded store: open even though its WAL lost committed transactions (`dip serve --accept-wal-loss`; src/adapters/sqlite/wal-guard.ts). */
  acceptWalLoss?: boolean;
  /**
   * The embedded store, opened by a process the writer started once its own open passed (a delivery
   * process, an ingest thread): no WAL check (SqliteOptions.besideWriter). Never for a process that may
   * be the first to open the file (dip serve, the CLI).
   */
  besideWriter?: boolean;
}

/**
 * The at-rest sealer over the stored data keys, unwrapped with the configured key-encryption key (it reads
 * keys rotated elsewhere itself: Sealer.reload). Every Sealer the DIP seals with is made here, so storage.atRest reaches the ingest threads and delivery
 * processes with the configuration they are started with.
 */
export async function openSealer(config: DipConfig, dataKeys: Backend['dataKeys'], options: OpenOptions = {}): Promise<Sealer> {
  return Sealer.open(await keyEncryptionKey(config), dataKeys, { lz4Dictionary: config.storage.atRest.lz4Dictionary, bindToRecord: config.storage.atRest.bindToRecord, clock: options.clock ?? systemClock, ...(options.logger ? { logger: options.logger } : {}) });
}

/**
 * The one place that picks the storage engine from configuration (the way Svix's queue module does):
 * the embedded SQLite file by default; with `storage.kind: cluster`, PostgreSQL as the system of record
 * and NATS JetStream for what several DIP nodes share. Whatever the engine, payloads are sealed at rest
 * under data keys kept beside the data and wrapped by the key-encryption key (every node of a cluster
 * needs the same key-encryption key: the same key file, or the same KMS).
 */
export async function openBackend(config: DipConfig, options: OpenOptions = {}): Promise<OpenedBackend> {
  const clock = options.clock ?? systemClock;
  const backend = config.storage.kind === 'cluster' ? await openPostgres(config, clock, options.logger) : openEmbedded(config, clock, { acceptWalLoss: options.acceptWalLoss === true, besideWriter: options.besideWriter === true });
  try {
    const sealer = await openSealer(config, backend.dataKeys, { clock, ...(options.logger ? { logger: options.logger } : {}) });
    backend.useSealer(sealer);
    // The MPAN lookup is keyed by the sealer's index hash: rows a build before this one wrote in clear are
    // rewritten once, before anything reads them (a no-op, one indexed read, on every later start).
    await backend.mpan.indexStoredMpans();
    return { backend, sealer };
  } catch (err) {
    await backend.close();
    throw err;
  }
}

function openEmbedded(config: DipConfig, clock: Clock, guard: { acceptWalLoss: boolean; besideWriter: boolean }): Backend {
  const backend = openSqliteBackend(databaseFile(config), { clock, mpanIndex: config.storage.mpanIndex, ...guard });
  if (config.storage.maxDatabaseMb !== null) backend.setSizeLimit(config.storage.maxDatabaseMb * 1024 * 1024);
  return backend;
}

async function openPostgres(config: DipConfig, clock: Clock, logger: Logger | undefined): Promise<Backend> {
  const { postgres } = config.storage;
  return Object.assign(await openPostgresBackend({ url: postgres.url, ...(postgres.migrationUrl === null ? {} : { migrationUrl: postgres.migrationUrl }), poolSize: postgres.poolSize, writableCheckMs: postgres.writableCheckMs, clock, mpanIndex: config.storage.mpanIndex, ...(logger ? { logger } : {}) }), { kind: 'cluster' });
}

/**
 * What the DIP's nodes share besides storage, from the same configuration: in memory for one process
 * (sqlite), in NATS JetStream for a cluster. Operator commands that only read or change stored data
 * (the CLI) need only openBackend.
 */
export async function openCoordination(config: DipConfig, options: OpenOptions = {}): Promise<Coordination> {
  return config.storage.kind === 'cluster' ? openNats(config, options.clock ?? systemClock, options.logger, options) : embeddedCoordination(config);
}

/** One process: every queue is its own, and replay guard and rate limits live in its memory. */
export function embeddedCoordination(config: DipConfig): Coordination {
  return {
    kind: 'memory',
    leases: new SingleProcessLeases(),
    replayGuard: ReplayGuard.forClockSkew(config.maxClockSkewSeconds * 1000),
    rateLimits: new RateLimiter(config.rateLimit),
    health: () => ({ state: 'ok' }),
    close: async () => {},
  };
}

function natsSettings(config: DipConfig): NatsSettings {
  const { nats } = config.storage;
  const tls = nats.tls ? Object.fromEntries(Object.entries(nats.tls).filter(([, v]) => v !== null)) : undefined;
  return {
    servers: nats.servers,
    prefix: nats.prefix,
    replicas: nats.replicas,
    pingIntervalMs: nats.pingIntervalMs,
    ...(nats.credsFile ? { credsFile: nats.credsFile } : {}),
    ...(nats.user !== null ? { user: nats.user, pass: nats.pass ?? undefined } : {}),
    ...(nats.token !== null ? { token: nats.token } : {}),
    ...(tls ? { tls } : {}),
  };
}

function openNats(config: DipConfig, clock: Clock, logger: Logger | undefined, { lostNodeRecords, leaseIncarnations }: Pick<OpenOptions, 'lostNodeRecords' | 'leaseIncarnations'>): Promise<Coordination> {
  const { nats } = config.storage;
  return openNatsCoordination(natsSettings(config), {
    clock,
    logger,
    maxClockSkewMs: config.maxClockSkewSeconds * 1000,
    rateLimit: config.rateLimit,
    leases: { ttlMs: nats.leaseTtlMs, skewMs: Math.min(1000, nats.leaseTtlMs / 4) },
    ...(nats.nodeName !== null ? { nodeName: nats.nodeName } : {}),
    ...(lostNodeRecords ? { lostNodeRecords } : {}),
    ...(leaseIncarnations ? { leaseIncarnations } : {}),
    // The real clock's leases run on the monotonic one (a wall-clock step must not end or stretch a lease); a test's injected clock is its own.
    steadyClock: clock === systemClock ? monotonicClock : clock,
    measureEventLoop: clock === systemClock,
  });
}

/**
 * Where publication bytes (Pattern B) are kept, sealed by `sealer`: files in `<dataDir>/publications` on
 * the embedded default; a JetStream Object Store (`<prefix>_publications`, `replicas` copies) in a cluster,
 * so that every node serves every publication.
 */
export async function openPublicationBlobs(config: DipConfig, sealer: ChunkSealer): Promise<PublicationBlobs> {
  if (config.storage.kind !== 'cluster') return new FilePublicationBlobs(join(config.dataDir, 'publications'), sealer);
  const settings = { ...natsSettings(config), name: 'opendip-publications' };
  const nc = await connectNats(settings);
  try {
    return await JetStreamPublicationBlobs.open(nc, `${settings.prefix}_publications`, settings.replicas, sealer, () => nc.drain().catch(() => nc.close()));
  } catch (err) {
    await nc.close();
    throw err;
  }
}
