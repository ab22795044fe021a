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
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openNatsCoordination, type NatsCoordination } from '../src/adapters/nats/index.js';
import { DEFAULTS } from '../src/config.js';
import { FakeClock } from './helpers/clocks.js';
import { waitFor } from './helpers/dip-harness.js';
import { privateNatsServer } from './helpers/nats.js';

describe('coordination health and the NATS connection', () => {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-natsconn-'));
  let nats: Awaited<ReturnType<typeof privateNatsServer>>;
  let coordination: NatsCoordination;
  const clock = new FakeClock(1_000_000);

  beforeAll(async () => {
    nats = await privateNatsServer(dir);
    // As a node opens it (openNatsCoordination): what follows the connection is wired there, not here.
    coordination = await openNatsCoordination({ servers: [nats.server], prefix: 'conn', replicas: 1 }, { clock, maxClockSkewMs: 300_000, rateLimit: DEFAULTS.rateLimit });
  }, 60_000);
  afterAll(async () => {
    await coordination?.close();
    await nats?.process.stop();
  });

  it('is unavailable as soon as the connection is lost, and ok again once reconnected and JetStream answers, with no probe timer run', async () => {
    expect(coordination.health()).toEqual({ state: 'ok' });
    await nats.process.kill('SIGKILL');
    await waitFor(() => coordination.health().state === 'unavailable', 10_000, 'health unavailable after the connection was lost');
    expect(coordination.health()).toEqual({ state: 'unavailable', reason: expect.stringMatching(/^NATS JetStream \(conn_leases\): the connection to .+ was lost, reconnecting$/), since: 1_000_000 });

    await nats.start();
    await waitFor(() => coordination.health().state === 'ok', 20_000, 'health ok after the reconnect');
    expect(clock.now()).toBe(1_000_000);
  }, 60_000);
});
