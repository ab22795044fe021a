/**
 * Alarms in a cluster (README "Alarms", docs/cluster.md): a probe found that with 2 nodes, one operator
 * webhook subscription and one dead letter, the subscriber got 2 identical "raised" notices, one from each
 * node, since every node evaluates the shared store's conditions alike and notified its own view. Now only
 * the holder of the alarm notifier lease (in the NATS leases bucket) sends the notices of shared
 * conditions, the lease carries what was notified so a node taking it over sends what changed since, and a
 * node's own conditions are still sent by that node.
 *
 * Two nodes with their own NATS coordination (a real JetStream, one prefix for this test) and their own
 * injected clocks; the shared store is the dead letters both nodes' dead-letter sources read.
 */
import { hostname } from 'node:os';
import { Kvm, type KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openNatsCoordination, type NatsCoordination } from '../src/adapters/nats/index.js';
import { keyEraser, openBucket } from '../src/adapters/nats/connection.js';
import { NatsAlarmNotifierLease, NOTIFIER_KEY, recordKey } from '../src/adapters/nats/notifier-lease.js';
import { DEFAULTS } from '../src/config.js';
import { deadLetterAlarms, storageAlarms } from '../src/pipeline/alarm-sources.js';
import { Alarms } from '../src/pipeline/alarms.js';
import type { AlarmChannel, AlarmNotice, AlarmSubscription } from '../src/ports/alarms.js';
import type { BackendHealth } from '../src/ports/backend.js';
import type { DeadLetter } from '../src/ports/dead-letters.js';
import { FakeClock } from './helpers/clocks.js';
import { quietLogger } from './helpers/dip-harness.js';
import { deleteBuckets, NATS_SERVERS, testPrefix } from './helpers/nats.js';

const LEASES = { ttlMs: 6_000, skewMs: 1_000 };
const operator: AlarmSubscription = { id: 'ops', owner: 'operator', rules: ['dead-letter', 'storage'], email: null, webhookUrl: 'https://ops.example.net/alarms', createdAt: 0 };

