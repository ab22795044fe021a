import { execSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The host's monotonic clock (CLOCK_MONOTONIC, which process.hrtime reads) in milliseconds, sub-ms
 * resolution. Latency is one process's send time subtracted from another's receive time, so the clock
 * must be one the bench's processes share: CLOCK_MONOTONIC is one clock for the whole host and is never
 * stepped. `performance.timeOrigin + performance.now()` is not: each process fixes its timeOrigin from
 * the wall clock when it starts, so a wall-clock step or slew between two processes' starts became a
 * constant offset between their clocks (the likely cause of the flat ~790 ms floor of 2026-12-03). Each
 * level also measures the receivers' offset from this process (`clockOffsetMs`) to show it is ~0.
 */
export const hostNow = (): number => Number(process.hrtime.bigint()) / 1e6;

/** `count` distinct free TCP ports on 127.0.0.1 (held open together while chosen, so they differ). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
  const ports = servers.map((s) => {
    const address = s.address();
    return typeof address === 'object' && address ? address.port : 0;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

let clockTicks = 100;
try {
  clockTicks = Number(execSync('getconf CLK_TCK', { encoding: 'utf8' }).trim()) || 100;
} catch {
  // Linux uses 100 almost everywhere.
}

/** The fields of /proc/<pid>/stat after "(comm)" (the command name may hold spaces), or null when it is gone. */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** A process's user and kernel CPU seconds so far (all its threads), from /proc/<pid>/stat. */
function procUserSystemSeconds(pid: number): { user: number; system: number } {
  const f = statFields(pid);
  return f ? { user: Number(f[11]) / clockTicks, system: Number(f[12]) / clockTicks } : { user: Number.NaN, system: Number.NaN };
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc/<pid>/stat. */
export function procCpuSeconds(pid: number): number {
  // state is field 3, utime field 14, stime field 15: indices 11 and 12 after "(comm)".
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / clockTicks : Number.NaN;
}

/**
 * CPU seconds of a process and all its descendants so far: the DIP's main process with its delivery
 * processes (README "Every core") and any helper it started. Children that exited and were reaped count
 * through cutime/cstime (fields 16, 17), so a delivery process restarted during a phase is not lost.
 */
export function processTreeCpuSeconds(pid: number): number {
  const own = statFields(pid);
  if (!own) return Number.NaN;
  let total = (Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14])) / clockTicks;
  for (const child of descendantsOf(pid)) {
    const f = statFields(child);
    if (f) total += (Number(f[11]) + Number(f[12])) / clockTicks;
  }
  return total;
}

/** The ids of every live process under `pid` (children, their children, …). */
function descendantsOf(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f) parentOf.set(Number(entry), Number(f[1]));
  }
  const inTree = (p: number): boolean => {
    for (let q = parentOf.get(p); q !== undefined && q > 1; q = parentOf.get(q)) if (q === pid) return true;
    return false;
  };
  return [...parentOf.keys()].filter(inTree);
}

/** One thread's CPU seconds so far, in user space and in the kernel (utime, stime of /proc/<pid>/task/<tid>/stat). */
interface ThreadCpu {
  /** The group it is summed under: its process (`main`, or `delivery` for any process under it), then `event loop` or its name. */
  key: string;
  user: number;
  system: number;
}

/**
 * Every thread of the DIP's process tree, by id, with the name it is summed under: the process's own
 * thread (its event loop) apart from its other threads, grouped by the thread's name (node's worker
 * threads, libuv's pool, V8's compiler and GC helpers). Where a saturated DIP's two cores go, split by
 * user and kernel time: the kernel's share is loopback TCP, the IPC pipe and fdatasync, which no CPU
 * profile of JavaScript and no callgrind count sees.
 */
export function processTreeThreads(pid: number): Map<string, ThreadCpu> {
  const out = new Map<string, ThreadCpu>();
  for (const p of [pid, ...descendantsOf(pid)]) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      let stat: string;
      try {
        stat = readFileSync(`/proc/${p}/task/${tid}/stat`, 'utf8');
      } catch {
        continue;
      }
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const where = p === pid ? 'main' : 'delivery';
      const key = Number(tid) === p ? `${where}: event loop` : `${where}: ${comm.replace(/\d+$/, 'N')}`;
      out.set(`${p}/${tid}`, { key, user: Number(f[11]) / clockTicks, system: Number(f[12]) / clockTicks });
    }
  }
  return out;
}

/** Cores each named group of the DIP's threads used between two snapshots, user and kernel apart. */
export interface ThreadGroupUse {
  group: string;
  userCores: number;
  systemCores: number;
}

export function threadsBetween(a: Map<string, ThreadCpu>, b: Map<string, ThreadCpu>, wallSeconds: number): ThreadGroupUse[] {
  const sums = new Map<string, { user: number; system: number }>();
  for (const [id, t] of b) {
    const before = a.get(id);
    const s = sums.get(t.key) ?? { user: 0, system: 0 };
    s.user += t.user - (before?.user ?? 0);
    s.system += t.system - (before?.system ?? 0);
    sums.set(t.key, s);
  }
  return [...sums]
    .map(([group, s]) => ({ group, userCores: round(s.user / wallSeconds, 3), systemCores: round(s.system / wallSeconds, 3) }))
    .sort((x, y) => y.userCores + y.systemCores - (x.userCores + x.systemCores));
}

