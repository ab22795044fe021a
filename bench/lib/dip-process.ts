import { spawn } from 'node:child_process';
import { cpSync, createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KeyAndCert } from '../../src/security/pki.js';
import { freePorts, processTreeCpuSeconds, trackChild } from './util.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface DipProcess {
  name: string;
  /** https://127.0.0.1:<port> */
  url: string;
  port: number;
  pid: number;
  dataDir: string;
  ca: KeyAndCert;
  /** CPU seconds so far of the DIP's processes (the main one and its delivery processes). */
  cpuSeconds(): number;
  /**
   * Waits until the DIP's CPU use settles (it logs "listening" before it has compiled every channel's
   * validator, which takes seconds of CPU): below `cores` over each of `samples` consecutive 500 ms windows.
   */
  waitIdle(opts?: { cores?: number; samples?: number; timeoutMs?: number }): Promise<{ waitedMs: number; idle: boolean }>;
  /** SIGTERM, wait for a clean exit (the CPU profile is written then); returns the .cpuprofile path if any. */
  stop(): Promise<string | undefined>;
  /** After stop: the .cpuprofile of every other thread of the DIP's main process (ingest threads, tsx's loader). */
  threadProfiles(): string[];
  /** Removes the data directory (after stop). */
  cleanup(): void;
}

export interface StartOptions {
  name: string;
  /** Write a V8 CPU profile of the DIP's main thread into this directory when it exits. */
  cpuProfileDir?: string;
  /** Contents of dip.config.yaml in the fresh data directory. */
  configYaml?: string;
  /** Copy this PKI folder (ca/server/signing, from ensurePki) into the data directory, so every DIP of a run shares one CA. */
  pkiFrom?: string;
  startTimeoutMs?: number;
  /** More environment for `dip serve` (e.g. DIP_WORKERS). */
  env?: Record<string, string>;
  /** Start on this existing data directory (a DIP stopped earlier, perhaps with rows loaded meanwhile) instead of a fresh one. */
  dataDir?: string;
}

/**
 * Runs the DIP exactly as an operator would (`dip serve`: node + tsx, src/cli/main.ts), as a separate
 * process with a fresh data directory and a free port, and waits for its "OpenDIP listening" log line.
 */
