/**
 * OpenDIP benchmarks: `npm run bench` (full, ~10 min) or `npm run bench -- --quick` (~2 min).
 *   --only raw,ingest,latency,ramp,drain,profile,publications,day   run a subset (publications: bench/publications.ts;
 *                                                  day only when named, see below)
 *   --workers N                                    DIP_WORKERS of every DIP of the run (default: the cores present)
 *   --ingest-threads N                             DIP_INGEST_THREADS of every DIP of the run (default: dip serve's)
 *   --gather-ms N                                  delivery.gatherMs of every DIP of the run (default: the DIP's)
 *   --rates 2000,2500,3000                         the latency phase's offered loads (msg/s) instead of 500,1000,2000,5000
 *   --day-messages N                               the day's size (default 3,200,000: a tenth of the national 32 M)
 *   --day-batch N / --day-concurrency N            messages per request (100) and requests in flight (16)
 *   --day-lead N                                   the generator waits while the slowest recipient is N
 *                                                  messages behind what was accepted (2,000: its queues stay
 *                                                  live, younger than delivery.catchUpAfterMs)
 *   --keep                                         keep the DIPs' temporary data directories and logs
 *   --drain-rate N                                 the drain phase's live rate (default 1,000 msg/s)
 *   --observability on|off                         the API activity log and alarms on (default) or off, to
 *                                                  show what they cost (README "Audit, reports, alarms …")
 *   --backend sqlite,cluster                       storage of the DIP under test: the embedded SQLite file
 *                                                  (default), the cluster backend (PostgreSQL + NATS
 *                                                  JetStream: the services on 5432 and 4222), or both in
 *                                                  one run, side by side (bench/results/side-by-side.md)
 *
 * Topology (one host): the DIP runs as its own process (`node --import tsx src/cli/main.ts serve`, fresh
 * DIP_DATA_DIR, free DIP_PORT); the four recipients' HTTPS webhook endpoints run together in a second
 * child process; this process is the load generator (a data service, SDS) and the orchestrator. Every
 * process competes for the same cores, so CPU use of each is recorded per phase. See BENCHMARKS.md.
 */
import { execSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify as stringifyYaml } from 'yaml';
import { ensurePki, issueServerCertificate, type KeyAndCert } from '../src/security/pki.js';
import { busyProfiles, formatSummary, monoUs, summariseProfile, type ProfileSummary } from './cpuprofile-summary.js';
import { publicationsBench, publicationsTable } from './publications.js';
import { REPO_ROOT, startDipProcess, type DipProcess } from './lib/dip-process.js';
import { closedLoop, MessageFactory, openLoop, prepareAll, SenderPool, type OpenLoopRun, type Prepared } from './lib/load.js';
import { issueMarketIdentities, onboardMarket, PRIMARY, RECIPIENTS, registerWebhooks, SENDER, type Identity, type Market } from './lib/market.js';
import { latencySvg, type LatencyPoint } from './lib/plot.js';
import { BENCH_NATS_SERVERS, benchDatabase, jetstreamRate, pgInsertRate, type BenchDatabase, type JetStreamResult, type PgInsertResult } from './lib/raw-cluster.js';
import { fsyncProbe, rsaRates, sqliteInsertRate, startEchoServer, type EchoResult, type RsaResult, type SqliteResult } from './lib/raw-limits.js';
import { Receivers, type ReceiverProgress } from './lib/receivers.js';
import { cpuBetween, cpuSnapshot, fmt, machineInfo, percentile, round, sleep, sqliteFileBytes, table, hostNow, type CpuUse } from './lib/util.js';

const BENCHES = ['raw', 'ingest', 'latency', 'ramp', 'drain', 'profile', 'publications', 'day'] as const;
type BenchName = (typeof BENCHES)[number];

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    keep: { type: 'boolean', default: false },
    backend: { type: 'string', default: 'sqlite' },
    'drain-rate': { type: 'string' },
    rates: { type: 'string' },
    observability: { type: 'string', default: 'on' },
    workers: { type: 'string' },
    'ingest-threads': { type: 'string' },
    'gather-ms': { type: 'string' },
    'day-messages': { type: 'string' },
    'day-batch': { type: 'string' },
    'day-concurrency': { type: 'string' },
    'day-lead': { type: 'string' },
  },
  strict: true,
});
const QUICK = flags.quick === true;
if (flags.observability !== 'on' && flags.observability !== 'off') throw new Error(`--observability: '${flags.observability ?? ''}' is not on or off`);
/** Settings that turn the activity log and alarms off, for the on/off comparison. */
const OBSERVABILITY_OFF = flags.observability === 'off' ? { observability: { activityLog: { enabled: false }, alarms: { enabled: false } } } : {};
const BACKENDS = (flags.backend ?? 'sqlite').split(',').map((b) => {
  const name = b.trim();
  if (name !== 'sqlite' && name !== 'cluster') throw new Error(`--backend: unknown backend '${b}' (sqlite, cluster)`);
  return name;
});
type BackendName = (typeof BACKENDS)[number];
/** The backend the phases now running measure. */
let backend: BackendName = BACKENDS[0]!;
/** Databases made for cluster DIPs, dropped when the DIP stops. */
const clusterDatabase = new Map<DipProcess, BenchDatabase>();

