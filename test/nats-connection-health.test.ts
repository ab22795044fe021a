/**
 * A node's coordination health follows its NATS connection, not only its probe. Before, a node found a
 * lost connection by the leases-bucket probe alone: every ttl/3 (2 s), and a probe sent into a dead
 * connection failed only at the request timeout (5 s), so health, the `coordination` alarm and
 * dip_coordination_ok said unavailable 6.3 s after a kill -9 of the NATS server, and ok 4.1 s after it was
 * back. Here the clock is a FakeClock that is never moved, so no probe timer ever fires: only the
 * connection's events (disconnect, reconnect) can change health, against a NATS server of this test's own.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats, followConnection, openBucket } from '../src/adapters/nats/connection.js';
import { NatsQueueLeases } from '../src/adapters/nats/leases.js';
import { FakeClock } from './helpers/clocks.js';
import { waitFor } from './helpers/dip-harness.js';
import { privateNatsServer } from './helpers/nats.js';

describe('coordination health and the NATS connection', () => {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-natsconn-'));
  let nats: Awaited<ReturnType<typeof privateNatsServer>>;
  let nc: NatsConnection;
  let leases: NatsQueueLeases;
  const clock = new FakeClock(1_000_000);

  beforeAll(async () => {
    nats = await privateNatsServer(dir);
    nc = await connectNats({ servers: [nats.server], prefix: 'conn', replicas: 1 });
    const kv = await openBucket(nc, 'conn_leases', { history: 1 });
    leases = new NatsQueueLeases(nc, kv, 'conn', clock);
    // As openNatsCoordination does: the connection's events reach the leases' health.
    void followConnection(nc.status(), [leases]);
  }, 60_000);
  afterAll(async () => {
    await leases?.close();
    await nc?.close();
    await nats?.process.stop();
  });

  it('is unavailable as soon as the connection is lost, and ok again once reconnected and JetStream answers, with no probe timer run', async () => {
    expect(leases.health()).toEqual({ state: 'ok' });
    await nats.process.kill('SIGKILL');
    await waitFor(() => leases.health().state === 'unavailable', 10_000, 'health unavailable after the connection was lost');
    expect(leases.health()).toEqual({ state: 'unavailable', reason: expect.stringMatching(/^NATS JetStream \(conn_leases\): the connection to .+ was lost, reconnecting$/), since: 1_000_000 });

    await nats.start();
    await waitFor(() => leases.health().state === 'ok', 20_000, 'health ok after the reconnect');
    expect(clock.now()).toBe(1_000_000);
  }, 60_000);
});
