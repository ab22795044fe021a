/**
 * Faults the failover suite does not inject, on two DIP nodes (3 NATS servers, R3; a PostgreSQL of its
 * own on a free port): the leader of the leases' stream stopped and restarted under load, a recipient
 * whose webhook flaps while the node holding its queue dies, PostgreSQL with fewer connections than the
 * nodes' pools want (restarted with max_connections 12). Each checks what failover.fault.ts checks (every
 * 201'd message reaches each recipient once under one transaction ID, positions consecutive, each
 * sender's order kept) and that no request is answered other than 201 or 503 with Retry-After.
 * They passed when written (docs/cluster.md, "Failover under load"), and take about 3 minutes: run with
 * `FAULTS_CAMPAIGN=1 npm run test:faults` (skipped otherwise).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as pause } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect as connectNats } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminTokenFile } from '../../src/api/admin.js';
import { load, log, market, until, verify, type Json, type Recipient, faultCluster } from './load.js';

describe.skipIf(process.env.FAULTS_CAMPAIGN !== '1')('fault campaign: 2 DIP nodes, NATS JetStream R3, PostgreSQL', () => {
  const cluster = faultCluster('campaign', { natsNodes: 3, dipNodes: 2 });
  const dip = () => cluster.dip();
  const health = async (i: number): Promise<{ status: number; body: Json }> => {
    const node = cluster.topology.dipNodes[i]!;
    const token = readFileSync(adminTokenFile(cluster.topology.dataDir), 'utf8').trim();
    const res = await fetch(`http://127.0.0.1:${node.adminPort}/admin/health`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) });
    return { status: res.status, body: (await res.json()) as Json };
  };

  beforeAll(() => cluster.start(), 300_000);
  afterAll(() => cluster.stop(), 120_000);

  it('the leader of the leases stream stopped under load, then restarted', async () => {
    const { senders, recipients } = await market(dip(), 'F');
    const l = load('F', senders, recipients);
    await until(() => l.accepted.length >= 40, 60_000, 'load before the fault');
    const nc = await connectNats({ servers: cluster.topology.natsServers });
    cluster.closers.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const leader = (await jsm.streams.info('KV_dip_leases')).cluster?.leader;
    const victim = cluster.topology.nats.find((n) => n.name === leader)!;
    expect(victim, `leader ${leader}`).toBeDefined();
    const faultAt = Date.now();
    await victim.process.stop();
    log(`leader: stopped ${leader} after ${l.accepted.length} accepted`);
    await until(() => recipients.every((r) => r.calls.some((c) => c.at > faultAt + 50)), 60_000, 'deliveries after the leader stopped');
    const deliveryResumeMs = Math.max(...recipients.map((r) => r.calls.find((c) => c.at > faultAt + 50)!.at)) - faultAt;
    const newLeader = await jsm.streams.info('KV_dip_leases').then((i) => i.cluster?.leader, (e: Error) => `unknown (${e.message})`);
    await victim.process.start({ line: /Server is ready/, timeoutMs: 60_000 });
    const mark = l.accepted.length;
    await until(() => l.accepted.length >= mark + 40, 60_000, 'load after the restart');
    await l.stop();
    const redelivered = await verify(l.accepted, recipients);
    const { submitted, retried, lost } = l.stats();
    log(`leader: ${leader} → ${newLeader}; submitted ${submitted}, 201 ${l.accepted.length}, retried ${retried}, lost 201 ${lost}, delivery resumed after ${deliveryResumeMs} ms, redelivered ${redelivered}`);
  }, 300_000);

  it('a flapping recipient while the node holding its queue dies', async () => {
    // The first recipient answers 503 to two calls in three, the others 200.
    let n = 0;
    const { senders, recipients } = await market(dip(), 'C', { senders: 2, recipients: 3, respond: (id) => (id.endsWith('1') ? () => (++n % 3 === 0 ? 200 : 503) : undefined) });
    const flapping = recipients[0]!;
    const l = load('C', senders, recipients);
    await until(() => l.accepted.length >= 60 && flapping.calls.length > 2, 60_000, 'load before the fault');
    const nc = await connectNats({ servers: cluster.topology.natsServers });
    cluster.closers.push(() => nc.close());
    const leases = await new Kvm(nc).open('dip_leases');
    const holderOf = async (r: Recipient) => {
      const e = await leases.get(`${r.dipId}.IF-021`);
      return e && e.operation === 'PUT' ? (JSON.parse(e.string()) as { node: string }).node : undefined;
    };
    let holder: string | undefined;
    await until(async () => (holder = await holderOf(flapping)) !== undefined, 20_000, 'the flapping queue held');
    const idx = cluster.topology.dipNodes.findIndex((d) => [...readFileSync(join(cluster.dir, `${d.name}.log`), 'utf8').matchAll(/"leaseHolder":"([^"]+)"/g)].at(-1)?.[1] === holder);
    expect(idx).toBeGreaterThanOrEqual(0);
    const victim = cluster.topology.dipNodes[idx]!;
    const faultAt = Date.now();
    await victim.process.kill('SIGKILL');
    log(`flapping: killed ${victim.name} (holder of the flapping queue) after ${l.accepted.length} accepted`);
    await until(async () => (await holderOf(flapping)) !== holder && flapping.calls.some((c) => c.at > faultAt), 60_000, 'the flapping queue taken over and delivering');
    const movedMs = Date.now() - faultAt;
    await victim.start();
    const mark = l.accepted.length;
    await until(() => l.accepted.length >= mark + 40, 60_000, 'load after the restart');
    await l.stop();
    const redelivered = await verify(l.accepted, recipients);
    const { submitted, retried, lost } = l.stats();
    log(`flapping: submitted ${submitted}, 201 ${l.accepted.length}, retried ${retried}, lost 201 ${lost}; moved and delivering after ${movedMs} ms; redelivered ${redelivered}; flapping calls answered 200: ${flapping.calls.length} of ${n}`);
  }, 300_000);

  it('PostgreSQL out of connections: answers, health, recovery', async () => {
    const { senders, recipients } = await market(dip(), 'D');
    const l = load('D', senders, recipients);
    await until(() => l.accepted.length >= 40, 60_000, 'load before the fault');
    // A server with fewer connections than the nodes' pools want (2 nodes: 10 each for the store, and the
    // activity log's, the alarm subscriptions', the registry feed's): restarted with max_connections 12.
    const setMax = (n: number) => {
      // Set while the server is down (a session to ALTER SYSTEM with could not be had once it is full).
      cluster.postgres.stop('fast');
      const conf = join(cluster.postgres.data, 'postgresql.auto.conf');
      writeFileSync(conf, `${readFileSync(conf, 'utf8').replace(/^max_connections.*\n/m, '')}max_connections = ${n}\n`);
      cluster.postgres.start();
    };
    setMax(12);
    const faultAt = Date.now();
    const acceptedAtFault = l.accepted.length;
    const healthSeen = new Map<string, number>();
    while (Date.now() - faultAt < 20_000) {
      for (const i of [0, 1]) {
        const h: { status: number; body: Json } = await health(i).catch((e: Error) => ({ status: 0, body: { error: e.message } }));
        const key = `${i} ${h.status} ${JSON.stringify(h.body.storage ?? h.body.error)}`;
        if (!healthSeen.has(key)) healthSeen.set(key, Date.now() - faultAt);
      }
      await pause(250);
    }
    log(`no connections: 201s during the 20 s at max_connections 12: ${l.accepted.length - acceptedAtFault}`);
    for (const [k, at] of healthSeen) log(`no connections: health at +${at} ms: ${k}`);
    const refused = (readFileSync(join(cluster.dir, 'postgres', 'postgres.log'), 'utf8').match(/too many clients/g) ?? []).length;
    log(`no connections: the server refused ${refused} connection(s) (too many clients)`);
    setMax(100);
    log(`no connections: load so far: ${JSON.stringify(l.stats())}, accepted ${l.accepted.length}`);
    const healAt = Date.now();
    await until(async () => (await health(0)).status === 200 && (await health(1)).status === 200, 30_000, 'healthy again');
    const healthyMs = Date.now() - healAt;
    const mark = l.accepted.length;
    await until(() => l.accepted.length >= mark + 40, 60_000, 'load after the heal');
    await l.stop();
    const redelivered = await verify(l.accepted, recipients);
    const { submitted, retried, lost } = l.stats();
    log(`no connections: submitted ${submitted}, 201 ${l.accepted.length}, retried ${retried}, lost 201 ${lost}, healthy ${healthyMs} ms after release, redelivered ${redelivered}`);
    expect(l.stats().noRetryAfter).toBe(0);
    expect(Object.keys(l.stats().answers).filter((k) => k !== '503' && k !== '0')).toEqual([]);
  }, 300_000);
});
