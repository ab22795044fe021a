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
 * Usage: npx tsx bench/hotpath.ts [depth|parse|walk|validate|stamp|splice|raw|deflate|all] [batches] [batchSize]
 */
import { deflateRawSync } from 'node:zlib';
import { compressSync } from 'lz4-napi';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { buildKeyTree, normaliseKeys } from '../src/catalogue/key-case.js';
import type { JsonSchema } from '../src/catalogue/types.js';
import { canonicalCustomBlocks, stringifyWithCustomBlock } from '../src/domain/canonical-json.js';
import { readHeader, stampWrapper, type DipMessage } from '../src/domain/message.js';
import { exceedsJsonDepth } from '../src/security/json-depth.js';
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
function parse(): void {
  sink += (JSON.parse(body.toString('utf8')) as unknown[]).length;
}
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
const stages: Record<string, () => void> = { depth, parse, walk, validate, stamp, splice, raw, deflate };
const run = stage === 'all' ? Object.values(stages) : [stages[stage]!];
if (!run[0]) throw new Error(`unknown stage ${stage}`);
for (let i = 0; i < 20; i++) for (const f of run) f(); // warm up (JIT)
const t0 = process.cpuUsage();
for (let i = 0; i < batches; i++) for (const f of run) f();
const t = process.cpuUsage(t0);
const us = (t.user + t.system) / (batches * size);
console.log(`${stage}: ${us.toFixed(2)} µs CPU per message (${batches} batches of ${size}, ${body.length} bytes each) [${sink}]`);
if (stage === 'raw' || stage === 'deflate') console.log(`${stage}: ${((stage === 'raw' ? compressSync(body) : deflateRawSync(body, { level: 1 })).length / size).toFixed(0)} bytes per message compressed`);
