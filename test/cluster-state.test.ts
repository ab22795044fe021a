/**
 * What two cluster nodes must agree on beyond the databases, set up as docs/deployment.md says: each
 * node its own data directory, the PKI (`pki/`) and the key-encryption key (`keys/kek.key`) copied
 * from the first node's (the Kubernetes init container's copy), one PostgreSQL database and one NATS.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { pkiDir } from '../src/app.js';
import { ensureAdminToken } from '../src/api/admin.js';
import { openSealer } from '../src/adapters/backend.js';
import { DipClient } from '../src/client/dip-client.js';
import { DEFAULTS, type DipConfig } from '../src/config.js';
import { keyFromFile } from '../src/security/portal-session.js';
import { readEncryptionKeys, rotateEncryptionKey } from '../src/security/dip-encryption-key.js';
import { recordEncryptionKeys } from '../src/security/encryption-key-share.js';
import { readCertificateAuthority } from '../src/security/pki.js';
import { revokeCertificate } from '../src/security/revocation.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { deleteBuckets, NATS_SERVERS, testPrefix } from './helpers/nats.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';
import { adminApi } from './helpers/admin.js';
import type { NatsCoordination } from '../src/adapters/nats/index.js';

describe('two cluster nodes, each with its own data directory', () => {
  let db: TestDatabase;
  const prefix = testPrefix();
  const dirs = [mkdtempSync(join(tmpdir(), 'opendip-node1-')), mkdtempSync(join(tmpdir(), 'opendip-node2-'))] as const;
  const nodes: TestDip[] = [];
  let storage: DipConfig['storage'];
  // Alarms evaluated often, so that a lost node is raised within the test.
  const observability = { ...DEFAULTS.observability, alarms: { ...DEFAULTS.observability.alarms, evaluateIntervalMs: 200 } };
  // Names of their own (a new id of a lost node's name is its restart, and every test node runs on this host).
  const named = (nodeName: string): DipConfig['storage'] => ({ ...storage, nats: { ...storage.nats, nodeName } });
  let sds: TestParticipant;
  let sdsOnB: DipClient;

  beforeAll(async () => {
    db = await createTestDatabase('opendip_cstate');
    storage = { ...DEFAULTS.storage, kind: 'cluster', postgres: { ...DEFAULTS.storage.postgres, url: await db.freshSchema(), poolSize: 4 }, nats: { ...DEFAULTS.storage.nats, servers: NATS_SERVERS, prefix, leaseTtlMs: 3000 } };
    nodes.push(await startTestDip({ storage: named('node1'), revocationPollMs: 100, observability }, dirs[0]));
    // What the init container copies: the PKI and the KEK, nothing else.
    cpSync(join(dirs[0], 'pki'), join(dirs[1], 'pki'), { recursive: true });
    cpSync(join(dirs[0], 'keys'), join(dirs[1], 'keys'), { recursive: true });
    // A key node 2 made for itself before (an earlier version made each node its own).
    writeFileSync(join(dirs[1], 'operator-session.key'), randomBytes(32).toString('base64url'), { mode: 0o600 });
    nodes.push(await startTestDip({ storage: named('node2'), revocationPollMs: 100, observability }, dirs[1]));
    sds = await nodes[0]!.participant('2000000001', ['SDS']);
    await nodes[0]!.participant('1000000001', ['SUP']);
    sdsOnB = new DipClient({ baseUrl: nodes[1]!.dip.url, apiKey: sds.apiKey, keyPem: sds.credentials.keyPem, certPem: sds.credentials.certPem, caPem: nodes[1]!.dip.pki.ca.certPem });
  }, 120_000);
  afterAll(async () => {
    await sdsOnB?.close();
    for (const n of nodes.reverse()) await n.close();
    await db?.drop();
    await deleteBuckets(prefix);
  });

  const item = (suffix: string) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: suffix });

  it('a certificate revoked at one node is refused at the other (on a kept-alive connection too)', async () => {
    expect((await sdsOnB.submit('IF-021', [item('cs1')])).status).toBe(201);
    // `dip pki revoke` run where node 1 runs.
    await revokeCertificate(pkiDir(nodes[0]!.config), nodes[0]!.dip.backend.registry, sds.credentials.certPem, 'keyCompromise');
    let tries = 0;
    let answer = await sdsOnB.submit('IF-021', [item('cs2')]);
    await waitFor(async () => {
      if (answer.status !== 401) answer = await sdsOnB.submit('IF-021', [item(`cs2x${tries++}`)]);
      return answer.status === 401;
    }, 5_000, 'node 2 to refuse the revoked certificate');
    expect(JSON.stringify(answer.body)).toMatch(/was revoked at .* \(keyCompromise\)/);
  });

  it("signs sessions, portal cookies and replay continuation tokens with the same keys on every node (a session made at one is good at the other)", () => {
    for (const file of ['operator-session.key', 'portal-session.key', 'portal-device.key', 'replay-token.key']) {
      expect(keyFromFile(join(dirs[1], file)).equals(keyFromFile(join(dirs[0], file))), file).toBe(true);
    }
    expect(readFileSync(join(dirs[1], 'operator-session.key'), 'utf8')).toBe(readFileSync(join(dirs[0], 'operator-session.key'), 'utf8'));
    // The admin bootstrap token too: the one an operator read from one node's data directory works at every node.
    expect(ensureAdminToken(dirs[1])).toBe(ensureAdminToken(dirs[0]));
  });

  it('hands out and decrypts with one encryption key on every node: a rotation at one (dip pki rotate-encryption) is taken by the other', async () => {
    // (sds's certificate was revoked above.)
    const sup = await nodes[0]!.participant('7000000001', ['SUP']);
    const clients = nodes.map((node) => new DipClient({ baseUrl: node.dip.url, apiKey: sup.apiKey, keyPem: sup.credentials.keyPem, certPem: sup.credentials.certPem, caPem: node.dip.pki.ca.certPem }));
    onTestFinished(() => Promise.all(clients.map((c) => c.close())).then(() => {}));
    const served = async (node: TestDip) => (await clients[nodes.indexOf(node)]!.call<{ encryption: string }>('GET', '/certificates/dip', '')).body.encryption;
    const before = await served(nodes[0]!);
    expect(await served(nodes[1]!)).toBe(before);
    // What the command does where node 1 runs: new files there, recorded in the store.
    const dir = pkiDir(nodes[0]!.config);
    const keys = await rotateEncryptionKey(dir, await readCertificateAuthority(dir));
    const sealer = await openSealer(nodes[0]!.config, nodes[0]!.dip.backend.dataKeys);
    await recordEncryptionKeys(nodes[0]!.dip.backend.registry, sealer, keys, 'dip pki rotate-encryption', Date.now());
    await waitFor(async () => (await served(nodes[1]!)) === keys.current.certPem, 20_000, 'node 2 to hand out the new certificate', 200);
    // Node 2 still decrypts what senders encrypted to the old certificate, for the overlap.
    expect(readEncryptionKeys(pkiDir(nodes[1]!.config), Date.now())?.previous?.certPem).toBe(before);
    await waitFor(async () => (await served(nodes[0]!)) === keys.current.certPem, 20_000, 'node 1 to hand out the new certificate (its file poll)', 200);
  });

  it('raises node-lost at the survivors when a node stops without saying so, at a survivor restarted since too, until an operator says it was removed', async () => {
    // A third node on node 2's data directory (nodes behind one address may share one), killed as by kill -9:
    // its NATS connection goes at once, no roll call says it is leaving.
    const c = await startTestDip({ storage: named('node3'), revocationPollMs: 100, observability }, dirs[1]);
    const lostId = (c.dip.coordination as NatsCoordination).node!;
    const lostAlarm = async (node: TestDip) => ((await adminApi(node)('GET', '/admin/alarms')).body as { alarms: Array<{ rule: string; summary: string }> }).alarms.find((a) => a.rule === 'node-lost');
    const healthLost = async (node: TestDip) => ((await adminApi(node)('GET', '/admin/health')).body as { coordination: { lostNodes?: Array<{ node: string; lastHeardAt: number }> } }).coordination.lostNodes;
    const admin = adminApi(nodes[0]!);
    try {
      // Up, and heard by node 1 (a node closed before its first roll call was never there for the others).
      await waitFor(() => (nodes[0]!.dip.coordination.lostNodes?.() ?? []).length === 0 && c.dip.coordination.health().state === 'ok' && (nodes[0]!.dip.coordination as NatsCoordination).leases.clockOffsetOf(lostId) !== undefined, 10_000, 'the third node up and heard');
      await (c.dip.coordination as NatsCoordination).connection.close();
      // Two lease lengths (3 s here) without a roll call, then an alarm evaluation.
      await waitFor(() => (nodes[0]!.dip.coordination.lostNodes?.() ?? []).some((l) => l.node === lostId), 15_000, 'node 1 to find the node lost', 100);
      await waitFor(async () => (await lostAlarm(nodes[0]!)) !== undefined, 20_000, 'the node-lost alarm at node 1', 200);
      expect((await lostAlarm(nodes[0]!))!.summary).toContain(`node ${lostId} has said nothing since`);
      expect(await healthLost(nodes[0]!)).toEqual([{ node: lostId, lastHeardAt: expect.any(Number) }]);
      const recorded = async () => (await nodes[0]!.dip.backend.registry.records('cluster-node-lost')).map((r) => [r.key, (r.doc as { state: string }).state]);
      await waitFor(async () => (await recorded()).some(([node, state]) => node === lostId && state === 'lost'), 5_000, 'the loss recorded in the store', 100);
      // Node 2 restarts after the loss: it never heard node 3, and finds it lost in the store all the same
      // (once it has listened a lease length and a roll call: a live node recorded lost is heard first).
      await nodes.pop()!.close();
      nodes.push(await startTestDip({ storage: named('node2'), revocationPollMs: 100, observability }, dirs[1]));
      await waitFor(async () => (await healthLost(nodes[1]!))?.length === 1, 10_000, "node 2's /admin/health after its restart to list the lost node", 200);
      expect(await healthLost(nodes[1]!)).toEqual([{ node: lostId, lastHeardAt: expect.any(Number) }]);
      await waitFor(async () => (await lostAlarm(nodes[1]!)) !== undefined, 20_000, 'the node-lost alarm at the restarted node 2', 200);
      expect((await admin('POST', '/admin/cluster/nodes/nosuchnode-00000000/removed')).status).toBe(404);
      expect((await admin('POST', `/admin/cluster/nodes/${lostId}/removed`)).status).toBe(200);
      await waitFor(async () => (await lostAlarm(nodes[0]!)) === undefined, 10_000, 'the alarm resolved at node 1', 200);
      // Node 2 heard the operator's word too.
      await waitFor(() => (nodes[1]!.dip.coordination.lostNodes?.() ?? []).length === 0, 10_000, 'node 2 to forget the node');
      await waitFor(async () => (await lostAlarm(nodes[1]!)) === undefined, 10_000, 'the alarm resolved at node 2', 200);
      // Resolved in the store too: a node started from now on finds nothing lost.
      await waitFor(async () => !(await recorded()).some(([, state]) => state === 'lost'), 5_000, 'no node recorded lost', 100);
      expect(await recorded()).toContainEqual([lostId, 'removed']);
    } finally {
      await c.close().catch(() => {});
    }
  });
});
