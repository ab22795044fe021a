/**
 * The load and the checks the fault tests share (test/faults/*.fault.ts): participants onboarded on a
 * running DIP (senders, recipients with webhooks), senders submitting batches until stopped (resending a
 * batch not answered 201 with the same references), and the check that every message that got a 201
 * reached each of its recipients under one transaction ID, at consecutive positions, in order.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as pause } from 'node:timers/promises';
import { expect } from 'vitest';
import { systemClock } from '../../src/adapters/clock.js';
import { openPostgresBackend } from '../../src/adapters/postgres/index.js';
import { PrivatePostgres } from '../../src/cli/cluster/postgres.js';
import { freePorts } from '../../src/cli/cluster/processes.js';
import { startTopology, type Topology, type TopologyOptions } from '../../src/cli/cluster/topology.js';
import { DipClient } from '../../src/client/dip-client.js';
import { startWebhookReceiver, type ReceivedCall, type WebhookReceiver } from '../../src/client/webhook-receiver.js';
import { onboardParticipant } from '../../src/pipeline/participants.js';
import { issueParticipantCertificate, readCertificateAuthority } from '../../src/security/pki.js';
import { buildIF021 } from '../../src/sim/messages.js';
import { waitFor } from '../helpers/dip-harness.js';

/** The DIP the load goes to: its address, data directory (PKI), database, and where clean-ups are kept. */
export interface Dip {
  url: string;
  dataDir: string;
  postgresUrl: string;
  /** Run by the test's afterAll, last first. */
  closers: Array<() => Promise<void>>;
}

export type Json = Record<string, any>;

export interface Party {
  dipId: string;
  client: DipClient;
}

export interface Recipient extends Party {
  receiver: WebhookReceiver;
  calls: Array<ReceivedCall & { at: number }>;
}

export interface Accepted {
  transactionId: string;
  ref: string;
  recipients: string[];
  /** The sender's batch number: batches of one sender are sent one after another. */
  batch: number;
  sender: string;
}

/** Senders' load: batches of `batchSize`, `route` giving each message's recipients, at most one batch per `paceMs` per sender. */
export interface Shape {
  batchSize: number;
  route(batch: number, item: number, sender: number, recipients: string[]): string[];
  paceMs: number;
}

export const TWO_OF_THREE: Shape = {
  batchSize: 5,
  route: (batch, i, si, r) => [r[(batch + i) % 3]!, r[(batch + i + 1 + si) % 3]!].filter((v, k, a) => a.indexOf(v) === k),
  paceMs: 0,
};

export const log = (m: string) => process.stderr.write(`[faults] ${m}\n`);

/**
 * A PostgreSQL of the test's own in `dir` (initdb on a free port, started): the machine's shared server
 * is never restarted. The URL names `database` (created by the topology when absent).
 */
export async function privatePostgres(dir: string, database: string): Promise<{ postgres: PrivatePostgres; url: string }> {
  // PostgreSQL runs as its own account (never root): it must be able to reach its directory.
  chmodSync(dir, 0o755);
  const [port] = await freePorts(1);
  const postgres = new PrivatePostgres(join(dir, 'postgres'), port!);
  postgres.init();
  postgres.start();
  return { postgres, url: `postgres://postgres@127.0.0.1:${port}/${database}` };
}

/**
 * A fault file's own cluster in a temporary directory: `start()` (its beforeAll) starts PostgreSQL, NATS
 * and the DIP nodes; `stop()` (its afterAll) runs the closers, last first, stops everything and removes
 * the directory (kept with FAULTS_KEEP_DIR=1).
 */