export async function startDipProcess(opts: StartOptions): Promise<DipProcess> {
  const base = opts.dataDir ? dirname(opts.dataDir) : mkdtempSync(join(tmpdir(), `opendip-bench-${opts.name}-`));
  const dataDir = opts.dataDir ?? join(base, 'data');
  mkdirSync(dataDir, { recursive: true });
  if (opts.configYaml) writeFileSync(join(dataDir, 'dip.config.yaml'), opts.configYaml);
  if (opts.pkiFrom) cpSync(opts.pkiFrom, join(dataDir, 'pki'), { recursive: true });
  const [port = 0, adminPort = 0] = await freePorts(2);
  const args = ['--import', 'tsx'];
  if (opts.cpuProfileDir) {
    mkdirSync(opts.cpuProfileDir, { recursive: true });
    args.push('--cpu-prof', `--cpu-prof-dir=${opts.cpuProfileDir}`);
  }
  args.push('src/cli/main.ts', 'serve');
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, DIP_DATA_DIR: dataDir, DIP_PORT: String(port), DIP_ADMIN_PORT: String(adminPort), DIP_PORTAL_PORT: '0', DIP_HOST: '127.0.0.1', DIP_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child);
  const log = createWriteStream(join(base, 'dip.log'));
  let stderrTail = '';
  let stdoutBuf = '';
  let listening: () => void = () => {};
  const ready = new Promise<void>((resolveReady, reject) => {
    listening = resolveReady;
    child.once('exit', (code, signal) => reject(new Error(`DIP ${opts.name} exited before listening (code ${code}, signal ${signal}): ${stderrTail.slice(-2000)}`)));
    setTimeout(() => reject(new Error(`DIP ${opts.name} did not log "OpenDIP listening" within ${opts.startTimeoutMs ?? 60_000} ms`)), opts.startTimeoutMs ?? 60_000).unref();
  });
  child.stdout.on('data', (chunk: Buffer) => {
    log.write(chunk);
    stdoutBuf += chunk.toString('utf8');
    let nl: number;
    while ((nl = stdoutBuf.indexOf('\n')) >= 0) {
      const line = stdoutBuf.slice(0, nl);
      stdoutBuf = stdoutBuf.slice(nl + 1);
      if (line.includes('"OpenDIP listening"')) listening();
    }
  });
  child.stderr.on('data', (chunk: Buffer) => {
    log.write(chunk);
    stderrTail = (stderrTail + chunk.toString('utf8')).slice(-8000);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await ready;
  const pkiDir = join(dataDir, 'pki');
  const ca = { keyPem: readFileSync(join(pkiDir, 'ca.key.pem'), 'utf8'), certPem: readFileSync(join(pkiDir, 'ca.cert.pem'), 'utf8') };
  const pid = child.pid!;
  let stopped = false;
  let others: string[] = [];
  return {
    name: opts.name,
    url: `https://127.0.0.1:${port}`,
    port,
    pid,
    dataDir,
    ca,
    cpuSeconds: () => processTreeCpuSeconds(pid),
    async waitIdle(o = {}) {
      const started = Date.now();
      // First ready: the catalogue's validators compiled (GET /admin/health 200, not 'loading') and every
      // ingest thread ready (each compiles its own), so no measurement starts while they still compile.
      const ready = async (): Promise<boolean> => {
        try {
          const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
          const res = await fetch(`http://127.0.0.1:${adminPort}/admin/health`, { headers: { authorization: `Bearer ${token}` } });
          const body = (await res.json()) as { ingestThreads?: Array<{ state: string }> };
          return res.status === 200 && (body.ingestThreads ?? []).every((t) => t.state === 'ready');
        } catch {
          return false;
        }
      };
      while (!(await ready()) && Date.now() - started < (o.timeoutMs ?? 60_000) * 3) await new Promise((r) => setTimeout(r, 500));
      let quiet = 0;
      let last = processTreeCpuSeconds(pid);
      while (Date.now() - started < (o.timeoutMs ?? 60_000)) {
        await new Promise((r) => setTimeout(r, 500));
        const now = processTreeCpuSeconds(pid);
        quiet = (now - last) / 0.5 < (o.cores ?? 0.1) ? quiet + 1 : 0;
        last = now;
        if (quiet >= (o.samples ?? 2)) return { waitedMs: Date.now() - started, idle: true };
      }
      return { waitedMs: Date.now() - started, idle: false };
    },
    async stop() {
      if (stopped) return undefined;
      stopped = true;
      // Tolerate the folder vanishing meanwhile (another bench run clears bench/results/profiles at its start).
      const list = (dir: string): string[] => {
        try {
          return readdirSync(dir);
        } catch {
          return [];
        }
      };
      const before = new Set(opts.cpuProfileDir ? list(opts.cpuProfileDir) : []);
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
      log.end();
      if (!opts.cpuProfileDir) return undefined;
      // One file per thread (tsx's module loader runs in a worker): the main thread's has thread id 0.
      const fresh = list(opts.cpuProfileDir).filter((f) => f.endsWith('.cpuprofile') && !before.has(f));
      const main = fresh.find((f) => f.includes(`.${pid}.0.`)) ?? fresh[0];
      others = fresh.filter((f) => f !== main && f.includes(`.${pid}.`)).map((f) => join(opts.cpuProfileDir!, f));
      return main ? join(opts.cpuProfileDir, main) : undefined;
    },
    threadProfiles: () => others,
    cleanup() {
      rmSync(base, { recursive: true, force: true });
    },
  };
}
