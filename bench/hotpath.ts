/**
 * Micro-benchmark of the pure per-message work of accepting a batch (no TLS, no signature, no SQLite):
 * the depth check, the parse, case-folding + validation, and the stamped outbound copy, on a real
 * IF-021 batch as the load generator sends it. For instruction counts rather than wall time (the
 * machine is shared): run it under callgrind at two iteration counts and subtract, e.g.
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null node --single-threaded --import tsx bench/hotpath.ts depth 100
 * (and again with 200): the difference of the two "I refs", divided by 100 × 100, is the instructions per
 * message (--single-threaded keeps the JIT and GC threads' work out of the way; ~1 min a run).
 * `splice` is `stamp` with the sender's CustomBlock text reused (src/domain/canonical-json.ts), the scan included.
 * `raw` compresses the batch's raw request as the sealer does (LZ4), `deflate` as it was compressed before
 * (deflate-raw, level 1); both print the compressed bytes per message.
 * `numbers` is the scan of a batch whose consumption values are JSON numbers (48 a message);
 * `numbersFlagged` the same with each written with 16 digits, so that every item is read again for the exact check.
 * `whole` is the depth check and the parse of the body as one string (parseBatch until 2026-12-02), `items`
 * the scan that also finds the array's items and parses each on its own (parseBatch since).
 * `crossKeep` / `crossSealed`: an append's messages crossing from an ingest thread, kept or not (see cross()).
 * `seal` is sealParts (src/security/seal-batch.ts) with a real Sealer: the raw request and each outbound
 * copy compressed and sealed, each MPAN indexed (every MPAN a different one, as in a day's IF-021s); it
 * also prints the stored bytes a message. `sealBound`: the same in the formats bound to their record (4-6).
 * `surrogates` is the lone-surrogate check on that batch (no `\u` escape of D800–DFFF: the byte search alone),
 * `surrogatesFlagged` on a batch whose every item holds an escaped pair, so that every parsed item's strings are read.
 * `pattern3` is splitPattern3 (src/pipeline/patterns.ts) on an IF-021 item carrying four recipients' JWEs
 * (its CustomBlock encrypted to four RSA keys, ~5.7 kB each): the shape check each copy gets at submission.
 * Usage: npx tsx bench/hotpath.ts [depth|numbers|numbersFlagged|parse|whole|items|surrogates|surrogatesFlagged|acceptWhole|acceptItems|crossKeep|crossSealed|walk|validate|stamp|splice|raw|deflate|seal|sealBound|pattern3|all] [batches] [batchSize]
 */
import { createPublicKey } from 'node:crypto';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { deflateRawSync } from 'node:zlib';
import { compressSync } from 'lz4-napi';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { buildKeyTree, normaliseKeys } from '../src/catalogue/key-case.js';
import type { JsonSchema } from '../src/catalogue/types.js';
import { canonicalCustomBlocks, stringifyWithCustomBlock } from '../src/domain/canonical-json.js';
import { readHeader, stampWrapper, type DipMessage } from '../src/domain/message.js';
import type { AcceptedMessage } from '../src/ports/message-log.js';
import { Sealer } from '../src/security/at-rest.js';
import { exceedsJsonDepth, scanJsonBatch } from '../src/security/json-depth.js';
import { hasAlteredNumber } from '../src/security/json-numbers.js';
import { firstLoneSurrogate, hasSurrogateEscape } from '../src/security/json-strings.js';
import { sealParts } from '../src/security/seal-batch.js';
import { splitPattern3 } from '../src/pipeline/patterns.js';
import { encryptTo } from '../src/security/payload-encryption.js';
import { MessageFactory } from './lib/load.js';

const [stage = 'all', batchesArg = '200', sizeArg = '100'] = process.argv.slice(2);
const batches = Number(batchesArg);
const size = Number(sizeArg);
const factory = new MessageFactory('0123456789', ['abcdef0123', 'abcdef0124']);
const body = Buffer.from(factory.body(0, 0, size));
const catalogue = Catalogue.load();
const parsed = JSON.parse(body.toString('utf8')) as unknown[];
const messages = parsed.map((item) => {
  const v = catalogue.validate('IF-021', item);
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return v.message as DipMessage;
});