describe('alarms in a cluster: each change of a shared condition is notified once', () => {
  const prefixes: string[] = [];
  let nodes: Array<{ clock: FakeClock; coordination: NatsCoordination; alarms: Alarms; health: BackendHealth }> = [];
  /** What the operator's webhook received, from any node. */
  let received: AlarmNotice[] = [];
  /** The shared store's dead letters, as every node reads them. */
  let dead: DeadLetter[] = [];

  const deadLetter = (recipientDipId: string): DeadLetter => ({ messageId: `m-${recipientDipId}`, queue: { recipientDipId, channel: 'IF-021' }, at: Date.UTC(2026, 0, 1), reason: 'refused' }) as unknown as DeadLetter;
  const summary = () => received.map((n) => `${n.kind} ${n.condition.key}`).sort();

  /** `n` more nodes: of a new cluster (its own prefix), or joining the last one's. */
  async function startNodes(n: number, { maxNoticesPerHour = 20, join = false, nodeName = undefined as string | undefined } = {}): Promise<void> {
    const prefix = join ? prefixes.at(-1)! : testPrefix();
    if (!join) prefixes.push(prefix);
    const channel: AlarmChannel = { email: async () => {}, webhook: async (_url, notice) => void received.push(notice as AlarmNotice), close: async () => {} };
    for (let i = 0; i < n; i++) {
      const clock = new FakeClock();
      const coordination = await openNatsCoordination({ servers: NATS_SERVERS, prefix, replicas: 1 }, { clock, maxClockSkewMs: 300_000, rateLimit: DEFAULTS.rateLimit, leases: LEASES, ...(nodeName ? { nodeName } : {}) });
      const node = { clock, coordination, health: { state: 'ok' } as BackendHealth, alarms: null as unknown as Alarms };
      const sources = [deadLetterAlarms({ deadLetters: async () => dead.filter(() => true) }, clock), storageAlarms(() => node.health, clock, coordination.node, 0)];
      node.alarms = new Alarms(sources, { list: async () => [operator] }, channel, { evaluateIntervalMs: 10_000, maxNoticesPerHour }, clock, quietLogger, coordination.notifier);
      nodes.push(node);
    }
  }
  const leasesBucket = () => new Kvm(nodes[0]!.coordination.connection).open(`${prefixes.at(-1)!}_leases`);
  /** One evaluation on each node, in turn, after `ms` on each node's clock. */
  async function evaluateAll(ms = 10_000): Promise<void> {
    for (const node of nodes) {
      await node.clock.advance(ms);
      await node.alarms.evaluate();
    }
  }

  beforeEach(() => {
    received = [];
    dead = [];
    nodes = [];
  });
  afterEach(async () => {
    for (const node of nodes) await node.coordination.close();
  });
  afterAll(async () => {
    for (const prefix of prefixes) await deleteBuckets(prefix);
  });

  it('two nodes, one dead letter: one raised notice and one resolved notice, and both nodes list the alarm', async () => {
    await startNodes(2);
    await evaluateAll();
    dead = [deadLetter('1000000001')];
    await evaluateAll();
    await evaluateAll();
    expect(summary()).toEqual(['raised dead-letter:1000000001/IF-021']);
    for (const node of nodes) expect(node.alarms.current().map((c) => c.key)).toEqual(['dead-letter:1000000001/IF-021']);

    dead = [];
    await evaluateAll();
    await evaluateAll();
    expect(summary()).toEqual(['raised dead-letter:1000000001/IF-021', 'resolved dead-letter:1000000001/IF-021']);
  }, 30_000);

  it("a node's own condition (its storage) is still sent by that node, whichever holds the lease, and names it", async () => {
    await startNodes(2);
    await evaluateAll();
    nodes[1]!.health = { state: 'unavailable', reason: 'disk full', code: null };
    await evaluateAll();
    const node = nodes[1]!.coordination.node;
    expect(summary()).toEqual([`raised storage:${node}`]);
    expect(received[0]!.condition.summary).toBe(`storage unavailable on node ${node}: disk full`);
  }, 30_000);

  it("a node's id names its machine (the host's name, or storage.nats.nodeName) and is still unique per process", async () => {
    // Ids were random UUIDs: a `storage` alarm said which process, not which machine, and each restart a new one.
    await startNodes(1);
    await startNodes(2, { join: true, nodeName: 'dip-a' });
    const [onHost, a1, a2] = nodes.map((n) => n.coordination.node!);
    expect([onHost!.slice(0, -9), onHost!.slice(-9)]).toEqual([hostname(), expect.stringMatching(/^-[0-9a-f]{8}$/)]);
    expect(a1).toMatch(/^dip-a-[0-9a-f]{8}$/);
    expect(a2).toMatch(/^dip-a-[0-9a-f]{8}$/);
    // Two processes of one name never share an id: each would take the other's leases as its own.
    expect(a2).not.toBe(a1);
    await evaluateAll();
    nodes[1]!.health = { state: 'unavailable', reason: 'disk full', code: null };
    await evaluateAll();
    expect(received.map((n) => n.condition.summary)).toEqual([`storage unavailable on node ${a1}: disk full`]);
    // The lease names its holder by the same id.
    const lease = await (await leasesBucket()).get(NOTIFIER_KEY);
    expect((JSON.parse(lease!.string()) as { node: string }).node).toBe(onHost);
  }, 30_000);

  it('the holder dies: another node takes the lease over and sends the change the dead one did not, and not the one it did', async () => {
    await startNodes(2);
    dead = [deadLetter('1000000001')];
    await evaluateAll();
    expect(summary()).toEqual(['raised dead-letter:1000000001/IF-021']);
    // Node 0 (it evaluated first, so it holds the lease) dies: its clock stops, nothing of it runs again.
    const [, survivor] = nodes;
    dead = [deadLetter('1000000001'), deadLetter('1000000002')];
    // Within the lease's length node 1 sends nothing: node 0 might be alive and send it.
    await survivor!.clock.advance(2_000);
    await survivor!.alarms.evaluate();
    expect(summary()).toEqual(['raised dead-letter:1000000001/IF-021']);
    // Past its length and the skew allowance node 1 takes the lease, with what node 0 had notified.
    await survivor!.clock.advance(LEASES.ttlMs + LEASES.skewMs);
    await survivor!.alarms.evaluate();
    expect(summary()).toEqual(['raised dead-letter:1000000001/IF-021', 'raised dead-letter:1000000002/IF-021']);
  }, 30_000);

  it('a holder paused between its turn and its record, while another took the lease over, writes nothing over the record of the node that took over', async () => {
    await startNodes(2);
    dead = [deadLetter('1000000001')];
    await evaluateAll();
    const [paused, survivor] = nodes;
    const mine = await paused!.coordination.notifier.turn();
    expect([...mine!.keys()]).toEqual(['dead-letter:1000000001/IF-021']);
    // Node 0 freezes here. Node 1 takes the lease over and resolves the dead letter.
    dead = [];
    await survivor!.clock.advance(LEASES.ttlMs + LEASES.skewMs + 10_000);
    await survivor!.alarms.evaluate();
    expect(summary()).toEqual(['raised dead-letter:1000000001/IF-021', 'resolved dead-letter:1000000001/IF-021']);
    // Node 0 resumes and records what it believes it notified, before any renewal of its own tells it the
    // lease is gone (by its clock, stopped with it, the lease is still valid).
    const n = mine!.get('dead-letter:1000000001/IF-021')!;
    const stale = new Map([['dead-letter:1000000002/IF-021', { ...n, condition: { ...n.condition, key: 'dead-letter:1000000002/IF-021', participant: '1000000002' } }]]);
    expect(await paused!.coordination.notifier.record(stale)).toBe(false);
    // Node 1 dies; a node taking over later finds the record as node 1 left it: nothing to tell.
    await startNodes(1, { join: true });
    const late = nodes[2]!;
    await late.clock.advance(20 * LEASES.ttlMs);
    await late.alarms.evaluate();
    expect(summary()).toEqual(['raised dead-letter:1000000001/IF-021', 'resolved dead-letter:1000000001/IF-021']);
  }, 30_000);

  it('the holder stops: the lease is given up at once, and the next node to evaluate sends what changed', async () => {
    await startNodes(2);
    dead = [deadLetter('1000000001')];
    await evaluateAll();
    await nodes[0]!.alarms.stop();
    await nodes[0]!.coordination.notifier.close();
    dead = [];
    await nodes[1]!.clock.advance(1_000);
    await nodes[1]!.alarms.evaluate();
    expect(summary()).toEqual(['raised dead-letter:1000000001/IF-021', 'resolved dead-letter:1000000001/IF-021']);
  }, 30_000);

  it('thousands of queues in alarm at once: the lease stays small, and each is raised once, across renewals and a takeover', async () => {
    // 6,000 conditions made a lease value of about 1.4 MB, over NATS's 1 MB max_payload: no renewal got
    // through, the holder claimed the lease afresh from its last record that fitted, and raised all again.
    const queues = 6_000;
    await startNodes(2, { maxNoticesPerHour: 100_000 });
    dead = Array.from({ length: queues }, (_, i) => deadLetter(String(1_000_000_000 + i)));
    await evaluateAll();
    const raised = () => received.filter((n) => n.kind === 'raised').map((n) => n.condition.key);
    expect(raised()).toHaveLength(queues);

    const lease = await (await leasesBucket()).get(NOTIFIER_KEY);
    expect(lease?.length).toBeLessThan(1_024);
    // Renewals every 2 s and three evaluations on each node: nothing more to tell.
    await evaluateAll();
    await evaluateAll();
    await evaluateAll();
    expect(raised()).toHaveLength(queues);

    // The holder (node 0) dies; node 1 takes over with the whole record and sends only the new one.
    const [, survivor] = nodes;
    dead = [...dead, deadLetter('2000000001')];
    await survivor!.clock.advance(LEASES.ttlMs + LEASES.skewMs + 10_000);
    await survivor!.alarms.evaluate();
    expect(raised()).toHaveLength(queues + 1);
    expect(new Set(raised()).size).toBe(queues + 1);
    expect(raised().at(-1)).toBe('dead-letter:2000000001/IF-021');
  }, 120_000);

  it('the record outlives the lease: a node starting after every node was gone resolves what was raised, once', async () => {
    await startNodes(1);
    dead = [deadLetter('1000000001')];
    await evaluateAll();
    // The only node dies (no close); the leases bucket forgets its lease after 10 lease lengths unwritten.
    await (await leasesBucket()).purge(NOTIFIER_KEY);
    dead = [];
    await startNodes(1, { join: true });
    const late = nodes[1]!;
    await late.clock.advance(20 * LEASES.ttlMs);
    await late.alarms.evaluate();
    expect(summary()).toEqual(['raised dead-letter:1000000001/IF-021', 'resolved dead-letter:1000000001/IF-021']);
  }, 30_000);

  it('the record bucket holds what is in alarm, not a marker for every condition ever resolved', async () => {
    await startNodes(1);
    const records = await new Kvm(nodes[0]!.coordination.connection).open(`${prefixes.at(-1)!}_alarms`);
    // A version before deleted resolved entries, leaving a marker each: the next takeover erases them.
    await records.put('left-by-an-older-node', '{}');
    await records.delete('left-by-an-older-node');
    const entries = async () => (await records.status()).values;
    expect(await entries()).toBe(1);
    await evaluateAll();
    expect(await entries()).toBe(0);
    for (let i = 1; i <= 5; i++) {
      dead = [deadLetter(String(1_000_000_000 + i))];
      await evaluateAll();
      expect(await entries()).toBe(1);
      dead = [];
      await evaluateAll();
      // Deleted, each resolved condition left a marker for ever: i entries after i cycles.
      expect(await entries()).toBe(0);
    }
    expect(received.filter((n) => n.kind === 'resolved')).toHaveLength(5);
    // A node taking over reads the record as it stands: nothing to tell.
    await startNodes(1, { join: true });
    await nodes[1]!.clock.advance(20 * LEASES.ttlMs);
    await nodes[1]!.alarms.evaluate();
    expect(received).toHaveLength(10);
  }, 30_000);

  it('a lease written by the version before (its record in its value) is taken over with that record', async () => {
    await startNodes(1);
    const key = 'dead-letter:1000000001/IF-021';
    const condition = { key, rule: 'dead-letter', participant: '1000000001', summary: 'dead letters in queue 1000000001 / IF-021: 1', since: 0 };
    await (await leasesBucket()).put(NOTIFIER_KEY, JSON.stringify({ node: 'an-older-node', expiresAt: 0, notified: [{ key, condition, asOf: 0 }] }));
    dead = [deadLetter('1000000002')];
    await evaluateAll();
    expect(summary()).toEqual(['raised dead-letter:1000000002/IF-021', `resolved ${key}`]);
  }, 30_000);
});

