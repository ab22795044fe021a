/**
 * What a listing report costs the main thread (the message road's one writer), folded there or on the report
 * thread: `npx tsx bench/report-thread.ts [--messages 40000,200000] [--runs 2] [--modes main,thread] [--formats json,csv]`
 *
 * Pre-loads a scratch SQLite file in SQL with the largest `--messages` IF-021 messages over one UTC day,
 * two copies each (two recipients), delivered by webhook calls of 100 copies, one copy in a thousand
 * dead-lettered; each size is the period holding its first so many. Then, per size, format (JSON, CSV)
 * and run, asks the operator's sender audit through the report routes (`app.inject`), alternating the
 * modes: `main` folds and writes on this thread in slices (the Reports of before, and PostgreSQL's now);
 * `thread` on the report thread (src/topology/report-threads.ts). For each: wall time; this thread's CPU
 * (utime + stime of /proc/self/task/<pid>, the main thread's own, 10 ms ticks); the process's CPU (every
 * thread); the event loop's busy time (eventLoopUtilization's active); the loop's longest delay
 * (monitorEventLoopDelay, 10 ms); and the answer's bytes, checked equal across the modes. A first small
 * report in each mode, not counted, starts the thread and warms the code.
 */
import Database from 'better-sqlite3';
import Fastify from 'fastify';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { answers } from '../src/api/admin-schemas.js';
import { registerReportRoutes } from '../src/api/report-routes.js';
import { systemClock } from '../src/adapters/clock.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { Reports } from '../src/pipeline/reports.js';
import { ReportThread } from '../src/topology/report-threads.js';
import { namesAsGiven } from '../test/helpers/report-app.js';

