/**
 * Does the cost per message stay flat as the archive grows? `npx tsx bench/archive.ts [--sizes 0,500000,2000000] [--seconds 8] [--profile]`
 *
 * For each archive size a DIP of its own (as `dip serve` runs it) gets a template of real traffic through
 * the API (10,000 IF-021 from 16 senders to 4 recipients each: accepted, sealed, queued), is stopped, and
 * its SQLite file is grown to the size by copying the template rows in SQL (batches with their raw
 * requests, messages with their sealed outbound copies, four queue positions each, all delivered): the
 * file then holds what that many accepted and delivered messages leave behind, with every index. The DIP
 * is started again on the grown file and measured: (a) ingest, closed loop, batch 10, 16 in flight, no
 * webhooks; (b) delivery of what (a) accepted once webhooks are registered (4 recipients each), and
 * the disk bytes per archived message. Results: bench/results/archive.json and archive.md.
 */
import Database from 'better-sqlite3';
import { closeSync, fsyncSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify as stringifyYaml } from 'yaml';
import { ensurePki, issueServerCertificate } from '../src/security/pki.js';
import { busyProfiles, monoUs } from './cpuprofile-summary.js';
import { REPO_ROOT, startDipProcess, type DipProcess } from './lib/dip-process.js';
import { closedLoop, prepareAll, SenderPool } from './lib/load.js';
import { issueMarketIdentities, onboardMarket, PRIMARY, registerWebhooks, type Market } from './lib/market.js';
import { Receivers } from './lib/receivers.js';
import { round, sqliteFileBytes, table, hostNow } from './lib/util.js';

