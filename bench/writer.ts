/**
 * Micro-benchmark of the main thread's writer work per message (issue 9): the SQLite group commit
 * appending sealed batches to a real message log in a temp directory, and the activity record each
 * request leaves, masked, chained and written by the real ActivityRecorder into a real SQLite activity
 * log. Batches are built as the writer receives them from an ingest thread: IF-021 messages as the load
 * generator's MessageFactory makes them, validated, stamped and sealed (AES-GCM + LZ4, a real Sealer) once,
 * then given fresh transaction IDs and sender references per batch (the only per-batch work outside the
 * writer: a few string concatenations). Each message goes to 4 recipients.
 *
 * The message log's WAL fdatasync is replaced by an immediate report (SqliteOptions.durability): the disk
 * sync is kernel time on the thread pool, not the main thread's instructions, and it would only slow the
 * run. Everything else (synchronous = NORMAL, the savepoints, the checkpoint thread) is as in production;
 * the activity log keeps its own fdatasync.
 *
 * For instruction counts rather than wall time (the machine is shared): run it under callgrind at two
 * batch counts and subtract, e.g.
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null node --single-threaded --import tsx bench/writer.ts all 100
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null node --single-threaded --import tsx bench/writer.ts all 300
 * The difference of the two "Collected" counts divided by (200 × 100) is the instructions per message
 * (the checkpoint thread's share included; --single-threaded keeps the JIT's and GC's helper threads out).
 * Usage: npx tsx bench/writer.ts [append|activity|all] [batches] [batchSize] [batchesPerGroup] [mpans] [mpanIndex]
 * `append`: the message log only; `activity`: the activity records only (one per request); `all`: both.
 * batchesPerGroup (1) is how many appends share one group commit (several at saturation). mpans (0): how
 * many distinct MPANs the messages name, each message the next (0: the load generator's 32); an index by
 * MPAN is written at a key far from the last when they are many, as in production (millions of MPANs).
 * mpanIndex (0): 1 makes the store index consumption by MPAN (storage.mpanIndex).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { SqliteActivityLog } from '../src/adapters/sqlite/activity-log.js';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { readHeader, stampWrapper, type DipMessage } from '../src/domain/message.js';
import { MSG } from '../src/domain/response-codes.js';
import { standardResponse } from '../src/domain/standard-response.js';
import { ActivityRecorder } from '../src/pipeline/activity-recorder.js';
import type { AcceptedBatch, AcceptedMessage } from '../src/ports/message-log.js';
import { systemClock } from '../src/adapters/clock.js';
import type { Logger } from '../src/ports/logger.js';
import { FileKeyEncryptionKey, Sealer } from '../src/security/at-rest.js';
import { sealParts } from '../src/security/seal-batch.js';
import { mpanCore } from '../src/sim/messages.js';
import { MessageFactory } from './lib/load.js';

const [stage = 'all', batchesArg = '200', sizeArg = '100', perGroupArg = '1', mpansArg = '0', mpanIndexArg = '0'] = process.argv.slice(2);
if (!['append', 'activity', 'all'].includes(stage)) throw new Error(`unknown stage ${stage}`);
const batches = Number(batchesArg);
const size = Number(sizeArg);
const perGroup = Number(perGroupArg);
const distinctMpans = Array.from({ length: Number(mpansArg) }, (_, i) => mpanCore(`writer-${i}`));
const RECIPIENTS = ['abcdef0123', 'abcdef0124', 'abcdef0125', 'abcdef0126'];
const SENDER = '0123456789';

const dir = mkdtempSync(join(tmpdir(), 'opendip-writer-bench-'));
const backend = openSqliteBackend(join(dir, 'dip.sqlite'), { clock: systemClock, durability: (done) => done(null), mpanIndex: mpanIndexArg === '1' });
const sealer = await Sealer.open(new FileKeyEncryptionKey(join(dir, 'kek.key')), backend.dataKeys);
backend.useSealer(sealer);
backend.deliveredElsewhere(); // as with delivery processes (the default): appended copies are not kept here
const activityLog = new SqliteActivityLog(join(dir, 'activity.sqlite'));
const silent: Logger = { info() {}, warn() {}, error() {} };
const recorder = new ActivityRecorder(
  activityLog,
  { label: 'bench', flushIntervalMs: 3_600_000, maxBatch: 1000, maxBodyBytes: 16_384, maxPending: 100_000 },
  systemClock,
  silent,
);
await recorder.start();

// One batch as the writer receives it, sealed once; each batch below reuses its sealed forms.
const factory = new MessageFactory(SENDER, RECIPIENTS);
const body = factory.body(0, 0, size);
const catalogue = Catalogue.load();
const now = Date.now();
const template: AcceptedMessage[] = (JSON.parse(body) as unknown[]).map((item, i) => {
  const v = catalogue.validate('IF-021', item);
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  const m = v.message as DipMessage;
  const h = readHeader(m);
  const transactionId = `T-IF-021-${SENDER}-SDS-20261204-${String(i).padStart(16, '0')}`;
  const outbound = stampWrapper(m, {
    transactionId,
    transactionTimestamp: new Date(now).toISOString(),
    publicationId: 'PUB-021',
    initialCorrelationId: null,
    replayIndicator: false,
    primaryRecipients: RECIPIENTS,
    secondaryRecipients: [],
    alwaysRecipients: [],
  });
  return {
    transactionId,
    channel: 'IF-021',
    eventCode: h.eventCode,
    senderDipId: h.senderDipId,
    senderRole: h.senderRoleId,
    senderUniqueReference: h.senderUniqueReference,
    correlationId: null,
    mpan: h.mpan,
    receivedAt: now,
    outbound: JSON.stringify(outbound),
    recipients: RECIPIENTS,
  };
});
const base: AcceptedBatch = { channel: 'IF-021', senderDipId: SENDER, receivedAt: now, rawRequest: Buffer.from(body), signatureHeaders: JSON.stringify({ url: '/IF-021', headers: { 'x-dip-signature': 'x'.repeat(344) } }), messages: template };
const sealed = sealParts(base, sealer);
// With delivery processes (the default topology) the main thread gets the messages without their copies.
const wireMessages = template.map(({ outbound: _sealed, ...m }) => ({ ...m, outbound: '' }));
const answer = JSON.stringify(standardResponse(new Date(now), 'DIP', SENDER, template.map((m) => ({ transactionID: m.transactionId, senderUniqueReference: m.senderUniqueReference, message: MSG.success }))));

function batch(n: number): AcceptedBatch {
  return {
    ...base,
    sealed,
    messages: wireMessages.map((m, i) => ({
      ...m,
      transactionId: `${m.transactionId}-${n}`,
      senderUniqueReference: `${m.senderUniqueReference}-${n}-${i}`,
      ...(distinctMpans.length > 0 ? { mpan: distinctMpans[(n * size + i) % distinctMpans.length]! } : {}),
    })),
  };
}

let next = 0;
async function round(): Promise<void> {
  const appends: Array<Promise<unknown>> = [];
  for (let g = 0; g < perGroup; g++) {
    const n = next++;
    if (stage !== 'activity') appends.push(backend.log.append(batch(n)));
    if (stage !== 'append') {
      recorder.record({ requestId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, at: now, listener: 'participant', caller: SENDER, actingFor: null, remote: '127.0.0.1', method: 'POST', url: '/IF-021', status: 201, durationMs: 12.345, rawBody: answer });
    }
  }
  const outcomes = await Promise.all(appends);
  if (outcomes.some((o) => !(o as { ok: boolean }).ok)) throw new Error('a bench batch was refused');
  // The recorder writes its batch every 200 ms: at ~40 requests a second of batches of 100, every 8 requests.
  if (stage !== 'append' && next % 8 < perGroup) await recorder.flush();
}

for (let i = 0; i < 10; i++) await round(); // warm up (JIT, the queues' rows)
const t0 = process.cpuUsage();
const rounds = Math.ceil(batches / perGroup);
for (let i = 0; i < rounds; i++) await round();
await recorder.flush();
const t = process.cpuUsage(t0);
console.log(`${stage}: ${((t.user + t.system) / (rounds * perGroup * size)).toFixed(2)} µs CPU per message (${rounds * perGroup} batches of ${size}, ${perGroup} per group commit)`);
await recorder.stop();
await activityLog.close();
await backend.close();
rmSync(dir, { recursive: true, force: true });