const { values: flags } = parseArgs({ options: { messages: { type: 'string', default: '40000,200000' }, runs: { type: 'string', default: '2' }, modes: { type: 'string', default: 'main,thread' }, formats: { type: 'string', default: 'json,csv' } } });
const SIZES = flags.messages.split(',').map(Number);
const N = Math.max(...SIZES);
const RUNS = Number(flags.runs);
const MODES = flags.modes.split(',') as Array<'main' | 'thread'>;
const DAY = 86_400_000;
const D0 = Date.UTC(2026, 10, 1);
const RECIPIENTS = ['1000000001', '1000000002'];
const CALL = 100;
const log = (s: string): void => void process.stderr.write(`[report-thread ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const receivedAt = (k: number): number => D0 + Math.floor((k * DAY) / N);

function preload(file: string): void {
  const db = new Database(file);
  db.pragma('synchronous = OFF');
  db.transaction(() => {
    for (const [i, r] of RECIPIENTS.entries()) db.prepare("INSERT INTO queues (id, recipient_dip_id, channel, acked_seq) VALUES (?, ?, 'IF-021', ?)").run(i + 1, r, N);
    const msg = db.prepare("INSERT INTO messages (id, transaction_id, channel, event_code, sender_dip_id, sender_role, sender_ref, correlation_id, received_at, outbound) VALUES (?, ?, 'IF-021', 'ActivePower', ?, 'SDS', ?, ?, ?, x'00')");
    const entry = db.prepare('INSERT INTO queue_entries (queue_id, seq, message_id) VALUES (?, ?, ?)');
    const call = db.prepare("INSERT INTO delivery_attempts (queue_id, first_seq, last_seq, url, started_at, latency_ms, status, verdict) VALUES (?, ?, ?, 'https://sup.example/dip', ?, 20, 200, 'delivered')");
    const dead = db.prepare("INSERT INTO dead_letters (queue_id, seq, message_id, reason, status, detail, at) VALUES (?, ?, ?, 'rejected', 400, 'refused', ?)");
    for (let k = 0; k < N; k++) {
      const at = receivedAt(k);
      msg.run(k + 1, `T-${k}`, `200000000${k % 8}`, `REF-${k}`, `C-${Math.floor(k / 4)}`, at);
      for (let q = 1; q <= RECIPIENTS.length; q++) {
        entry.run(q, k + 1, k + 1);
        if (k % 1000 === 999) dead.run(q, k + 1, k + 1, at + 300);
        if ((k + 1) % CALL === 0 || k === N - 1) call.run(q, k - (k % CALL) + 1, k + 1, at + 200 + q);
      }
    }
  })();
  db.close();
}

/** This thread's CPU so far, ms (the main thread's task is the process's pid): utime + stime, in ticks of 10 ms. */
function mainThreadCpuMs(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

interface Measured {
  wallMs: number;
  mainCpuMs: number;
  processCpuMs: number;
  loopBusyMs: number;
  longestHoldMs: number;
  bytes: number;
  sha: string;
}

async function measured(work: () => Promise<string>): Promise<Measured> {
  // The loop's longest delay by a 10 ms timer (monitorEventLoopDelay): a setImmediate loop would spin this
  // thread, its CPU then counted as the report's.
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  await new Promise((resolve) => setTimeout(resolve, 30));
  const elu = performance.eventLoopUtilization();
  const cpu0 = mainThreadCpuMs();
  const proc0 = process.cpuUsage();
  const t0 = performance.now();
  const body = await work();
  const wallMs = performance.now() - t0;
  const mainCpuMs = mainThreadCpuMs() - cpu0;
  const proc = process.cpuUsage(proc0);
  const loopBusyMs = performance.eventLoopUtilization(elu).active;
  // A loop held until now records its delay when its timer next fires.
  await new Promise((resolve) => setTimeout(resolve, 30));
  lag.disable();
  return { wallMs, mainCpuMs, processCpuMs: (proc.user + proc.system) / 1000, loopBusyMs, longestHoldMs: lag.max / 1e6, bytes: Buffer.byteLength(body), sha: createHash('sha256').update(body).digest('hex').slice(0, 12) };
}

const dir = mkdtempSync(join(tmpdir(), 'opendip-report-thread-'));
const file = join(dir, 'dip.db');
try {
  await openSqliteBackend(file, { clock: systemClock }).close();
  const t = performance.now();
  preload(file);
  log(`${N} messages pre-loaded in ${Math.round((performance.now() - t) / 1000)} s`);
  const backend = openSqliteBackend(file, { clock: systemClock });
  const thread = new ReportThread(file);
  const mpan = { history: async () => [] };
  const apps = Object.fromEntries(
    await Promise.all(
      MODES.map(async (mode) => {
        const reports = new Reports(backend.traces, mpan, () => Date.now(), '0000000000', null, { counts: backend.reportCounts, ...(mode === 'thread' ? { thread } : {}) });
        const app = Fastify();
        await app.register(async (a) => registerReportRoutes(a, reports, { prefix: '/r', answers, viewer: () => ({ kind: 'operator' }), fail: (reply, _req, status, error) => reply.code(status).send({ error }), now: () => Date.now(), names: namesAsGiven }));
        await app.ready();
        return [mode, app] as const;
      }),
    ),
  );
  for (const mode of MODES) await apps[mode]!.inject({ method: 'GET', url: `/r/sender-audit?from=${new Date(D0).toISOString()}&to=${new Date(receivedAt(Math.min(1_000, N))).toISOString()}` });
  const rows: string[] = [];
  for (const size of SIZES) {
    const to = new Date(receivedAt(size)).toISOString();
    for (const format of flags.formats.split(',')) {
      const url = `/r/sender-audit?from=${new Date(D0).toISOString()}&to=${to}${format === 'csv' ? '&format=csv' : ''}`;
      const shas = new Set<string>();
      for (let run = 1; run <= RUNS; run++) {
        for (const mode of run % 2 === 1 ? MODES : [...MODES].reverse()) {
          const m = await measured(async () => {
            const res = await apps[mode]!.inject({ method: 'GET', url });
            if (res.statusCode !== 200) throw new Error(`${mode} ${format} ${size}: ${res.statusCode} ${res.body.slice(0, 200)}`);
            return res.body;
          });
          shas.add(m.sha);
          const line = `| ${size.toLocaleString('en-GB')} | ${format} | ${mode} | ${run} | ${(m.wallMs / 1000).toFixed(2)} s | ${(m.mainCpuMs / 1000).toFixed(2)} s | ${(m.loopBusyMs / 1000).toFixed(2)} s | ${(m.processCpuMs / 1000).toFixed(2)} s | ${Math.round(m.longestHoldMs)} ms | ${(m.bytes / 1e6).toFixed(1)} MB |`;
          rows.push(line);
          log(line);
        }
      }
      if (shas.size !== 1) throw new Error(`${size} ${format}: the modes answered different bytes (${[...shas].join(', ')})`);
      log(`${size} ${format}: the same bytes in every mode and run (sha256 ${[...shas][0]})`);
    }
  }
  process.stdout.write(['| messages | format | mode | run | wall | main-thread CPU | loop busy | process CPU | longest hold | answer |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |', ...rows].join('\n') + '\n');
  for (const app of Object.values(apps)) await app.close();
  await thread.close();
  await backend.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
