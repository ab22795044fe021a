import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV, type KvOptions } from '@nats-io/kv';
import type { Logger } from '../../ports/logger.js';

/** How the DIP reaches its NATS cluster (storage.nats in the configuration). */
export interface NatsSettings {
  servers: string[];
  /** Prefix of every bucket and subject this DIP uses, so several DIPs (or tests) can share a NATS system. */
  prefix: string;
  /** JetStream replicas of the DIP's KV buckets: 3 in a production cluster (a quorum survives one node). */
  replicas: number;
  /** A NATS credentials file (JWT + NKey seed), as issued by the operator's account server. */
  credsFile?: string;
  user?: string;
  pass?: string;
  token?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  name?: string;
  /**
   * How often the client pings its server; two pings unanswered and it takes the connection as lost and
   * moves to another server. nats.js's default, 2 minutes, left a node on a hung server (SIGSTOP, a frozen
   * VM: nothing closed) for up to 6 minutes.
   */
  pingIntervalMs?: number;
}

/**
 * What follows the connection's own events: `lost` at a disconnect, `back` at a reconnect. A lost
 * connection is known at once, without waiting out a request's timeout on it; one whose server stops
 * answering without closing it (SIGSTOP, a hung host) raises nothing until the client's pings give up.
 */
export interface ConnectionFollower {
  connectionLost(server: string): void;
  connectionBack(): void;
}

/**
 * The one loop over a connection's status events (nc.status()), handing each loss and return to every
 * follower: queue-lease health, and the replay guard's and rate limits' memory of an outage.
 */
export async function followConnection(
  status: AsyncIterable<{ type: string; server?: string }>,
  followers: readonly ConnectionFollower[],
  onError: (err: unknown) => void,
): Promise<void> {
  for await (const event of status) {
    for (const f of followers) {
      // Each on its own: one follower's failure must not leave the others deaf to the connection.
      try {
        if (event.type === 'disconnect') f.connectionLost(event.server ?? 'its server');
        else if (event.type === 'reconnect') f.connectionBack();
      } catch (err) {
        onError(err);
      }
    }
  }
}

/** The least a connection attempt is given, whatever the ping interval. */
const CONNECT_TIMEOUT_FLOOR_MS = 5_000;

/**
 * Connects to NATS. A first connection that fails names NATS and its address: nats.js says only
 * "connection refused", which an operator starting a node read as anything but NATS.
 */
export async function connectNats(s: NatsSettings): Promise<NatsConnection> {
  try {
    return await connectWith(s);
  } catch (err) {
    throw new Error(`NATS at ${s.servers.join(', ')} (storage.nats.servers) does not answer (${(err as Error).message}): a cluster node needs NATS to start (docs/cluster.md)`, { cause: err });
  }
}

function connectWith(s: NatsSettings): Promise<NatsConnection> {
  return connect({
    servers: s.servers,
    name: s.name ?? 'opendip',
    // Keep trying for ever: a node that cannot reach NATS serves what it can and catches up when it can.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    // A hung server is found after two unanswered pings (2–3 intervals): nats-server answers a ping at once
    // unless it is stopped. Pings are a few bytes per node and interval. A connection attempt (TCP, TLS,
    // INFO, CONNECT, the first PONG) is given as long as two pings, at least 5 s: the default, 20 s, was
    // spent whenever a reconnect tried the hung server first (its kernel still accepts the TCP connection;
    // the server never sends its INFO). The floor keeps a first connection over a slow TLS link possible.
    ...(s.pingIntervalMs !== undefined ? { pingInterval: s.pingIntervalMs, maxPingOut: 2, timeout: Math.max(2 * s.pingIntervalMs, CONNECT_TIMEOUT_FLOOR_MS) } : {}),
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the credentials file the operator configured
    ...(s.credsFile ? { authenticator: credsAuthenticator(readFileSync(s.credsFile)) } : {}),
    ...(s.user !== undefined ? { user: s.user, pass: s.pass } : {}),
    ...(s.token !== undefined ? { token: s.token } : {}),
    ...(s.tls ? { tls: { ...s.tls } } : {}),
  });
}

/**
 * Opens the bucket, creating it with these settings when it does not exist yet. `requestTimeoutMs`: the
 * handle's calls give up after this long instead of the connection's default (for buckets a request
 * waits on, which have a fallback: a JetStream without its quorum must not hold every request for the
 * default's seconds). Created with the default, since creating a replicated stream may take longer.
 */
export async function openBucket(nc: NatsConnection, name: string, options: Partial<KvOptions>, requestTimeoutMs?: number): Promise<KV> {
  const kv = await new Kvm(nc).create(name, options);
  return requestTimeoutMs === undefined ? kv : new Kvm(jetstream(nc, { timeout: requestTimeoutMs })).open(name);
}

