/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): top functions by self time, by inclusive time for the
 * project's own code, and self time grouped by where the code lives (project, a package, node internals,
 * native, GC, idle).
 *
 *   npx tsx bench/cpuprofile-summary.ts <file.cpuprofile> [--top 25] [--through <regex>]
 *
 * `--through` adds the share of the busy (not idle) time whose stack passes through a frame of a file
 * whose URL matches the pattern: what a subsystem costs the thread, its callees included, e.g.
 * `--through 'activity|alarm'` for the API activity log and alarms (BENCHMARKS.md, issue 11).
 *
 * V8 samples the main thread on a wall-clock timer, so a synchronous system call (SQLite's fsync on
 * COMMIT) counts as time in the JavaScript frame that made it. Work on libuv's thread pool (async RSA
 * signing) and in other threads is not in the profile.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { sourceFor, type SourceFile } from './lib/source-positions.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  name: string;
  where: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  file: string;
  durationMs: number;
  /** Share of the main thread's wall time not idle. */
  busyPercent: number;
  topSelf: FunctionTime[];
  /** The project's own functions (src/), by inclusive time. */
  topInclusiveProject: FunctionTime[];
  byCategory: Array<{ category: string; ms: number; percent: number }>;
  window: boolean;
  /** With `through`: the share of busy time spent inside frames of files matching it (callees included). */
  through: { pattern: string; percentOfBusy: number } | null;
}

function shortUrl(url: string): string {
  if (!url) return '';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  return url.replace(/^file:\/\//, '');
}

function category(f: CallFrame): string {
  const { url, functionName } = f;
  if (functionName === '(idle)') return '(idle)';
  if (functionName === '(garbage collector)') return '(garbage collector)';
  if (functionName === '(program)') return '(program: native, not attributed)';
  if (!url) return 'native / builtins (JSON, crypto, sqlite calls, TLS…)';
  if (url.startsWith('node:')) return 'node internals (http, tls, streams, timers…)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    const pkg = rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? '?');
    return `package ${pkg}`;
  }
  const src = url.indexOf('/src/');
  if (src >= 0) {
    const parts = url.slice(src + 1).split('/');
    return `project ${parts.slice(0, Math.min(parts.length - 1, 2)).join('/')}/`;
  }
  return 'other';
}

/**
 * `window` (optional) keeps only samples taken between two CLOCK_MONOTONIC instants in microseconds, e.g.
 * process.hrtime.bigint() / 1000n read in any process of the same host: V8 stamps samples with that clock.
 */