export function faultCluster(name: string, o: Pick<TopologyOptions, 'natsNodes' | 'dipNodes' | 'nodeEnv'>) {
  const dir = mkdtempSync(join(tmpdir(), `opendip-${name}-`));
  const c = {
    dir,
    closers: [] as Array<() => Promise<void>>,
    topology: undefined as unknown as Topology,
    postgres: undefined as unknown as PrivatePostgres,
    dip: (): Dip => ({ url: c.topology.url, dataDir: c.topology.dataDir, postgresUrl: c.topology.postgresUrl, closers: c.closers }),
    async start(): Promise<void> {
      const { postgres, url } = await privatePostgres(dir, `opendip_${name}`);
      c.postgres = postgres;
      c.topology = await faultTopology({ dir, postgresUrl: url, ...o });
      log(`${name}: topology up: ${c.topology.url}`);
    },
    async stop(): Promise<void> {
      for (const close of c.closers.reverse()) await close().catch(() => {});
      await c.topology?.stop();
      try {
        c.postgres?.stop('fast');
      } catch {
        // already stopped
      }
      if (process.env.FAULTS_KEEP_DIR === '1') log(`${name}: kept ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    },
  };
  return c;
}

/** The fault tests' topology: nodes on 127.0.0.1 behind a balancer on a free port, short sweeps and retries. */
export function faultTopology(o: Pick<TopologyOptions, 'dir' | 'postgresUrl' | 'natsNodes' | 'dipNodes' | 'nodePostgresUrls' | 'nodeEnv'>): Promise<Topology> {
  return startTopology({
    host: '127.0.0.1',
    port: 0,
    natsBinary: process.env.NATS_SERVER ?? 'nats-server',
    dipConfig: { environment: 'DEV', warmCatalogue: false, sweepIntervalSeconds: 5, delivery: { retryBaseMs: 100, retryCapMs: 2_000 } },
    log,
    ...o,
  });
}

/**
 * The tests' waitFor, polling every 50 ms: many checks here ask the cluster under fault (health, leases,
 * the database), which 10 ms polling would load. Real processes (nats-server, PostgreSQL) keep real time,
 * so these tests wait on conditions with deadlines, never on a clock of their own.
 */
export const until = (check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> => waitFor(check, timeoutMs, what, 50);

/** Fresh participants for one scenario: 2 senders, 3 recipients with webhooks (unless told otherwise). */
export async function market(
  dip: Dip,
  tag: string,
  size: { senders: number; recipients: number; respond?: (dipId: string) => ((call: ReceivedCall) => number) | undefined } = { senders: 2, recipients: 3 },
): Promise<{ senders: Party[]; recipients: Recipient[] }> {
  const ca = await readCertificateAuthority(join(dip.dataDir, 'pki'));
  const store = await openPostgresBackend({ url: dip.postgresUrl, clock: systemClock });
  const party = async (dipId: string, role: string): Promise<Party> => {
    const credentials = await issueParticipantCertificate(ca, { organisation: `Org ${dipId}`, dipIds: [dipId], environment: 'DEV', validDays: 5 });
    const { apiKey } = await onboardParticipant(store.registry, { dipId, roles: [role], certificatePem: credentials.certPem });
    const client = new DipClient({ baseUrl: dip.url, apiKey, keyPem: credentials.keyPem, certPem: credentials.certPem, caPem: ca.certPem, connections: 2 });
    dip.closers.push(() => client.close());
    return { dipId, client };
  };
  try {
    const senders: Party[] = [];
    for (let i = 1; i <= size.senders; i++) senders.push(await party(`${tag}00000000${i}`, 'SDS'));
    const recipients: Recipient[] = [];
    for (let i = 1; i <= size.recipients; i++) {
      const p = await party(`${tag}10000000${i}`, 'SUP');
      const calls: Recipient['calls'] = [];
      const receiver = await startWebhookReceiver({ trustedCas: [ca.certPem], respond: size.respond?.(p.dipId), onCall: (c) => calls.push({ ...c, at: Date.now() }) });
      dip.closers.push(() => receiver.close());
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
export function load(tag: string, senders: Party[], recipients: Recipient[], shape: Shape = TWO_OF_THREE) {
  const accepted: Accepted[] = [];
  const acceptedAt: number[] = [];
  let submitted = 0;
  let retried = 0;
  let lost = 0;
  let stop = false;
  /** Answers other than 201, by status (0: no answer), and 503s that came without Retry-After. */
  const answers: Record<string, number> = {};
  let noRetryAfter = 0;
  const ids = recipients.map((r) => r.dipId);
  const runs = senders.map(async (s, si) => {
    let nextAt = Date.now();
    for (let batch = 0; !stop; batch++) {
      const wait = nextAt - Date.now();
      // Load generation, paced against real time (paceMs), not a wait for an outcome.
      if (wait > 0) await pause(wait);
      nextAt = Math.max(nextAt, Date.now() - shape.paceMs) + shape.paceMs;
      const items = Array.from({ length: shape.batchSize }, (_, i) => {
        const to = shape.route(batch, i, si, ids);
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
        if (answer.status === 400 && JSON.stringify(answer.body).includes('MSG1006')) {
          // Accepted before, its 201 lost: the refusal names the transaction IDs it was stored under,
          // and it is checked like the others (it was not, when the refusal did not carry them).
          const entries = ((answer.body as Json).messageArray ?? []) as Json[];
          items.forEach((x, i) => {
            const ref = x.item.payload.CommonBlock.S1.senderUniqueReference;
            const e = entries[i];
            if (e?.senderUniqueReference === ref && typeof e.transactionID === 'string') accepted.push({ transactionId: e.transactionID, ref, recipients: x.to, batch, sender: s.dipId });
          });
          lost += 1;
          break;
        }
        retried += 1;
        answers[answer.status] = (answers[answer.status] ?? 0) + 1;
        if (answer.status === 503 && !(answer as { headers?: Record<string, string | undefined> }).headers?.['retry-after']) noRetryAfter += 1;
        // A breath before the resend: a 503 or a refused connection is not asked again at once.
        await pause(100);
      }
    }
  });
  return {
    accepted,
    acceptedAt,
    stats: () => ({ submitted, retried, lost, answers, noRetryAfter }),
    async stop() {
      stop = true;
      await Promise.all(runs);
    },
  };
}

/** Waits until every accepted message reached its recipients, then checks the invariants. */
export async function verify(accepted: Accepted[], recipients: Recipient[]): Promise<number> {
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
