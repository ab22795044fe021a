/**
 * Failover under load on the production topology (`dip cluster`): 3 NATS nodes (JetStream R3), a
 * PostgreSQL of its own (initdb on a free port: the machine's shared server is never restarted), 3 DIP
 * nodes behind one TCP address. Senders keep submitting through the balancer while, in turn:
 *   1. one DIP node is killed with SIGKILL mid-stream (and started again afterwards),
 *   2. one NATS node is killed with SIGKILL (and started again),
 *   3. PostgreSQL is restarted (stopped as by a crash, `pg_ctl -m immediate`, then started).
 * For each: every message that got a 201 reaches every recipient, none under two transaction IDs, each
 * recipient's positions are consecutive and each sender's messages arrive in the order they were
 * accepted, and delivery resumes without an operator. The time to resume is printed (docs/failover.md).
 *
 * Run with `npm run test:faults` (not part of `npm test`: it takes a few minutes).
 */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/adapters/clock.js';
import { openPostgresBackend } from '../../src/adapters/postgres/index.js';
import { startTopology, type Topology } from '../../src/cli/cluster/topology.js';
import { PrivatePostgres } from '../../src/cli/cluster/postgres.js';
import { freePorts } from '../../src/cli/cluster/processes.js';
import { DipClient } from '../../src/client/dip-client.js';
import { startWebhookReceiver, type ReceivedCall, type WebhookReceiver } from '../../src/client/webhook-receiver.js';
import { onboardParticipant } from '../../src/pipeline/participants.js';
import { issueParticipantCertificate, readCertificateAuthority } from '../../src/security/pki.js';
import { buildIF021 } from '../../src/sim/messages.js';

type Json = Record<string, any>;

interface Party {
  dipId: string;
  client: DipClient;
}

interface Recipient extends Party {
  receiver: WebhookReceiver;
  calls: Array<ReceivedCall & { at: number }>;
}

interface Accepted {
  transactionId: string;
  ref: string;
  recipients: string[];
  /** The sender's batch number: batches of one sender are sent one after another. */
  batch: number;
  sender: string;
}

interface Figures {
  fault: string;
  submitted: number;
  accepted: number;
  /** Submissions answered other than 201 (retried with the same references). */
  retried: number;
  /** Milliseconds from the fault to the first 201 after it. */
  ingestResumeMs: number;
  /** Milliseconds from the fault until every recipient had a delivery that began after it. */
  deliveryResumeMs: number;
  /** Deliveries of a position already delivered (allowed: at-least-once, same transaction ID). */
  redelivered: number;
}

