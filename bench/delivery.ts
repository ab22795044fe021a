/**
 * Micro-benchmark of a delivery process's work per delivery (issue 9): the real delivery process
 * (src/topology/delivery-process.ts, forked as the main process forks it) drains four recipient queues
 * of sealed IF-021 messages from a real SQLite message log in a temp directory: it reads each queue on
 * its own connection, opens each message's seal (AES-GCM + LZ4), makes each recipient's copy, builds the
 * webhook batch body, signs the call, calls the recipient over HTTPS (mutual TLS, undici) and settles the
 * queue entries through the main process over the fork's IPC channel.
 *
 * This process plays the main process: it onboards one sender and the four IF-021 recipients, registers
 * their webhooks (maxMessageCount as the load bench registers them: 500), appends the messages through
 * the real group commit (each batch of 100 sealed on write, 4 recipients a message), answers the delivery
 * process's calls (`cap`: the durable head; `settle`: the real settlement, through the group commit;
 * `attempt`: answered at once, the attempt journal is the main process's work) and runs the four
 * receivers, which answer 200 as soon as a call's body has arrived. None of that is the delivery
 * process's work, and none of it runs under the profiler.
 *
 * For instruction counts rather than wall time (the machine is shared): `--callgrind FILE` runs the
 * delivery process under `valgrind --tool=callgrind` (node --single-threaded: no JIT or GC helper
 * threads); the total is printed from FILE. Run it at two message counts and subtract:
 *   npx tsx bench/delivery.ts 1000 --callgrind /tmp/d1000.out
 *   npx tsx bench/delivery.ts 3000 --callgrind /tmp/d3000.out
 * (instructions at 3000 − at 1000) ÷ (4 × 2000) is the instructions per delivery: start-up cancels out.
 * Only the work from the init message on is instrumented (module loading runs uninstrumented, several times
 * faster), so two builds run at one size compare directly: (A − B) ÷ deliveries is what B saves a delivery.
 * Without --callgrind it prints the delivery process's CPU per delivery (wall-clock noise included).
 * Usage: npx tsx bench/delivery.ts MESSAGES [--max-count N] [--stagger] [--callgrind FILE]
 * --stagger: each recipient's calls carry a different number of messages (their payload limits differ),
 * so no two recipients' calls are alike.
 */
import { execFileSync, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openBackend } from '../src/adapters/backend.js';
import { pkiDir } from '../src/app.js';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { loadConfig, type DipConfig } from '../src/config.js';
import { readHeader, stampWrapper, type DipMessage } from '../src/domain/message.js';
import { onboardParticipant } from '../src/pipeline/participants.js';
import type { AcceptedBatch, AcceptedMessage, QueueRef } from '../src/ports/message-log.js';
import { ensureEncryptionKey } from '../src/security/dip-encryption-key.js';
import { ensurePki, issueParticipantCertificate, readCertificateAuthority } from '../src/security/pki.js';
import { toWire, type FromWorker, type ToWorker } from '../src/topology/protocol.js';
import { MessageFactory } from './lib/load.js';
import { RECIPIENTS, SENDER } from './lib/market.js';

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i === -1 ? undefined : args.splice(i, 2)[1];
};
const callgrindOut = option('--callgrind');
const maxMessageCount = Number(option('--max-count') ?? 500);
const staggered = args.includes('--stagger') ? (args.splice(args.indexOf('--stagger'), 1), true) : false;
const messages = Number(args[0] ?? 1000);
const BATCH = 100;
if (!Number.isInteger(messages) || messages % BATCH !== 0) throw new Error(`MESSAGES must be a multiple of ${BATCH}`);

const dataDir = mkdtempSync(join(tmpdir(), 'opendip-delivery-bench-'));
const loaded = loadConfig({}, { dataDir });
// Under callgrind a call of ~220 messages takes far longer than the 10 s a call may take: a timed-out call
// is sent again, and its work counted twice. The count is of calls that succeed the first time (checked below).
const config: DipConfig = { ...loaded, delivery: { ...loaded.delivery, timeoutMs: 3_600_000 } };
const pki = await ensurePki(pkiDir(config), { environment: config.environment, hostnames: config.hostnames, ipAddresses: config.ipAddresses });
const ca = await readCertificateAuthority(pkiDir(config));
// Made here, as the main process makes it before it forks: made in the delivery process, its RSA key
// generation (a random number of prime candidates) swung the start-up's count by hundreds of millions.
await ensureEncryptionKey(pkiDir(config), pki.ca);
const { backend } = await openBackend(config);