/** A bucket as a node opens it: what openBucket and BucketRestorer are given. */
export interface BucketSpec {
  name: string;
  options: Partial<KvOptions>;
}

/** JetStream's "stream not found" (10059): the stream was asked about and does not exist. */
const STREAM_NOT_FOUND = 10059;

async function streamExists(jsm: JetStreamManager, bucket: string): Promise<boolean> {
  try {
    await jsm.streams.info(`KV_${bucket}`);
    return true;
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === STREAM_NOT_FOUND) return false;
    throw err;
  }
}

/**
 * What tells one incarnation of a bucket from another (NatsQueueLeases.trackGeneration): its stream's
 * creation time, as JetStream answers it. The same for every node, kept for the stream's life with no
 * write and no expiry; a stream deleted and created again (or a NATS store lost) has another.
 */
export async function bucketIncarnation(nc: NatsConnection, bucket: string): Promise<() => Promise<string>> {
  // checkAPI false: no request now (the bucket was just opened through the same connection).
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  return async () => (await jsm.streams.info(`KV_${bucket}`)).created;
}

/**
 * Creates again, with the settings they were opened with, the buckets whose streams are gone while the
 * node runs (`nats stream rm`, a NATS store wiped and restarted empty): they were created at start only,
 * so every node's coordination stayed unavailable until restarted (a fault campaign: over 4 minutes,
 * webhook delivery stopped cluster-wide). A KV operation on a missing stream times out or finds no
 * responders, as one on a JetStream without its quorum does, so `restore` asks JetStream which streams
 * exist: only a definite "stream not found" creates one. Called on failures, so spaced: at least
 * `minGapMs` apart, doubling up to `maxGapMs` while JetStream does not answer. The KV handles already
 * open keep working on the stream created again (same subjects). True when it created one.
 */
export class BucketRestorer {
  private nextTryAt = Number.NEGATIVE_INFINITY;
  private gapMs: number;
  private running: Promise<boolean> | null = null;

  constructor(
    private readonly nc: NatsConnection,
    private readonly buckets: readonly BucketSpec[],
    private readonly now: () => number,
    private readonly logger?: Logger,
    private readonly minGapMs = 1_000,
    private readonly maxGapMs = 30_000,
  ) {
    this.gapMs = minGapMs;
  }

  restore(): Promise<boolean> {
    if (this.running) return this.running;
    if (this.now() < this.nextTryAt) return Promise.resolve(false);
    const running = this.tryRestore().finally(() => {
      this.running = null;
    });
    this.running = running;
    return running;
  }

  private async tryRestore(): Promise<boolean> {
    let restored = false;
    try {
      const jsm = await jetstreamManager(this.nc, { checkAPI: false });
      for (const b of this.buckets) {
        if (await streamExists(jsm, b.name)) continue;
        await new Kvm(this.nc).create(b.name, b.options);
        restored = true;
        this.logger?.error({ bucket: b.name }, `NATS KV bucket ${b.name} was gone (its stream deleted, or the NATS store lost): created it again, empty, with the settings it was opened with`);
      }
      this.gapMs = this.minGapMs;
    } catch (err) {
      this.gapMs = Math.min(this.maxGapMs, 2 * this.gapMs);
      this.logger?.warn({ err, retryInMs: this.gapMs }, 'could not check or create again the NATS KV buckets: JetStream does not answer; tried again later');
    }
    this.nextTryAt = this.now() + this.gapMs;
    return restored;
  }
}

/** Removes one key of a bucket for good (keys as written: no encoding). */
export type KeyEraser = (key: string) => Promise<void>;

/**
 * Removes keys of the bucket for good, by purging the key's subject from the bucket's stream. A KV delete
 * or purge leaves a marker under the key that the bucket keeps for ever (markers that expire need NATS
 * 2.11), so a bucket whose keys come and go would hold one for every key it ever held. For a bucket only
 * its lease holder writes: the key is gone, not marked gone, so a watcher would not be told.
 */
export async function keyEraser(nc: NatsConnection, bucket: string, kv: Pick<KV, 'delete'>): Promise<KeyEraser> {
  // checkAPI false: no request now (the buckets were just opened through the same connection).
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  return async (key) => {
    try {
      await jsm.streams.purge(`KV_${bucket}`, { filter: `$KV.${bucket}.${key}` });
    } catch (err) {
      // Credentials scoped to KV operations may not purge streams ($JS.API.STREAM.PURGE): the key is then
      // deleted the KV way, marker and all, rather than left holding (a later takeover's sweep of markers
      // tries the purge again). Only if that fails too is the erase reported failed.
      await kv.delete(key).catch(() => {
        throw err;
      });
    }
  };
}
