/**
 * NATS out of reach, as the operator sees it (README "Operating the DIP"). A probe stopped the NATS
 * server of a 2-node cluster for 12 s: nothing was delivered (no lease can be claimed or renewed) while
 * messages were still accepted, and /admin/health said 200 with storage ok, no alarm was raised, and no
 * metric moved. Now each node probes the leases bucket: /admin/health carries `coordination`, the
 * `coordination` alarm is raised (naming the node) and resolved, and dip_coordination_ok follows.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminTokenFile } from '../src/api/admin.js';
import { DEFAULTS, loadConfig } from '../src/config.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';
import { privateNatsServer, testPrefix } from './helpers/nats.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

describe('NATS out of reach: health, alarm and metric say so', () => {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-natshealth-'));
  let db: TestDatabase;
  let nats: Awaited<ReturnType<typeof privateNatsServer>>;
  let t: TestDip;

  beforeAll(async () => {
    // A NATS server of this test's own: it is stopped and started again.
    nats = await privateNatsServer(dir);
    db = await createTestDatabase('opendip_natshealth');
    const storage = { ...DEFAULTS.storage, kind: 'cluster' as const, postgres: { ...DEFAULTS.storage.postgres, url: await db.freshSchema(), poolSize: 2 }, nats: { ...DEFAULTS.storage.nats, servers: [nats.server], prefix: testPrefix(), leaseTtlMs: 1500 } };
    const alarms = { ...loadConfig({}).observability.alarms, evaluateIntervalMs: 200 };
    t = await startTestDip({ storage, observability: { ...loadConfig({}).observability, alarms } }, mkdtempSync(join(tmpdir(), 'opendip-natshealth-dip-')));
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await nats?.process.stop();
    await db?.drop();
  });

  it('reports coordination unavailable while NATS is stopped (health still 200: messages are accepted), and ok again after', async () => {
    const admin = adminApi(t);
    const token = readFileSync(adminTokenFile(t.config.dataDir), 'utf8').trim();
    const metrics = async () => (await fetch(`http://127.0.0.1:${t.dip.adminPort}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    const coordinationOk = async () => /^dip_coordination_ok 1$/m.test(await metrics());
    const health = await admin('GET', '/admin/health');
    // A lone node has heard no peer's clock (peerClock null, the offset gauge 0), nor lost any node.
    expect([health.status, health.body.coordination]).toEqual([200, { state: 'ok', peerClock: null, lostNodes: [] }]);
    expect(await metrics()).toMatch(/^dip_cluster_clock_offset_seconds 0$/m);

    await nats.process.stop();
    await waitFor(async () => (await admin('GET', '/admin/health')).body.coordination.state === 'unavailable', 20_000, 'coordination reported unavailable');
    const during = await admin('GET', '/admin/health');
    expect(during.status).toBe(200);
    expect(during.body.coordination).toEqual({ state: 'unavailable', reason: expect.stringContaining('NATS JetStream'), since: expect.any(Number), peerClock: null, lostNodes: [] });
    await waitFor(async () => ((await admin('GET', '/admin/alarms')).body.alarms as Array<{ rule: string }>).some((a) => a.rule === 'coordination'), 10_000, 'the coordination alarm');
    // It names the node that lost NATS (its id in the leases bucket: the host's name and a part made at
    // start): each node of a cluster raises its own, and the operator can tell which machine it is.
    const node = t.dip.coordination.node!;
    expect([node.slice(0, -9), node.slice(-9)]).toEqual([hostname(), expect.stringMatching(/^-[0-9a-f]{8}$/)]);
    const alarm = ((await admin('GET', '/admin/alarms')).body.alarms as Array<{ rule: string; key: string; summary: string }>).find((a) => a.rule === 'coordination');
    expect(alarm).toMatchObject({ key: `coordination:${node}`, summary: expect.stringContaining(`on node ${node}`) });
    expect(await coordinationOk()).toBe(false);

    await nats.start();
    await waitFor(async () => (await admin('GET', '/admin/health')).body.coordination.state === 'ok', 30_000, 'coordination ok again');
    await waitFor(async () => !((await admin('GET', '/admin/alarms')).body.alarms as Array<{ rule: string }>).some((a) => a.rule === 'coordination'), 10_000, 'the alarm resolved');
    expect(await coordinationOk()).toBe(true);
  }, 90_000);
});