// The receivers: one HTTPS server, a path per recipient, 200 once the body is in.
const received = [0, 0, 0, 0];
const server = createServer({ key: pki.server.keyPem, cert: pki.server.certPem }, (req, res) => {
  const i = Number(req.url!.slice(2));
  let bytes = 0;
  req.on('data', (chunk: Buffer) => (bytes += chunk.length));
  req.on('end', () => {
    received[i]! += bytes;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
// Connections kept open however slowly the delivery process runs (node closes an idle one after 5 s, and
// the next call on it failed with EPIPE under callgrind).
server.keepAliveTimeout = 3_600_000;
server.headersTimeout = 3_600_000;
server.requestTimeout = 0;
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = (server.address() as AddressInfo).port;

for (const p of [SENDER, ...RECIPIENTS]) {
  const credentials = await issueParticipantCertificate(ca, { organisation: `Bench ${p.role}`, dipIds: [p.dipId], environment: 'DEV', validDays: 2 });
  await onboardParticipant(backend.registry, { dipId: p.dipId, roles: [p.role], certificatePem: credentials.certPem });
}
for (const [i, r] of RECIPIENTS.entries()) {
  // --stagger: each recipient takes a call of a different size (about 220, 215, 210 and 205 messages), so
  // no two recipients' calls carry the same messages, as when their queues drain out of step.
  const maxPayloadKb = config.delivery.defaultMaxPayloadKb - (staggered ? 24 * i : 0);
  await backend.registry.putWebhook({ recipientDipId: r.dipId, channel: 'IF-021', url: `https://localhost:${port}/r${i}`, maxMessageCount, maxPayloadKb, registeredBy: r.dipId });
}

// The messages, as the writer receives them from an ingest thread (see bench/writer.ts), sealed on write.
const recipients = RECIPIENTS.map((r) => r.dipId);
const factory = new MessageFactory(SENDER.dipId, [recipients[0]!, recipients[1]!]);
const catalogue = Catalogue.load();
for (let b = 0; b < messages / BATCH; b++) {
  const body = factory.body(b, 0, BATCH);
  const now = Date.now();
  const batch: AcceptedMessage[] = (JSON.parse(body) as unknown[]).map((item, i) => {
    const v = catalogue.validate('IF-021', item);
    if (!v.ok) throw new Error(JSON.stringify(v.errors));
    const m = v.message as DipMessage;
    const h = readHeader(m);
    const transactionId = `T-IF-021-${SENDER.dipId}-SDS-20261205-${String(b * BATCH + i).padStart(16, '0')}`;
    const outbound = stampWrapper(m, {
      transactionId,
      transactionTimestamp: new Date(now).toISOString(),
      publicationId: 'PUB-021',
      initialCorrelationId: null,
      replayIndicator: false,
      primaryRecipients: recipients.slice(0, 2),
      secondaryRecipients: [],
      alwaysRecipients: recipients.slice(2),
    });
    return { transactionId, channel: 'IF-021', eventCode: h.eventCode, senderDipId: h.senderDipId, senderRole: h.senderRoleId, senderUniqueReference: h.senderUniqueReference, correlationId: null, mpan: h.mpan, receivedAt: now, outbound: JSON.stringify(outbound), recipients };
  });
  const accepted: AcceptedBatch = { channel: 'IF-021', senderDipId: SENDER.dipId, receivedAt: now, rawRequest: Buffer.from(body), signatureHeaders: '{}', messages: batch };
  const outcome = await backend.log.append(accepted);
  if (!outcome.ok) throw new Error('a bench batch was refused');
}
const queues: QueueRef[] = recipients.map((r) => ({ recipientDipId: r, channel: 'IF-021' }));
const durableHead = (q: QueueRef): number => (backend as unknown as { durableHead(q: QueueRef): number }).durableHead(q);
for (const q of queues) if (durableHead(q) !== messages) throw new Error(`queue ${q.recipientDipId} holds ${durableHead(q)} entries, not ${messages}`);

// The delivery process, forked as src/topology/delivery-processes.ts forks it (under callgrind if asked).
const entry = fileURLToPath(new URL('../src/topology/delivery-process.ts', import.meta.url));
const nodeArgs = ['--single-threaded', '--import', 'tsx'];
// Under callgrind, the process's start-up (loading its modules: ~10 billion instructions, 10 times the
// work of 1,000 messages, and the same at every size) runs uninstrumented, several times faster; counting
// starts once it waits for its init message (below).
const child = callgrindOut
  ? fork(entry, [], { execPath: 'valgrind', execArgv: ['--tool=callgrind', `--callgrind-out-file=${callgrindOut}`, '--instr-atstart=no', '-q', process.execPath, ...nodeArgs], serialization: 'advanced', stdio: 'inherit' })
  : fork(entry, [], { execArgv: nodeArgs, serialization: 'advanced', stdio: 'inherit' });
const send = (m: ToWorker): void => void child.send(m);
const acked = new Map<string, number>();
let startedAt = 0;
/** The delivery process's CPU seconds so far, in user space and in the kernel (utime, stime from /proc; 100 ticks a second). */
const splitOf = (pid: number): { user: number; system: number } => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
};
const cpuOf = (pid: number): number => {
  const { user, system } = splitOf(pid);
  return user + system;
};
let cpuAtReady = 0;
let systemAtReady = 0;
let systemAtEnd = 0;
let calls = 0;
let failedCalls = 0;
let cpuAtEnd = 0;
const done = new Promise<void>((resolve, reject) => {
  child.on('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(`the delivery process ended with ${code ?? signal}`))));
  child.on('message', (m: FromWorker) => {
    switch (m.t) {
      case 'ready':
        startedAt = performance.now();
        cpuAtReady = cpuOf(child.pid!);
        systemAtReady = splitOf(child.pid!).system;
        return;
      case 'status':
        return;
      case 'dead-lettered':
      case 'halted':
        reject(new Error(`the delivery process reported ${m.t}: ${JSON.stringify(m).slice(0, 500)}`));
        return;
      case 'call':
        void (async () => {
          try {
            let value: unknown = null;
            if (m.op === 'cap') value = durableHead(m.queue);
            else if (m.op === 'attempt') {
              if (m.attempt.verdict !== 'delivered') failedCalls += 1;
              calls += 1;
            } else if (m.op === 'settle') {
              await backend.log.settle(m.queue, m.settlement);
              acked.set(m.queue.recipientDipId, m.settlement.upTo);
              if (queues.every((q) => acked.get(q.recipientDipId) === messages)) {
                cpuAtEnd = cpuOf(child.pid!);
                systemAtEnd = splitOf(child.pid!).system;
                send({ t: 'stop' });
              }
            }
            send({ t: 'reply', id: m.id, ok: true, value });
          } catch (err) {
            send({ t: 'reply', id: m.id, ok: false, error: toWire(err) });
          }
        })();
        return;
    }
  });
});
if (callgrindOut) {
  // Loaded: asleep (waiting for init, which it reads only once it listens) and no CPU used for 1.5 s.
  let idle = 0;
  for (let last = -1; idle < 3; ) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const state = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    const used = cpuOf(child.pid!);
    idle = state.slice(state.lastIndexOf(')') + 2).startsWith('S') && used === last && used > 1 ? idle + 1 : 0;
    last = used;
  }
  execFileSync('callgrind_control', ['-i', 'on', String(child.pid)], { stdio: 'ignore' });
}
send({ t: 'init', index: 0, count: 1, config, health: { state: 'ok' } });
await done;
const seconds = (performance.now() - startedAt) / 1000;
const deliveries = messages * queues.length;
if (failedCalls > 0) console.log(`NOT A CLEAN RUN: ${failedCalls} of ${calls} calls failed and were sent again (their work is counted twice)`);
console.log(`${calls} calls; delivered ${deliveries} (${messages} messages × ${queues.length} recipients, ≤ ${maxMessageCount} a call) in ${seconds.toFixed(1)} s after start-up; ${received.reduce((a, b) => a + b, 0)} body bytes received; ${((cpuAtEnd - cpuAtReady) * 1e6 / deliveries).toFixed(1)} µs of the delivery process's CPU a delivery, of it ${((systemAtEnd - systemAtReady) * 1e6 / deliveries).toFixed(1)} in the kernel`);
if (callgrindOut) {
  const summary = /^(?:summary|totals): (\d+)/m.exec(readFileSync(callgrindOut, 'utf8'));
  console.log(`callgrind: ${summary?.[1] ?? '?'} instructions in the delivery process (${callgrindOut})`);
}
server.close();
await backend.close();
rmSync(dataDir, { recursive: true, force: true });
