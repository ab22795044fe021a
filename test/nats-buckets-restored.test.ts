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
import { connect } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { monotonicClock, systemClock } from '../src/adapters/clock.js';
import { openNatsCoordination, type LeaseSettings, type NatsCoordination } from '../src/adapters/nats/index.js';
import { DEFAULTS } from '../src/config.js';
import type { Logger } from '../src/ports/logger.js';
import { waitFor } from './helpers/dip-harness.js';
import { deleteBuckets, NATS_SERVERS, testPrefix } from './helpers/nats.js';

const q = { recipientDipId: 'SUP0000001', channel: 'IF-021' };
const closing: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of closing.splice(0).reverse()) await c();
});

/** A node of its own prefix on the real clocks, what it logs kept, and a connection of the test's own. */
async function startNode(leases: LeaseSettings) {
  const prefix = testPrefix();
  const logged: string[] = [];
  const logger: Logger = { info: (_o, m) => logged.push(m ?? ''), warn: (_o, m) => logged.push(m ?? ''), error: (_o, m) => logged.push(m ?? '') };
  const nc = await connect({ servers: NATS_SERVERS });
  closing.push(() => nc.close());
  closing.push(() => deleteBuckets(prefix));
  const node = await openNatsCoordination(
    { servers: NATS_SERVERS, prefix, replicas: 1 },
    { clock: systemClock, steadyClock: monotonicClock, logger, maxClockSkewMs: 300_000, rateLimit: DEFAULTS.rateLimit, leases },
  );
  closing.push(() => node.close());
  return { prefix, logged, nc, node, jsm: await jetstreamManager(nc) };
}

describe('the NATS coordination buckets deleted while a node runs', () => {
  let prefix: string;
  let logged: string[];
  let node: NatsCoordination;
  let jsm: JetStreamManager;
  const buckets = () => ['leases', 'signatures', 'rates', 'alarms'].map((b) => `KV_${prefix}_${b}`);
  const exists = (stream: string) => jsm.streams.info(stream).then(() => true, () => false);

  beforeAll(async () => {
    ({ prefix, logged, node, jsm } = await startNode({ ttlMs: 1_000, skewMs: 200 }));
  }, 30_000);

  it('are created again with their settings; health comes back; the lease held before is dropped and claimed again', async () => {
    const settingsBefore = await Promise.all(buckets().map(async (s) => (await jsm.streams.info(s)).config));
    expect(await node.leases.acquire(q)).toBe(true);
    const lost: string[] = [];
    node.leases.onLost((lq) => lost.push(lq.channel));

    await deleteBuckets(prefix);
    expect(await Promise.all(buckets().map(exists))).toEqual([false, false, false, false]);

    await waitFor(async () => (await Promise.all(buckets().map(exists))).every(Boolean), 20_000, 'the four buckets created again');
    expect(logged).toContain(`NATS KV bucket ${prefix}_leases was gone (its stream deleted, or the NATS store lost): created it again, empty, with the settings it was opened with`);
    const settingsAfter = await Promise.all(buckets().map(async (s) => (await jsm.streams.info(s)).config));
    const kept = (c: (typeof settingsBefore)[0]) => ({ subjects: c.subjects, max_age: c.max_age, max_msgs_per_subject: c.max_msgs_per_subject, num_replicas: c.num_replicas, description: c.description });
    expect(settingsAfter.map(kept)).toEqual(settingsBefore.map(kept));

    await waitFor(() => node.health().state === 'ok' && lost.length > 0, 20_000, 'health ok and the lease of before dropped');
    expect(lost).toEqual([q.channel]);
    await waitFor(() => node.leases.acquire(q), 20_000, 'the queue claimed again');
    expect(node.health()).toEqual({ state: 'ok' });
  }, 60_000);
});

/**
 * The leases bucket as a node makes it, with its TTL (ten lease lengths): the incarnation id was a key
 * written once into it, which expired ten lease lengths after the bucket was made. Every node's next
 * probe then found it gone, took the bucket for created again, dropped every lease and claimed none for a
 * lease length, the allowance and the request timeout: about once a minute, cluster-wide, with the
 * default lease of 6 s. Leases of 600 ms here (a TTL of 6 s): real NATS expires by real time.
 */
describe('the NATS leases bucket, with the TTL a node gives it', () => {
  it('keeps its leases past ten lease lengths (what was written once into it has expired by then)', async () => {
    const ttlMs = 600;
    const { prefix, logged, nc, node, jsm } = await startNode({ ttlMs, skewMs: 100 });
    expect((await jsm.streams.info(`KV_${prefix}_leases`)).config.max_age, "the bucket's TTL: ten lease lengths, in ns").toBe(10 * ttlMs * 1_000_000);
    const lost: string[] = [];
    node.leases.onLost((lq) => lost.push(lq.channel));
    expect(await node.leases.acquire(q)).toBe(true);
    // A key written once now (as the incarnation id was, at start): gone once the TTL has passed.
    const kv = await new Kvm(nc).open(`${prefix}_leases`);
    await kv.put('written_once', 'x');
    await waitFor(async () => (await kv.get('written_once')) === null, 20_000, 'a key written once expired by the bucket TTL');
    // Three roll calls (each with its probe) after it.
    const expiredAt = monotonicClock.now();
    await waitFor(() => lost.length > 0 || monotonicClock.now() - expiredAt > ttlMs, 5_000, 'three roll calls');
    expect(lost, 'leases dropped').toEqual([]);
    expect(logged.filter((m) => m.includes('created again'))).toEqual([]);
    expect(node.leases.holds(q)).toBe(true);
    expect(await node.leases.acquire({ ...q, channel: 'IF-022' }), 'a claim after it').toBe(true);
  }, 30_000);
});
