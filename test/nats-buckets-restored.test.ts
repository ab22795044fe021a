/**
 * The coordination buckets deleted while a node runs (a fault campaign: every KV_<prefix>_* stream
 * removed under load with `nats stream rm`, or the NATS store wiped and the server restarted empty).
 * They were created at start only: both nodes said `coordination: unavailable` (a timeout on the leases
 * bucket) for as long as they ran, and webhook delivery stopped cluster-wide. Now the node finds the
 * streams gone, creates the four buckets again with the settings it opened them with, says so in its log,
 * and its health and lease claims come back: the holder of before dropped its lease at once, and claims
 * again only once any holder of the old bucket has stopped (test/coordination.test.ts, "deleted and
 * created again", races the deletion with a renewal between two nodes).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { monotonicClock, systemClock } from '../src/adapters/clock.js';
import { openNatsCoordination, type NatsCoordination } from '../src/adapters/nats/index.js';
import { DEFAULTS } from '../src/config.js';
import type { Logger } from '../src/ports/logger.js';
import { waitFor } from './helpers/dip-harness.js';
import { deleteBuckets, NATS_SERVERS, testPrefix } from './helpers/nats.js';

describe('the NATS coordination buckets deleted while a node runs', () => {
  const prefix = testPrefix();
  const q = { recipientDipId: 'SUP0000001', channel: 'IF-021' };
  const logged: string[] = [];
  const logger: Logger = { info: (_o, m) => logged.push(m ?? ''), warn: (_o, m) => logged.push(m ?? ''), error: (_o, m) => logged.push(m ?? '') };
  let node: NatsCoordination;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const buckets = ['leases', 'signatures', 'rates', 'alarms'].map((b) => `KV_${prefix}_${b}`);
  const exists = (stream: string) => jsm.streams.info(stream).then(() => true, () => false);

  beforeAll(async () => {
    nc = await connect({ servers: NATS_SERVERS });
    jsm = await jetstreamManager(nc);
    node = await openNatsCoordination(
      { servers: NATS_SERVERS, prefix, replicas: 1 },
      { clock: systemClock, steadyClock: monotonicClock, logger, maxClockSkewMs: 300_000, rateLimit: DEFAULTS.rateLimit, leases: { ttlMs: 1_000, skewMs: 200 } },
    );
  }, 30_000);
  afterAll(async () => {
    await node?.close();
    await deleteBuckets(prefix);
    await nc?.close();
  });

  it('are created again with their settings; health comes back; the lease held before is dropped and claimed again', async () => {
    const settingsBefore = await Promise.all(buckets.map(async (s) => (await jsm.streams.info(s)).config));
    expect(await node.leases.acquire(q)).toBe(true);
    const lost: string[] = [];
    node.leases.onLost((lq) => lost.push(lq.channel));

    await deleteBuckets(prefix);
    expect(await Promise.all(buckets.map(exists))).toEqual([false, false, false, false]);

    await waitFor(async () => (await Promise.all(buckets.map(exists))).every(Boolean), 20_000, 'the four buckets created again');
    expect(logged).toContain(`NATS KV bucket ${prefix}_leases was gone (its stream deleted, or the NATS store lost): created it again, empty, with the settings it was opened with`);
    const settingsAfter = await Promise.all(buckets.map(async (s) => (await jsm.streams.info(s)).config));
    const kept = (c: (typeof settingsBefore)[0]) => ({ subjects: c.subjects, max_age: c.max_age, max_msgs_per_subject: c.max_msgs_per_subject, num_replicas: c.num_replicas, description: c.description });
    expect(settingsAfter.map(kept)).toEqual(settingsBefore.map(kept));

    await waitFor(() => node.health().state === 'ok' && lost.length > 0, 20_000, 'health ok and the lease of before dropped');
    expect(lost).toEqual([q.channel]);
    await waitFor(() => node.leases.acquire(q), 20_000, 'the queue claimed again');
    expect(node.health()).toEqual({ state: 'ok' });
  }, 60_000);
});