export function summariseProfile(file: string, top = 25, window?: { fromUs: number; toUs: number }, through?: RegExp): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  // tsx runs whitespace-minified code: map frames of the project's files back to TypeScript lines with
  // tsx's cached source maps (when found), and name anonymous closures after the method around them.
  const sources = new Map<string, SourceFile | undefined>();
  const sourceOf = (url: string): SourceFile | undefined => {
    if (!url.includes('/src/') || url.includes('node_modules')) return undefined;
    if (!sources.has(url)) {
      const named = profile.nodes
        .map((n) => n.callFrame)
        .filter((f) => f.url === url && /^[A-Z_$][\w$]*$/i.test(f.functionName))
        .slice(0, 6);
      sources.set(url, sourceFor(url, named));
    }
    return sources.get(url);
  };
  const displayName = new Map<number, string>();
  const nameOf = (id: number): string => {
    const cached = displayName.get(id);
    if (cached !== undefined) return cached;
    const f = byId.get(id)!.callFrame;
    let name = f.functionName;
    if (!name) {
      const src = sourceOf(f.url);
      const line = src?.originalLine(f.lineNumber, f.columnNumber);
      let owner = line !== undefined ? src?.enclosingName(line) : undefined;
      // Otherwise after the nearest named caller.
      for (let cur = parent.get(id); cur !== undefined && !owner; cur = parent.get(cur)) {
        const n = byId.get(cur)!.callFrame.functionName;
        if (n && !n.startsWith('(')) owner = n;
      }
      name = owner ? `(anonymous in ${owner})` : '(anonymous)';
    }
    displayName.set(id, name);
    return name;
  };
  const where = (f: CallFrame): string => {
    if (!f.url) return '';
    const line = sourceOf(f.url)?.originalLine(f.lineNumber, f.columnNumber);
    return `${shortUrl(f.url)}:${line ?? `${f.lineNumber + 1}:${f.columnNumber + 1}`}`;
  };
  const key = (id: number) => `${nameOf(id)}\u0000${where(byId.get(id)!.callFrame)}`;
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const cats = new Map<string, number>();
  const frames = new Map<string, CallFrame>();
  let total = 0;
  let idle = 0;
  let inside = 0;
  // timeDeltas[i] is the time since the previous sample; charge the interval after a sample to it.
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    at += profile.timeDeltas[i] ?? 0;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const node = byId.get(id);
    if (!node) continue;
    total += dt;
    const f = node.callFrame;
    if (f.functionName === '(idle)') idle += dt;
    const k = key(id);
    frames.set(k, f);
    self.set(k, (self.get(k) ?? 0) + dt);
    const c = category(f);
    cats.set(c, (cats.get(c) ?? 0) + dt);
    const seen = new Set<string>();
    let passes = false;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur)!.callFrame;
      if (through && f.functionName !== '(idle)' && through.test(cf.url)) passes = true;
      const ck = key(cur);
      if (seen.has(ck)) continue;
      seen.add(ck);
      frames.set(ck, cf);
      inclusive.set(ck, (inclusive.get(ck) ?? 0) + dt);
    }
    if (passes) inside += dt;
  }
  const row = (k: string, ms: number): FunctionTime => {
    const [name = '', where = ''] = k.split('\u0000');
    return { name, where, ms: Math.round(ms), percent: Number(((100 * ms) / total).toFixed(1)) };
  };
  const topSelf = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, ms]) => row(k, ms));
  const topInclusiveProject = [...inclusive.entries()]
    .filter(([k]) => frames.get(k)!.url.includes('/src/') && !frames.get(k)!.url.includes('node_modules'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, ms]) => row(k, ms));
  const byCategory = [...cats.entries()].sort((a, b) => b[1] - a[1]).map(([c, ms]) => ({ category: c, ms: Math.round(ms), percent: Number(((100 * ms) / total).toFixed(1)) }));
  return {
    file,
    durationMs: Math.round(total),
    busyPercent: Number(((100 * (total - idle)) / total).toFixed(1)),
    topSelf,
    topInclusiveProject,
    byCategory,
    window: window !== undefined,
    through: through ? { pattern: through.source, percentOfBusy: Number(((100 * inside) / Math.max(1e-9, total - idle)).toFixed(2)) } : null,
  };
}

export function formatSummary(s: ProfileSummary, top = 25): string {
  const lines: string[] = [];
  lines.push(`profile ${s.file}${s.window ? ' (measured window only)' : ''}: ${(s.durationMs / 1000).toFixed(1)} s of main-thread samples, ${s.busyPercent}% not idle`);
  if (s.through) lines.push(`${s.through.percentOfBusy}% of the busy time passes through files matching /${s.through.pattern}/`);
  lines.push('', 'top functions by self time:');
  for (const f of s.topSelf.slice(0, top)) lines.push(`  ${f.percent.toFixed(1).padStart(5)}%  ${String(f.ms).padStart(6)} ms  ${f.name}  ${f.where}`);
  lines.push('', 'self time by origin:');
  for (const c of s.byCategory) lines.push(`  ${c.percent.toFixed(1).padStart(5)}%  ${String(c.ms).padStart(6)} ms  ${c.category}`);
  lines.push('', 'project functions by inclusive time:');
  for (const f of s.topInclusiveProject.slice(0, top)) lines.push(`  ${f.percent.toFixed(1).padStart(5)}%  ${String(f.ms).padStart(6)} ms  ${f.name}  ${f.where}`);
  return lines.join('\n');
}

/** The clock V8 stamps profile samples with (the monotonic clock, in microseconds): windows are read on it. */
export const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * The profiled threads that worked in the window (at least 5 % busy: tsx's module-loader threads are idle
 * then and left out), each summarised; `thread` is the thread id in the profile's file name.
 */
export function busyProfiles(files: string[], window: { fromUs: number; toUs: number }, top: number): Array<{ thread: string; file: string; text: string }> {
  return files
    .map((file) => summariseProfile(file, top, window))
    .filter((s) => s.busyPercent >= 5)
    .map((s) => ({ thread: /\.(\d+)\.\d+\.cpuprofile$/.exec(s.file)?.[1] ?? '?', file: s.file, text: formatSummary(s, top) }));
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: tsx bench/cpuprofile-summary.ts <file.cpuprofile> [--top N] [--through <regex>]\n');
    process.exit(2);
  }
  const i = process.argv.indexOf('--top');
  const top = i > 0 ? Number(process.argv[i + 1] ?? 25) : 25;
  const t = process.argv.indexOf('--through');
  const through = t > 0 ? new RegExp(process.argv[t + 1] ?? '') : undefined;
  process.stdout.write(`${formatSummary(summariseProfile(file, top, undefined, through), top)}\n`);
}