/** What the DIP keeps on disk: its SQLite files, or its PostgreSQL database (JetStream's few streams left out). */
async function storedBytes(dip: DipProcess): Promise<number> {
  const db = clusterDatabase.get(dip);
  return db ? db.size() : sqliteFileBytes(dip.dataDir);
}
const selected = new Set<BenchName>(
  flags.only
    ? flags.only.split(',').map((s) => {
        const name = s.trim() as BenchName;
        if (!BENCHES.includes(name)) throw new Error(`--only: unknown benchmark '${s}' (one of ${BENCHES.join(', ')})`);
        return name;
      })
    : BENCHES.filter((b) => b !== 'day'),
);
const positive = (name: string, v: string | undefined, fallback: number): number => {
  if (v === undefined) return fallback;
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: '${v}' is not a whole number above 0`);
  return n;
};
/** `DIP_WORKERS` for every DIP of the run (unset: `dip serve`'s default, the cores present). */
if (flags.workers !== undefined) positive('workers', flags.workers, 1);
/** `DIP_INGEST_THREADS` for every DIP of the run (unset: `dip serve`'s default, a thread per core beyond the first). */
if (flags['ingest-threads'] !== undefined && !/^\d+$/.test(flags['ingest-threads'])) throw new Error(`--ingest-threads: '${flags['ingest-threads']}' is not a whole number`);
if (flags['gather-ms'] !== undefined && !/^\d+$/.test(flags['gather-ms'])) throw new Error(`--gather-ms: '${flags['gather-ms']}' is not a whole number`);
/** Settings of every DIP of the run, beside the storage: --observability off, --gather-ms. */
const DIP_SETTINGS = { ...OBSERVABILITY_OFF, ...(flags['gather-ms'] !== undefined ? { delivery: { gatherMs: Number(flags['gather-ms']) } } : {}) };
/** The topology environment of every DIP of the run. */
const TOPOLOGY_ENV: Record<string, string> = {
  ...(flags.workers ? { DIP_WORKERS: flags.workers } : {}),
  ...(flags['ingest-threads'] !== undefined ? { DIP_INGEST_THREADS: flags['ingest-threads'] } : {}),
};
/** The day bench (--only day): not part of the default set, it runs for an hour at the default size. */
const DAY = {
  messages: positive('day-messages', flags['day-messages'], 3_200_000),
  batch: positive('day-batch', flags['day-batch'], 100),
  concurrency: positive('day-concurrency', flags['day-concurrency'], 16),
  maxLead: positive('day-lead', flags['day-lead'], 2_000),
  workers: flags.workers,
};

const S = QUICK
  ? {
      rawSqliteMs: 700, rawEchoMs: 1000, rawRsaMs: 1000,
      ingestBatches: [1, 10, 100], ingestMs: 2500, ingestPilotMs: 800, ingestConcurrency: 16,
      latencyRates: [500, 1000, 2000, 5000], latencyMs: 3000,
      rampMaxSteps: 2, rampBisections: 1, rampMs: 3000,
      drainRate: 1000, drainOutageMs: 10_000, drainMaxMs: 60_000,
      profileMs: 3000, profileLightMs: 3000,
    }
  : {
      rawSqliteMs: 2000, rawEchoMs: 3000, rawRsaMs: 2000,
      ingestBatches: [1, 10, 100], ingestMs: 8000, ingestPilotMs: 1500, ingestConcurrency: 16,
      latencyRates: [500, 1000, 2000, 5000], latencyMs: 10_000,
      rampMaxSteps: 8, rampBisections: 3, rampMs: 6000,
      drainRate: 1000, drainOutageMs: 60_000, drainMaxMs: 150_000,
      profileMs: 10_000, profileLightMs: 6000,
    };
/** --rates 2000,2500,3000: the offered loads of the latency phase instead of its default levels. */
if (flags.rates !== undefined) S.latencyRates = flags.rates.split(',').map((r) => positive('rates', r.trim(), 1));
const TICK_MS = 5;
const MAX_PER_REQUEST = 10;
const RECIPIENT_COUNT = RECIPIENTS.length;
/** After the offered window, how long deliveries may take before the rest count as undelivered. */
const SETTLE_MS = 30_000;

const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');
const PROFILE_DIR = join(RESULTS_DIR, 'profiles');

function emit(bench: string, summary: Record<string, unknown>, readable: string): void {
  process.stdout.write(`${JSON.stringify({ bench, ...summary })}\n${readable}\n\n`);
}
const log = (s: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
};

// ---------------------------------------------------------------------------------------------
// Shared fixture: one CA for the run, the market's identities, the receivers process.

interface Fixture {
  pkiDir: string;
  ca: KeyAndCert;
  identities: Identity[];
  receiverTls: KeyAndCert;
  receivers?: Receivers;
  dips: DipProcess[];
  phase: number;
}

async function fixture(): Promise<Fixture> {
  const pkiDir = join(mkdtempSync(join(tmpdir(), 'opendip-bench-pki-')), 'pki');
  const pki = await ensurePki(pkiDir, { environment: 'DEV', hostnames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] });
  const [identities, receiverTls] = await Promise.all([
    issueMarketIdentities(pki.ca),
    issueServerCertificate(pki.ca, { hostnames: ['localhost'], ipAddresses: ['127.0.0.1'], validDays: 2, commonName: 'bench recipients' }),
  ]);
  return { pkiDir, ca: pki.ca, identities, receiverTls, dips: [], phase: 0 };
}

async function receivers(f: Fixture): Promise<Receivers> {
  f.receivers ??= await Receivers.start(RECIPIENT_COUNT, f.ca.certPem, { key: f.receiverTls.keyPem, cert: f.receiverTls.certPem });
  return f.receivers;
}

async function startDip(f: Fixture, name: string, cpuProfileDir?: string): Promise<{ dip: DipProcess; market: Market }> {
  log(`starting DIP '${name}'${cpuProfileDir ? ' with --cpu-prof' : ''}`);
  let configYaml: string | undefined = Object.keys(DIP_SETTINGS).length > 0 ? stringifyYaml(DIP_SETTINGS) : undefined;
  let db: BenchDatabase | undefined;
  if (backend === 'cluster') {
    // A database and a NATS prefix of its own: every DIP of the run starts empty, as on SQLite.
    db = await benchDatabase('opendip_bench');
    configYaml = stringifyYaml({
      storage: { kind: 'cluster', postgres: { url: db.url, poolSize: 10 }, nats: { servers: BENCH_NATS_SERVERS, replicas: 1, prefix: `bench${Date.now().toString(36)}` } },
      ...DIP_SETTINGS,
    });
  }
  const dip = await startDipProcess({ name: `${name}-${backend}`, pkiFrom: f.pkiDir, cpuProfileDir, configYaml, env: TOPOLOGY_ENV, startTimeoutMs: 180_000 });
  if (db) clusterDatabase.set(dip, db);
  f.dips.push(dip);
  const market = await onboardMarket(dip, f.identities);
  const settled = await dip.waitIdle();
  log(`DIP '${name}' settled ${settled.idle ? '' : 'NOT '}after ${(settled.waitedMs / 1000).toFixed(1)} s (validator warm-up)`);
  return { dip, market };
}

/** The DIP's other threads (its ingest threads) that worked during the window, each summarised as for the main thread. */
function busyThreads(dip: DipProcess, window: { fromUs: number; toUs: number }, top: number): string[] {
  return busyProfiles(dip.threadProfiles(), window, top).map((p) => `thread ${p.thread} ===\n${p.text}`);
}

async function stopDip(f: Fixture, dip: DipProcess): Promise<string | undefined> {
  const profile = await dip.stop();
  if (!flags.keep) dip.cleanup();
  await clusterDatabase.get(dip)?.drop();
  clusterDatabase.delete(dip);
  f.dips = f.dips.filter((d) => d !== dip);
  return profile;
}

// ---------------------------------------------------------------------------------------------
// Raw limits of the machine, measured in the same run.

interface RawResults {
  sqlite: SqliteResult[];
  echo: EchoResult[];
  rsa: RsaResult;
  /** With --backend cluster: the PostgreSQL and JetStream the cluster backend runs on. */
  postgres?: PgInsertResult[];
  jetstream?: JetStreamResult[];
}

async function rawBench(): Promise<RawResults> {
  log('raw limits: SQLite durable inserts');
  const factory = new MessageFactory(SENDER.dipId, PRIMARY);
  const if021Rows = Array.from({ length: 1000 }, (_, i) => factory.item(0, i));
  const kbRows = if021Rows.map((r) => r.slice(0, 1024));
  const sqlite = [
    sqliteInsertRate({ rows: kbRows, rowsPerTransaction: 100, durationMs: S.rawSqliteMs }),
    sqliteInsertRate({ rows: kbRows, rowsPerTransaction: 1, durationMs: S.rawSqliteMs }),
    sqliteInsertRate({ rows: if021Rows, rowsPerTransaction: 100, durationMs: S.rawSqliteMs }),
    sqliteInsertRate({ rows: if021Rows, rowsPerTransaction: 1, durationMs: S.rawSqliteMs }),
  ];
  log('raw limits: HTTPS (mTLS) echo server');
  const echoServer = await startEchoServer();
  const echo: EchoResult[] = [];
  try {
    echo.push(await echoServer.run(1024, S.ingestConcurrency, S.rawEchoMs));
    echo.push(await echoServer.run(factory.itemBytes + 2, S.ingestConcurrency, S.rawEchoMs));
  } finally {
    await echoServer.stop();
  }
  log('raw limits: RSA-2048 signing');
  const rsa = await rsaRates(S.rawRsaMs);
  const result: RawResults = { sqlite, echo, rsa };
  if (BACKENDS.includes('cluster')) {
    log('raw limits: PostgreSQL durable inserts, JetStream publish/consume');
    result.postgres = [
      await pgInsertRate({ rows: if021Rows, rowsPerTransaction: 1, connections: 1, durationMs: S.rawSqliteMs }),
      await pgInsertRate({ rows: if021Rows, rowsPerTransaction: 1, connections: 16, durationMs: S.rawSqliteMs }),
      await pgInsertRate({ rows: if021Rows, rowsPerTransaction: 100, connections: 4, durationMs: S.rawSqliteMs }),
    ];
    result.jetstream = [
      await jetstreamRate({ message: if021Rows[0]!, inFlight: 1, durationMs: S.rawSqliteMs }),
      await jetstreamRate({ message: if021Rows[0]!, inFlight: 64, durationMs: S.rawSqliteMs }),
    ];
  }
  emit('raw', { ...result }, [
    'SQLite (better-sqlite3, WAL, synchronous=FULL)',
    table(['row bytes', 'rows/transaction', 'rows/s', 'commits/s', 'MB/s'], sqlite.map((s) => [s.rowBytes, s.rowsPerTransaction, s.rowsPerSecond, s.transactionsPerSecond, s.mbPerSecond])),
    '',
    `bare node:https echo, mutual TLS, keep-alive, ${S.ingestConcurrency} concurrent`,
    table(['body bytes', 'requests/s', 'p50 ms', 'server cores', 'client cores'], echo.map((e) => [e.bodyBytes, e.requestsPerSecond, e.p50Ms, e.serverCores, e.clientCores])),
    '',
    'RSA-2048 PKCS#1 v1.5 SHA-256',
    table(['async sign/s (thread pool)', 'sync sign/s (1 thread)', 'sync verify/s (1 thread)'], [[rsa.asyncSignsPerSecond, rsa.syncSignsPerSecond, rsa.syncVerifiesPerSecond]]),
    ...clusterRawTables(result),
  ].join('\n'));
  return result;
}

/** The cluster backend's raw limits as tables (empty without --backend cluster). */
function clusterRawTables(raw: RawResults): string[] {
  const out: string[] = [];
  if (raw.postgres) {
    out.push('', 'PostgreSQL durable inserts (synchronous_commit on), loopback', table(['row bytes', 'rows/transaction', 'connections', 'rows/s', 'commits/s'], raw.postgres.map((p) => [p.rowBytes, p.rowsPerTransaction, p.connections, p.rowsPerSecond, p.commitsPerSecond])));
  }
  if (raw.jetstream) {
    out.push('', 'NATS JetStream (file stream, R1), acknowledged publish then ordered consume', table(['message bytes', 'publishes in flight', 'publish/s', 'consume/s'], raw.jetstream.map((j) => [j.messageBytes, j.inFlight, j.publishPerSecond, j.consumePerSecond])));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// (a) Ingest throughput, closed loop.

interface IngestResult {
  batch: number;
  concurrency: number;
  requests: number;
  acceptedMessages: number;
  refusedMessages: number;
  seconds: number;
  requestsPerSecond: number;
  messagesPerSecond: number;
  requestP50Ms: number;
  requestP99Ms: number;
  presigned: number;
  pilotMessagesPerSecond: number;
  statuses: Record<string, number>;
  resets: number;
  /** The disk's 1-row durable commit rate just before the phase (see fsyncProbe). */
  diskCommitsPerSecond: number;
  /** DIP CPU time (all its threads) per accepted message: less sensitive to the neighbours than rates are. */
  dipCpuUsPerMessage: number;
  cpu: CpuUse;
  errors: string[];
}

/** Closed loop at one batch size: a short pilot with live signing (warm-up), then pre-signed requests. */
async function closedLoopAt(
  f: Fixture,
  dip: DipProcess,
  market: Market,
  batch: number,
  durationMs: number,
  onPhase?: (phase: number, capacity: number) => Promise<void>,
): Promise<IngestResult & { phase: number; pilotPhase: number; window: { fromUs: number; toUs: number } }> {
  const conc = S.ingestConcurrency;
  const pool = new SenderPool(dip.url, market.senders, dip.ca.certPem, Math.max(2, Math.ceil(conc / market.senders.length)), PRIMARY);
  try {
    const pilotPhase = ++f.phase;
    let pilotIdx = 0;
    await onPhase?.(pilotPhase, 1_000_000);
    const pilot = await closedLoop(
      pool,
      async () => {
        const first = pilotIdx;
        pilotIdx += batch;
        return pool.prepare(pilotPhase, first, batch);
      },
      conc,
      S.ingestPilotMs,
    );
    if (pilot.accepted === 0) throw new Error(`ingest pilot accepted nothing: ${pilot.errors.join(' | ')}`);
    const pilotRate = pilot.requests / (pilot.elapsedMs / 1000);
    // Enough for the run at 3.5× the pilot's pace (pre-signed requests go faster than signed-on-the-fly ones,
    // and the pilot includes warm-up); if they run out anyway, the window is simply shorter.
    const nReq = Math.min(Math.ceil((pilotRate * 3.5 * durationMs) / 1000) + conc, Math.ceil(600_000 / batch), 40_000);
    const phase = ++f.phase;
    const prepared = await prepareAll(
      pool,
      phase,
      Array.from({ length: nReq }, (_, i) => ({ first: i * batch, count: batch })),
    );
    await onPhase?.(phase, nReq * batch);
    const diskCommitsPerSecond = fsyncProbe();
    let k = 0;
    const c0 = cpuSnapshot(dip.pid, f.receivers?.pid);
    const fromUs = monoUs();
    const r = await closedLoop(pool, async (): Promise<Prepared | undefined> => prepared[k++], conc, durationMs);
    const toUs = monoUs();
    const c1 = cpuSnapshot(dip.pid, f.receivers?.pid);
    const lat = r.requestLatencyMs.sort((a, b) => a - b);
    const seconds = r.elapsedMs / 1000;
    return {
      phase,
      pilotPhase,
      window: { fromUs, toUs },
      batch,
      concurrency: conc,
      requests: r.requests,
      acceptedMessages: r.accepted,
      refusedMessages: r.refused,
      seconds: round(seconds, 2),
      requestsPerSecond: round(r.requests / seconds, 0),
      messagesPerSecond: round(r.accepted / seconds, 0),
      requestP50Ms: round(percentile(lat, 50), 1),
      requestP99Ms: round(percentile(lat, 99), 1),
      presigned: nReq,
      pilotMessagesPerSecond: round(pilot.accepted / (pilot.elapsedMs / 1000), 0),
      statuses: r.statuses,
      resets: r.resets,
      diskCommitsPerSecond,
      dipCpuUsPerMessage: round(((c1.dip - c0.dip) * 1e6) / Math.max(1, r.accepted), 0),
      cpu: cpuBetween(c0, c1),
      errors: r.errors,
    };
  } finally {
    await pool.close();
  }
}

const ingestHeaders = ['batch', 'conc.', 'requests/s', 'accepted msg/s', 'req p50 ms', 'req p99 ms', 'DIP cores', 'DIP CPU µs/msg', 'gen cores', 'others cores', 'disk commits/s', 'refused msgs', 'conn. resets'];
const ingestRow = (r: IngestResult) => [
  r.batch, r.concurrency, r.requestsPerSecond, r.messagesPerSecond, r.requestP50Ms, r.requestP99Ms, r.cpu.dipCores, r.dipCpuUsPerMessage, r.cpu.generatorCores, r.cpu.otherCores, r.diskCommitsPerSecond, r.refusedMessages, r.resets,
];

interface IngestBenchResult {
  runs: IngestResult[];
  /** Where the DIP's main thread spent each batch size's measured window (the DIP ran under --cpu-prof). */
  profiles: Array<{ batch: number; summary: ProfileSummary }>;
}

async function ingestBench(f: Fixture): Promise<IngestBenchResult> {
  // A DIP of its own, with recipients registered as participants (routing needs them) but no webhooks:
  // accepted messages are queued durably and not delivered, so this is the accept path alone.
  const { dip, market } = await startDip(f, 'ingest', PROFILE_DIR);
  const runs: IngestResult[] = [];
  const windows: Array<{ batch: number; window: { fromUs: number; toUs: number } }> = [];
  let profileFile: string | undefined;
  try {
    for (const batch of S.ingestBatches) {
      log(`ingest: batch ${batch}, closed loop, ${S.ingestConcurrency} concurrent`);
      const { phase: _p, pilotPhase: _pp, window, ...r } = await closedLoopAt(f, dip, market, batch, S.ingestMs);
      runs.push(r);
      windows.push({ batch, window });
      log(`  ${threadLine(r.cpu)}; DIP kernel ${round((r.cpu.dipSystemCores * 1e6) / Math.max(1, r.messagesPerSecond), 0)} µs a message`);
      emit('ingest', r, table(
        ingestHeaders,
        [ingestRow(r)],
      ));
    }
  } finally {
    profileFile = await stopDip(f, dip);
  }
  const profiles = profileFile ? windows.map(({ batch, window }) => ({ batch, summary: summariseProfile(profileFile, 15, window) })) : [];
  if (profiles.length) {
    const text = profiles.map((p) => `=== ingest, batch ${p.batch} ===\n${formatSummary(p.summary, 15)}`).join('\n\n');
    writeFileSync(join(RESULTS_DIR, 'profile-ingest-summary.txt'), `${text}\n`);
    log('ingest: main-thread profiles per batch size in bench/results/profile-ingest-summary.txt');
    const threads = windows.flatMap(({ batch, window }) => busyThreads(dip, window, 15).map((t) => `=== ingest, batch ${batch}, ${t}`));
    if (threads.length) writeFileSync(join(RESULTS_DIR, 'profile-ingest-threads-summary.txt'), `${threads.join('\n\n')}\n`);
  }
  return { runs, profiles };
}

// ---------------------------------------------------------------------------------------------
// (b) Latency at fixed offered loads, open loop, four recipients per message.

interface LatencyStats {
  pairs: number;
  delivered: number;
  undelivered: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  /** in→201 of the accepted requests (the accept path's share of the latency), p50 and p90. */
  acceptP50: number;
  acceptP90: number;
}

function latencyStats(run: Pick<OpenLoopRun, 'sent' | 'status' | 'postStart' | 'answeredAt'>, recv: Float64Array, select: (i: number) => boolean, recipients: number[]): LatencyStats {
  const lat: number[] = [];
  const accept: number[] = [];
  let undelivered = 0;
  let sum = 0;
  for (let i = 0; i < run.sent; i++) {
    if (run.status[i] !== 201 || !select(i)) continue;
    accept.push(run.answeredAt[i]! - run.postStart[i]!);
    for (const r of recipients) {
      const t = recv[i * RECIPIENT_COUNT + r]!;
      if (Number.isNaN(t)) undelivered++;
      else {
        const l = t - run.postStart[i]!;
        lat.push(l);
        sum += l;
      }
    }
  }
  const sorted = Float64Array.from(lat).sort();
  const acceptSorted = Float64Array.from(accept).sort();
  // Undelivered pairs count as infinitely late, so they push the upper percentiles up rather than vanish.
  const all = new Float64Array(sorted.length + undelivered);
  all.set(sorted);
  all.fill(Number.POSITIVE_INFINITY, sorted.length);
  return {
    pairs: all.length,
    delivered: sorted.length,
    undelivered,
    p50: round(percentile(all, 50), 1),
    p90: round(percentile(all, 90), 1),
    p99: round(percentile(all, 99), 1),
    max: round(undelivered > 0 ? Number.POSITIVE_INFINITY : (sorted[sorted.length - 1] ?? Number.NaN), 1),
    mean: round(sorted.length ? sum / sorted.length : Number.NaN, 1),
    acceptP50: round(percentile(acceptSorted, 50), 1),
    acceptP90: round(percentile(acceptSorted, 90), 1),
  };
}

interface LoadResult extends LatencyStats {
  offered: number;
  /** Seconds the load was offered (less than planned when cut short). */
  seconds: number;
  /** The DIP fell GIVE_UP_BEHIND_S seconds behind and the phase was cut short. */
  stoppedEarly: boolean;
  /** When the level was measured twice (see offerLevel), the first, contaminated measurement. */
  firstAttempt?: Record<string, unknown>;
  sent: number;
  accepted: number;
  refused: number;
  /** Accepted (answered 201) within the offered window, per second. */
  acceptedPerSecond: number;
  /** Deliveries (message × recipient) received within the offered window, per second. */
  deliveriesPerSecond: number;
  /**
   * Requests sent per second (the open loop sends every TICK_MS whatever the rate, so up to 2,000 msg/s it
   * is 200 requests/s), and the DIP's CPU per request: at low load most of a message's CPU is per request
   * and per call (waking threads and processes), so "µs a message" there measures the tick, not the road.
   */
  requestsPerSecond: number;
  dipCpuUsPerRequest: number;
  /** Webhook calls per second in the window, and messages per call. */
  webhookCallsPerSecond: number;
  messagesPerCall: number;
  /** From the last POST until the last delivery. */
  tailMs: number;
  generatorMaxLagMs: number;
  maxInFlight: number;
  sustained: boolean;
  statuses: Record<string, number>;
  resets: number;
  diskCommitsPerSecond: number;
  /** DIP CPU time (all threads) per accepted message, its four deliveries included. */
  dipCpuUsPerMessage: number;
  /**
   * p90 in→delivered of the messages sent in each second of the level, in order: shows whether a level's
   * p90 is its steady state or a few slow seconds (the first seconds after a DIP starts, a checkpoint).
   */
  p90BySecond: number[];
  /** The receivers' clock minus the generator's at the level's start (ms, ±uncertainty); ~0 when latency is trustworthy. */
  clockOffsetMs: number;
  clockUncertaintyMs: number;
  cpu: CpuUse;
  errors: string[];
}

interface FanoutCtx {
  dip: DipProcess;
  market: Market;
  receivers: Receivers;
  pool: SenderPool;
}

let fanout: FanoutCtx | undefined;
async function fanoutDip(f: Fixture): Promise<FanoutCtx> {
  if (fanout) return fanout;
  const rx = await receivers(f);
  const { dip, market } = await startDip(f, 'fanout');
  await registerWebhooks(dip, market, rx.urls, 500);
  fanout = { dip, market, receivers: rx, pool: new SenderPool(dip.url, market.senders, dip.ca.certPem, 4, PRIMARY) };
  // Warm up connections (sender → DIP, DIP → recipients) and the JIT before measuring anything.
  await offer(f, fanout, 500, 1500, true);
  return fanout;
}

const sumOf = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

/** How far behind the DIP may fall (seconds of offered load unanswered or undelivered) before a phase is cut short. */
const GIVE_UP_BEHIND_S = 1.5;

async function offer(f: Fixture, ctx: FanoutCtx, rate: number, durationMs: number, presign: boolean, window?: { fromUs: number; toUs: number }): Promise<LoadResult> {
  const phase = ++f.phase;
  let diskCommitsPerSecond = Number.NaN;
  let clock = { offsetMs: Number.NaN, uncertaintyMs: Number.NaN };
  const loop = await openLoop({
    pool: ctx.pool,
    phase,
    rate,
    durationMs,
    maxPerRequest: MAX_PER_REQUEST,
    tickMs: TICK_MS,
    presign,
    beforeStart: async (capacity) => {
      await ctx.receivers.phase(phase, capacity);
      diskCommitsPerSecond = fsyncProbe();
      clock = await ctx.receivers.clockOffset();
    },
  });
  const t0 = await loop.started;
  if (window) window.fromUs = monoUs();
  const c0 = cpuSnapshot(ctx.dip.pid, ctx.receivers.pid);
  const p0 = await ctx.receivers.progress(phase);
  const windowEnd = t0 + durationMs;
  let c1 = c0;
  let p1 = p0;
  let stoppedEarlyAt: number | null = null;
  // Watch the phase: once the DIP is GIVE_UP_BEHIND_S seconds of load behind (answers or deliveries),
  // it is not keeping up, and carrying on would only build a backlog that spoils the next phase.
  const watch = (async () => {
    while (hostNow() < windowEnd && stoppedEarlyAt === null) {
      await sleep(250);
      const c = loop.counts();
      const p = await ctx.receivers.progress(phase);
      const slowest = Math.min(...p.delivered);
      if (c.sent - c.answered > rate * GIVE_UP_BEHIND_S || c.accepted - slowest > rate * GIVE_UP_BEHIND_S) {
        stoppedEarlyAt = hostNow();
        c1 = cpuSnapshot(ctx.dip.pid, ctx.receivers.pid);
        p1 = p;
        loop.stop();
      }
    }
    if (stoppedEarlyAt === null) {
      c1 = cpuSnapshot(ctx.dip.pid, ctx.receivers.pid);
      p1 = await ctx.receivers.progress(phase);
    }
  })();
  const run = await loop.done;
  await watch;
  if (window) window.toUs = monoUs() - Math.max(0, hostNow() - (stoppedEarlyAt ?? windowEnd)) * 1000;
  const end = stoppedEarlyAt ?? windowEnd;
  let accepted = 0;
  for (let i = 0; i < run.sent; i++) if (run.status[i] === 201) accepted++;
  await ctx.receivers.waitFor(phase, (p) => p.delivered.length > 0 && p.delivered.every((d) => d >= accepted), SETTLE_MS);
  const recv = await ctx.receivers.collect(phase);
  const stats = latencyStats(run, recv, () => true, [0, 1, 2, 3]);
  const p90BySecond: number[] = [];
  for (let lo = t0; lo < end; lo += 1000) {
    p90BySecond.push(latencyStats(run, recv, (i) => run.postStart[i]! >= lo && run.postStart[i]! < lo + 1000, [0, 1, 2, 3]).p90);
  }
  // Rates over the steady part of the window: from a short ramp-in until the window's (or the cut's) end.
  const from = t0 + Math.min(1000, (end - t0) / 4);
  const seconds = (end - from) / 1000;
  let acceptedInWindow = 0;
  for (let i = 0; i < run.sent; i++) if (run.status[i] === 201 && run.answeredAt[i]! > from && run.answeredAt[i]! <= end) acceptedInWindow++;
  let deliveredInWindow = 0;
  let lastDelivery = 0;
  for (const t of recv) {
    if (Number.isNaN(t)) continue;
    if (t > from && t <= end) deliveredInWindow++;
    if (t > lastDelivery) lastDelivery = t;
  }
  const calls = sumOf(p1.calls) - sumOf(p0.calls);
  const callSeconds = (c1.at - c0.at) / 1000;
  const acceptedPerSecond = acceptedInWindow / seconds;
  const deliveriesPerSecond = deliveredInWindow / seconds;
  const tailMs = lastDelivery - run.postStart[run.sent - 1]!;
  const sustained =
    stoppedEarlyAt === null &&
    acceptedPerSecond >= 0.95 * rate &&
    deliveriesPerSecond >= 0.95 * RECIPIENT_COUNT * rate &&
    stats.undelivered === 0 &&
    stats.p99 < 1000 &&
    tailMs < 1000;
  const cpu = cpuBetween(c0, c1);
  const requestsPerSecond = run.requests / ((end - t0) / 1000);
  return {
    offered: rate,
    seconds: round((end - t0) / 1000, 2),
    stoppedEarly: stoppedEarlyAt !== null,
    sent: run.sent,
    accepted,
    refused: run.sent - accepted,
    acceptedPerSecond: round(acceptedPerSecond, 0),
    deliveriesPerSecond: round(deliveriesPerSecond, 0),
    requestsPerSecond: round(requestsPerSecond, 0),
    dipCpuUsPerRequest: round((cpu.dipCores * 1e6) / Math.max(1, requestsPerSecond), 0),
    webhookCallsPerSecond: round(calls / callSeconds, 0),
    messagesPerCall: round(calls > 0 ? (sumOf(p1.messagesSeen) - sumOf(p0.messagesSeen)) / calls : Number.NaN, 1),
    tailMs: round(tailMs, 0),
    ...stats,
    generatorMaxLagMs: round(run.maxLagMs, 1),
    maxInFlight: run.maxInFlight,
    sustained,
    statuses: run.statuses,
    resets: run.resets,
    diskCommitsPerSecond,
    dipCpuUsPerMessage: round((cpu.dipCores * 1e6) / Math.max(1, acceptedPerSecond), 0),
    p90BySecond,
    clockOffsetMs: round(clock.offsetMs, 2),
    clockUncertaintyMs: round(clock.uncertaintyMs, 2),
    cpu,
    errors: run.errors,
  };
}

/** A phase the neighbours spoiled: they took over half a core, or the shared disk managed under 1,000 durable commits/s. */
const contaminated = (r: LoadResult): boolean => r.cpu.otherCores > 0.5 || r.diskCommitsPerSecond < 1000;

/**
 * Offers a load; on the full run, a level that fell behind while contaminated is measured once more and
 * the second measurement is reported (the first is kept, in summary, under `firstAttempt`).
 */
async function offerLevel(f: Fixture, ctx: FanoutCtx, rate: number, durationMs: number): Promise<LoadResult> {
  const r = await offer(f, ctx, rate, durationMs, true);
  if (QUICK || r.sustained || !contaminated(r)) return r;
  log(`  ${rate} msg/s fell behind while neighbours used ${r.cpu.otherCores} cores and the disk did ${r.diskCommitsPerSecond} commits/s: measuring again`);
  await sleep(2000);
  const again = await offer(f, ctx, rate, durationMs, true);
  const { p50, p90, p99, max, acceptedPerSecond, deliveriesPerSecond, diskCommitsPerSecond, cpu, sustained } = r;
  return { ...again, firstAttempt: { p50, p90, p99, max, acceptedPerSecond, deliveriesPerSecond, diskCommitsPerSecond, otherCores: cpu.otherCores, sustained } };
}

/** The DIP's threads at a level, user + kernel cores, and the receivers' and generator's kernel share. */
const threadLine = (c: CpuUse): string =>
  `DIP threads (user + kernel cores): ${c.dipThreads
    .filter((t) => t.userCores + t.systemCores >= 0.005)
    .map((t) => `${t.group} ${t.userCores} + ${t.systemCores}`)
    .join('; ')}; receivers' kernel ${c.receiverSystemCores}, generator's kernel ${c.generatorSystemCores}`;

const loadHeaders = ['offered msg/s', 'accepted msg/s', 'deliveries/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'req/s', 'calls/s', 'msgs/call', 'DIP cores', 'DIP CPU µs/msg', 'of it kernel µs/msg', 'DIP CPU µs/req', 'recv cores', 'gen cores', 'others cores', 'disk commits/s', 'kept up'];
const loadRow = (r: LoadResult) => [
  r.offered, r.acceptedPerSecond, r.deliveriesPerSecond, r.p50, r.p90, r.p99, r.max, r.requestsPerSecond, r.webhookCallsPerSecond, r.messagesPerCall, r.cpu.dipCores, r.dipCpuUsPerMessage, round((r.cpu.dipSystemCores * 1e6) / Math.max(1, r.acceptedPerSecond), 0), r.dipCpuUsPerRequest, r.cpu.receiverCores, r.cpu.generatorCores, r.cpu.otherCores, r.diskCommitsPerSecond, r.sustained ? 'yes' : r.stoppedEarly ? 'NO (cut short)' : 'NO',
];

async function latencyBench(f: Fixture): Promise<LoadResult[]> {
  const ctx = await fanoutDip(f);
  const out: LoadResult[] = [];
  for (const rate of S.latencyRates) {
    log(`latency: ${rate} msg/s offered for ${S.latencyMs / 1000} s, open loop, 4 recipients`);
    const r = await offerLevel(f, ctx, rate, S.latencyMs);
    out.push(r);
    log(`  p90 ms by second: ${r.p90BySecond.join(', ')}; receivers' clock ${r.clockOffsetMs} ± ${r.clockUncertaintyMs} ms from the generator's`);
    log(`  ${threadLine(r.cpu)}`);
    emit('latency', r as unknown as Record<string, unknown>, table(loadHeaders, [loadRow(r)]));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// (c) Highest sustained throughput with the fan-out.

interface RampResult {
  steps: LoadResult[];
  maxSustainedRate: number | null;
  maxSustainedDeliveriesPerSecond: number | null;
  firstNotSustained: number | null;
}

async function rampBench(f: Fixture, fromLatency: LoadResult[]): Promise<RampResult> {
  const ctx = await fanoutDip(f);
  const steps: LoadResult[] = [];
  const all = (): LoadResult[] => [...fromLatency, ...steps];
  // Highest load kept up with, and lowest load above it that was not.
  let good = Math.max(0, ...all().filter((r) => r.sustained).map((r) => r.offered));
  let bad = Math.min(Number.POSITIVE_INFINITY, ...all().filter((r) => !r.sustained && r.offered > good).map((r) => r.offered));
  const step = async (rate: number): Promise<boolean> => {
    log(`ramp: ${rate} msg/s offered for ${S.rampMs / 1000} s`);
    const r = await offerLevel(f, ctx, rate, S.rampMs);
    steps.push(r);
    log(`  ${threadLine(r.cpu)}`);
    emit('ramp-step', r as unknown as Record<string, unknown>, table(loadHeaders, [loadRow(r)]));
    return r.sustained;
  };
  const roundTo = (v: number, q: number) => Math.max(q, Math.round(v / q) * q);
  // Climb by half again each step until the DIP falls behind…
  while (bad === Number.POSITIVE_INFINITY && steps.length < S.rampMaxSteps) {
    const next = good === 0 ? 250 : roundTo(good * 1.5, 250);
    if (await step(next)) good = next;
    else bad = next;
  }
  // …then bisect between the last load it kept up with and the first it did not.
  for (let i = 0; i < S.rampBisections && bad !== Number.POSITIVE_INFINITY; i++) {
    const mid = roundTo((good + bad) / 2, 50);
    if (mid <= good || mid >= bad || bad - good <= Math.max(100, good * 0.08)) break;
    if (await step(mid)) good = mid;
    else bad = mid;
  }
  const best = all().find((r) => r.sustained && r.offered === good);
  const result = { steps, maxSustainedRate: best?.offered ?? null, maxSustainedDeliveriesPerSecond: best?.deliveriesPerSecond ?? null, firstNotSustained: Number.isFinite(bad) ? bad : null };
  emit(
    'ramp',
    { maxSustainedRate: result.maxSustainedRate, maxSustainedDeliveriesPerSecond: result.maxSustainedDeliveriesPerSecond, firstNotSustained: result.firstNotSustained },
    `highest sustained offered load with 4 recipients: ${fmt(result.maxSustainedRate)} msg/s (${fmt(result.maxSustainedDeliveriesPerSecond)} deliveries/s); fell behind at ${fmt(result.firstNotSustained)} msg/s`,
  );
  return result;
}

// ---------------------------------------------------------------------------------------------
// (d) Drain after a recipient outage.

interface DrainResult {
  rate: number;
  outageSeconds: number;
  backlog: number;
  /** From the recipient answering 200 again to the first delivery (the DIP's retry backoff). */
  retryWaitMs: number;
  /** From recovery until the last backlogged message arrived. */
  drainMs: number;
  /** Backlog messages per second from the first delivery after recovery to the last backlogged one. */
  drainRate: number;
  /** From recovery until the recipient is back to under a second behind (backlog and the traffic meanwhile). */
  catchUpMs: number;
  /** Messages per second delivered to it from the first delivery after recovery until caught up. */
  catchUpDeliveryRate: number;
  /** Deliveries per call to the recovering recipient while draining. */
  refusedCalls: number;
  diskCommitsPerSecond: number;
  othersDuringOutage: LatencyStats;
  othersDuringDrain: LatencyStats;
  recoveredAfterDrain: LatencyStats;
  cpuDuringDrain: CpuUse;
  generatorMaxLagMs: number;
}

const drainHeaders = ['offered msg/s', 'outage s', 'backlog msgs', '503 calls', 'retry wait ms', 'backlog drained ms', 'drain msg/s', 'caught up ms', 'DIP cores', 'others cores', 'disk commits/s'];
const drainRow = (d: DrainResult) => [d.rate, d.outageSeconds, d.backlog, d.refusedCalls, d.retryWaitMs, d.drainMs, d.drainRate, d.catchUpMs, d.cpuDuringDrain.dipCores, d.cpuDuringDrain.otherCores, d.diskCommitsPerSecond];

async function drainBench(f: Fixture, ramp: RampResult | undefined): Promise<DrainResult> {
  const ctx = await fanoutDip(f);
  // The live load must leave the DIP room to drain: if it sustains less than 1.5× the planned rate, halve what it sustains.
  const top = ramp?.maxSustainedRate ?? null;
  // --drain-rate: a rate the DIP can sustain on a machine busy with other work (the drain is about fairness, not capacity).
  const planned = flags['drain-rate'] ? Number(flags['drain-rate']) : S.drainRate;
  const rate = top !== null && top < 1.5 * planned ? Math.max(50, Math.round(top / 2 / 50) * 50) : planned;
  const OUT = 3; // LSS
  const phase = ++f.phase;
  let diskCommitsPerSecond = Number.NaN;
  log(`drain: ${RECIPIENTS[OUT].role} answers 503 for ${S.drainOutageMs / 1000} s at ${rate} msg/s, then recovers`);
  await ctx.receivers.setStatus(OUT, 503);
  const loop = await openLoop({
    pool: ctx.pool,
    phase,
    rate: rate,
    durationMs: S.drainOutageMs + S.drainMaxMs,
    maxPerRequest: MAX_PER_REQUEST,
    tickMs: TICK_MS,
    presign: false,
    beforeStart: async (capacity) => {
      await ctx.receivers.phase(phase, capacity);
      diskCommitsPerSecond = fsyncProbe();
    },
  });
  const t0 = await loop.started;
  await sleep(Math.max(0, t0 + S.drainOutageMs - hostNow()));
  const refusedBefore = await ctx.receivers.progress(phase);
  await ctx.receivers.setStatus(OUT, 200);
  const tRecover = hostNow();
  const c0 = cpuSnapshot(ctx.dip.pid, ctx.receivers.pid);
  const backlogEstimate = Math.floor((rate * (tRecover - t0)) / 1000);
  log(`drain: recipient back; ~${backlogEstimate} messages queued for it`);
  const deadline = tRecover + S.drainMaxMs - 3000;
  const waited = await ctx.receivers.waitFor(phase, (p) => (p.delivered[OUT] ?? 0) >= backlogEstimate, deadline - hostNow(), 100);
  const c1 = cpuSnapshot(ctx.dip.pid, ctx.receivers.pid);
  if (!waited.ok) log('drain: the backlog did not drain within the time allowed');
  else log('drain: backlog delivered; waiting for the recipient to catch up with the live traffic');
  // Caught up: the recipient is less than half a second of traffic behind what has been accepted.
  await ctx.receivers.waitFor(phase, (p) => (p.delivered[OUT] ?? 0) >= loop.counts().accepted - rate / 2, Math.max(0, deadline - hostNow()), 100);
  await sleep(2000); // some live traffic after catching up, to see the recipient back to normal
  loop.stop();
  const run = await loop.done;
  let accepted = 0;
  for (let i = 0; i < run.sent; i++) if (run.status[i] === 201) accepted++;
  await ctx.receivers.waitFor(phase, (p) => p.delivered.every((d) => d >= accepted), SETTLE_MS);
  const recv = await ctx.receivers.collect(phase);

  let backlog = 0;
  let tFirst = Number.POSITIVE_INFINITY;
  let tDrained = 0;
  for (let i = 0; i < run.sent; i++) {
    const t = recv[i * RECIPIENT_COUNT + OUT]!;
    if (!Number.isNaN(t) && t < tFirst) tFirst = t;
    if (run.status[i] === 201 && run.postStart[i]! <= tRecover) {
      backlog++;
      tDrained = Math.max(tDrained, Number.isNaN(t) ? Number.POSITIVE_INFINITY : t);
    }
  }
  // Caught up: from the last message that reached the recipient a second or more after it was sent.
  let tCaughtUp = tRecover;
  for (let i = 0; i < run.sent; i++) {
    if (run.status[i] !== 201) continue;
    const t = recv[i * RECIPIENT_COUNT + OUT]!;
    if (Number.isNaN(t) || t - run.postStart[i]! >= 1000) tCaughtUp = Number.isNaN(t) ? Number.POSITIVE_INFINITY : Math.max(tCaughtUp, t);
  }
  let deliveredWhileCatchingUp = 0;
  for (let i = 0; i < run.sent; i++) {
    const t = recv[i * RECIPIENT_COUNT + OUT]!;
    if (!Number.isNaN(t) && t <= tCaughtUp) deliveredWhileCatchingUp++;
  }
  const others = [0, 1, 2];
  const result: DrainResult = {
    rate,
    outageSeconds: S.drainOutageMs / 1000,
    backlog,
    retryWaitMs: round(tFirst - tRecover, 0),
    drainMs: round(tDrained - tRecover, 0),
    drainRate: round(backlog / ((tDrained - tFirst) / 1000), 0),
    catchUpMs: round(tCaughtUp - tRecover, 0),
    catchUpDeliveryRate: round(deliveredWhileCatchingUp / ((tCaughtUp - tFirst) / 1000), 0),
    refusedCalls: refusedBefore.refusedCalls[OUT] ?? 0,
    diskCommitsPerSecond,
    othersDuringOutage: latencyStats(run, recv, (i) => run.postStart[i]! <= tRecover, others),
    othersDuringDrain: latencyStats(run, recv, (i) => run.postStart[i]! > tRecover && run.postStart[i]! <= tCaughtUp, others),
    recoveredAfterDrain: latencyStats(run, recv, (i) => run.postStart[i]! > tCaughtUp, [OUT]),
    cpuDuringDrain: cpuBetween(c0, c1),
    generatorMaxLagMs: round(run.maxLagMs, 1),
  };
  emit('drain', result as unknown as Record<string, unknown>, [
    table(
      drainHeaders,
      [drainRow(result)],
    ),
    table(
      ['latency of', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'],
      [
        ['other 3 recipients, during outage', result.othersDuringOutage.p50, result.othersDuringOutage.p90, result.othersDuringOutage.p99, result.othersDuringOutage.max],
        ['other 3 recipients, while it catches up', result.othersDuringDrain.p50, result.othersDuringDrain.p90, result.othersDuringDrain.p99, result.othersDuringDrain.max],
        ['recovered recipient, once caught up', result.recoveredAfterDrain.p50, result.recoveredAfterDrain.p90, result.recoveredAfterDrain.p99, result.recoveredAfterDrain.max],
      ],
    ),
  ].join('\n'));
  return result;
}

// ---------------------------------------------------------------------------------------------
// Profile of the DIP process at saturation (closed loop, batch 10, fan-out to 4 recipients live).

interface ProfileResult {
  load: IngestResult & { deliveriesPerSecond: number; webhookCallsPerSecond: number; drainAfterMs: number };
  summary: ProfileSummary | null;
  /** The same DIP at a light open-loop load (LIGHT_RATE msg/s, fan-out live): where a core goes when it is not needed. */
  light: { load: LoadResult; summary: ProfileSummary | null } | null;
  profileFile: string | null;
}

const LIGHT_RATE = 500;

async function profileBench(f: Fixture): Promise<ProfileResult> {
  const rx = await receivers(f);
  const { dip, market } = await startDip(f, 'profile', PROFILE_DIR);
  let profileFile: string | undefined;
  let load: ProfileResult['load'];
  const window = { fromUs: 0, toUs: 0 };
  const lightWindow = { fromUs: 0, toUs: 0 };
  let lightLoad: LoadResult | undefined;
  try {
    await registerWebhooks(dip, market, rx.urls, 500);
    log(`profile: closed loop, batch 10, ${S.ingestConcurrency} concurrent, deliveries to 4 recipients live, ${S.profileMs / 1000} s`);
    let measured = 0;
    let p0: ReceiverProgress | undefined;
    let t0 = 0;
    let t1 = 0;
    const r = await closedLoopAt(f, dip, market, 10, S.profileMs, async (phase, capacity) => {
      await rx.phase(phase, capacity);
      if (capacity < 1_000_000) {
        // The measured phase is about to start: let the pilot's deliveries finish first.
        await sleep(500);
        measured = phase;
        p0 = await rx.progress(phase);
        t0 = hostNow();
        window.fromUs = monoUs();
      }
    });
    const p1 = await rx.progress(measured);
    t1 = hostNow();
    window.toUs = monoUs();
    const settled = await rx.waitFor(measured, (p) => p.delivered.every((d) => d >= r.acceptedMessages), SETTLE_MS);
    const drainAfterMs = hostNow() - t1;
    void settled;
    await rx.collect(r.pilotPhase);
    await rx.collect(measured);
    const seconds = (t1 - t0) / 1000;
    const { phase: _p, pilotPhase: _pp, window: _w, ...rest } = r;
    load = {
      ...rest,
      deliveriesPerSecond: round((sumOf(p1.delivered) - sumOf(p0?.delivered ?? [])) / seconds, 0),
      webhookCallsPerSecond: round((sumOf(p1.calls) - sumOf(p0?.calls ?? [])) / seconds, 0),
      drainAfterMs: round(drainAfterMs, 0),
    };
    log(`profile: open loop at ${LIGHT_RATE} msg/s, fan-out live, ${S.profileLightMs / 1000} s`);
    const pool = new SenderPool(dip.url, market.senders, dip.ca.certPem, 4, PRIMARY);
    try {
      lightLoad = await offer(f, { dip, market, receivers: rx, pool }, LIGHT_RATE, S.profileLightMs, true, lightWindow);
    } finally {
      await pool.close();
    }
  } finally {
    profileFile = await stopDip(f, dip);
  }
  // Only the measured window: start-up (validator compilation) and the pilot are left out.
  const summary = profileFile ? summariseProfile(profileFile, 25, window) : null;
  const text = summary ? formatSummary(summary, 20) : 'no profile was written';
  if (summary) writeFileSync(join(RESULTS_DIR, 'profile-summary.txt'), `${text}\n`);
  const threads = busyThreads(dip, window, 20);
  if (threads.length) writeFileSync(join(RESULTS_DIR, 'profile-threads-summary.txt'), `${threads.map((t) => `=== ${t}`).join('\n\n')}\n`);
  const lightSummary = profileFile && lightLoad ? summariseProfile(profileFile, 25, lightWindow) : null;
  const light = lightLoad ? { load: lightLoad, summary: lightSummary } : null;
  if (lightSummary) writeFileSync(join(RESULTS_DIR, 'profile-light-summary.txt'), `${formatSummary(lightSummary, 20)}\n`);
  emit('profile', {
    load,
    profileFile: profileFile ? relative(REPO_ROOT, profileFile) : null,
    topSelf: summary?.topSelf.slice(0, 10),
    byCategory: summary?.byCategory,
    light: light ? { offered: LIGHT_RATE, dipCores: light.load.cpu.dipCores, webhookCallsPerSecond: light.load.webhookCallsPerSecond, busyPercent: light.summary?.busyPercent, topSelf: light.summary?.topSelf.slice(0, 10) } : null,
  }, [
    table(
      ['batch', 'accepted msg/s', 'deliveries/s', 'webhook calls/s', 'DIP cores', 'recv cores', 'gen cores', 'others cores', 'disk commits/s', 'backlog drained after'],
      [[load.batch, load.messagesPerSecond, load.deliveriesPerSecond, load.webhookCallsPerSecond, load.cpu.dipCores, load.cpu.receiverCores, load.cpu.generatorCores, load.cpu.otherCores, load.diskCommitsPerSecond, `${fmt(load.drainAfterMs, 0)} ms`]],
    ),
    text,
    ...(light
      ? [
          '',
          `light load, ${LIGHT_RATE} msg/s open loop (same DIP):`,
          table(loadHeaders, [loadRow(light.load)]),
          light.summary ? `main thread ${light.summary.busyPercent}% busy; top self time: ${light.summary.topSelf.slice(0, 6).map((x) => `${x.name} ${x.percent}%`).join(', ')}` : '',
        ]
      : []),
  ].join('\n'));
  return { load, summary, light, profileFile: profileFile ? relative(REPO_ROOT, profileFile) : null };
}

// ---------------------------------------------------------------------------------------------
// (e) A compressed national day: --only day [--day-messages N] (default 3,200,000: one tenth of 32 M).

interface DayResult {
  workers: string;
  messages: number;
  accepted: number;
  /** Messages refused for good (not 503/429, which are sent again as an adapter would). */
  refused: number;
  /** Requests answered 503/429 and sent again, by status. */
  retried: Record<string, number>;
  batch: number;
  concurrency: number;
  /** The generator held back while the slowest recipient was this many messages behind what was accepted. */
  maxLead: number;
  seconds: number;
  acceptedPerSecond: number;
  deliveriesPerSecond: number;
  /** From the last 201 to the last delivery. */
  tailSeconds: number;
  /** The day (32 M IF-021, 4 recipients each) at this rate, hours. */
  nationalDayHours: number;
  dipCpuUsPerMessage: number;
  /** What the day added to the DIP's storage (SQLite files or PostgreSQL database), per accepted message. */
  storedBytesPerMessage: number;
  cpu: CpuUse;
  latency: LatencyStats;
  /** Per recipient: delivered once each, at queue positions 1…accepted with no gap, in acceptance order. */
  check: { undelivered: number; duplicateDeliveries: number; positionsNotContiguous: number; repeatsAtAnotherPosition: number; orderViolations: number; strays: number; badSignatures: number; ok: boolean };
  loadBefore: string;
  loadAfter: string;
  errors: string[];
}

const loadAverage = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/**
 * Per recipient, in queue order: positions 1…n with no gap, and no message handed out ahead of one that
 * was acknowledged (201) before its own POST started (a sender's later batch never overtakes its earlier
 * one). O(n log n): walking positions downwards, the earliest acknowledgement among the later positions
 * must come after this message's POST started.
 */
function orderCheck(accepted: number[], seq: Int32Array, r: number, postStart: Float64Array, answeredAt: Float64Array): { gaps: number; violations: number } {
  const byPos = accepted.map((i) => ({ i, pos: seq[i * RECIPIENT_COUNT + r]! })).filter((x) => x.pos > 0).sort((a, b) => a.pos - b.pos);
  let gaps = 0;
  byPos.forEach((x, k) => {
    if (x.pos !== k + 1) gaps++;
  });
  let violations = 0;
  let earliestLaterAnswer = Number.POSITIVE_INFINITY;
  for (let k = byPos.length - 1; k >= 0; k--) {
    const i = byPos[k]!.i;
    if (earliestLaterAnswer < postStart[i]!) violations++;
    earliestLaterAnswer = Math.min(earliestLaterAnswer, answeredAt[i]!);
  }
  return { gaps, violations };
}

async function dayBench(f: Fixture): Promise<DayResult> {
  const messages = DAY.messages;
  const rx = await receivers(f);
  const { dip, market } = await startDip(f, 'day');
  try {
    await registerWebhooks(dip, market, rx.urls, 500);
    const pool = new SenderPool(dip.url, market.senders, dip.ca.certPem, 2, PRIMARY);
    const phase = ++f.phase;
    await rx.phase(phase, messages);
    const postStart = new Float64Array(messages).fill(Number.NaN);
    const answeredAt = new Float64Array(messages).fill(Number.NaN);
    const status = new Uint16Array(messages);
    const retried: Record<string, number> = {};
    const errors: string[] = [];
    let next = 0;
    let accepted = 0;
    let refused = 0;
    let slowest = 0;
    let lastAccept = 0;
    let sending = true;
    const loadBefore = loadAverage();
    const bytesBefore = await storedBytes(dip);
    log(`day: ${fmt(messages)} IF-021 × ${RECIPIENT_COUNT} recipients, batch ${DAY.batch}, ${DAY.concurrency} in flight, lead ≤ ${fmt(DAY.maxLead)}; load ${loadBefore}`);
    // The slowest recipient's progress, for the lead limit and the log.
    const watch = (async () => {
      let lastLog = hostNow();
      while (sending) {
        await sleep(200);
        slowest = Math.min(...(await rx.progress(phase)).delivered);
        if (hostNow() - lastLog > 15_000) {
          lastLog = hostNow();
          log(`day: ${fmt(accepted)} accepted, slowest recipient at ${fmt(slowest)}`);
        }
      }
    })();
    const c0 = cpuSnapshot(dip.pid, rx.pid);
    const t0 = hostNow();
    await Promise.all(
      Array.from({ length: DAY.concurrency }, async () => {
        while (next < messages) {
          const first = next;
          const count = Math.min(DAY.batch, messages - first);
          next += count;
          while (accepted - slowest > DAY.maxLead) await sleep(5);
          for (;;) {
            // Signed for each try: a refused request's signature is spent (replay guard).
            const p = await pool.prepare(phase, first, count);
            const start = hostNow();
            const a = await pool.post(p);
            if (a.status === 503 || a.status === 429) {
              retried[a.status] = (retried[a.status] ?? 0) + 1;
              await sleep(200);
              continue;
            }
            postStart.fill(start, first, first + count);
            answeredAt.fill(hostNow(), first, first + count);
            status.fill(a.status, first, first + count);
            if (a.status === 201) {
              accepted += count;
              lastAccept = hostNow();
            } else {
              refused += count;
              if (errors.length < 5) errors.push(`${a.status}: ${a.text.slice(0, 300)}`);
            }
            break;
          }
        }
      }),
    );
    const settled = await rx.waitFor(phase, (p) => p.delivered.every((d) => d >= accepted), Math.max(120_000, DAY.maxLead * 10));
    const end = hostNow();
    const c1 = cpuSnapshot(dip.pid, rx.pid);
    sending = false;
    await watch;
    await pool.close();
    const { recv, seq, seqMismatches } = await rx.collectWithPositions(phase);
    let lastDelivery = 0;
    for (const t of recv) if (!Number.isNaN(t) && t > lastDelivery) lastDelivery = t;
    const latency = latencyStats({ sent: messages, status, postStart, answeredAt }, recv, () => true, [0, 1, 2, 3]);
    const acceptedIdx: number[] = [];
    for (let i = 0; i < messages; i++) if (status[i] === 201) acceptedIdx.push(i);
    let gaps = 0;
    let violations = 0;
    for (let r = 0; r < RECIPIENT_COUNT; r++) {
      const o = orderCheck(acceptedIdx, seq, r, postStart, answeredAt);
      gaps += o.gaps;
      violations += o.violations;
    }
    const p = settled.progress;
    const seconds = (end - t0) / 1000;
    const check = {
      undelivered: latency.undelivered,
      duplicateDeliveries: p.duplicates,
      positionsNotContiguous: gaps,
      repeatsAtAnotherPosition: seqMismatches,
      orderViolations: violations,
      strays: p.strays,
      badSignatures: p.badSignatures,
      ok: false,
    };
    // Repeats at the same position are allowed (a call retried); anything else is a defect.
    check.ok = settled.ok && check.undelivered === 0 && gaps === 0 && seqMismatches === 0 && violations === 0 && check.badSignatures === 0;
    const acceptedPerSecond = accepted / seconds;
    const storedBytesPerMessage = round(((await storedBytes(dip)) - bytesBefore) / Math.max(1, accepted), 0);
    return {
      workers: DAY.workers ?? 'default (cores present)',
      messages,
      accepted,
      refused,
      retried,
      batch: DAY.batch,
      concurrency: DAY.concurrency,
      maxLead: DAY.maxLead,
      seconds: round(seconds, 1),
      acceptedPerSecond: round(acceptedPerSecond, 0),
      deliveriesPerSecond: round((accepted * RECIPIENT_COUNT) / seconds, 0),
      tailSeconds: round((lastDelivery - lastAccept) / 1000, 1),
      nationalDayHours: round(32_000_000 / acceptedPerSecond / 3600, 2),
      dipCpuUsPerMessage: round(((c1.dip - c0.dip) * 1e6) / Math.max(1, accepted), 0),
      storedBytesPerMessage,
      cpu: cpuBetween(c0, c1),
      latency,
      check,
      loadBefore,
      loadAfter: loadAverage(),
      errors,
    };
  } finally {
    await stopDip(f, dip);
  }
}

const dayHeaders = ['workers', 'messages', 'accepted', 'seconds', 'accepted msg/s', 'deliveries/s', 'DIP CPU µs/msg (all processes)', 'stored bytes/msg', 'DIP cores', 'gen cores', 'recv cores', 'others cores', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'every delivery checked', 'load before / after'];
const dayRow = (d: DayResult) => [
  d.workers, d.messages, d.accepted, d.seconds, d.acceptedPerSecond, d.deliveriesPerSecond, d.dipCpuUsPerMessage, d.storedBytesPerMessage, d.cpu.dipCores, d.cpu.generatorCores, d.cpu.receiverCores, d.cpu.otherCores,
  d.latency.p50, d.latency.p90, d.latency.p99, d.latency.max, d.check.ok ? 'ok' : `FAILED ${JSON.stringify(d.check)}`, `${d.loadBefore} / ${d.loadAfter}`,
];

function dayRatios(raw: RawResults | undefined, day: DayResult): Record<string, { value: number; of: string }> {
  const out: Record<string, { value: number; of: string }> = {};
  const r = (value: number, of: string) => ({ value: round(value, 3), of });
  out.dayVsTarget = r(day.acceptedPerSecond / 10_000, 'day: accepted msg/s ÷ the issue target 10,000 msg/s');
  out.dayCpuVsTarget = r(day.dipCpuUsPerMessage / 150, 'day: DIP CPU µs per message (all processes) ÷ the issue target 150 µs');
  const s100 = raw?.sqlite.find((s) => s.rowBytes > 1100 && s.rowsPerTransaction === 100);
  if (s100) out.dayVsSqliteRows = r(day.acceptedPerSecond / s100.rowsPerSecond, 'day: accepted msg/s ÷ SQLite rows/s in 100-row transactions (IF-021-size rows)');
  const echo = raw?.echo[1];
  if (echo) out.dayRequestsVsEcho = r(day.acceptedPerSecond / day.batch / echo.requestsPerSecond, `day: requests/s (batch ${day.batch}) ÷ bare mTLS echo requests/s`);
  if (raw) out.dayCallsVsRsa = r(day.deliveriesPerSecond / 500 / raw.rsa.asyncSignsPerSecond, 'day: webhook calls/s at ≤ 500 messages per call (a lower bound) ÷ RSA-2048 signs/s');
  return out;
}

// ---------------------------------------------------------------------------------------------

function ratios(raw: RawResults | undefined, ingest: IngestResult[] | undefined, ramp: RampResult | undefined, latency: LoadResult[] | undefined, profile: ProfileResult | undefined): Record<string, { value: number; of: string }> {
  const out: Record<string, { value: number; of: string }> = {};
  if (!raw) return out;
  const sqlite = (bytes: 'kb' | 'if021', perTx: number) =>
    raw.sqlite.filter((s) => (bytes === 'kb' ? s.rowBytes <= 1100 : s.rowBytes > 1100) && s.rowsPerTransaction === perTx)[0];
  const echoIf021 = raw.echo[1];
  const echoKb = raw.echo[0];
  const b1 = ingest?.find((r) => r.batch === 1);
  const best = ingest ? [...ingest].sort((a, b) => b.messagesPerSecond - a.messagesPerSecond)[0] : undefined;
  const r = (value: number, of: string) => ({ value: round(value, 3), of });
  if (b1 && echoIf021) out.ingestBatch1RequestsVsEcho = r(b1.requestsPerSecond / echoIf021.requestsPerSecond, `ingest batch-1 requests/s ÷ bare mTLS echo requests/s (${echoIf021.bodyBytes} B bodies)`);
  if (b1 && echoKb) out.ingestBatch1RequestsVsEcho1KB = r(b1.requestsPerSecond / echoKb.requestsPerSecond, 'ingest batch-1 requests/s ÷ bare mTLS echo requests/s (1 KB bodies)');
  const s1 = sqlite('if021', 1);
  const s100 = sqlite('if021', 100);
  if (b1 && s1) out.ingestBatch1VsSqliteCommits = r(b1.messagesPerSecond / s1.rowsPerSecond, 'ingest batch-1 msg/s ÷ SQLite 1-row durable commits/s (IF-021-size rows)');
  if (best && s100) out.ingestBestVsSqliteRows = r(best.messagesPerSecond / s100.rowsPerSecond, `best ingest msg/s (batch ${best.batch}) ÷ SQLite rows/s in 100-row transactions (IF-021-size rows)`);
  if (b1) out.ingestBatch1VsRsaSign = r(b1.requestsPerSecond / raw.rsa.asyncSignsPerSecond, 'ingest batch-1 requests/s ÷ RSA-2048 signs/s on all cores (each request costs its sender one signature)');
  const top = ramp?.maxSustainedRate ?? null;
  if (top !== null && s100) out.sustainedFanoutVsSqliteRows = r(top / s100.rowsPerSecond, 'highest sustained msg/s with 4 recipients ÷ SQLite rows/s in 100-row transactions');
  const sustainedRun = [...(latency ?? []), ...(ramp?.steps ?? [])].filter((x) => x.sustained).sort((a, b) => b.offered - a.offered)[0];
  if (sustainedRun) out.sustainedWebhookCallsVsRsaSign = r(sustainedRun.webhookCallsPerSecond / raw.rsa.asyncSignsPerSecond, 'webhook calls/s at the highest sustained load ÷ RSA-2048 signs/s (the DIP signs every call)');
  if (profile) out.saturatedFanoutVsSqliteRows = r(profile.load.messagesPerSecond / (s100?.rowsPerSecond ?? Number.NaN), 'closed-loop batch-10 msg/s with live fan-out ÷ SQLite rows/s in 100-row transactions');
  return out;
}

function gitInfo(): Record<string, string> {
  try {
    const head = execSync('git rev-parse --short HEAD', { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    const dirty = execSync('git status --porcelain -- src', { cwd: REPO_ROOT, encoding: 'utf8' }).trim().split('\n').filter(Boolean).length;
    return { gitHead: head, srcUncommittedFiles: String(dirty) };
  } catch {
    return {};
  }
}

function markdownReport(results: Record<string, unknown>): string {
  const raw = results.raw as RawResults | undefined;
  const ingest = results.ingest as IngestResult[] | undefined;
  const latency = results.latency as LoadResult[] | undefined;
  const ramp = results.ramp as RampResult | undefined;
  const drain = results.drain as DrainResult | undefined;
  const profile = results.profile as ProfileResult | undefined;
  const ratio = results.ratios as Record<string, { value: number; of: string }>;
  const md: string[] = [`<!-- generated by bench/run.ts ${QUICK ? '--quick ' : ''}at ${String(results.generatedAt)} -->`];
  if (raw) {
    md.push('### Raw limits', '', table(['SQLite row bytes', 'rows/transaction', 'rows/s', 'commits/s', 'MB/s'], raw.sqlite.map((s) => [s.rowBytes, s.rowsPerTransaction, s.rowsPerSecond, s.transactionsPerSecond, s.mbPerSecond])), '');
    md.push(table(['mTLS echo body bytes', 'requests/s', 'p50 ms', 'server cores', 'client cores'], raw.echo.map((e) => [e.bodyBytes, e.requestsPerSecond, e.p50Ms, e.serverCores, e.clientCores])), '');
    md.push(table(['RSA-2048 async sign/s (all cores)', 'sync sign/s (1 thread)', 'sync verify/s (1 thread)'], [[raw.rsa.asyncSignsPerSecond, raw.rsa.syncSignsPerSecond, raw.rsa.syncVerifiesPerSecond]]), '');
    md.push(...clusterRawTables(raw), '');
  }
  if (ingest) {
    md.push('### (a) Ingest, closed loop, no webhooks registered (nothing delivered)', '', table(ingestHeaders, ingest.map(ingestRow)), '');
    const ingestProfiles = results.ingestProfiles as IngestBenchResult['profiles'] | undefined;
    for (const p of ingestProfiles ?? []) {
      md.push(`Ingest batch ${p.batch}, DIP main thread (${p.summary.busyPercent}% busy), top self time:`, '', table(['self %', 'function', 'where'], p.summary.topSelf.slice(0, 8).map((x) => [x.percent, x.name, x.where])), '');
    }
  }
  if (latency || ramp) {
    const rows = [...(latency ?? []), ...(ramp?.steps ?? [])];
    md.push('### (b, c) Open loop, 4 recipients per message', '', table(loadHeaders, rows.map(loadRow)), '');
    if (ramp) md.push(`Highest sustained: **${fmt(ramp.maxSustainedRate)} msg/s** accepted, **${fmt(ramp.maxSustainedDeliveriesPerSecond)} deliveries/s**; fell behind at ${fmt(ramp.firstNotSustained)} msg/s.`, '');
  }
  if (drain) {
    md.push('### (d) Drain after an outage', '', table(drainHeaders, [drainRow(drain)]), '');
    md.push(table(['latency of', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'], [
      ['other 3 recipients, during outage', drain.othersDuringOutage.p50, drain.othersDuringOutage.p90, drain.othersDuringOutage.p99, drain.othersDuringOutage.max],
      ['other 3 recipients, while it catches up', drain.othersDuringDrain.p50, drain.othersDuringDrain.p90, drain.othersDuringDrain.p99, drain.othersDuringDrain.max],
      ['recovered recipient, once caught up', drain.recoveredAfterDrain.p50, drain.recoveredAfterDrain.p90, drain.recoveredAfterDrain.p99, drain.recoveredAfterDrain.max],
    ]), '');
  }
  if (profile) {
    md.push('### Profile load (closed loop, batch 10, live fan-out, under --cpu-prof)', '', table(['accepted msg/s', 'deliveries/s', 'webhook calls/s', 'DIP cores', 'receiver cores', 'generator cores', 'others cores', 'disk commits/s'], [[profile.load.messagesPerSecond, profile.load.deliveriesPerSecond, profile.load.webhookCallsPerSecond, profile.load.cpu.dipCores, profile.load.cpu.receiverCores, profile.load.cpu.generatorCores, profile.load.cpu.otherCores, profile.load.diskCommitsPerSecond]]), '');
    if (profile.summary) md.push('```', formatSummary(profile.summary, 20), '```', '');
    if (profile.light) {
      md.push(`Same DIP at a light ${LIGHT_RATE} msg/s (open loop, fan-out live):`, '', table(loadHeaders, [loadRow(profile.light.load)]), '');
      if (profile.light.summary) md.push('```', formatSummary(profile.light.summary, 12), '```', '');
    }
  }
  const day = results.day as DayResult | undefined;
  if (day) {
    md.push(`### (e) A compressed national day: ${fmt(day.messages)} IF-021 × 4 recipients, closed loop (batch ${day.batch}, ${day.concurrency} in flight, lead ≤ ${fmt(day.maxLead)})`, '', table(dayHeaders, [dayRow(day)]), '');
    md.push(`At this rate the national day (32 M) takes **${fmt(day.nationalDayHours)} h**; the delivery tail after the last 201: ${fmt(day.tailSeconds)} s. Refused for good: ${fmt(day.refused)}; sent again after 503/429: ${JSON.stringify(day.retried)}. Check: ${JSON.stringify(day.check)}.`, '');
  }
  if (ratio && Object.keys(ratio).length) {
    md.push('### Ratios to the raw limits', '', table(['ratio', 'value'], Object.values(ratio).map((x) => [x.of, x.value.toFixed(3)])), '');
  }
  return `${md.join('\n')}\n`;
}