let sink = 0;
function depth(): void {
  if (exceedsJsonDepth(body, 64)) sink++;
}
/**
 * The scan on the same batch with each half-hour's consumption (`v`, a string in IF-021) written as a JSON
 * number: 48 numbers a message, for the cost of reading numbers (each counted for the exact check's flag).
 */
const numeric = Buffer.from(body.toString('utf8').replace(/"v":"([\d.]+)"/g, '"v":$1'));
function numbers(): void {
  if (scanJsonBatch(numeric, 64).items!.some((s) => s.start < 0)) sink++;
}
/**
 * The worst case the ingest pipeline accepts: every `v` written with 16 significant digits (1.234000000000000),
 * so that every item is flagged and read again for the exact check (json-numbers.ts hasAlteredNumber, as
 * ingest does), which finds nothing.
 */
const padded = Buffer.from(body.toString('utf8').replace(/"v":"([\d.]+)"/g, (_all, v: string) => `"v":${Number(v).toFixed(15)}`));
function numbersFlagged(): void {
  for (const s of scanJsonBatch(padded, 64).items!) if (s.longNumber && hasAlteredNumber(padded, s.start, s.end)) sink++;
}
function parse(): void {
  sink += (JSON.parse(body.toString('utf8')) as unknown[]).length;
}
/** What parseBatch did before: the depth check, then the body decoded as one string and parsed. */
function whole(): void {
  if (exceedsJsonDepth(body, 64)) sink++;
  sink += (JSON.parse(body.toString('utf8')) as unknown[]).length;
}
/** What it does now: the same pass finds the items, each decoded and parsed on its own. */
function items(): void {
  const scan = scanJsonBatch(body, 64);
  for (const s of scan.items!) sink += JSON.parse(body.toString('utf8', s.start, s.end)) === null ? 0 : 1;
}
/** The lone-surrogate check as parseBatch runs it on a batch with no surrogate escape: the byte search alone. */
function surrogates(): void {
  if (hasSurrogateEscape(body)) sink++;
}
/** The same on a batch whose every item holds an escaped surrogate pair (an emoji): every parsed item's strings are looked at. */
const paired = Buffer.from(body.toString('utf8').replace(/"subText":null/g, '"subText":"\\ud83d\\ude00"'));
const pairedItems = JSON.parse(paired.toString('utf8')) as unknown[];
function surrogatesFlagged(): void {
  if (hasSurrogateEscape(paired)) for (const item of pairedItems) if (firstLoneSurrogate(item) !== null) sink++;
}
/**
 * whole or items, then what the pipeline does next with the parsed batch while it is alive (validation,
 * the stamped copy): the young generation's collections then find the batch's objects live, as on an
 * ingest thread, so a change in what parsing allocates shows in them.
 */
function onward(items: unknown[]): void {
  for (const item of items) {
    const v = catalogue.validate('IF-021', item);
    if (v.ok) sink += JSON.stringify(stamped(v.message as DipMessage)).length;
  }
}
function acceptWhole(): void {
  if (exceedsJsonDepth(body, 64)) sink++;
  onward(JSON.parse(body.toString('utf8')) as unknown[]);
}
function acceptItems(): void {
  onward(scanJsonBatch(body, 64).items!.map((s) => JSON.parse(body.toString('utf8', s.start, s.end)) as unknown));
}
/**
 * The main thread's side of an ingest thread's append: the batch's messages crossing a MessagePort by
 * structured clone (with 1.3 kB standing for each sealed copy), then kept in a 10,000-message cache as
 * the SQLite store's remember() kept them (`crossKeep`, before 2026-12-02 whatever the topology), or
 * crossing without their outbound copies and not kept (`crossSealed`, with delivery processes since).
 */