/** Whole-machine CPU seconds busy / stolen so far (from /proc/stat), to tell our load from neighbours'. */
export function machineCpu(): { busy: number; steal: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = v;
    const busy = user + nice + system + irq + softirq;
    return { busy: busy / clockTicks, steal: steal / clockTicks, total: (busy + idle + iowait + steal) / clockTicks };
  } catch {
    return { busy: Number.NaN, steal: Number.NaN, total: Number.NaN };
  }
}

/** Values at the given percentiles (0–100) of `sorted` (ascending), nearest-rank. */
export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? Number.NaN;
}

export const round = (v: number, digits = 1): number => (Number.isFinite(v) ? Number(v.toFixed(digits)) : v);

export function fmt(v: number | string | null | undefined, digits = 1): string {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'string') return v;
  if (Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return '∞';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-GB');
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(digits);
}

/** A plain-text table (also valid Markdown). */
export function table(headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : (c ?? '–'))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

export function machineInfo(): Record<string, string | number> {
  const cpuinfo = (() => {
    try {
      return readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return '';
    }
  })();
  const model = /^model name\s*:\s*(\S.*)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  let nproc = cpus().length;
  try {
    nproc = Number(execSync('nproc', { encoding: 'utf8' }).trim()) || nproc;
  } catch {
    // keep os.cpus()
  }
  let kernel = '';
  try {
    kernel = execSync('uname -sr', { encoding: 'utf8' }).trim();
  } catch {
    // not fatal
  }
  return {
    nproc,
    cpuModel: model,
    memoryGiB: round(totalmem() / 1024 ** 3, 1),
    node: process.version,
    kernel,
    uvThreadpoolSize: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
  };
}

/** CPU used by each process of the bench between two snapshots, in cores (CPU seconds per wall second). */
export interface CpuSnapshot {
  at: number;
  dip: number;
  receivers: number;
  generator: number;
  /** The receivers' and this process's user and kernel seconds apart, for the kernel's share of the bench's own load. */
  receiversSplit: { user: number; system: number };
  generatorSplit: { user: number; system: number };
  threads: Map<string, ThreadCpu>;
  machine: { busy: number; steal: number; total: number };
}

export function cpuSnapshot(dipPid: number | undefined, receiversPid: number | undefined): CpuSnapshot {
  const u = process.cpuUsage();
  return {
    at: hostNow(),
    // Every process of the DIP: with workers > 1 its delivery processes too.
    dip: dipPid ? processTreeCpuSeconds(dipPid) : Number.NaN,
    receivers: receiversPid ? procCpuSeconds(receiversPid) : Number.NaN,
    generator: (u.user + u.system) / 1e6,
    receiversSplit: receiversPid ? procUserSystemSeconds(receiversPid) : { user: Number.NaN, system: Number.NaN },
    generatorSplit: { user: u.user / 1e6, system: u.system / 1e6 },
    threads: dipPid ? processTreeThreads(dipPid) : new Map(),
    machine: machineCpu(),
  };
}

export interface CpuUse {
  /** Cores used on average by each process over the interval. */
  dipCores: number;
  receiverCores: number;
  generatorCores: number;
  /** Everything busy on the machine (ours and neighbours'), in cores; and time stolen by the hypervisor. */
  machineBusyCores: number;
  /** Busy cores not accounted for by the bench's three processes: the neighbours' load. */
  otherCores: number;
  stealCores: number;
  dipCpuSeconds: number;
  /** The DIP's cores in the kernel (all its threads and processes), of dipCores. */
  dipSystemCores: number;
  receiverSystemCores: number;
  generatorSystemCores: number;
  /** The DIP's threads grouped (event loops, worker threads, pools), user and kernel apart, largest first. */
  dipThreads: ThreadGroupUse[];
}

export function cpuBetween(a: CpuSnapshot, b: CpuSnapshot): CpuUse {
  const wall = (b.at - a.at) / 1000;
  const ours = (x: number) => (Number.isNaN(x) ? 0 : x);
  const busy = (b.machine.busy - a.machine.busy) / wall;
  const mine = ours((b.dip - a.dip) / wall) + ours((b.receivers - a.receivers) / wall) + ours((b.generator - a.generator) / wall);
  return {
    dipCores: round((b.dip - a.dip) / wall, 2),
    receiverCores: round((b.receivers - a.receivers) / wall, 2),
    generatorCores: round((b.generator - a.generator) / wall, 2),
    machineBusyCores: round(busy, 2),
    otherCores: round(Math.max(0, busy - mine), 2),
    stealCores: round((b.machine.steal - a.machine.steal) / wall, 2),
    dipCpuSeconds: round(b.dip - a.dip, 2),
    dipSystemCores: round([...b.threads].reduce((sum, [id, t]) => sum + t.system - (a.threads.get(id)?.system ?? 0), 0) / wall, 3),
    receiverSystemCores: round((b.receiversSplit.system - a.receiversSplit.system) / wall, 2),
    generatorSystemCores: round((b.generatorSplit.system - a.generatorSplit.system) / wall, 2),
    dipThreads: threadsBetween(a.threads, b.threads, wall),
  };
}

const children = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Registers a child process (DIP, receivers, echo server) to be terminated if the bench exits without
 * stopping it (an error, Ctrl-C), so no orphaned DIP keeps running.
 */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
}

/**
 * What an embedded DIP keeps on disk: its SQLite file with the write-ahead log and shared-memory index
 * (the log is kept under 16 MB between checkpoints: at 200,000 messages, up to 80 bytes a message of it).
 */
export function sqliteFileBytes(dataDir: string): number {
  return readdirSync(dataDir)
    .filter((f) => f.startsWith('dip.db'))
    .reduce((sum, f) => sum + statSync(join(dataDir, f)).size, 0);
}
