/**
 * A fault campaign against the cluster topology, as an outside tester runs one (not run by CI):
 *
 *   npx tsx scripts/cluster-campaign.ts [--faults kill,stop,nats,pgkill] [--nodes 2] [--stop-seconds 30]
 *
 * It starts a NATS JetStream server of its own (R1, store in a temporary directory, on free ports: the
 * machine's shared NATS is never touched, since this one is restarted), a fresh PostgreSQL database on
 * the server at $CAMPAIGN_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432, trust), and DIP nodes
 * (`dip serve`, storage.kind cluster) behind one TCP address (src/cli/cluster/topology.ts, as `dip cluster`).
 * Two senders submit signed IF-021 batches through that address, each message for a webhook recipient
 * and a pull recipient, while, one after another:
 *   kill    the node holding the webhook recipient's queue lease is killed with SIGKILL (started again after),
 *   stop    that node (all its processes) is paused with SIGSTOP for --stop-seconds, then SIGCONT,
 *   nats    the NATS server is stopped (SIGKILL) and started again on the same ports and store,
 *   pgkill  every PostgreSQL session of the database is ended (pg_terminate_backend).
 * After each: every message answered 201 reaches each recipient once per queue position (a repeat only
 * at the same position, with the same transaction ID), positions consecutive, each sender's messages in
 * acceptance order, no sender reference under two transaction IDs; every request answered; every node's
 * GET /admin/health 200 with coordination ok once healed; and the `coordination` alarm, raised during the
 * NATS outage, resolved after it. The figures are printed as a table; the exit status is 1 on a failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Kvm } from '@nats-io/kv';
import { connect as connectNats, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { systemClock } from '../src/adapters/clock.js';
import { openPostgresBackend } from '../src/adapters/postgres/index.js';
import { adminTokenFile } from '../src/api/admin.js';
import { startTopology, type DipNode, type Topology } from '../src/cli/cluster/topology.js';
import { freePorts } from '../src/cli/cluster/processes.js';
import { DipClient } from '../src/client/dip-client.js';
import { startWebhookReceiver, type ReceivedCall } from '../src/client/webhook-receiver.js';
import { onboardParticipant } from '../src/pipeline/participants.js';
import { issueParticipantCertificate, readCertificateAuthority } from '../src/security/pki.js';
import { buildIF021 } from '../src/sim/messages.js';

type Json = Record<string, any>;

const { values: args } = parseArgs({
  options: {
    faults: { type: 'string', default: 'kill,stop,nats,pgkill' },
    nodes: { type: 'string', default: '2' },
    'stop-seconds': { type: 'string', default: '30' },
    keep: { type: 'boolean', default: false },
  },
});
const log = (m: string) => process.stderr.write(`[campaign ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
/** An admin call that got no answer, typed as one that did. */
const noAnswer = (): { status: number; body: Json } => ({ status: 0, body: {} });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out (${timeoutMs} ms) waiting for ${what}`);
    await sleep(100);
  }
}

/** A NATS server of our own that the campaign may kill and start again on the same ports and store. */
class OwnNats {
  private child: ChildProcess | null = null;
  constructor(
    readonly port: number,
    private readonly monitor: number,
    private readonly store: string,
  ) {}
  async start(): Promise<void> {
    const child = spawn(process.env.NATS_SERVER ?? 'nats-server', ['-a', '127.0.0.1', '-p', String(this.port), '-m', String(this.monitor), '-js', '-sd', this.store], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    let out = '';
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    await until(() => out.includes('Server is ready') || child.exitCode !== null, 30_000, 'nats-server');
    if (child.exitCode !== null) throw new Error(`nats-server exited: ${out}`);
  }
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill(signal);
    await gone;
  }
}

/** The pids of a node: its main process and the processes it started (delivery processes), from /proc. */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []));
  return out;
}

interface Accepted {
  transactionId: string;
  ref: string;
  sender: string;
}

interface Delivery {
  seq: number;
  tx: string;
  ref: string;
}

interface Result {
  fault: string;
  submitted: number;
  accepted: number;
  retried: number;
  lost201: number;
  unanswered: number;
  webhookDeliveries: number;
  webhookRepeats: number;
  pulled: number;
  pullRepeats: number;
  ingestResumeMs: number;
  failures: string[];
}

async function main(): Promise<number> {
  const faults = args.faults.split(',').filter(Boolean);
  const dir = mkdtempSync(join(tmpdir(), 'cf-campaign-'));
  chmodSync(dir, 0o755);
  const [natsPort, natsMonitor] = await freePorts(2);
  const nats = new OwnNats(natsPort!, natsMonitor!, join(dir, 'js'));
  await nats.start();
  log(`nats-server on 127.0.0.1:${natsPort} (store ${join(dir, 'js')})`);
  const serverUrl = new URL(process.env.CAMPAIGN_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  const database = `h_cf_${randomBytes(4).toString('hex')}`;
  const dbUrl = new URL(serverUrl);
  dbUrl.pathname = `/${database}`;
  const admin = new pg.Client({ connectionString: serverUrl.toString() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  log(`database ${database}`);

  let topology: Topology | undefined;
  const closers: Array<() => Promise<unknown>> = [];
  const results: Result[] = [];
  try {
    topology = await startTopology({
      dir,
      host: '127.0.0.1',
      port: 0,
      postgresUrl: dbUrl.toString(),
      natsServers: [`127.0.0.1:${natsPort}`],
      natsNodes: 1,
      natsBinary: 'nats-server',
      dipNodes: Number(args.nodes),
      dipConfig: {
        environment: 'DEV',
        warmCatalogue: false,
        sweepIntervalSeconds: 5,
        delivery: { retryBaseMs: 100, retryCapMs: 2_000 },
        observability: { alarms: { evaluateIntervalMs: 1_000 } },
      },
      log,
    });
    const topo = topology;
    log(`topology up: ${topo.url}; nodes ${topo.dipNodes.map((n) => `${n.name} pid ${n.process.pid} admin ${n.adminPort}`).join(', ')}`);
    const token = readFileSync(adminTokenFile(topo.dataDir), 'utf8').trim();
    const adminGet = async (node: DipNode, path: string): Promise<{ status: number; body: Json }> => {
      const res = await fetch(`http://127.0.0.1:${node.adminPort}${path}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(3_000) });
      return { status: res.status, body: (await res.json().catch(() => ({}))) as Json };
    };

    const nc: NatsConnection = await connectNats({ servers: topo.natsServers, maxReconnectAttempts: -1 });
    closers.push(() => nc.close());
    const holderOf = async (recipient: string): Promise<DipNode | undefined> => {
      const leases = await new Kvm(nc).open('dip_leases');
      const e = await leases.get(`${recipient}.IF-021`);
      if (!e || e.operation !== 'PUT') return undefined;
      const id = (JSON.parse(e.string()) as { node: string }).node;
      return topo.dipNodes.find((n) => {
        const ids = [...readFileSync(join(dir, `${n.name}.log`), 'utf8').matchAll(/"leaseHolder":"([^"]+)"/g)].map((m) => m[1]);
        return ids.at(-1) === id;
      });
    };

    const ca = await readCertificateAuthority(join(topo.dataDir, 'pki'));
    // The operator's alarm subscription: every notice of `coordination` and `storage` at a receiver.
    const notices: Array<{ kind: string; key: string; at: number }> = [];
    const alarmReceiver = await startWebhookReceiver({
      trustedCas: [ca.certPem],
      onCall: (c: ReceivedCall) => {
        if (c.notice?.type === 'alarm') notices.push({ kind: c.notice.kind, key: String((c.notice.body.condition as Json).key), at: Date.now() });
      },
    });
    closers.push(() => alarmReceiver.close());
    const sub = await fetch(`http://127.0.0.1:${topo.dipNodes[0]!.adminPort}/admin/alarms/subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ rules: ['coordination', 'storage', 'dead-letter', 'queue-halted'], webhookUrl: `${alarmReceiver.url}alarms` }),
    });
    if (sub.status !== 201 && sub.status !== 200) throw new Error(`alarm subscription: ${sub.status} ${await sub.text()}`);

    for (const [k, fault] of faults.entries()) {
      // Two hex digits (A0, A1, …): DIP IDs are 10 hex digits, so a letter past F (a seventh fault) was no tag.
      const tag = (0xa0 + k).toString(16).toUpperCase();
      const result = await scenario(fault, tag);
      results.push(result);
      log(`${fault}: ${result.failures.length === 0 ? 'held' : `FAILED: ${result.failures.join('; ')}`}`);
    }

    async function scenario(fault: string, tag: string): Promise<Result> {
      const failures: string[] = [];
      const store = await openPostgresBackend({ url: topo.postgresUrl, clock: systemClock });
      const party = async (dipId: string, role: string) => {
        const credentials = await issueParticipantCertificate(ca, { organisation: `Org ${dipId}`, dipIds: [dipId], environment: 'DEV', validDays: 5 });
        const { apiKey } = await onboardParticipant(store.registry, { dipId, roles: [role], certificatePem: credentials.certPem });
        const client = new DipClient({ baseUrl: topo.url, apiKey, keyPem: credentials.keyPem, certPem: credentials.certPem, caPem: ca.certPem, connections: 2 });
        closers.push(() => client.close());
        return { dipId, client };
      };
      const senders = [await party(`${tag}00000001`, 'SDS'), await party(`${tag}00000002`, 'SDS')];
      const hook = await party(`${tag}10000001`, 'SUP');
      const puller = await party(`${tag}10000002`, 'SUP');
      await store.close();
      const calls: Array<ReceivedCall & { at: number }> = [];
      const receiver = await startWebhookReceiver({ trustedCas: [ca.certPem], onCall: (c) => calls.push({ ...c, at: Date.now() }) });
      closers.push(() => receiver.close());
      await until(async () => (await hook.client.setWebhook('IF-021', hook.dipId, { callbackURL: `${receiver.url}dip`, maxMessageCount: 20 }).catch(() => ({ status: 0 }))).status === 201, 30_000, 'webhook registration');

      // Load: batches of 5, each message for both recipients; a batch not answered 201 is sent again
      // with the same references until accepted or refused as a duplicate (MSG1006: its 201 was lost).
      const accepted: Accepted[] = [];
      const acceptedAt: number[] = [];
      let submitted = 0;
      let retried = 0;
      let lost201 = 0;
      let inFlight = 0;
      let stop = false;
      const runs = senders.map(async (s, si) => {
        for (let batch = 0; !stop; batch++) {
          const items = Array.from({ length: 5 }, (_, i) => buildIF021({ senderDipId: s.dipId, senderRole: 'SDS', primaryRecipients: [hook.dipId, puller.dipId], uniqueSuffix: `${tag}${si}b${batch}m${i}` }));
          submitted += items.length;
          // What each try of this batch was answered: a 201 lost is told by what came before it (a 503
          // that said "nothing accepted" would be a false answer; a reset or timeout is not).
          const tries: string[] = [];
          for (;;) {
            inFlight++;
            const answer = await s.client.submit('IF-021', items).catch((err: Error) => ({ status: 0, body: { error: err.message } }));
            inFlight--;
            if (answer.status === 201) {
              ((answer.body as Json).messageArray as Json[]).forEach((e, i) => accepted.push({ transactionId: e.transactionID, ref: items[i]!.payload.CommonBlock.S1.senderUniqueReference, sender: s.dipId }));
              acceptedAt.push(Date.now());
              break;
            }
            if (answer.status === 400 && JSON.stringify(answer.body).includes('MSG1006')) {
              const entries = ((answer.body as Json).messageArray ?? []) as Json[];
              items.forEach((x, i) => {
                const ref = x.payload.CommonBlock.S1.senderUniqueReference;
                const e = entries[i];
                if (e?.senderUniqueReference === ref && typeof e.transactionID === 'string') accepted.push({ transactionId: e.transactionID, ref, sender: s.dipId });
                else failures.push(`MSG1006 for ${ref} without its transaction ID: ${JSON.stringify(answer.body).slice(0, 200)}`);
              });
              lost201++;
              log(`${fault}: 201 lost for ${s.dipId}'s batch ${batch} (MSG1006 on try ${tries.length + 1}); before it: ${tries.join(' | ')}`);
              break;
            }
            if (answer.status >= 400 && answer.status < 500) {
              failures.push(`batch refused ${answer.status}: ${JSON.stringify(answer.body).slice(0, 300)}`);
              break;
            }
            retried++;
            tries.push(`${answer.status} ${JSON.stringify(answer.body).slice(0, 160)}`);
            await sleep(200);
          }
          await sleep(50);
        }
      });

      // The pull recipient: pulls and acknowledges through the same address until stopped and drained.
      const pulled: Array<Delivery & { at: number }> = [];
      let pulling = true;
      const pullRun = (async () => {
        while (pulling) {
          const p = await puller.client.pull('IF-021', puller.dipId, 50).catch((err: Error) => ({ status: 0, body: [] as unknown[], firstSeq: null, lastSeq: null, err }));
          if (p.status === 200 && p.firstSeq !== null && p.lastSeq !== null && Array.isArray(p.body) && p.body.length > 0) {
            (p.body as Json[]).forEach((m, i) => pulled.push({ seq: p.firstSeq! + i, tx: m.payload.CommonBlock.D0.transactionID, ref: m.payload.CommonBlock.S1.senderUniqueReference, at: Date.now() }));
            const a = await puller.client.ack('IF-021', puller.dipId, p.lastSeq).catch(noAnswer);
            if (a.status !== 200 && a.status !== 0 && a.status < 500) failures.push(`ack ${p.lastSeq}: ${a.status} ${JSON.stringify(a.body).slice(0, 200)}`);
          } else await sleep(p.status === 200 || p.status === 204 ? 200 : 500);
        }
      })();

      await until(() => accepted.length >= 100 && calls.length > 0 && pulled.length > 0, 120_000, 'load before the fault');
      const victim = (await holderOf(hook.dipId)) ?? topo.dipNodes[0]!;
      const faultAt = Date.now();
      log(`${fault}: injecting after ${accepted.length} accepted; ${hook.dipId}'s queue held by ${victim.name}`);
      let alarmCheck: (() => Promise<void>) | null = null;
      if (fault === 'kill') {
        await victim.process.kill('SIGKILL');
        // Taken over by any node but the victim (with three nodes, either of the others).
        const survivor = async () => {
          const h = await holderOf(hook.dipId).catch(() => undefined);
          return h !== undefined && h !== victim ? h : undefined;
        };
        await until(async () => (await survivor()) !== undefined || Date.now() - faultAt > 30_000, 40_000, 'lease taken over');
        const took = await survivor();
        log(`kill: lease ${took ? `moved to ${took.name} after ${Date.now() - faultAt} ms` : 'NOT moved within 30 s'}`);
        if (!took) failures.push(`lease of ${hook.dipId} not taken over from the killed ${victim.name} within 30 s`);
        await until(() => calls.some((c) => c.at > Date.now() - 1_000 && c.at > faultAt), 60_000, 'webhook deliveries from the survivor').catch((e: Error) => failures.push(e.message));
        await victim.start();
      } else if (fault === 'stop') {
        const pids = processTree(victim.process.pid!);
        for (const pid of pids) process.kill(pid, 'SIGSTOP');
        log(`stop: paused ${victim.name} (pids ${pids.join(', ')}) for ${args['stop-seconds']} s`);
        const stopMs = Number(args['stop-seconds']) * 1000;
        await sleep(stopMs);
        const movedTo = await holderOf(hook.dipId);
        log(`stop: after ${stopMs} ms the lease is held by ${movedTo?.name ?? 'nobody'}; last webhook call ${Math.round((Date.now() - (calls.at(-1)?.at ?? 0)) / 1000)} s ago`);
        if (movedTo === undefined || movedTo === victim) failures.push(`lease of ${hook.dipId} not taken over from the paused ${victim.name} within ${stopMs} ms (held by ${movedTo?.name ?? 'nobody'})`);
        for (const pid of pids) process.kill(pid, 'SIGCONT');
      } else if (fault === 'nats') {
        await nats.kill('SIGKILL');
        const downMs = 30_000;
        log(`nats: killed; down for ${downMs / 1000} s`);
        // Each node's health says coordination unavailable, and lists the coordination alarm, within 15 s.
        const flipped = new Map<string, number>();
        const listed = new Map<string, number>();
        while (Date.now() - faultAt < downMs) {
          for (const n of topo.dipNodes) {
            if (!flipped.has(n.name)) {
              const h = await adminGet(n, '/admin/health').catch(noAnswer);
              if (h.body.coordination?.state === 'unavailable') flipped.set(n.name, Date.now() - faultAt);
            }
            if (!listed.has(n.name)) {
              const a = await adminGet(n, '/admin/alarms').catch(noAnswer);
              if (((a.body.alarms ?? []) as Json[]).some((x) => String(x.key).startsWith('coordination'))) listed.set(n.name, Date.now() - faultAt);
            }
          }
          await sleep(250);
        }
        for (const n of topo.dipNodes) {
          log(`nats: ${n.name} health said coordination unavailable after ${flipped.get(n.name) ?? 'never'} ms, listed the coordination alarm after ${listed.get(n.name) ?? 'never'} ms`);
          if ((flipped.get(n.name) ?? Infinity) > 15_000) failures.push(`${n.name}: health did not say coordination unavailable within 15 s of NATS going away`);
          if ((listed.get(n.name) ?? Infinity) > 15_000) failures.push(`${n.name}: no coordination alarm within 15 s of NATS going away`);
        }
        const raisedWhileDown = notices.filter((n) => n.at >= faultAt && n.kind === 'raised' && n.key.startsWith('coordination')).length;
        log(`nats: ${raisedWhileDown} coordination raised notice(s) while NATS was down`);
        if (raisedWhileDown < topo.dipNodes.length) failures.push(`${raisedWhileDown} coordination raised notice(s) while NATS was down, for ${topo.dipNodes.length} nodes`);
        await nats.start();
        log('nats: started again');
        alarmCheck = async () => {
          await until(
            async () => {
              for (const n of topo.dipNodes) {
                const a = await adminGet(n, '/admin/alarms');
                if (((a.body.alarms ?? []) as Json[]).some((x) => String(x.key).startsWith('coordination'))) return false;
              }
              return true;
            },
            60_000,
            'coordination alarms resolved',
          ).catch((e: Error) => failures.push(e.message));
          const raised = notices.filter((n) => n.at >= faultAt && n.key.startsWith('coordination'));
          log(`nats: coordination notices ${raised.map((n) => `${n.kind} ${n.key}`).join(', ') || 'none'}`);
          for (const key of new Set(raised.map((n) => n.key))) {
            const kinds = raised.filter((n) => n.key === key).map((n) => n.kind);
            if (kinds.filter((x) => /resolved/.test(x)).length !== 1 || kinds.filter((x) => /raised/.test(x)).length !== 1) failures.push(`notices for ${key}: ${kinds.join(', ')}`);
          }
          if (raised.length === 0) failures.push('no coordination notice sent for the NATS outage');
        };
      } else if (fault === 'pgkill') {
        for (let round = 0; round < 3; round++) {
          const { rowCount } = await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [database]);
          log(`pgkill: terminated ${rowCount} sessions`);
          await sleep(3_000);
        }
      } else throw new Error(`unknown fault ${fault}`);

      await until(() => acceptedAt.some((t) => t > faultAt + 50), 120_000, '201s after the fault').catch((e: Error) => failures.push(e.message));
      const ingestResumeMs = (acceptedAt.find((t) => t > faultAt + 50) ?? Number.NaN) - faultAt;
      const mark = accepted.length;
      await until(() => accepted.length >= mark + 100, 120_000, 'load after the fault').catch((e: Error) => failures.push(e.message));
      stop = true;
      const answered = await Promise.race([Promise.all(runs).then(() => true), sleep(150_000).then(() => false)]);
      const unanswered = answered ? 0 : inFlight;
      if (!answered) failures.push(`${inFlight} submission(s) still unanswered 150 s after the load stopped`);

      // Drain: every accepted message at both recipients.
      const txs = new Set(accepted.map((a) => a.transactionId));
      const webhookGot = () => new Set(calls.flatMap((c) => c.messages.map((m) => (m as Json).payload.CommonBlock.D0.transactionID as string)));
      await until(() => [...txs].every((t) => webhookGot().has(t)) && [...txs].every((t) => pulled.some((p) => p.tx === t)), 180_000, 'every accepted message at both recipients').catch((e: Error) => {
        const w = webhookGot();
        const pulledSet = new Set(pulled.map((p) => p.tx));
        failures.push(`${e.message}: webhook missing ${[...txs].filter((t) => !w.has(t)).length}, pull missing ${[...txs].filter((t) => !pulledSet.has(t)).length} of ${txs.size}`);
      });
      pulling = false;
      await pullRun;
      if (alarmCheck) await alarmCheck();

      const webhookDeliveries: Delivery[] = calls.flatMap((c) => c.messages.map((m, i) => ({ seq: c.firstSeq! + i, tx: (m as Json).payload.CommonBlock.D0.transactionID, ref: (m as Json).payload.CommonBlock.S1.senderUniqueReference })));
      const check = (who: string, ds: Delivery[]): number => {
        const bySeq = new Map<number, string>();
        const firstSeen: number[] = [];
        const txByRef = new Map<string, Set<string>>();
        let repeats = 0;
        for (const d of ds) {
          const known = bySeq.get(d.seq);
          if (known === undefined) {
            bySeq.set(d.seq, d.tx);
            firstSeen.push(d.seq);
          } else {
            repeats++;
            if (known !== d.tx) failures.push(`${who}: position ${d.seq} was ${known}, now ${d.tx}`);
          }
          txByRef.set(d.ref, (txByRef.get(d.ref) ?? new Set()).add(d.tx));
        }
        const max = Math.max(0, ...bySeq.keys());
        if (bySeq.size !== max) failures.push(`${who}: ${bySeq.size} positions of 1..${max}`);
        if (firstSeen.some((s, i) => i > 0 && s < firstSeen[i - 1]!)) failures.push(`${who}: first deliveries out of position order`);
        for (const [ref, set] of txByRef) if (set.size > 1) failures.push(`${who}: ${ref} delivered under ${[...set].join(', ')}`);
        const extra = [...bySeq.values()].filter((t) => !txs.has(t));
        if (extra.length > 0) log(`${who}: ${extra.length} delivered message(s) never answered 201 (stored, answer lost)`);
        const seqOf = new Map([...bySeq].map(([s, t]) => [t, s]));
        for (const sender of senders) {
          const mine = accepted.filter((a) => a.sender === sender.dipId).map((a) => seqOf.get(a.transactionId) ?? -1);
          if (mine.some((s, i) => i > 0 && s < mine[i - 1]!)) failures.push(`${who}: ${sender.dipId}'s messages not in acceptance order`);
        }
        return repeats;
      };
      const webhookRepeats = check(`webhook ${hook.dipId}`, webhookDeliveries);
      const pullRepeats = check(`pull ${puller.dipId}`, pulled);
      const refs = new Map<string, Set<string>>();
      for (const a of accepted) refs.set(a.ref, (refs.get(a.ref) ?? new Set()).add(a.transactionId));
      for (const [ref, set] of refs) if (set.size > 1) failures.push(`${ref} accepted twice: ${[...set].join(', ')}`);

      // Health truthful once healed: every node 200, coordination ok.
      await until(
        async () => {
          for (const n of topo.dipNodes) {
            const h = await adminGet(n, '/admin/health').catch(noAnswer);
            if (h.status !== 200 || (h.body.coordination && h.body.coordination.state !== 'ok')) return false;
          }
          return true;
        },
        60_000,
        'every node healthy after the fault',
      ).catch((e: Error) => failures.push(e.message));
      for (const r of [hook, puller]) {
        const dead = await adminGet(topo.dipNodes[0]!, `/admin/dead-letters?recipient=${r.dipId}&channel=IF-021`).catch((e: Error) => ({ status: 0, body: { error: e.message } }));
        if (dead.status !== 200) failures.push(`dead letters of ${r.dipId}: ${dead.status} ${JSON.stringify(dead.body).slice(0, 200)}`);
        else if (Array.isArray(dead.body) && dead.body.length > 0) failures.push(`${dead.body.length} dead letter(s) for ${r.dipId}`);
      }
      return {
        fault,
        submitted,
        accepted: accepted.length,
        retried,
        lost201,
        unanswered,
        webhookDeliveries: webhookDeliveries.length,
        webhookRepeats,
        pulled: pulled.length,
        pullRepeats,
        ingestResumeMs,
        failures,
      };
    }
  } finally {
    for (const c of closers.reverse()) await c().catch(() => {});
    await topology?.stop();
    await nats.kill('SIGTERM');
    if (!args.keep) {
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    } else log(`kept ${dir} and database ${database}`);
    await admin.end();
  }
  const table = ['| fault | submitted | accepted | retried | 201 lost (MSG1006) | unanswered | webhook deliveries (repeats) | pulled (repeats) | 201s resume after |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of results) table.push(`| ${r.fault} | ${r.submitted} | ${r.accepted} | ${r.retried} | ${r.lost201} | ${r.unanswered} | ${r.webhookDeliveries} (${r.webhookRepeats}) | ${r.pulled} (${r.pullRepeats}) | ${(r.ingestResumeMs / 1000).toFixed(1)} s |`);
  process.stdout.write(`${table.join('\n')}\n`);
  for (const r of results) for (const f of r.failures) process.stdout.write(`FAILED ${r.fault}: ${f}\n`);
  return results.some((r) => r.failures.length > 0) ? 1 : 0;
}

// Exits as soon as the campaign is done: a wait it gave up (the answer of a submission that never came,
// a load balancer's probe) must not hold the process open after everything was stopped.
main().then(
  (code) => process.exit(code),
  (err: Error) => {
    log(`campaign aborted: ${err.stack ?? err.message}`);
    process.exit(2);
  },
);
