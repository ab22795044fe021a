/**
 * The same DIP on the cluster backend: two nodes in this process over one PostgreSQL database and one
 * NATS server, sharing a data directory (PKI, key-encryption key) as nodes behind one address do. The
 * first runs ingest in a worker thread (it seals what it appends there), the second on its own thread.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DipClient } from '../src/client/dip-client.js';
import { DEFAULTS, type DipConfig } from '../src/config.js';
import { Signer } from '../src/security/signature.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { deleteBuckets, NATS_SERVERS, testPrefix } from './helpers/nats.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

type Json = Record<string, any>;

describe('two DIP nodes on PostgreSQL + NATS', () => {
  let db: TestDatabase;
  const prefix = testPrefix();
  const dataDir = mkdtempSync(join(tmpdir(), 'opendip-cluster-'));
  const nodes: TestDip[] = [];
  let storage: DipConfig['storage'];
  let sds: TestParticipant;
  let sdsOnB: DipClient;

  // The first node runs ingest in a thread of its own (README "Every core"), the second on its listeners' thread.
  const startNode = async (ingestThreads = 0) => {
    const node = await startTestDip({ storage, ingestThreads, rateLimit: { requestsPerSecond: 1000, burst: 2000 } }, dataDir);
    nodes.push(node);
    return node;
  };

  beforeAll(async () => {
    db = await createTestDatabase('opendip_cluster');
    storage = { ...DEFAULTS.storage, kind: 'cluster', postgres: { ...DEFAULTS.storage.postgres, url: await db.freshSchema(), poolSize: 4 }, nats: { ...DEFAULTS.storage.nats, servers: NATS_SERVERS, prefix, leaseTtlMs: 3000 } };
    const a = await startNode(1);
    await startNode();
    await waitFor(() => a.dip.ingestThreads?.threads().every((th) => th.state === 'ready') === true, 60_000, "node A's ingest thread ready");
    sds = await a.participant('2000000001', ['SDS']);
    sdsOnB = client(nodes[1]!, sds);
  });
  afterAll(async () => {
    await sdsOnB?.close();
    for (const n of nodes.reverse()) await n.close();
    await db?.drop();
    await deleteBuckets(prefix);
  });

  const client = (node: TestDip, p: TestParticipant) =>
    new DipClient({ baseUrl: node.dip.url, apiKey: p.apiKey, keyPem: p.credentials.keyPem, certPem: p.credentials.certPem, caPem: node.dip.pki.ca.certPem });

  it('reports its storage as the cluster', async () => {
    expect(nodes.map((n) => [n.dip.backend.kind, n.dip.coordination.kind])).toEqual([
      ['cluster', 'nats'],
      ['cluster', 'nats'],
    ]);
  });

  it('submissions to either node reach the recipient once each, in one order, positions without gaps', async () => {
    const sup = await nodes[0]!.participant('1000000001', ['SUP']);
    const r = await nodes[0]!.receiver();
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: `${r.url}dip`, maxMessageCount: 5 })).status).toBe(201);
    const sent: string[] = [];
    for (let i = 0; i < 12; i++) {
      const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `twonodes${i}` });
      const answer = await (i % 2 === 0 ? sds.client : sdsOnB).submit('IF-021', [item]);
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      sent.push(answer.body.messageArray[0]!.transactionID!);
    }
    const delivered = () => r.calls.flatMap((c) => c.messages.map((m) => (m as Json).payload.CommonBlock.D0.transactionID as string));
    await waitFor(() => new Set(delivered()).size === sent.length, 15_000, 'every message at the recipient');
    // Positions are consecutive; a batch may be sent again after a takeover, but in order and by the same transaction ID.
    const seqs = r.calls.flatMap((c) => Array.from({ length: c.lastSeq! - c.firstSeq! + 1 }, (_, i) => c.firstSeq! + i));
    expect([...new Set(seqs)].sort((a, b) => a - b)).toEqual(Array.from({ length: sent.length }, (_, i) => i + 1));
    expect([...new Set(delivered())]).toEqual(sent);
    // Node A's half went through its ingest thread: sealed there, written by its one writer.
    expect(nodes[0]!.dip.ingestThreads!.threads()[0]!.handled).toBeGreaterThanOrEqual(sent.length / 2);
  });

  it('refuses a submission whose sender reference the other node accepted', async () => {
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: 'dupacross' });
    const first = await sds.client.submit('IF-021', [item]);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const again = await sdsOnB.submit('IF-021', [item]);
    expect(again.status).toBe(400);
    expect(JSON.stringify(again.body)).toMatch(/duplicate|already/i);
  });

  it('refuses a signed request replayed to the other node', async () => {
    const lss = await nodes[0]!.participant('5000000003', ['LSS']);
    const lssOnB = client(nodes[1]!, lss);
    const path = `/dip-channel/IF-021/pull/${lss.dipId}?maxMessageCount=1`;
    // Behind one address both nodes see the same Host: the signature verifies at either.
    const host = new URL(nodes[0]!.dip.url).host;
    const headers: Record<string, string> = { ...(await new Signer(lss.credentials.keyPem, lss.credentials.certPem).sign('GET', `https://${host}${path}`, '')) };
    const firstCall = await lss.client.call('GET', path, '', headers);
    expect(firstCall.status, JSON.stringify(firstCall.body)).toBe(200);
    const replayed = await lssOnB.call('GET', path, '', { ...headers, host });
    await lssOnB.close();
    expect(replayed.status).toBe(401);
    expect(JSON.stringify(replayed.body)).toMatch(/already used/);
  });

  it('shares the queues out: those one node claimed are partly handed to the other, and delivery goes on in order', async () => {
    const r = await nodes[0]!.receiver();
    const sups: TestParticipant[] = [];
    for (let i = 1; i <= 4; i++) {
      const sup = await nodes[0]!.participant(`300000000${i}`, ['SUP']);
      expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: `${r.url}dip`, maxMessageCount: 5 })).status).toBe(201);
      sups.push(sup);
    }
    const send = async (round: number) => {
      // Through node A only: it sees every message first, so it claims every queue.
      const items = sups.map((sup) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `share${round}${sup.dipId}` }));
      const answer = await sds.client.submit('IF-021', items);
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    };
    const arrived = () => r.calls.flatMap((c) => c.messages.map((m) => (m as Json).payload.CommonBlock.S1.senderUniqueReference as string));
    // Queues each node works (earlier tests' too: a node hands its idle ones over first).
    const worksHere = (node: TestDip) => node.dip.delivery.status().filter((w) => w.state !== 'stopped').length;
    const before = worksHere(nodes[1]!);
    await send(1);
    await waitFor(() => arrived().length >= 4, 15_000, 'the first round at the recipients');
    // Node A claimed four more queues; it heard node B's roll call and hands its surplus over on a claim
    // pass (every 1.5 s here) until the two differ by one at most. B sees none of these messages itself.
    await waitFor(() => worksHere(nodes[1]!) > before && Math.abs(worksHere(nodes[0]!) - worksHere(nodes[1]!)) <= 1, 20_000, 'the queues shared between the nodes');
    await send(2);
    await waitFor(() => arrived().length >= 8, 15_000, 'the second round at the recipients');
    // Every recipient got its two messages in order, once each, whichever node delivered the second.
    for (const sup of sups) expect(arrived().filter((ref) => ref.includes(sup.dipId))).toEqual([expect.stringContaining(`share1${sup.dipId}`), expect.stringContaining(`share2${sup.dipId}`)]);
  });

  it('checks an acknowledgement at one node against what a pull at the other handed out', async () => {
    const mds = await nodes[0]!.participant('4000000003', ['MDS']); // no webhook: it pulls
    const onB = client(nodes[1]!, mds);
    try {
      const items = [1, 2, 3].map((i) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [mds.dipId], uniqueSuffix: `pullack${i}` }));
      expect((await sds.client.submit('IF-021', items)).status).toBe(201);
      const refusal = async (sequence: number) => {
        const answer = await onB.ack('IF-021', mds.dipId, sequence);
        return [answer.status, answer.body.messageArray[0]!.help];
      };
      expect(await refusal(2)).toEqual([400, 'sequence 2 is past the last position a pull handed out (0): acknowledge only what was pulled (acknowledged so far: 0)']);
      const pulled = await mds.client.pull('IF-021', mds.dipId, 2);
      expect([pulled.firstSeq, pulled.lastSeq]).toEqual([1, 2]);
      expect(await refusal(3)).toEqual([400, 'sequence 3 is past the last position a pull handed out (2): acknowledge only what was pulled (acknowledged so far: 0)']);
      expect((await onB.ack('IF-021', mds.dipId, 2)).status).toBe(200);
      // And the other way round.
      expect((await onB.pull('IF-021', mds.dipId)).lastSeq).toBe(3);
      expect((await mds.client.ack('IF-021', mds.dipId, 3)).status).toBe(200);
    } finally {
      await onB.close();
    }
  });

  it('a node that leaves hands its queues over: the other delivers what arrives after', async () => {
    // Made through node B: what node A made (clients, receivers) closes with it.
    const mds = await nodes[1]!.participant('4000000002', ['MDS']);
    const r = await nodes[1]!.receiver();
    expect((await mds.client.setWebhook('IF-021', mds.dipId, { callbackURL: `${r.url}dip`, maxMessageCount: 5 })).status).toBe(201);
    const first = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [mds.dipId], uniqueSuffix: 'handover1' });
    expect((await sds.client.submit('IF-021', [first])).status).toBe(201);
    await waitFor(() => r.calls.length > 0, 10_000, 'the first message');
    // Node A stops (its leases are released), node B goes on alone.
    const a = nodes.shift()!;
    await a.close();
    const second = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [mds.dipId], uniqueSuffix: 'handover2' });
    expect((await sdsOnB.submit('IF-021', [second])).status).toBe(201);
    await waitFor(() => r.calls.some((c) => c.firstSeq === 2 || c.lastSeq === 2), 15_000, 'the second message, from the other node');
  });
});