const { values: flags } = parseArgs({
  options: {
    sizes: { type: 'string', default: '0,500000,2000000' },
    seconds: { type: 'string', default: '8' },
    // V8 profiles of the measured DIP's threads during the ingest window, summarised per size into
    // bench/results/archive-profile-<size>.txt: where the cost per message goes as the archive grows.
    profile: { type: 'boolean', default: false },
  },
});
const SIZES = flags.sizes.split(',').map(Number);
const SECONDS = Number(flags.seconds);
const TEMPLATE = 10_000;
const TEMPLATE_BATCH = 100;
const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');
const log = (s: string): void => void process.stderr.write(`[archive ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
/** The DIP serves this phase's catch-up at full speed: here the backlog is the measurement, not a recovering recipient. */
const CONFIG = stringifyYaml({ delivery: { catchUpPerSecond: 1_000_000 } });

interface SizeResult {
  archived: number;
  preloadSeconds: number;
  dbBytes: number;
  bytesPerMessage: number;
  ingestMsgPerSecond: number;
  ingestCpuUsPerMessage: number;
  ingestRequestP50Ms: number;
  deliveredMsgPerSecond: number;
  deliveriesPerSecond: number;
  deliveryCpuUsPerDelivery: number;
  loadBefore: number;
  loadAfter: number;
}

/** Grows the stopped DIP's file from the template (messages 1…TEMPLATE) to `archived` messages, all delivered. */
function preload(dataDir: string, archived: number): number {
  const started = hostNow();
  const db = new Database(join(dataDir, 'dip.db'));
  db.pragma('synchronous = OFF');
  const batches = (db.prepare('SELECT max(id) AS n FROM batches').get() as { n: number }).n;
  const count = (db.prepare('SELECT count(*) AS n FROM messages').get() as { n: number }).n;
  if (count !== TEMPLATE) throw new Error(`the template holds ${count} messages, expected ${TEMPLATE}`);
  const copyBatches = db.prepare(`INSERT INTO batches (id, channel, sender_dip_id, received_at, raw, signature)
    SELECT id + @r * @b, channel, sender_dip_id, received_at - @r, raw, signature FROM batches WHERE id <= @b`);
  const copyMessages = db.prepare(`INSERT INTO messages (id, batch_id, transaction_id, channel, event_code, sender_dip_id, sender_role, sender_ref, correlation_id, mpan, received_at, replay_of, outbound)
    SELECT id + @r * @t, batch_id + @r * @b, transaction_id || '.a' || @r, channel, event_code, sender_dip_id, sender_role, sender_ref || '.a' || @r, correlation_id, mpan, received_at - @r, NULL, outbound FROM messages WHERE id <= @t`);
  const copyEntries = db.prepare(`INSERT INTO queue_entries (queue_id, seq, message_id, enqueued_at)
    SELECT queue_id, seq + @r * @t, message_id + @r * @t, NULL FROM queue_entries WHERE message_id <= @t`);
  const round_ = db.transaction((r: number) => {
    copyBatches.run({ r, b: batches });
    copyMessages.run({ r, t: TEMPLATE, b: batches });
    copyEntries.run({ r, t: TEMPLATE });
  });
  const rounds = Math.max(0, Math.round(archived / TEMPLATE) - 1);
  for (let r = 1; r <= rounds; r++) {
    round_(r);
    if (r % 50 === 0) log(`  ${((r + 1) * TEMPLATE).toLocaleString('en')} messages`);
  }
  // Everything archived was delivered: each queue's acknowledged position is its last entry.
  db.exec('UPDATE queues SET acked_seq = (SELECT coalesce(max(seq), 0) FROM queue_entries WHERE queue_id = queues.id)');
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  // Written without syncs: the kernel may still hold gigabytes to write back, which the measured DIP's
  // own syncs would then wait behind. An archive that grew over days is on disk; so is this one now.
  const fd = openSync(join(dataDir, 'dip.db'), 'r+');
  fsyncSync(fd);
  closeSync(fd);
  return (hostNow() - started) / 1000;
}

/** The ingest window of each thread that worked in it (the main thread, the ingest threads). */
function writeProfileSummary(size: number, files: string[], window: { fromUs: number; toUs: number }): void {
  const parts = busyProfiles(files, window, 25).map((p) => `=== ${p.file}\n${p.text}`);
  writeFileSync(join(RESULTS_DIR, `archive-profile-${size}.txt`), `${parts.join('\n\n')}\n`);
}

async function measure(size: number, pkiDir: string, identities: Awaited<ReturnType<typeof issueMarketIdentities>>, receivers: Receivers, phaseBase: number): Promise<SizeResult> {
  const loadBefore = loadavg()[0]!;
  log(`archive of ${size.toLocaleString('en')}: template of ${TEMPLATE} messages through the API`);
  let dip: DipProcess = await startDipProcess({ name: `archive-${size}`, pkiFrom: pkiDir, configYaml: CONFIG });
  const market: Market = await onboardMarket(dip, identities);
  await dip.waitIdle();
  let pool = new SenderPool(dip.url, market.senders, dip.ca.certPem, 1, PRIMARY);
  const template = await prepareAll(pool, phaseBase, Array.from({ length: TEMPLATE / TEMPLATE_BATCH }, (_, i) => ({ first: i * TEMPLATE_BATCH, count: TEMPLATE_BATCH })));
  let next = 0;
  const t = await closedLoop(pool, async () => template[next++], 8, 600_000);
  if (t.accepted !== TEMPLATE) throw new Error(`template: ${t.accepted} accepted (${JSON.stringify(t.statuses)}): ${t.errors.join('; ')}`);
  await pool.close();
  await dip.stop();
  log(`  preloading to ${size.toLocaleString('en')} archived messages`);
  const preloadSeconds = preload(dip.dataDir, size);
  const dataDir = dip.dataDir;
  dip = await startDipProcess({ name: `archive-${size}`, dataDir, ...(flags.profile ? { cpuProfileDir: join(dirname(dataDir), 'profiles') } : {}) });
  await dip.waitIdle();
  pool = new SenderPool(dip.url, market.senders, dip.ca.certPem, 1, PRIMARY);

  // (a) Ingest: signed before the clock starts, batch 10, 16 in flight, no webhooks (accept path alone).
  const phase = phaseBase + 1;
  const perRequest = 10;
  const supply = await prepareAll(pool, phase, Array.from({ length: Math.ceil((SECONDS * 8000) / perRequest) }, (_, i) => ({ first: i * perRequest, count: perRequest })));
  let k = 0;
  const cpu0 = dip.cpuSeconds();
  const window = { fromUs: monoUs(), toUs: 0 };
  const ingest = await closedLoop(pool, async () => supply[k++], 16, SECONDS * 1000);
  window.toUs = monoUs();
  const cpu1 = dip.cpuSeconds();
  const accepted = ingest.accepted;
  const latencies = ingest.requestLatencyMs.sort((a, b) => a - b);

  // (b) Delivery of what (a) accepted, to 4 recipients each, once their webhooks exist.
  await receivers.phase(phase, supply.length * perRequest);
  const d0 = hostNow();
  const c0 = dip.cpuSeconds();
  await registerWebhooks(dip, market, receivers.urls, 500);
  const done = await receivers.waitFor(phase, (p) => p.delivered.every((n) => n >= accepted), 300_000, 50);
  const elapsed = (hostNow() - d0) / 1000;
  const c1 = dip.cpuSeconds();
  if (!done.ok) log(`  delivery did not finish: ${JSON.stringify(done.progress.delivered)}`);
  await pool.close();
  const mainProfile = await dip.stop();
  if (mainProfile) writeProfileSummary(size, [mainProfile, ...dip.threadProfiles()], window);
  const bytes = sqliteFileBytes(dataDir);
  const total = Math.max(size, TEMPLATE) + accepted;
  dip.cleanup();
  return {
    archived: Math.max(size, TEMPLATE),
    preloadSeconds: round(preloadSeconds, 1),
    dbBytes: bytes,
    bytesPerMessage: round(bytes / total, 0),
    ingestMsgPerSecond: round(accepted / (ingest.elapsedMs / 1000), 0),
    ingestCpuUsPerMessage: round(((cpu1 - cpu0) * 1e6) / accepted, 0),
    ingestRequestP50Ms: round(latencies[Math.floor(latencies.length / 2)] ?? Number.NaN, 1),
    deliveredMsgPerSecond: round(accepted / elapsed, 0),
    deliveriesPerSecond: round((4 * accepted) / elapsed, 0),
    deliveryCpuUsPerDelivery: round(((c1 - c0) * 1e6) / (4 * accepted), 0),
    loadBefore: round(loadBefore, 1),
    loadAfter: round(loadavg()[0]!, 1),
  };
}

async function main(): Promise<void> {
  const pkiDir = join(mkdtempSync(join(tmpdir(), 'opendip-archive-pki-')), 'pki');
  const pki = await ensurePki(pkiDir, { environment: 'DEV', hostnames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] });
  const [identities, receiverTls] = await Promise.all([
    issueMarketIdentities(pki.ca),
    issueServerCertificate(pki.ca, { hostnames: ['localhost'], ipAddresses: ['127.0.0.1'], validDays: 2, commonName: 'bench recipients' }),
  ]);
  const receivers = await Receivers.start(4, pki.ca.certPem, { key: receiverTls.keyPem, cert: receiverTls.certPem });
  const results: SizeResult[] = [];
  try {
    for (const [i, size] of SIZES.entries()) {
      const r = await measure(size, pkiDir, identities, receivers, 10 * (i + 1));
      log(`  ${JSON.stringify(r)}`);
      results.push(r);
    }
  } finally {
    await receivers.stop();
  }
  const md = table(
    ['archived msgs', 'load avg before/after', 'ingest msg/s (batch 10)', 'ingest request p50 ms', 'DIP CPU µs/msg (ingest)', 'delivered msg/s (×4 recipients)', 'deliveries/s', 'DIP CPU µs/delivery', 'disk bytes/msg', 'db GB', 'preload s'],
    results.map((r) => [r.archived, `${r.loadBefore} / ${r.loadAfter}`, r.ingestMsgPerSecond, r.ingestRequestP50Ms, r.ingestCpuUsPerMessage, r.deliveredMsgPerSecond, r.deliveriesPerSecond, r.deliveryCpuUsPerDelivery, r.bytesPerMessage, round(r.dbBytes / 1e9, 2), r.preloadSeconds]),
  );
  process.stdout.write(`${md}\n`);
  writeFileSync(join(RESULTS_DIR, 'archive.json'), `${JSON.stringify({ generatedAt: new Date().toISOString(), seconds: SECONDS, results }, null, 2)}\n`);
  writeFileSync(join(RESULTS_DIR, 'archive.md'), `<!-- generated by bench/archive.ts at ${new Date().toISOString()} -->\n${md}\n`);
}

await main();