const port = new MessageChannel();
const kept = new Map<number, { transactionId: string; outbound: string }>();
let keptId = 0;
const copies = messages.map((m) => JSON.stringify(stamped(m)));
function cross(withCopies: boolean): void {
  const wire = copies.map((outbound, i) => ({ transactionId: `T-${keptId}-${i}`, senderUniqueReference: `r${keptId}-${i}`, recipients: ['a', 'b', 'c', 'd'], ...(withCopies ? { outbound: `${outbound} ` } : {}) }));
  port.port1.postMessage({ messages: wire, sealed: copies.map(() => new Uint8Array(1300)) });
  const got = receiveMessageOnPort(port.port2)!.message as { messages: Array<{ transactionId: string; outbound?: string }> };
  for (const m of got.messages) {
    keptId += 1;
    if (m.outbound === undefined) continue;
    if (kept.size >= 10_000) kept.delete(kept.keys().next().value!);
    kept.set(keptId, { transactionId: m.transactionId, outbound: m.outbound });
  }
}
const crossKeep = (): void => cross(true);
const crossSealed = (): void => cross(false);
function validate(): void {
  for (const item of parsed) if (catalogue.validate('IF-021', item).ok) sink++;
}
const keys = buildKeyTree(catalogue.schema('IF-021') as JsonSchema);
/** Case-folding alone (part of validate). */
function walk(): void {
  for (const item of parsed) if (normaliseKeys(item, keys, []) === item) sink++;
}
function stamped(m: DipMessage): DipMessage {
  const h = readHeader(m);
  return stampWrapper(m, {
      transactionId: `T-IF-021-${h.senderDipId}-SDS-20261201-0123456789ABCDEF`,
      transactionTimestamp: '2026-12-01T11:00:00.000Z',
      publicationId: 'PUB-021',
      initialCorrelationId: null,
      replayIndicator: false,
      primaryRecipients: h.primaryRecipients,
      secondaryRecipients: [],
      alwaysRecipients: [],
  });
}
function stamp(): void {
  for (const m of messages) sink += JSON.stringify(stamped(m)).length;
}
function splice(): void {
  const spans = canonicalCustomBlocks(body);
  messages.forEach((m, i) => {
    const span = spans[i];
    const out = stamped(m);
    sink += (span ? stringifyWithCustomBlock(out, body.toString('utf8', span.start, span.end)) : JSON.stringify(out)).length;
  });
}
{
  const spans = canonicalCustomBlocks(body);
  if (spans.some((s) => s === null)) throw new Error('splice: the load generator\'s CustomBlocks should all be canonical');
  messages.forEach((m, i) => {
    const out = stamped(m);
    if (stringifyWithCustomBlock(out, body.toString('utf8', spans[i]!.start, spans[i]!.end)) !== JSON.stringify(out)) throw new Error('splice differs from stringify');
  });
}
function raw(): void {
  sink += compressSync(body).length;
}
function deflate(): void {
  sink += deflateRawSync(body, { level: 1 }).length;
}
/** A real Sealer, its data keys in memory and wrapped by an identity KEK (what wraps them is not measured). */
const memoryKeys = (() => {
  const wrappedKeys: Array<{ id: number; wrapped: Buffer }> = [];
  return { dataKeys: async () => wrappedKeys, addDataKey: async (wrapped: Buffer) => wrappedKeys.push({ id: wrappedKeys.length + 1, wrapped }) };
})();
const sealer = await Sealer.open({ wrap: async (k) => k, unwrap: async (k) => k }, memoryKeys);
/** `sealBound`: the same, in the formats bound to their record (storage.atRest.bindToRecord, the default). */
const boundSealer = await Sealer.open({ wrap: async (k) => k, unwrap: async (k) => k }, memoryKeys, { bindToRecord: true });
const accepted: AcceptedMessage[] = copies.map((outbound, i) => ({
  // A transaction ID as long as the DIP's (bound sealing authenticates it with the copy).
  transactionId: `T-IF-021-0123456789-SDS-20260101-${String(i).padStart(16, '0')}`, channel: 'IF-021', eventCode: 'IF-021', senderDipId: '0123456789', senderRole: 'SDS',
  senderUniqueReference: `r${i}`, correlationId: null, mpan: null, receivedAt: 0, outbound, recipients: ['abcdef0123'],
}));
let mpanSerial = 0;
function sealWith(by: Sealer): void {
  // A fresh MPAN per message: in a national day each MPAN has about one IF-021, so nothing repeats.
  for (const m of accepted) m.mpan = `19${String(mpanSerial++).padStart(11, '0')}`;
  const s = sealParts({ channel: 'IF-021', senderDipId: '0123456789', receivedAt: 0, rawRequest: body, signatureHeaders: '{}', messages: accepted }, by);
  sink += s.outbound.length + s.raw.length;
}
const seal = (): void => sealWith(sealer);
const sealBound = (): void => sealWith(boundSealer);
/** One IF-021 item under pattern 3: its CustomBlock replaced by four recipients' JWEs (each batch: `size` of them checked). */
// A fixed public key (no key generation: its random prime search would swing start-up under callgrind).
const pattern3Key = createPublicKey("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwaLR/xZFQ3A6nRCJoc2A\npLSMxi/XnhT+ecwT0l4eCAmVyNuzmJwu110ZPh1FTPPnj5pvpILuEtgTQI1ozZLe\nZztz6HeYP+TMb/9PWJWaNZmbfOOTB1VQbeO5u8babL5hVe1FNukNMFfLUD5ccK+5\nqjxGg+e7lj4yVA/wpk1UDEYNhi5p122fy/Luo/tgDrnRCy+J6QfDcUZeUR0d8ymh\nvQ3g94/gIctyPxrLdEq2QkdRUDi5fcn7ZWRiB1s23oO87u8JEv7OxQExM8+b+RM4\nqV8CLpVHNaZSj/TbRDMNiuiN4P6WU7r16iq7txAJA+YCzrrZS+0DHqD4QNVSVBI5\newIDAQAB\n-----END PUBLIC KEY-----\n");
const pattern3Item = await (async () => {
  const { CustomBlock, ...rest } = (parsed[0] as { payload: Record<string, unknown> }).payload;
  const copies: Record<string, string> = {};
  for (const id of ['abcdef0123', 'abcdef0124', 'abcdef0125', 'abcdef0126']) {
    copies[id] = await encryptTo(pattern3Key, JSON.stringify(CustomBlock));
  }
  return { ...(parsed[0] as object), payload: { ...rest, EncryptedCustomBlocks: copies } };
})();
function pattern3(): void {
  for (let i = 0; i < size; i++) if (splitPattern3(pattern3Item, 'IF-021').ok) sink++;
}
const stages: Record<string, () => void> = { depth, numbers, numbersFlagged, parse, whole, items, surrogates, surrogatesFlagged, acceptWhole, acceptItems, crossKeep, crossSealed, walk, validate, stamp, splice, raw, deflate, seal, sealBound, pattern3 };
const run = stage === 'all' ? Object.values(stages) : [stages[stage]!];
if (!run[0]) throw new Error(`unknown stage ${stage}`);
for (let i = 0; i < 20; i++) for (const f of run) f(); // warm up (JIT)
const t0 = process.cpuUsage();
for (let i = 0; i < batches; i++) for (const f of run) f();
const t = process.cpuUsage(t0);
const us = (t.user + t.system) / (batches * size);
console.log(`${stage}: ${us.toFixed(2)} µs CPU per message (${batches} batches of ${size}, ${body.length} bytes each) [${sink}]`);
if (stage === 'seal' || stage === 'sealBound') {
  const s = sealParts({ channel: 'IF-021', senderDipId: '0123456789', receivedAt: 0, rawRequest: body, signatureHeaders: '{}', messages: accepted }, stage === 'seal' ? sealer : boundSealer);
  const copyBytes = s.outbound.reduce((n, v) => n + v.length, 0) / size;
  console.log(`${stage}: ${copyBytes.toFixed(0)} bytes a sealed outbound copy, ${(s.raw.length / size).toFixed(0)} of the sealed raw request a message`);
}
if (stage === 'raw' || stage === 'deflate') console.log(`${stage}: ${((stage === 'raw' ? compressSync(body) : deflateRawSync(body, { level: 1 })).length / size).toFixed(0)} bytes per message compressed`);