/** The headline figures of each backend, one column each. */
function sideBySide(per: Record<string, Record<string, unknown>>): string {
  const names = Object.keys(per);
  const rows: Array<Array<string | number | null | undefined>> = [];
  const cell = (b: string, get: (r: Record<string, unknown>) => number | string | null | undefined) => get(per[b]!) ?? '—';
  const row = (label: string, get: (r: Record<string, unknown>) => number | string | null | undefined) => rows.push([label, ...names.map((b) => cell(b, get))]);
  for (const batch of [1, 10, 100]) {
    row(`ingest, batch ${batch}, closed loop: msg/s`, (r) => (r.ingest as IngestResult[] | undefined)?.find((x) => x.batch === batch)?.messagesPerSecond);
    row(`ingest, batch ${batch}: request p50 / p99 ms`, (r) => {
      const x = (r.ingest as IngestResult[] | undefined)?.find((y) => y.batch === batch);
      return x ? `${fmt(x.requestP50Ms)} / ${fmt(x.requestP99Ms)}` : undefined;
    });
  }
  const rates = [...new Set(names.flatMap((b) => ((per[b]!.latency as LoadResult[] | undefined) ?? []).map((x) => x.offered)))].sort((a, b) => a - b);
  for (const rate of rates) {
    row(`${rate} msg/s × 4 recipients: in-to-delivered p50 / p90 / p99 ms`, (r) => {
      const x = (r.latency as LoadResult[] | undefined)?.find((y) => y.offered === rate);
      return x ? `${fmt(x.p50)} / ${fmt(x.p90)} / ${fmt(x.p99)}${x.sustained ? '' : ' (not sustained)'}` : undefined;
    });
  }
  row('highest sustained msg/s (4 recipients each)', (r) => (r.ramp as RampResult | undefined)?.maxSustainedRate);
  row('drain after an outage: backlog msg/s', (r) => (r.drain as DrainResult | undefined)?.drainRate);
  row('profile load: accepted msg/s (batch 10, fan-out live)', (r) => (r.profile as ProfileResult | undefined)?.load.messagesPerSecond);
  row('profile load: DIP cores', (r) => (r.profile as ProfileResult | undefined)?.load.cpu.dipCores);
  return table(['measure', ...names.map((b) => (b === 'sqlite' ? 'embedded SQLite' : 'cluster (1 node: PostgreSQL + NATS)'))], rows);
}