const log = (m: string) => process.stderr.write(`[faults] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('failover under load: 3 DIP nodes, NATS JetStream R3, PostgreSQL', () => {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-faults-'));
  let topology: Topology;
  let postgres: PrivatePostgres;
  const figures: Figures[] = [];
  const closers: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    // PostgreSQL runs as its own account (never root): it must be able to reach its directory.
    chmodSync(dir, 0o755);
    const [pgPort] = await freePorts(1);
    postgres = new PrivatePostgres(join(dir, 'postgres'), pgPort!);
    postgres.init();
    postgres.start();
    topology = await startTopology({
      dir,
      host: '127.0.0.1',
      port: 0,
      postgresUrl: `postgres://postgres@127.0.0.1:${pgPort}/opendip_faults`,
      natsNodes: 3,
      natsBinary: process.env.NATS_SERVER ?? 'nats-server',
      dipNodes: 3,
      dipConfig: { environment: 'DEV', warmCatalogue: false, sweepIntervalSeconds: 5, delivery: { retryBaseMs: 100, retryCapMs: 2_000 } },
      log,
    });
    log(`topology up: ${topology.url}`);
  }, 300_000);

  afterAll(async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
    await topology?.stop();
    try {
      postgres?.stop('fast');
    } catch {
      // already stopped
    }
    if (figures.length > 0) {
      const table = ['| fault | submitted | 201 | retried | 201s resume after | delivery resumes after | redelivered |', '|---|---:|---:|---:|---:|---:|---:|'];
      for (const f of figures) table.push(`| ${f.fault} | ${f.submitted} | ${f.accepted} | ${f.retried} | ${(f.ingestResumeMs / 1000).toFixed(1)} s | ${(f.deliveryResumeMs / 1000).toFixed(1)} s | ${f.redelivered} |`);
      log(`\n${table.join('\n')}`);
      if (process.env.FAULTS_RESULTS) writeFileSync(process.env.FAULTS_RESULTS, `${JSON.stringify(figures, null, 2)}\n`);
    }
  }, 120_000);

  /** Fresh participants for one scenario: 2 senders, 3 recipients with webhooks. */
  async function market(tag: string): Promise<{ senders: Party[]; recipients: Recipient[] }> {
    const ca = await readCertificateAuthority(join(topology.dataDir, 'pki'));
    const store = await openPostgresBackend({ url: topology.postgresUrl, clock: systemClock });
    const party = async (dipId: string, role: string): Promise<Party> => {
      const credentials = await issueParticipantCertificate(ca, { organisation: `Org ${dipId}`, dipIds: [dipId], environment: 'DEV', validDays: 5 });
      const { apiKey } = await onboardParticipant(store.registry, { dipId, roles: [role], certificatePem: credentials.certPem });
      const client = new DipClient({ baseUrl: topology.url, apiKey, keyPem: credentials.keyPem, certPem: credentials.certPem, caPem: ca.certPem, connections: 2 });
      closers.push(() => client.close());
      return { dipId, client };
    };
    try {
      const senders = [await party(`${tag}000000001`, 'SDS'), await party(`${tag}000000002`, 'SDS')];
      const recipients: Recipient[] = [];
      for (let i = 1; i <= 3; i++) {
        const p = await party(`${tag}10000000${i}`, 'SUP');
        const calls: Recipient['calls'] = [];
        const receiver = await startWebhookReceiver({ trustedCas: [ca.certPem], onCall: (c) => calls.push({ ...c, at: Date.now() }) });
        closers.push(() => receiver.close());
        // The webhook is set through the cluster's address, like any participant would.
        await until(async () => (await p.client.setWebhook('IF-021', p.dipId, { callbackURL: `${receiver.url}dip`, maxMessageCount: 20 })).status === 201, 20_000, 'webhook registration');
        recipients.push({ ...p, receiver, calls });
      }
      return { senders, recipients };
    } finally {
      await store.close();
    }
  }

  /**
   * Each sender submits batches one after another until stopped. A batch not answered 201 (a refused
   * connection, a 503) is submitted again with the same sender references until it is accepted or
   * refused as a duplicate (then it was accepted before, and its first answer was lost).
   */
  function load(tag: string, senders: Party[], recipients: Recipient[]) {
    const accepted: Accepted[] = [];
    const acceptedAt: number[] = [];
    let submitted = 0;
    let retried = 0;
    let stop = false;
    const runs = senders.map(async (s, si) => {
      for (let batch = 0; !stop; batch++) {
        const items = Array.from({ length: 5 }, (_, i) => {
          const to = [recipients[(batch + i) % 3]!.dipId, recipients[(batch + i + 1 + si) % 3]!.dipId].filter((v, k, a) => a.indexOf(v) === k);
          return { item: buildIF021({ senderDipId: s.dipId, senderRole: 'SDS', primaryRecipients: to, uniqueSuffix: `${tag}${si}b${batch}m${i}` }), to };
        });
        submitted += items.length;
        for (;;) {
          const answer = await s.client.submit('IF-021', items.map((x) => x.item)).catch((err: Error) => ({ status: 0, body: { error: err.message } }));
          if (answer.status === 201) {
            const entries = (answer.body as Json).messageArray as Json[];
            entries.forEach((e, i) =>
              accepted.push({ transactionId: e.transactionID, ref: items[i]!.item.payload.CommonBlock.S1.senderUniqueReference, recipients: items[i]!.to, batch, sender: s.dipId }),
            );
            acceptedAt.push(Date.now());
            break;
          }
          if (answer.status === 400 && JSON.stringify(answer.body).includes('MSG1006')) break; // accepted before: its 201 was lost
          retried += 1;
          await sleep(100);
        }
      }
    });
    return {
      accepted,
      acceptedAt,
      stats: () => ({ submitted, retried }),
      async stop() {
        stop = true;
        await Promise.all(runs);
      },
    };
  }

  /** Waits until every accepted message reached its recipients, then checks the invariants. */
  async function verify(accepted: Accepted[], recipients: Recipient[]): Promise<number> {
    const delivered = (r: Recipient) => new Set(r.calls.flatMap((c) => c.messages.map((m) => (m as Json).payload.CommonBlock.D0.transactionID as string)));
    await until(
      () => recipients.every((r) => {
        const got = delivered(r);
        return accepted.every((a) => !a.recipients.includes(r.dipId) || got.has(a.transactionId));
      }),
      120_000,
      'every accepted message at every recipient',
    );
    let redelivered = 0;
    for (const r of recipients) {
      // Position → transaction ID is one function; positions are consecutive from 1.
      const bySeq = new Map<number, string>();
      const firstSeen: number[] = [];
      const txByRef = new Map<string, Set<string>>();
      for (const c of r.calls) {
        c.messages.forEach((m, i) => {
          const seq = c.firstSeq! + i;
          const cb = (m as Json).payload.CommonBlock;
          const tx = cb.D0.transactionID as string;
          const known = bySeq.get(seq);
          if (known === undefined) {
            bySeq.set(seq, tx);
            firstSeen.push(seq);
          } else {
            expect(known, `${r.dipId} position ${seq}`).toBe(tx);
            redelivered += 1;
          }
          const ref = cb.S1.senderUniqueReference as string;
          if (!txByRef.has(ref)) txByRef.set(ref, new Set());
          txByRef.get(ref)!.add(tx);
        });
      }
      const max = Math.max(...bySeq.keys());
      expect(bySeq.size, `${r.dipId}: positions 1..${max} without gaps`).toBe(max);
      // Positions are first delivered in order (a redelivery after a takeover repeats, never skips ahead).
      expect(firstSeen, `${r.dipId}: first deliveries in position order`).toEqual([...firstSeen].sort((a, b) => a - b));
      for (const [ref, txs] of txByRef) expect(txs.size, `${r.dipId}: ${ref} under ${[...txs].join(', ')}`).toBe(1);
      // Each sender's accepted messages are in the recipient's queue in the order they were accepted.
      const seqOf = new Map([...bySeq].map(([seq, tx]) => [tx, seq]));
      for (const sender of new Set(accepted.map((a) => a.sender))) {
        const mine = accepted.filter((a) => a.sender === sender && a.recipients.includes(r.dipId)).map((a) => seqOf.get(a.transactionId)!);
        expect(mine, `${r.dipId}: messages of ${sender} in acceptance order`).toEqual([...mine].sort((a, b) => a - b));
      }
    }
    return redelivered;
  }

  async function scenario(fault: string, tag: string, inject: () => Promise<void>, heal: () => Promise<void>): Promise<void> {
    const { senders, recipients } = await market(tag);
    const l = load(tag, senders, recipients);
    await until(() => l.accepted.length >= 40, 60_000, 'load before the fault');
    const faultAt = Date.now();
    log(`${fault}: injecting after ${l.accepted.length} accepted`);
    await inject();
    await until(() => l.acceptedAt.some((t) => t > faultAt + 50), 120_000, '201s after the fault');
    const ingestResumeMs = l.acceptedAt.find((t) => t > faultAt + 50)! - faultAt;
    await until(() => recipients.every((r) => r.calls.some((c) => c.at > faultAt + 50)), 120_000, 'deliveries after the fault');
    const deliveryResumeMs = Math.max(...recipients.map((r) => r.calls.find((c) => c.at > faultAt + 50)!.at)) - faultAt;
    // Keep the load on a while, then let the cluster heal and the queues drain.
    const mark = l.accepted.length;
    await until(() => l.accepted.length >= mark + 40, 120_000, 'load after the fault');
    await l.stop();
    await heal();
    const redelivered = await verify(l.accepted, recipients);
    const { submitted, retried } = l.stats();
    figures.push({ fault, submitted, accepted: l.accepted.length, retried, ingestResumeMs, deliveryResumeMs, redelivered });
    log(`${fault}: ${l.accepted.length} accepted, all delivered; 201s resumed after ${ingestResumeMs} ms, delivery after ${deliveryResumeMs} ms`);
  }

  it('kill -9 one DIP node mid-stream', async () => {
    const victim = topology.dipNodes[1]!;
    await scenario(
      'kill -9 one DIP node',
      'A',
      () => victim.process.kill('SIGKILL'),
      () => victim.start(),
    );
  }, 400_000);

  it('kill -9 one NATS node', async () => {
    const victim = topology.nats[0]!;
    await scenario(
      'kill -9 one NATS node',
      'B',
      () => victim.process.kill('SIGKILL'),
      () => victim.process.start({ line: /Server is ready/, timeoutMs: 60_000 }),
    );
  }, 400_000);

  it('restart PostgreSQL', async () => {
    await scenario(
      'PostgreSQL restart (immediate stop, start)',
      'C',
      async () => {
        postgres.stop('immediate');
        postgres.start();
      },
      async () => {},
    );
  }, 400_000);
});
