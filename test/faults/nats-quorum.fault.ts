/**
 * NATS without its quorum: 3 servers (JetStream R3), two killed with SIGKILL. No queue lease can be
 * claimed or renewed then, so every node's coordination health must say unavailable (and the
 * `coordination` alarm stay raised) for the whole outage, and ok again once writes land after the
 * restart (docs/disaster-recovery.md, "Two lost"). A fault campaign found health back at ok 8-12 s into
 * the outage for its remaining minute: the lone survivor, leader of the leases stream before, still
 * answered the probe's read for a few seconds, and stream info (the bucket's incarnation) answers
 * without a leader. Two nodes' coordination, as openNatsCoordination opens it, against servers of this
 * test's own; health watched every 250 ms for 30 s. Run with `npm run test:faults`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as pause } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as connectNats } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { monotonicClock, systemClock } from '../../src/adapters/clock.js';
import { openNatsCoordination, type NatsCoordination } from '../../src/adapters/nats/index.js';
import { natsCluster, natsHealthy, type NatsNode } from '../../src/cli/cluster/nats.js';
import { freePorts } from '../../src/cli/cluster/processes.js';
import { DEFAULTS } from '../../src/config.js';
import { log, until } from './load.js';

describe('NATS quorum lost: 3 servers, two killed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-quorum-'));
  let nats: NatsNode[] = [];
  const nodes: NatsCoordination[] = [];
  const servers = (): string[] => nats.map((n) => `127.0.0.1:${n.clientPort}`);

  beforeAll(async () => {
    const p = await freePorts(9);
    nats = natsCluster({ dir, binary: process.env.NATS_SERVER ?? 'nats-server', ports: [0, 1, 2].map((i) => ({ client: p[3 * i]!, route: p[3 * i + 1]!, monitor: p[3 * i + 2]! })) });
    await Promise.all(nats.map((n) => n.process.start({ line: /Server is ready/, timeoutMs: 30_000 })));
    await Promise.all(nats.map((n) => until(() => natsHealthy(n.monitorPort), 30_000, `${n.name} JetStream`)));
    for (const name of ['a', 'b']) {
      nodes.push(
        await openNatsCoordination(
          // Each node on its own server first, as a node beside each server would be.
          { servers: name === 'a' ? servers() : [...servers()].reverse(), prefix: 'q', replicas: 3, pingIntervalMs: 2_000 },
          { clock: systemClock, steadyClock: monotonicClock, maxClockSkewMs: 300_000, rateLimit: DEFAULTS.rateLimit, nodeName: name },
        ),
      );
    }
  }, 120_000);

  afterAll(async () => {
    for (const n of nodes) await n.close().catch(() => {});
    for (const n of nats) await n.process.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('every node says coordination unavailable for the whole outage, and ok once the quorum is back', async () => {
    await until(() => nodes.every((n) => n.health().state === 'ok'), 30_000, 'health ok before the fault');
    const nc = await connectNats({ servers: servers() });
    const leader = await jetstreamManager(nc)
      .then((jsm) => jsm.streams.info('KV_q_leases'))
      .then((i) => i.cluster?.leader);
    await nc.close();
    // The leader of the leases stream survives: it answered reads for a few seconds without its quorum.
    const victims = nats.filter((n) => n.name !== leader).slice(0, 2);
    for (const v of victims) await v.process.kill('SIGKILL');
    const faultAt = Date.now();
    log(`quorum: killed ${victims.map((v) => v.name).join(', ')}; ${leader} (leader of KV_q_leases) left alone`);
    await until(() => nodes.every((n) => n.health().state === 'unavailable'), 15_000, 'every node unavailable');
    const unavailableAfterMs = Date.now() - faultAt;
    // Watched for 30 s: no sample may say ok while two of three servers are down.
    const okSeen: string[] = [];
    while (Date.now() - faultAt < unavailableAfterMs + 30_000) {
      nodes.forEach((n, i) => {
        if (n.health().state === 'ok') okSeen.push(`node ${i} at +${Date.now() - faultAt} ms`);
      });
      await pause(250);
    }
    log(`quorum: unavailable after ${unavailableAfterMs} ms; ok seen during the outage: ${okSeen.length === 0 ? 'never' : okSeen.join(', ')}`);
    expect(okSeen).toEqual([]);

    const healAt = Date.now();
    await Promise.all(victims.map((v) => v.process.start({ line: /Server is ready/, timeoutMs: 60_000 })));
    await until(() => nodes.every((n) => n.health().state === 'ok'), 60_000, 'health ok once the quorum is back');
    log(`quorum: ok again ${Date.now() - healAt} ms after the restart began`);
  }, 180_000);
});