describe('the alarm notifier lease taken over from the version before (its record in the lease value)', () => {
  const prefix = testPrefix();
  let nc: NatsConnection;
  let leasesKv: KV;
  let recordsKv: KV;
  const leases: NatsAlarmNotifierLease[] = [];
  const key = 'dead-letter:1000000001/IF-021';
  const condition = { key, rule: 'dead-letter' as const, participant: '1000000001', summary: 'dead letters in queue 1000000001 / IF-021: 1', since: 0 };

  beforeAll(async () => {
    nc = await connect({ servers: NATS_SERVERS });
    leasesKv = await openBucket(nc, `${prefix}_leases`, { history: 1, replicas: 1 });
    recordsKv = await openBucket(nc, `${prefix}_alarms`, { history: 1, replicas: 1 });
  });
  afterAll(async () => {
    for (const l of leases) await l.close();
    await nc.close();
    await deleteBuckets(prefix);
  });

  /** A node's notifier lease whose first `failures` reads of the record bucket fail, as with NATS away. */
  const notifierLease = async (node: string, clock: FakeClock, failures: number): Promise<NatsAlarmNotifierLease> => {
    let left = failures;
    const flaky = new Proxy(recordsKv, {
      get(target, prop, receiver) {
        if (prop === 'history' && left-- > 0) return () => Promise.reject(new Error('TIMEOUT'));
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const lease = new NatsAlarmNotifierLease(leasesKv, flaky, await keyEraser(nc, `${prefix}_alarms`, recordsKv), node, clock, LEASES, quietLogger);
    leases.push(lease);
    return lease;
  };

  it('a key the stream purge cannot erase (a stream it may not purge) is deleted the KV way', async () => {
    const deleted: string[] = [];
    // No stream KV_<this name> exists, so the purge is refused as a purge without the permission would be.
    const erase = await keyEraser(nc, `${prefix}_no_such_bucket`, { delete: async (k: string) => void deleted.push(k) });
    await erase('some-key');
    expect(deleted).toEqual(['some-key']);
    // Both refused: the erase fails, so the caller keeps the key to try again.
    const failing = await keyEraser(nc, `${prefix}_no_such_bucket`, { delete: () => Promise.reject(new Error('no permission')) });
    await expect(failing('some-key')).rejects.toThrow();
  });

  it('a first read of the bucket that fails keeps the legacy record: the next turn, or the next node to take over, has it', async () => {
    // What the version before notified, in its lease's value; the bucket holds an older record (nothing).
    await leasesKv.put(NOTIFIER_KEY, JSON.stringify({ node: 'an-older-node', expiresAt: 0, notified: [{ key, condition, asOf: 0 }] }));
    const clock = new FakeClock();
    const upgraded = await notifierLease('upgraded-node', clock, 1);
    // It claims the lease, but cannot read the bucket: the notices wait.
    expect(await upgraded.turn()).toBeNull();
    // The lease's value still carries the record: a node taking over now (this one died) starts from it.
    const later = new FakeClock(clock.now() + LEASES.ttlMs + LEASES.skewMs + 1);
    const successor = await notifierLease('successor-node', later, 0);
    expect([...(await successor.turn())!.keys()]).toEqual([key]);
    await successor.close();
    // The next turn of a node that kept its lease reads again with the same record (before, it read the
    // bucket alone: everything the version before had notified was raised again, nothing it had resolved).
    await leasesKv.put(NOTIFIER_KEY, JSON.stringify({ node: 'an-older-node', expiresAt: 0, notified: [{ key, condition, asOf: 0 }] }));
    const retryClock = new FakeClock();
    const retrying = await notifierLease('retrying-node', retryClock, 1);
    expect(await retrying.turn()).toBeNull();
    expect([...(await retrying.turn())!.keys()]).toEqual([key]);
    // Once in the bucket, the lease's value is the small one again, from the next renewal.
    expect((await recordsKv.get(recordKey(key)))?.operation).toBe('PUT');
    await retryClock.advance(LEASES.ttlMs / 3);
    await retrying.turn(); // after the renewal (one at a time)
    expect(JSON.parse((await leasesKv.get(NOTIFIER_KEY))!.string())).toMatchObject({ node: 'retrying-node', notified: [], record: 'bucket' });
  }, 30_000);
});
