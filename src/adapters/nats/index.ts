import type { NatsConnection } from '@nats-io/transport-node';
import type { Coordination, LeaseIncarnationRecords, LostNodeRecords } from '../../ports/backend.js';
import type { Clock } from '../../ports/clock.js';
import type { Logger } from '../../ports/logger.js';
import type { RateLimitSettings } from '../../security/rate-limit.js';
import { BucketRestorer, bucketIncarnation, connectNats, followConnection, keyEraser, openBucket, type BucketSpec, type NatsSettings } from './connection.js';
import { DEFAULT_LEASES, NatsQueueLeases, nodeId, type LeaseSettings } from './leases.js';
import { NatsAlarmNotifierLease } from './notifier-lease.js';
import { NatsRateLimits } from './rate-limits.js';
import { NatsReplayGuard } from './replay-guard.js';
import { Unreachable } from './unreachable.js';
import { EventLoopGauge } from '../event-loop-gauge.js';

/**
 * How long a request waits on the shared replay guard or rate limits before taking their fallback:
 * JetStream answers these in milliseconds when it has its quorum (the default, 5 s, held every request).
 */
const REQUEST_PATH_TIMEOUT_MS = 1_000;

export type { NatsSettings, LeaseSettings };

export interface NatsCoordinationOptions {
  clock: Clock;
  logger?: Logger;
  maxClockSkewMs: number;
  rateLimit: RateLimitSettings;
  leases?: LeaseSettings;
  /** What names this node in leases, alarms and logs, before its random part (nodeId): the host's name when absent. */
  nodeName?: string;
  /** Where the nodes found lost are recorded for every node (the shared store): absent, each node knows only those it heard. */
  lostNodeRecords?: LostNodeRecords;
  /** Where the leases bucket's incarnations are recorded (the shared store): absent, a node started right after a recreation is not fenced. */
  leaseIncarnations?: LeaseIncarnationRecords;
  /** Elapsed time for the queue leases, never stepped (NatsQueueLeases `steady`): `clock` when absent (a test's). */
  steadyClock?: Clock;
  /**
   * Measure this process's event loop (EventLoopGauge.recentWorstMs), so that a roll call read late here is
   * not taken for a peer's clock behind (NatsQueueLeases `loopLateMs`): the real clock's; a test's says none.
   */
  measureEventLoop?: boolean;
}

export interface NatsCoordination extends Coordination {
  readonly connection: NatsConnection;
  readonly leases: NatsQueueLeases;
  readonly notifier: NatsAlarmNotifierLease;
}

/**
 * What the DIP nodes of a cluster share through NATS: queue leases and wake-ups, the signature replay
 * guard and the fair-use buckets, and what the alarm notifier has notified, in four KV buckets replicated
 * `replicas` times (R3 in production).
 */
export async function openNatsCoordination(settings: NatsSettings, options: NatsCoordinationOptions): Promise<NatsCoordination> {
  const nc = await connectNats(settings);
  const gauge = options.measureEventLoop === true ? new EventLoopGauge() : null;
  try {
    const leaseSettings = options.leases ?? DEFAULT_LEASES;
    const common = { history: 1, replicas: settings.replicas };
    const refillMs = options.rateLimit.requestsPerSecond > 0 ? (options.rateLimit.burst / options.rateLimit.requestsPerSecond) * 1000 : 0;
    const alarmsBucket = `${settings.prefix}_alarms`;
    // Each bucket's settings, once: created with them at start, and again if its stream is lost (BucketRestorer).
    const specs = {
      leases: { name: `${settings.prefix}_leases`, options: { ...common, ttl: 10 * leaseSettings.ttlMs, description: 'OpenDIP: which node works which recipient queue' } },
      signatures: {
        name: `${settings.prefix}_signatures`,
        options: { ...common, ttl: 2 * options.maxClockSkewMs, description: 'OpenDIP: X-DIP-Signature digests accepted, kept as long as they could verify' },
      },
      rates: { name: `${settings.prefix}_rates`, options: { ...common, ttl: Math.max(60_000, 2 * refillMs), description: 'OpenDIP: fair-use token buckets' } },
      // No expiry: what has been notified is kept while it holds, however long no node holds the lease.
      alarms: { name: alarmsBucket, options: { ...common, description: 'OpenDIP: the shared alarm conditions notified, one entry each' } },
    } satisfies Record<string, BucketSpec>;
    const leasesKv = await openBucket(nc, specs.leases.name, specs.leases.options);
    const signaturesKv = await openBucket(nc, specs.signatures.name, specs.signatures.options, REQUEST_PATH_TIMEOUT_MS);
    const ratesKv = await openBucket(nc, specs.rates.name, specs.rates.options, REQUEST_PATH_TIMEOUT_MS);
    const alarmsKv = await openBucket(nc, specs.alarms.name, specs.alarms.options);
    const steady = options.steadyClock ?? options.clock;
    const restorer = new BucketRestorer(nc, Object.values(specs), () => steady.now(), options.logger);
    const restore = (): void => {
      restorer.restore().catch(() => undefined);
    };
    const down = new Unreachable(() => options.clock.now(), undefined, restore);
    gauge?.start();
    const leases = new NatsQueueLeases(nc, leasesKv, settings.prefix, options.clock, leaseSettings, options.logger, nodeId(options.nodeName), steady, () => gauge?.recentWorstMs() ?? 0);
    followConnection(nc.status(), [leases, down], (err) => options.logger?.error({ err }, 'NATS connection status: a follower failed on an event')).catch((err: unknown) =>
      options.logger?.error({ err }, 'NATS connection status: no longer followed; lease health and the replay guard find an outage by a timeout'),
    );
    await leases.trackGeneration(await bucketIncarnation(nc, specs.leases.name), () => restorer.restore(), options.leaseIncarnations);
    if (options.lostNodeRecords) await leases.remember(options.lostNodeRecords);
    const notifier = new NatsAlarmNotifierLease(leasesKv, alarmsKv, await keyEraser(nc, alarmsBucket, alarmsKv), leases.node, options.clock, leaseSettings, options.logger, (v) => leases.expiryHere(v), leases.fence);
    // The bucket names holders by this id: the operator (and the failover tests) tell the nodes apart by it.
    options.logger?.info({ leaseHolder: leases.node, bucket: `${settings.prefix}_leases` }, 'queue leases: this node holds them under its id');
    return {
      kind: 'nats',
      node: leases.node,
      connection: nc,
      leases,
      notifier,
      replayGuard: new NatsReplayGuard(signaturesKv, 2 * options.maxClockSkewMs, down, options.logger),
      rateLimits: new NatsRateLimits(ratesKv, options.rateLimit, down, options.logger),
      health: () => leases.health(),
      clockOffset: () => leases.clockOffset(),
      lostNodes: () => leases.lostNodes(),
      forgetNode: (node) => leases.forgetNode(node),
      async close() {
        await notifier.close();
        await leases.close();
        gauge?.stop();
        await nc.drain().catch(() => nc.close());
      },
    };
  } catch (err) {
    gauge?.stop();
    await nc.close();
    throw err;
  }
}