async function main(): Promise<void> {
  const started = hostNow();
  mkdirSync(RESULTS_DIR, { recursive: true });
  rmSync(PROFILE_DIR, { recursive: true, force: true });
  const machine = { ...machineInfo(), ...gitInfo() };
  log(`OpenDIP benchmarks (${QUICK ? 'quick' : 'full'}): ${[...selected].join(', ')} on ${machine.nproc} × ${machine.cpuModel}, node ${machine.node}`);
  const results: Record<string, unknown> = {
    generatedAt: new Date().toISOString(),
    mode: QUICK ? 'quick' : 'full',
    machine,
    settings: { ...S, tickMs: TICK_MS, maxPerRequest: MAX_PER_REQUEST, recipients: RECIPIENTS.map((r) => r.role), webhookMaxMessageCount: 500 },
    topology: 'DIP: child process (node --import tsx src/cli/main.ts serve); 4 HTTPS webhook receivers: one child process; load generator + orchestrator: the bench process. All on one host.',
  };
  const f = await fixture();
  try {
    let raw: RawResults | undefined;
    // The day's ratios are to the same run's raw limits: measured for it even when not asked for.
    if (selected.has('raw') || selected.has('day')) results.raw = raw = await rawBench();
    // Pattern B: upload and download throughput against the disk's raw sequential speed (embedded storage).
    if (selected.has('publications')) {
      const throughput = await publicationsBench(QUICK ? [100] : [100, 1024], log);
      results.publications = throughput;
      writeFileSync(join(RESULTS_DIR, 'publications.md'), `${publicationsTable(throughput)}\n`);
    }
    const perBackend: Record<string, Record<string, unknown>> = {};
    const allPoints: LatencyPoint[] = [];
    for (const b of BACKENDS) {
      backend = b;
      f.phase = 0;
      log(`backend: ${b}`);
      const r: Record<string, unknown> = {};
      let ingest: IngestResult[] | undefined;
      let latency: LoadResult[] | undefined;
      let ramp: RampResult | undefined;
      let profile: ProfileResult | undefined;
      if (selected.has('ingest')) {
        const x = await ingestBench(f);
        r.ingest = ingest = x.runs;
        r.ingestProfiles = x.profiles;
      }
      if (selected.has('latency')) r.latency = latency = await latencyBench(f);
      if (selected.has('ramp')) r.ramp = ramp = await rampBench(f, latency ?? []);
      if (selected.has('drain')) r.drain = await drainBench(f, ramp);
      if (fanout) {
        await fanout.pool.close();
        await stopDip(f, fanout.dip);
        fanout = undefined;
      }
      if (selected.has('profile')) r.profile = profile = await profileBench(f);
      let day: DayResult | undefined;
      if (selected.has('day')) {
        r.day = day = await dayBench(f);
        emit('day', { ...day }, table(dayHeaders, [dayRow(day)]));
      }
      r.ratios = { ...ratios(raw, ingest, ramp, latency, profile), ...(day ? dayRatios(raw, day) : {}) };
      if (Object.keys(r.ratios as object).length) {
        emit('ratios', r.ratios as Record<string, unknown>, table(['ratio', 'value'], Object.values(r.ratios as Record<string, { value: number; of: string }>).map((x) => [x.of, x.value.toFixed(3)])));
      }
      const points: LatencyPoint[] = [...(latency ?? []), ...(ramp?.steps ?? [])].map((x) => ({ rate: x.offered, p50: x.p50, p90: x.p90, p99: x.p99, max: x.max, sustained: x.sustained }));
      if (points.length > 0) {
        writeFileSync(
          join(RESULTS_DIR, b === 'sqlite' ? 'latency.svg' : `latency-${b}.svg`),
          latencySvg(points, {
            title: `OpenDIP in-to-delivered latency vs offered load (${b === 'sqlite' ? 'embedded SQLite' : 'cluster: PostgreSQL + NATS'})`,
            subtitle: `IF-021, 4 recipients/message, open loop; ${machine.nproc} × ${String(machine.cpuModel)}, node ${String(machine.node)}; ${QUICK ? 'quick' : 'full'} run ${String(results.generatedAt).slice(0, 16)}Z`,
            targets: [
              { ms: 100, label: 'issue 2: p90 < 100 ms' },
              { ms: 50, label: 'issue 5: p90 < 50 ms at 2,000/s' },
              { ms: 1000, label: 'issue 5: max < 1 s' },
            ],
            rateTargets: [
              { rate: 2000, label: '2,000/s' },
              { rate: 10_000, label: '10,000/s' },
            ],
          }),
        );
      }
      allPoints.push(...points);
      perBackend[b] = r;
    }
    // One backend: the results as before; several: each under its name, and a side-by-side table.
    if (BACKENDS.length === 1) Object.assign(results, perBackend[BACKENDS[0]!]);
    else results.backends = perBackend;
    results.elapsedSeconds = round((hostNow() - started) / 1000, 0);
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeFileSync(join(RESULTS_DIR, 'latest.json'), `${JSON.stringify(results, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2)}\n`);
    const md =
      BACKENDS.length === 1
        ? markdownReport(results)
        : [
            markdownReport({ generatedAt: results.generatedAt, raw: results.raw }),
            '### Side by side',
            '',
            sideBySide(perBackend),
            ...BACKENDS.map((b) => `## Backend: ${b}\n\n${markdownReport({ ...perBackend[b], generatedAt: results.generatedAt })}`),
          ].join('\n');
    writeFileSync(join(RESULTS_DIR, 'latest.md'), md);
    if (BACKENDS.length > 1) writeFileSync(join(RESULTS_DIR, 'side-by-side.md'), `${sideBySide(perBackend)}\n`);
    log(`done in ${results.elapsedSeconds as number} s; results in bench/results/latest.json, latest.md${allPoints.length ? ', latency*.svg' : ''}`);
  } finally {
    if (fanout) await fanout.pool.close().catch(() => undefined);
    for (const d of [...f.dips]) await stopDip(f, d).catch(() => undefined);
    await f.receivers?.stop().catch(() => undefined);
    rmSync(join(f.pkiDir, '..'), { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
